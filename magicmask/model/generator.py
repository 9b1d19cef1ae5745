"""The MagicMask generator ``x_{t→s} = f_D(f_V(x_t, e_s) + f_G(x_t^d, x_t^l, e_s))`` (spec §3)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from magicmask.config import MagicMaskConfig, create_config
from magicmask.model.decoder import Decoder, DetailPath
from magicmask.model.geometric import GeometricModule
from magicmask.model.visual import VisualModule


class NoGeometry(nn.Module):
    """The f_V-only ablation's stand-in for f_G: adds nothing and owns no parameters."""

    def forward(self, depth: Tensor, heatmaps: Tensor, e_s: Tensor) -> Tensor:
        return depth.new_zeros(())


class MagicMaskGenerator(nn.Module):
    """The architecture of spec §3: the decoder applied to the sum of the visual and geometric latents.

    Inputs (docs/design.md): x_t [B,3,224,224] in [0,1], e_s [B,D] L2-normalised, depth
    [B,1,224,224], heatmaps [B,G,224,224]; output [B,3,224,224] in [0,1].
    """

    def __init__(self, cfg: MagicMaskConfig):
        super().__init__()
        self.cfg = cfg
        self.visual = VisualModule(cfg)
        self.geometric = GeometricModule(cfg) if cfg.use_geometric else NoGeometry()
        self.decoder = Decoder(cfg)
        # [ours] config.detail_path; absent (no parameters) in the paper's architecture
        self.detail = DetailPath(cfg) if cfg.detail_path else None

    def forward_with_features(
        self, x_t: Tensor, e_s: Tensor, depth: Tensor, heatmaps: Tensor
    ) -> tuple[Tensor, list[Tensor]]:
        """The swapped image and the decoder features ``z^i`` of eq. 8."""
        z = self.visual(x_t, e_s) + self.geometric(depth, heatmaps, e_s)  # [B, C, h, w]
        return self.decoder(z, self.detail(x_t) if self.detail is not None else None)

    def forward(self, x_t: Tensor, e_s: Tensor, depth: Tensor, heatmaps: Tensor) -> Tensor:
        return self.forward_with_features(x_t, e_s, depth, heatmaps)[0]


def create_generator(name_or_config: str | MagicMaskConfig, **overrides) -> MagicMaskGenerator:
    """Build a generator from a registered name or a config, with field overrides."""
    return MagicMaskGenerator(create_config(name_or_config, **overrides))


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def example_inputs(
    cfg: MagicMaskConfig, batch: int = 1, seed: int = 0
) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Deterministic random inputs of the right shapes and ranges (for export, benchmarks, tests)."""
    g = torch.Generator().manual_seed(seed)
    size = cfg.image_size
    x_t = torch.rand(batch, 3, size, size, generator=g)
    e_s = torch.nn.functional.normalize(torch.randn(batch, cfg.identity_dim, generator=g), dim=1)
    depth = torch.rand(batch, 1, size, size, generator=g)
    heatmaps = torch.rand(batch, cfg.landmark_channels, size, size, generator=g)
    return x_t, e_s, depth, heatmaps
