"""The generator at inference time: batches of aligned crops through MagicMask, CPU or CUDA.

One object, ``Swapper``: the generator and the identity encoder it was trained with, on one
device, in eval mode. ``swap`` runs one batch of tensors, ``generate`` a list of prepared faces
(``TargetInputs``) in batches, ``embed`` gives the identity codes of aligned 112 crops. It knows
nothing of video: the swap pipeline (``mmvideo.generate``) feeds it the crops of its frames.

``torch.inference_mode`` always. On CUDA, ``generate`` copies each batch host→device from pinned
memory on its own stream while the previous batch computes, under fp16 or bf16 autocast when
asked, and results come back into pinned buffers without blocking the next launch. On CPU every
batch runs in fp32 (half precision convolutions are slower there than fp32, so the precision is
ignored). Optional channels_last memory layout and ``torch.compile``.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from magicmask.checkpoint import default_checkpoint_path, load_checkpoint
from magicmask.config import PRECISIONS
from magicmask.face.identity import build_identity_encoder
from magicmask.face.prepare import TargetInputs
from mmcore.errors import InvalidInput, ModelError

log = logging.getLogger(__name__)

# autocast dtype of each precision (CUDA only)
AUTOCAST = dict(zip(PRECISIONS, (None, torch.float16, torch.bfloat16), strict=True))


@dataclass(frozen=True)
class InferenceConfig:
    """Where the generator runs and in which form: device, memory layout, compiled or not."""

    device: str = "cpu"
    # NCHW unless asked: on CPU the layout conversions around the instance norms cost more than
    # they save (docs/benchmarks.md)
    channels_last: bool = False
    compile: bool = False


def resolve_device(device: str) -> torch.device:
    """``cpu`` or ``cuda[:N]``; CUDA without a usable GPU is a clear error, not a crash later."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidInput(f"--device {device}: CUDA is not available on this machine")
        return torch.device(device)
    if device != "cpu":
        raise InvalidInput(f"--device {device}: unknown device (cpu or cuda)")
    return torch.device("cpu")


