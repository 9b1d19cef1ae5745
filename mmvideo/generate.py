"""The generation stage of the swap pipeline: ``magicmask.inference`` run as the preset's
``[generate]`` slice says (batch size, precision).

The crops themselves go through ``magicmask.inference.Swapper`` (CUDA streams, autocast,
channels_last, compile; see there), which knows nothing of video. On CPU the batches run on the
slice's ``threads`` torch threads (set by ``pipeline.run_swap``) in fp32.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from magicmask.checkpoint import read_meta
from magicmask.face.prepare import TargetInputs
from magicmask.inference import InferenceConfig, Swapper
from mmvideo.config import GenerateConfig, ModelSettings

log = logging.getLogger(__name__)


def load_models(checkpoint: str | None, device: str = "cpu") -> Swapper:
    """The checkpoint (the embedded one when ``checkpoint`` is None) and the identity encoder it
    names, on ``device`` (``--checkpoint``, ``--device``)."""
    return Swapper.load(checkpoint, InferenceConfig(device=device))


def generate_faces(
    models: Swapper,
    e_s: torch.Tensor,
    inputs: list[TargetInputs],
    cfg: GenerateConfig,
) -> np.ndarray:
    """Swapped crops [N, 224, 224, 3] float32 in [0, 1], in batches of ``cfg.batch_size``.

    ``e_s`` is one identity [1, D] for every face, or one per face [N, D] (several actors).
    """
    return models.generate(inputs, e_s, cfg.batch_size, cfg.precision)


def model_settings(checkpoint: str | Path | None, meta: dict | None = None) -> ModelSettings | None:
    """The swap settings ``checkpoint`` carries (``mmvideo.config.ModelSettings``), from ``meta``
    when the caller has loaded it; None without a checkpoint (the embedded model carries none)
    and for a missing file, which the path checks report."""
    if meta is None:
        if checkpoint is None or not Path(checkpoint).is_file():
            return None
        meta = read_meta(checkpoint)
    settings = ModelSettings.from_meta(str(checkpoint), meta)
    if settings is not None:
        log.info(
            "%s: swap settings %s (a flag of the same name overrides them)",
            checkpoint,
            settings.values,
        )
    return settings
