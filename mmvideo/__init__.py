"""mmvideo: face replacement in video for post-production, built on MagicMask."""

__version__ = "0.1.0"
