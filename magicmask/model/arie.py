"""The ARIE block (Attention-Residual Identity Embedding) of the visual module, spec §3.1.

Equation map: eq. 1 is the block's normalised feature ``u = IN(conv(BN(z_t)))``, eq. 2 the
identity-conditioned spatial attention, eq. 3 the channel attention, eq. 4 their fusion with the
projected identity code. The two attentions are pure functions so tests can re-compute them.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch
from torch import Tensor, nn

from magicmask.model.layers import LayerFactory, instance_norm


class ARIEFeatures(nn.Sequential):
    """Eq. 1: ``u = IN(conv(BN(z_t)))`` — batch norm, a 3x3 conv, then instance norm."""

    def __init__(self, channels: int, pre_norm: LayerFactory, post_norm: LayerFactory):
        super().__init__(
            pre_norm(channels),
            nn.Conv2d(channels, channels, 3, padding=1),
            post_norm(channels),
        )


def spatial_attention(u: Tensor, phi_s: Tensor, scale: bool = True) -> Tensor:
    """Eq. 2: ``α_s = softmax(s · φ_s(e_s))`` with ``s`` the channel mean of ``u``.

    [ours] For each channel c, a softmax over the H·W positions of ``s_hw · φ_s(e_s)_c``;
    with ``scale`` it is multiplied by H·W so a uniform attention is 1, not 1/(H·W).
    u: [B,C,H,W], phi_s: [B,C] → α_s: [B,C,H,W].
    """
    b, c, h, w = u.shape
    s = u.mean(dim=1).flatten(1)  # [B, HW]
    logits = s[:, None, :] * phi_s[:, :, None]  # [B, C, HW]
    alpha = torch.softmax(logits, dim=-1)
    if scale:
        alpha = alpha * (h * w)
    return alpha.view(b, c, h, w)


def channel_attention(u: Tensor, phi_c: Tensor, scale: bool = True) -> Tensor:
    """Eq. 3: ``α_c = softmax(g ⊙ φ_c(e_s))`` over channels, ``g`` the spatial mean of ``u``.

    [ours] With ``scale`` multiplied by C so a uniform attention is 1. u: [B,C,H,W], phi_c: [B,C]
    → α_c: [B,C,1,1].
    """
    c = u.shape[1]
    g = u.mean(dim=(2, 3))  # [B, C]
    alpha = torch.softmax(g * phi_c, dim=1)
    if scale:
        alpha = alpha * c
    return alpha[:, :, None, None]


def identity_fusion(u: Tensor, alpha_s: Tensor, alpha_c: Tensor, phi: Tensor) -> Tensor:
    """Eq. 4: ``z_v = [α_s ⊙ u + u · α_c] ⊕ φ(e_s)``, ⊕ a channel-wise sum broadcast over H, W."""
    return alpha_s * u + u * alpha_c + phi[:, :, None, None]


class ARIEBlock(nn.Module):
    """One ARIE block: eq. 1 (BN → conv → IN), eq. 2–4 identity attention, further convs, residual."""

    def __init__(
        self,
        channels: int,
        identity_dim: int,
        convs: int,
        act: Callable[[], nn.Module],
        pre_norm: LayerFactory = nn.BatchNorm2d,
        post_norm: LayerFactory | None = None,
        scale_attention: bool = True,
    ):
        super().__init__()
        post_norm = post_norm or partial(instance_norm, affine=False)
        self.pre = ARIEFeatures(channels, pre_norm, post_norm)
        # per-block projections of the identity code (φ_s, φ_c, φ of eq. 2–4)
        self.phi_s = nn.Linear(identity_dim, channels)
        self.phi_c = nn.Linear(identity_dim, channels)
        self.phi = nn.Linear(identity_dim, channels)
        self.scale_attention = scale_attention
        layers: list[nn.Module] = []
        for _ in range(convs):
            layers += [act(), nn.Conv2d(channels, channels, 3, padding=1)]
        self.post = nn.Sequential(*layers)

    def forward(self, z: Tensor, e_s: Tensor) -> Tensor:
        u = self.pre(z)  # eq. 1, [B, C, H, W]
        a_s = spatial_attention(u, self.phi_s(e_s), self.scale_attention)  # eq. 2
        a_c = channel_attention(u, self.phi_c(e_s), self.scale_attention)  # eq. 3
        z_v = identity_fusion(u, a_s, a_c, self.phi(e_s))  # eq. 4
        return z + self.post(z_v)
