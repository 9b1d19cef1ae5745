"""MagicMask (Yu et al., ACML 2025): a pose-robust, single-pass face-swap model."""
