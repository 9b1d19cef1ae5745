"""The leaf of the project: errors, atomic file writes and file hashing.

``magicmask``, ``mmvideo`` and ``train`` all import it; it imports none of them (tests/test_layers.py
checks), so the model package needs nothing of the video tool.
"""
