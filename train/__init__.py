"""Training, preprocessing and evaluation of MagicMask checkpoints."""
