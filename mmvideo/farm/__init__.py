"""Render-farm mode: split one clip into chunks, run them anywhere, merge them losslessly.

``plan`` (chunk spans + job manifest) → ``chunk`` (one unit of work, resumable) → ``merge``
(stream-copy concat + source audio, verified) ; ``executors`` runs units on a local process pool
or on Ray; ``batch`` drives many clips from one TOML file. ``swap`` is the only module that
touches the swap pipeline, so the farm logic is independent of how a frame is made.
"""
