"""The geometric module f_G (spec §3.2): depth + landmark maps → tokens → identity-shared attention.

Equation map: eq. 5 is the shared projections ``Q/K/V_g = z_g W``, ``Q/K_e = E_s W`` (the same
W_Q, W_K for both), eq. 6 the attention that adds the identity-shared term.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from magicmask.config import MagicMaskConfig
from magicmask.model.layers import act_layer, conv_encoder, norm_layer


def identity_shared_attention(
    q_g: Tensor, k_g: Tensor, v_g: Tensor, q_e: Tensor, k_e: Tensor
) -> Tensor:
    """Eq. 6: ``softmax(Q_g K_gᵀ/√d) V_g + softmax(Q_e K_eᵀ/√d) V_g``; all [B, heads, N, d]."""
    scale = 1.0 / math.sqrt(q_g.shape[-1])
    a_g = torch.softmax(q_g @ k_g.transpose(-2, -1) * scale, dim=-1)  # [B, h, N, N]
    a_e = torch.softmax(q_e @ k_e.transpose(-2, -1) * scale, dim=-1)  # [B, h, N, N]
    return a_g @ v_g + a_e @ v_g


class IdentitySharedAttention(nn.Module):
    """Multi-head attention of eq. 5–6: one W_Q and W_K shared by the geometric and identity tokens.

    [ours] √d is the per-head width, as in standard multi-head attention.
    """

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.w_q = nn.Linear(dim, dim)
        self.w_k = nn.Linear(dim, dim)
        self.w_v = nn.Linear(dim, dim)
        self.proj = nn.Linear(dim, dim)

    def _split(self, x: Tensor) -> Tensor:
        b, n, d = x.shape
        return x.view(b, n, self.heads, d // self.heads).transpose(1, 2)  # [B, h, N, d/h]

    def forward(self, z_g: Tensor, e_tokens: Tensor) -> Tensor:
        b, n, d = z_g.shape
        # eq. 5; the identity tokens below share W_Q and W_K with the geometry tokens
        split = self._split
        q_g, k_g, v_g = split(self.w_q(z_g)), split(self.w_k(z_g)), split(self.w_v(z_g))  # eq. 5
        q_e, k_e = split(self.w_q(e_tokens)), split(self.w_k(e_tokens))  # eq. 5
        out = identity_shared_attention(q_g, k_g, v_g, q_e, k_e)  # eq. 6, [B, h, N, d/h]
        return self.proj(out.transpose(1, 2).reshape(b, n, d))


class GeometricEncoderLayer(nn.Module):
    """Pre-norm transformer encoder layer whose attention is eq. 6."""

    def __init__(self, dim: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.ln_1 = nn.LayerNorm(dim)
        self.ln_e = nn.LayerNorm(dim)
        self.attn = IdentitySharedAttention(dim, heads)
        self.ln_2 = nn.LayerNorm(dim)
        hidden = int(dim * mlp_ratio)
        self.mlp = nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), nn.Linear(hidden, dim))

    def forward(self, x: Tensor, e_tokens: Tensor) -> Tensor:
        x = x + self.attn(self.ln_1(x), self.ln_e(e_tokens))
        x = x + self.mlp(self.ln_2(x))
        return x


class GeometricModule(nn.Module):
    """``f_G(x_t^d, x_t^l, e_s)``: conv encoder of depth + heat-maps, tokens, eq. 6 layers, back to a map."""

    def __init__(self, cfg: MagicMaskConfig):
        super().__init__()
        norm, act = norm_layer(cfg.norm_layer), act_layer(cfg.act_layer)
        stem_stride = cfg.total_stride // 2 ** (len(cfg.geo_channels) - 1)
        self.encoder = conv_encoder(
            1 + cfg.landmark_channels,
            cfg.geo_channels,
            stem_stride,
            norm,
            act,
            cfg.pad_mode,
        )
        self.to_tokens = nn.Conv2d(cfg.geo_channels[-1], cfg.geo_dim, 1)
        n_tokens = cfg.latent_size**2
        self.pos = nn.Parameter(torch.zeros(1, n_tokens, cfg.geo_dim))
        # [ours] E_s: a projection of e_s broadcast to the N token positions plus its own learned position
        self.identity_tokens = nn.Linear(cfg.identity_dim, cfg.geo_dim)
        nn.init.trunc_normal_(self.pos, std=0.02)
        if cfg.geo_identity_tokens == "broadcast+pos":
            self.identity_pos = nn.Parameter(torch.zeros(1, n_tokens, cfg.geo_dim))
            nn.init.trunc_normal_(self.identity_pos, std=0.02)
        else:
            self.register_buffer(
                "identity_pos", torch.zeros(1, n_tokens, cfg.geo_dim), persistent=False
            )
        self.layers = nn.ModuleList(
            GeometricEncoderLayer(cfg.geo_dim, cfg.geo_heads, cfg.geo_mlp_ratio)
            for _ in range(cfg.geo_layers)
        )
        self.ln_f = nn.LayerNorm(cfg.geo_dim)
        self.to_latent = (
            nn.Conv2d(cfg.geo_dim, cfg.latent_channels, 1)
            if cfg.geo_dim != cfg.latent_channels
            else nn.Identity()
        )

    def forward(self, depth: Tensor, heatmaps: Tensor, e_s: Tensor) -> Tensor:
        f = self.to_tokens(self.encoder(torch.cat([depth, heatmaps], dim=1)))  # [B, d_g, h, w]
        b, d, h, w = f.shape
        z_g = f.flatten(2).transpose(1, 2) + self.pos  # [B, N, d_g]
        e_tokens = self.identity_tokens(e_s)[:, None, :] + self.identity_pos  # [B, N, d_g]
        for layer in self.layers:
            z_g = layer(z_g, e_tokens)
        z_g = self.ln_f(z_g).transpose(1, 2).reshape(b, d, h, w)  # [B, d_g, h, w]
        return self.to_latent(z_g)  # [B, C, h, w]
