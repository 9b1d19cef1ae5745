"""The swap's config flags: one ``--key`` per key of ``mmvideo.config``, merged onto the preset.

``-y/-n`` and the generic flags-from-a-dataclass helpers are ``mmcore.options``', shared with the
training commands (``train`` imports nothing of ``mmvideo``).
"""

from __future__ import annotations

from mmcore.options import key_options
from mmvideo.config import SwapConfig, config_keys, load_config


def config_options(fn):
    """Add one ``--key`` option per config key (all default to None = "the preset's value")."""
    return key_options(config_keys(), preset=True)(fn)


def merged_config(preset: str, params: dict) -> SwapConfig:
    """The preset with the config flags given on the command line (popped from ``params``)."""
    overrides = {k.name: params.pop(k.name) for k in config_keys()}
    return load_config(preset, overrides)