class Swapper:
    """A generator and the identity encoder whose codes it was trained on, ready to swap."""

    def __init__(
        self,
        generator: nn.Module,  # (x_t, e_s, depth, heatmaps) -> [B,3,224,224] in [0,1]
        identity_encoder: nn.Module,  # x112 [B,3,112,112] in [0,1] -> [B,D]
        cfg: InferenceConfig = InferenceConfig(),
        sha256: str | None = None,  # of the checkpoint's weights (the provenance tag names it)
    ):
        dev = resolve_device(cfg.device)
        self.device = str(dev)
        self.channels_last = cfg.channels_last
        generator = generator.to(dev).eval()
        if cfg.channels_last:
            generator = generator.to(memory_format=torch.channels_last)
        self.generator = torch.compile(generator) if cfg.compile else generator
        self.identity_encoder = identity_encoder.to(dev).eval()
        self.sha256 = sha256

    @classmethod
    def load(
        cls, checkpoint: str | os.PathLike | None = None, cfg: InferenceConfig = InferenceConfig()
    ) -> Swapper:
        """Load a checkpoint (the embedded one when ``checkpoint`` is None) and build the identity
        encoder it names, both on ``cfg.device``."""
        dev = resolve_device(cfg.device)
        path = Path(checkpoint) if checkpoint else default_checkpoint_path()
        loaded = load_checkpoint(path, map_location=dev)
        encoder = build_identity_encoder(loaded.identity_encoder, device=str(dev))
        dim = getattr(encoder, "dim", None)
        if dim is not None and dim != loaded.config.identity_dim:
            raise ModelError(
                f"{path}: generator expects {loaded.config.identity_dim}-d identities but "
                f"{loaded.identity_encoder} gives {dim}-d"
            )
        log.info(
            "generator %s (%s, sha256 %s) on %s",
            loaded.config.name,
            loaded.identity_encoder,
            loaded.sha256[:12],
            dev,
        )
        return cls(loaded.generator, encoder, cfg, loaded.sha256)

    @torch.inference_mode()
    def embed(self, crops: np.ndarray) -> np.ndarray:
        """Identity codes [N, D] float32, L2-normalised, of aligned 112 crops (N×112×112×3 uint8)."""
        x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0
        e = self.identity_encoder(x.to(self.device)).float()
        return torch.nn.functional.normalize(e, dim=1).cpu().numpy()

    @torch.inference_mode()
    def swap(
        self, x_t: Tensor, e_s: Tensor, depth: Tensor, heatmaps: Tensor, precision: str = "fp32"
    ) -> Tensor:
        """One batch: swapped crops [B,3,224,224] float32 in [0,1], on the model's device.

        ``e_s`` is [B, D], or [1, D] for one source in every face. An inference tensor: read it
        (``.cpu().numpy()``) or ``.clone()`` it before changing it in place.
        """
        non_blocking = self.device.startswith("cuda")
        x_t, e_s, depth, heatmaps = (
            t.to(self.device, non_blocking=non_blocking) for t in (x_t, e_s, depth, heatmaps)
        )
        return self._forward(x_t, e_s, depth, heatmaps, precision)

    @torch.inference_mode()
    def generate(
        self,
        inputs: Sequence[TargetInputs],
        e_s: Tensor,
        batch_size: int = 8,
        precision: str = "fp32",
    ) -> np.ndarray:
        """Swapped crops [N, 224, 224, 3] float32 in [0, 1] of prepared faces, in batches of
        ``batch_size`` (torch's CPU kernels, and so the last bits of a face, depend on it).

        ``e_s`` is one identity [1, D] for every face, or one per face [N, D] (several actors).
        """
        size = max(1, batch_size)
        batches = [
            (*_stack(inputs[i : i + size]), _identities(e_s, i, len(inputs[i : i + size])))
            for i in range(0, len(inputs), size)
        ]
        if self.device.startswith("cuda"):
            outs = self._generate_cuda(batches, precision)
        else:
            outs = [self._forward(x, e, d, h, precision).numpy() for x, d, h, e in batches]
        return np.concatenate(outs).transpose(0, 2, 3, 1)

    def _forward(
        self, x_t: Tensor, e_s: Tensor, depth: Tensor, heatmaps: Tensor, precision: str
    ) -> Tensor:
        """The generator on one batch already on its device: layout, identities, autocast."""
        if precision not in PRECISIONS:
            raise ModelError(f"precision {precision!r}: must be one of {', '.join(PRECISIONS)}")
        if self.channels_last:
            x_t, depth, heatmaps = (
                t.contiguous(memory_format=torch.channels_last) for t in (x_t, depth, heatmaps)
            )
        if len(e_s) == 1 and len(x_t) > 1:
            e_s = e_s.expand(len(x_t), -1)  # one source identity for the whole batch
        # autocast only where it pays: CPU half-precision convolutions are slower than fp32
        dtype = AUTOCAST[precision] if self.device.startswith("cuda") else None
        autocast = (
            torch.autocast("cuda", dtype=dtype) if dtype is not None else contextlib.nullcontext()
        )
        with autocast:
            return self.generator(x_t, e_s, depth, heatmaps).float().clamp_(0, 1)

    def _generate_cuda(self, batches: list, precision: str) -> list[np.ndarray]:
        """Batches (x, depth, heatmaps, identities) through the generator with the copies on a
        side stream overlapping compute."""
        dev = torch.device(self.device)
        copy_stream = torch.cuda.Stream(dev)
        compute = torch.cuda.current_stream(dev)

        def stage(batch):
            with torch.cuda.stream(copy_stream):
                tensors = [t.contiguous().pin_memory().to(dev, non_blocking=True) for t in batch]
                ready = torch.cuda.Event()
                ready.record(copy_stream)
            return tensors, ready

        pending = []
        nxt = stage(batches[0])
        for i in range(len(batches)):
            (x, d, h, e), ready = nxt
            if i + 1 < len(batches):
                nxt = stage(batches[i + 1])  # the next copy overlaps this batch's compute
            compute.wait_event(ready)
            for t in (x, d, h, e):
                t.record_stream(compute)  # allocated on the copy stream, used on this one
            y = self._forward(x, e, d, h, precision)
            host = torch.empty(y.shape, dtype=torch.float32, pin_memory=True)
            host.copy_(y, non_blocking=True)
            done = torch.cuda.Event()
            done.record(compute)
            pending.append((host, done))
        out = []
        for host, done in pending:
            done.synchronize()
            out.append(host.numpy())
        return out


def _stack(inputs: Sequence[TargetInputs]) -> tuple[Tensor, Tensor, Tensor]:
    x_t = torch.from_numpy(np.stack([i.crop for i in inputs])).permute(0, 3, 1, 2).float() / 255.0
    depth = torch.from_numpy(np.stack([i.depth for i in inputs]))[:, None].float()
    heat = torch.from_numpy(np.stack([i.heatmaps for i in inputs])).float()
    return x_t, depth, heat  # [B,3,224,224], [B,1,224,224], [B,G,224,224]


def _identities(e_s: Tensor, start: int, n: int) -> Tensor:
    """The identity rows of faces ``[start, start + n)``: the shared one, or their own."""
    return e_s.expand(n, -1) if len(e_s) == 1 else e_s[start : start + n]
