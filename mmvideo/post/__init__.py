"""Post-production hand-offs on every output, wrapped around a plain ``mmvideo.io`` writer.

``tag`` (the provenance record), ``read_tag`` (reading it back), ``credentials`` (C2PA signing
and reading), ``watermark``, ``verify`` (all three checked in one file), ``writer`` (the writer
that applies them) and ``probe_report`` (what ``mmvideo probe`` adds). ``mmvideo.io`` knows
nothing of this package; the pipeline, farm, preview and tune write through ``writer``.
"""
