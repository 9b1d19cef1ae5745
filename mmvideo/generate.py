"""The generation stage: the source identity, batched MagicMask inference, CPU or CUDA.

On CUDA, each batch is copied host→device from pinned memory on its own stream while the
previous batch computes, under fp16 autocast when the preset asks, and results come back
device→host into pinned buffers without blocking the next launch. On CPU the batches run on
``threads`` torch threads in fp32 (CPU fp16 is slower than fp32, so the setting is ignored).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from magicmask.checkpoint import default_checkpoint_path, load_checkpoint
from magicmask.face.identity import build_identity_encoder
from magicmask.face.prepare import TargetInputs
from mmcore.errors import InvalidInput, ModelError
from mmvideo.config import GenerateConfig

log = logging.getLogger(__name__)


@dataclass
class SwapModels:
    """The generator and the identity encoder it was trained with, in eval mode."""

    generator: nn.Module  # (x_t, e_s, depth, heatmaps) -> [B,3,224,224] in [0,1]
    identity_encoder: nn.Module  # x112 [B,3,112,112] in [0,1] -> [B,D] L2-normalised
    sha256: str | None = None
    device: str = "cpu"


def resolve_device(device: str) -> torch.device:
    """``cpu`` or ``cuda[:N]``; CUDA without a usable GPU is a clear error, not a crash later."""
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise InvalidInput(f"--device {device}: CUDA is not available on this machine")
        return torch.device(device)
    if device != "cpu":
        raise InvalidInput(f"--device {device}: unknown device (cpu or cuda)")
    return torch.device("cpu")


def load_models(checkpoint: str | None, device: str = "cpu") -> SwapModels:
    """Load a checkpoint (the embedded one when ``checkpoint`` is None) and build the identity
    encoder it names, both on ``device``."""
    dev = resolve_device(device)
    path = Path(checkpoint) if checkpoint else default_checkpoint_path()
    loaded = load_checkpoint(path, map_location=dev)
    encoder = build_identity_encoder(loaded.identity_encoder, device=str(dev)).eval()
    dim = getattr(encoder, "dim", None)
    if dim is not None and dim != loaded.config.identity_dim:
        raise ModelError(
            f"{path}: generator expects {loaded.config.identity_dim}-d identities but "
            f"{loaded.identity_encoder} gives {dim}-d"
        )
    return SwapModels(loaded.generator.to(dev).eval(), encoder, loaded.sha256, str(dev))


@torch.inference_mode()
def embed_crops(models: SwapModels, crops: np.ndarray) -> np.ndarray:
    """Identity codes [N, D] float32 of aligned 112 crops (N×112×112×3 uint8)."""
    x = torch.from_numpy(np.ascontiguousarray(crops)).permute(0, 3, 1, 2).float() / 255.0
    e = models.identity_encoder(x.to(models.device)).float()
    return torch.nn.functional.normalize(e, dim=1).cpu().numpy()


def _stack(
    inputs: list[TargetInputs],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    x_t = torch.from_numpy(np.stack([i.crop for i in inputs])).permute(0, 3, 1, 2).float() / 255.0
    depth = torch.from_numpy(np.stack([i.depth for i in inputs]))[:, None].float()
    heat = torch.from_numpy(np.stack([i.heatmaps for i in inputs])).float()
    return x_t, depth, heat  # [B,3,224,224], [B,1,224,224], [B,G,224,224]


@torch.inference_mode()
def generate_faces(
    models: SwapModels,
    e_s: torch.Tensor,
    inputs: list[TargetInputs],
    cfg: GenerateConfig,
) -> np.ndarray:
    """Swapped crops [N, 224, 224, 3] float32 in [0, 1], in batches of ``cfg.batch_size``.

    ``e_s`` is one identity [1, D] for every face, or one per face [N, D] (several actors).
    """
    size = max(1, cfg.batch_size)
    batches = [
        (*_stack(inputs[i : i + size]), _identities(e_s, i, len(inputs[i : i + size])))
        for i in range(0, len(inputs), size)
    ]
    if models.device.startswith("cuda"):
        outs = _generate_cuda(models.generator, batches, cfg.precision == "fp16", models.device)
    else:
        outs = [models.generator(x, e, d, h) for x, d, h, e in batches]
        outs = [o.float().numpy() for o in outs]
    return np.concatenate(outs).transpose(0, 2, 3, 1)


def _identities(e_s: torch.Tensor, start: int, n: int) -> torch.Tensor:
    """The identity rows of faces ``[start, start + n)``: the shared one, or their own."""
    return e_s.expand(n, -1) if len(e_s) == 1 else e_s[start : start + n]


def _generate_cuda(
    generator: nn.Module, batches: list, fp16: bool, device: str
) -> list[np.ndarray]:
    """Batches (x, depth, heatmaps, identities) through the generator with copies on a side
    stream overlapping compute."""
    dev = torch.device(device)
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
        with torch.autocast("cuda", dtype=torch.float16, enabled=fp16):
            y = generator(x, e, d, h)
        host = torch.empty(y.shape, dtype=torch.float32, pin_memory=True)
        host.copy_(y.float(), non_blocking=True)
        done = torch.cuda.Event()
        done.record(compute)
        pending.append((host, done))
    out = []
    for host, done in pending:
        done.synchronize()
        out.append(host.numpy())
    return out
