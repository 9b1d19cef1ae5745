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
        head_scale = cfg.image_size // (cfg.latent_size * 2 ** len(cfg.decoder_channels))
        self.head = nn.Sequential(
            nn.Upsample(scale_factor=head_scale, mode=cfg.upsample_mode)
            if head_scale > 1
            else nn.Identity(),
            ConvNormAct(widths[-1], 3, 3, 1, lambda ch: nn.Identity(), None, cfg.pad_mode),
            output_layer(cfg.output_activation)(),
        )

    def forward(
        self, z: Tensor, detail: dict[int, Tensor] | None = None
    ) -> tuple[Tensor, list[Tensor]]:
        """The image and the stage outputs ``z^i`` (i = 1..N_D, coarse to fine) used by eq. 8;
        ``detail`` (stage index → map of that stage's shape) is added to those stages' outputs."""
        features = []
        for i, stage in enumerate(self.stages):
            z = stage(z)  # [B, C_i, 2h, 2w]
            if detail and i in detail:
                z = z + detail[i]
            features.append(z)
        return self.head(z), features


class DetailPath(nn.Module):
    """[ours] Target detail for the decoder: a shallow stride-2 encoder of ``x_t`` whose map at each
    decoder stage resolution below the image size goes through a zero-initialised 1x1 conv and is
    added to that stage's output. The encoder of f_V leaves full resolution at once (tiny: a 4x
    patchify stem), so nothing finer than the 14 px latent reached the decoder; zero-initialising
    the outputs makes a fine-tune from a model without the path start from identical outputs.
    Full-resolution stages get nothing: that would hand the target's pixels straight through.
    """

    def __init__(self, cfg: MagicMaskConfig):
        super().__init__()
        norm, act = norm_layer(cfg.norm_layer), act_layer(cfg.act_layer)
        sizes = [cfg.latent_size * 2 ** (i + 1) for i in range(len(cfg.decoder_channels))]
        levels = sorted(
            (
                (s, i, c)
                for i, (s, c) in enumerate(zip(sizes, cfg.decoder_channels))
                if s < cfg.image_size
            ),
            reverse=True,
        )  # finest first: each level downsamples the previous one
        self.stage_index = [i for _, i, _ in levels]
        self.down = nn.ModuleList()
        self.out = nn.ModuleList()
        size_prev, c_prev = cfg.image_size, 3
        for size, _, c in levels:
            stride = size_prev // size
            kernel = 3 if stride == 2 else stride
            self.down.append(ConvNormAct(c_prev, c, kernel, stride, norm, act, cfg.pad_mode))
            proj = nn.Conv2d(c, c, 1)
            nn.init.zeros_(proj.weight)
            nn.init.zeros_(proj.bias)
            self.out.append(proj)
            size_prev, c_prev = size, c

    def forward(self, x_t: Tensor) -> dict[int, Tensor]:
        """Decoder stage index → detail map [B, C_i, H_i, W_i] to add to that stage's output."""
        detail, h = {}, x_t
        for index, down, proj in zip(self.stage_index, self.down, self.out):
            h = down(h)
            detail[index] = proj(h)
        return detail
