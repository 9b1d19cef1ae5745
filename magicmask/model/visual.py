"""The visual module f_V (spec §3.1): a conv encoder of x_t, then stacked ARIE blocks."""

from __future__ import annotations

from torch import Tensor, nn

from magicmask.config import MagicMaskConfig
from magicmask.model.arie import ARIEBlock
from magicmask.model.layers import ConvNormAct, act_layer, conv_encoder, norm_layer


class VisualModule(nn.Module):
    """``f_V(x_t, e_s)``: encoder to the latent ``z_t``, identity re-injected by every ARIE block."""

    def __init__(self, cfg: MagicMaskConfig):
        super().__init__()
        norm, act = norm_layer(cfg.norm_layer), act_layer(cfg.act_layer)
        self.encoder = nn.Sequential(
            conv_encoder(3, cfg.encoder_channels, cfg.stem_stride, norm, act, cfg.pad_mode),
            ConvNormAct(
                cfg.encoder_channels[-1],
                cfg.latent_channels,
                3,
                1,
                norm,
                act,
                cfg.pad_mode,
            ),
        )
        self.blocks = nn.ModuleList(
            ARIEBlock(
                cfg.latent_channels,
                cfg.identity_dim,
                cfg.arie_convs,
                act,
                scale_attention=cfg.attention_scale == "uniform-one",
            )
            for _ in range(cfg.arie_blocks)
        )

    def forward(self, x_t: Tensor, e_s: Tensor) -> Tensor:
        z = self.encoder(x_t)  # [B, C, h, w] with h = w = image_size / total_stride
        for block in self.blocks:
            z = block(z, e_s)
        return z
