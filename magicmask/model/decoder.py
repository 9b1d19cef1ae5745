"""The decoder f_D (spec §3.3): upsample, pad and conv only, its stage outputs kept for eq. 8."""

from __future__ import annotations

import itertools

from torch import Tensor, nn

from magicmask.config import MagicMaskConfig
from magicmask.model.layers import ConvNormAct, act_layer, norm_layer, output_layer


class Decoder(nn.Module):
    """``f_D(z)``: one (upsample → pad → conv → norm → act) stage per width, then the head.

    The head is (upsample to the image size if the stages stop short) → pad → conv → [0, 1]; tiny
    stops at 112 so its only full-resolution layer is the 3-channel output conv.
    """

    def __init__(self, cfg: MagicMaskConfig):
        super().__init__()
        norm, act = norm_layer(cfg.norm_layer), act_layer(cfg.act_layer)
        widths = (cfg.latent_channels, *cfg.decoder_channels)
        self.stages = nn.ModuleList(
            nn.Sequential(
                nn.Upsample(scale_factor=2, mode=cfg.upsample_mode),
                ConvNormAct(c_in, c_out, 3, 1, norm, act, cfg.pad_mode),
            )
            for c_in, c_out in itertools.pairwise(widths)
        )
        head_scale = cfg.image_size // (
            cfg.latent_size * 2 ** len(cfg.decoder_channels)
        )
        self.head = nn.Sequential(
            nn.Upsample(scale_factor=head_scale, mode=cfg.upsample_mode)
            if head_scale > 1
            else nn.Identity(),
            ConvNormAct(
                widths[-1], 3, 3, 1, lambda ch: nn.Identity(), None, cfg.pad_mode
            ),
            output_layer(cfg.output_activation)(),
        )

    def forward(self, z: Tensor) -> tuple[Tensor, list[Tensor]]:
        """The image and the stage outputs ``z^i`` (i = 1..N_D, coarse to fine) used by eq. 8."""
        features = []
        for stage in self.stages:
            z = stage(z)  # [B, C_i, 2h, 2w]
            features.append(z)
        return self.head(z), features
