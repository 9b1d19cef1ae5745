"""The generator at inference time, for the swap pipeline: one object, one ``swap`` call.

``torch.inference_mode`` always; on CUDA, fp16/bf16 autocast; optional channels_last and
``torch.compile``. Batches of any size; inputs are moved to the model's device here so callers
can hand over (pinned) CPU tensors.
"""

from __future__ import annotations

import contextlib
import logging
import os
from dataclasses import dataclass

import torch
from torch import Tensor

from magicmask.checkpoint import (
    LoadedCheckpoint,
    default_checkpoint_path,
    load_checkpoint,
)
from mmcore.errors import ModelError

log = logging.getLogger(__name__)

_PRECISIONS = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class InferenceConfig:
    """How to run the generator: device, autocast precision (CUDA only), memory layout, compile."""

    device: str = "cpu"
    precision: str = "fp16"  # used on CUDA only; CPU runs fp32
    # None = on CUDA only: on CPU the layout conversions around the norms cost more than they save
    channels_last: bool | None = None
    compile: bool = False


class Swapper:
    """A loaded checkpoint ready to swap batches: ``swap(x_t, e_s, depth, heatmaps) -> [B,3,224,224]``."""

    def __init__(
        self,
        checkpoint: str | os.PathLike | LoadedCheckpoint | None = None,
        cfg: InferenceConfig = InferenceConfig(),
    ):
        if cfg.precision not in _PRECISIONS:
            raise ModelError(
                f"precision {cfg.precision!r}: must be one of {', '.join(_PRECISIONS)}"
            )
        if cfg.device.startswith("cuda") and not torch.cuda.is_available():
            raise ModelError(f"device {cfg.device}: CUDA is not available on this machine")
        loaded = (
            checkpoint
            if isinstance(checkpoint, LoadedCheckpoint)
            else load_checkpoint(checkpoint or default_checkpoint_path())
        )
        self.checkpoint = loaded
        self.device = torch.device(cfg.device)
        channels_last = (
            self.device.type == "cuda" if cfg.channels_last is None else cfg.channels_last
        )
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = loaded.generator.to(self.device, memory_format=self.memory_format).eval()
        self.model = torch.compile(model) if cfg.compile else model
        # autocast only where it pays: CPU half-precision convs are slower than fp32
        self.autocast_dtype = _PRECISIONS[cfg.precision] if self.device.type == "cuda" else None
        log.info(
            "generator %s (%s, sha256 %s) on %s, autocast %s",
            loaded.config.name,
            loaded.identity_encoder,
            loaded.sha256[:12],
            self.device,
            self.autocast_dtype,
        )

    @property
    def identity_encoder(self) -> str:
        """The identity encoder the checkpoint was trained with (its e_s must come from it)."""
        return self.checkpoint.identity_encoder

    def swap(self, x_t: Tensor, e_s: Tensor, depth: Tensor, heatmaps: Tensor) -> Tensor:
        """Swapped crops [B,3,224,224] float32 in [0,1], on the model's device.

        An inference tensor: read it (``.cpu().numpy()``) or ``.clone()`` it before changing it in place.
        """
        dev = self.device
        non_blocking = dev.type == "cuda"
        x_t = x_t.to(dev, non_blocking=non_blocking).contiguous(memory_format=self.memory_format)
        depth = depth.to(dev, non_blocking=non_blocking).contiguous(
            memory_format=self.memory_format
        )
        heatmaps = heatmaps.to(dev, non_blocking=non_blocking).contiguous(
            memory_format=self.memory_format
        )
        e_s = e_s.to(dev, non_blocking=non_blocking)
        if e_s.shape[0] == 1 and x_t.shape[0] > 1:
            e_s = e_s.expand(x_t.shape[0], -1)  # one source identity for the whole batch
        autocast = (
            torch.autocast(dev.type, dtype=self.autocast_dtype)
            if self.autocast_dtype
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), autocast:
            return self.model(x_t, e_s, depth, heatmaps).float().clamp_(0, 1)
