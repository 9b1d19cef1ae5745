"""Parameter and MAC counts per module, for ``mmvideo models describe`` and the benchmark."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from magicmask.model.generator import MagicMaskGenerator, example_inputs


@dataclass(frozen=True)
class ModuleStats:
    """One row of the summary: a module's dotted name, depth, parameters and GMACs per face."""

    name: str
    depth: int
    params: int
    gmacs: float


def generator_summary(generator: MagicMaskGenerator, max_depth: int = 2) -> list[ModuleStats]:
    """Rows for the whole generator and its sub-modules down to ``max_depth``, at batch 1.

    MACs count convolutions, linear layers and matmuls (torch's flop counter: multiply-adds / 2
    flops); norms, activations and softmax are left out, as is usual.
    """
    counter = FlopCounterMode(display=False, depth=max_depth + 2)
    with torch.inference_mode(), counter:
        generator.eval()(*example_inputs(generator.cfg, batch=1))
    flops = {name: sum(ops.values()) for name, ops in counter.get_flop_counts().items()}
    root = type(generator).__name__
    rows = []
    for name, module in generator.named_modules():
        depth = name.count(".") + 1 if name else 0
        if depth > max_depth or _is_container_item(name):
            continue
        key = f"{root}.{name}" if name else "Global"
        rows.append(ModuleStats(name or root, depth, _params(module), _flops(flops, key) / 2e9))
    return rows


def _flops(flops: dict[str, int], key: str) -> int:
    """A module's flops; a container (ModuleList) is never called, so sum its numbered children."""
    if key in flops:
        return flops[key]
    prefix = key + "."
    return sum(v for k, v in flops.items() if k.startswith(prefix) and "." not in k[len(prefix) :])


def _is_container_item(name: str) -> bool:
    """Numbered children (blocks.0, layers.1) are listed through their container."""
    return name.rsplit(".", 1)[-1].isdigit()


def _params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
