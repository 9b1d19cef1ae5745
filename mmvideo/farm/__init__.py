"""Render-farm mode: split one clip into chunks, run them anywhere, merge them losslessly.

``plan`` (chunk spans + the job manifest) → ``chunk`` (one unit of work, resumable, with a status
file) → ``merge`` (stream-copy concat + the source's audio, verified against the source);
``executors`` runs units on a local process pool or on Ray; ``batch`` drives many clips from one
TOML file; ``commands`` are the CLI. ``swap`` is the only module that touches the swap pipeline,
its config and the checkpoint API, and ``scan`` the only one that reads media facts; ``typed``
loads the job file's JSON into its dataclasses, checking every key.
"""
