"""Discriminators: a global patch discriminator (eq. 10) and the AFSA component discriminators (eq. 11).

AFSA crops boxes around the eyes, nose, mouth and jaw out of the 224 crop with ``affine_grid`` /
``grid_sample`` (a differentiable roi-align without torchvision) and resizes each to a fixed size.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from magicmask.config import COMPONENTS, MagicMaskConfig
from magicmask.model.layers import instance_norm

# Index ranges of the 68-point iBUG layout, in COMPONENTS order (eyes, nose, mouth, jaw).
COMPONENT_POINTS: tuple[tuple[int, int], ...] = ((36, 48), (27, 36), (48, 68), (0, 17))


class PatchDiscriminator(nn.Module):
    """PatchGAN-style: stride-2 conv stages, then a 3x3 conv to one logit per patch."""

    def __init__(self, channels: tuple[int, ...], in_ch: int = 3):
        super().__init__()
        layers: list[nn.Module] = []
        c_prev = in_ch
        for i, c in enumerate(channels):
            layers += [
                nn.Conv2d(c_prev, c, 4, 2, 1),
                instance_norm(c) if i else nn.Identity(),
                nn.LeakyReLU(0.2),
            ]
            c_prev = c
        layers.append(nn.Conv2d(c_prev, 1, 3, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x * 2 - 1)  # [B, 1, H / 2^n, W / 2^n] logits

    def features(self, x: Tensor) -> list[Tensor]:
        """The activation after each conv stage (the logits layer excluded), for feature matching."""
        out, h = [], x * 2 - 1
        for layer in self.net[:-1]:
            h = layer(h)
            if isinstance(layer, nn.LeakyReLU):
                out.append(h)
        return out


class GlobalDiscriminator(nn.Module):
    """The baseline's discriminator D of eq. 10 on the whole 224 crop."""

    def __init__(self, cfg: MagicMaskConfig):
        super().__init__()
        self.net = PatchDiscriminator(cfg.disc_channels)

    def forward(self, image: Tensor, boxes: Tensor | None = None) -> list[Tensor]:
        """One logits map; ``boxes`` is accepted (and unused) so both discriminators share a call."""
        return [self.net(image)]

    def features(self, image: Tensor, boxes: Tensor | None = None) -> list[Tensor]:
        """Intermediate activations of D on the whole crop (feature matching)."""
        return self.net.features(image)


def boxes_from_landmarks(landmarks: Tensor) -> Tensor:
    """Min/max boxes (x0, y0, x1, y1) of the eyes, nose, mouth and jaw points: [B,68,2] → [B,4,4]."""
    boxes = []
    for start, stop in COMPONENT_POINTS:
        pts = landmarks[:, start:stop]  # [B, n, 2]
        boxes.append(torch.cat([pts.amin(dim=1), pts.amax(dim=1)], dim=1))
    return torch.stack(boxes, dim=1)


def box_theta(boxes: Tensor, margin: float, image_size: tuple[int, int]) -> Tensor:
    """``affine_grid`` matrices [B*K, 2, 3] whose output spans each box grown by ``margin`` per side.

    Boxes are in pixel coordinates with pixel centers at integers, so pixel i covers
    [i - 0.5, i + 0.5]; the normalised coordinate of x is (2x + 1) / W - 1 (align_corners=False).
    """
    h, w = image_size
    x0, y0, x1, y1 = boxes.reshape(-1, 4).unbind(dim=1)
    bw = (x1 - x0).clamp(min=2.0)
    bh = (y1 - y0).clamp(min=2.0)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    bw, bh = bw * (1 + 2 * margin), bh * (1 + 2 * margin)
    zero = torch.zeros_like(cx)
    row_x = torch.stack([bw / w, zero, (2 * cx + 1) / w - 1], dim=1)
    row_y = torch.stack([zero, bh / h, (2 * cy + 1) / h - 1], dim=1)
    return torch.stack([row_x, row_y], dim=1)


def crop_components(
    image: Tensor, boxes: Tensor, sizes: tuple[tuple[int, int], ...], margin: float
) -> list[Tensor]:
    """Crop each component box of ``image`` [B,3,H,W] (``boxes`` [B,K,4]) to its fixed (h, w).

    Differentiable in ``image`` (bilinear ``grid_sample``); boxes carry no gradient.
    """
    b, c, h, w = image.shape
    theta = box_theta(boxes.detach().to(image.dtype), margin, (h, w)).view(b, len(sizes), 2, 3)
    crops = []
    for k, (ch, cw) in enumerate(sizes):
        grid = F.affine_grid(theta[:, k], [b, c, ch, cw], align_corners=False)
        crops.append(
            F.grid_sample(image, grid, mode="bilinear", padding_mode="border", align_corners=False)
        )
    return crops


class AFSADiscriminator(nn.Module):
    """Eq. 11's discriminators: [ours] one small patch discriminator per component (eyes, nose, mouth, jaw)."""

    def __init__(self, cfg: MagicMaskConfig):
        super().__init__()
        self.sizes = cfg.afsa_crop_sizes
        self.margin = cfg.afsa_margin
        self.nets = nn.ModuleList(PatchDiscriminator(cfg.disc_channels) for _ in COMPONENTS)

    def forward(self, image: Tensor, boxes: Tensor) -> list[Tensor]:
        """Logits maps, one per component, for the crops of ``image`` at ``boxes`` [B,4,4]."""
        crops = crop_components(image, boxes, self.sizes, self.margin)
        return [net(crop) for net, crop in zip(self.nets, crops)]

    def features(self, image: Tensor, boxes: Tensor) -> list[Tensor]:
        """Intermediate activations of every component discriminator, concatenated in component order."""
        crops = crop_components(image, boxes, self.sizes, self.margin)
        return [f for net, crop in zip(self.nets, crops) for f in net.features(crop)]


def create_discriminator(cfg: MagicMaskConfig) -> nn.Module:
    """The discriminator the config's adversarial loss uses (Table 1: global or AFSA)."""
    return AFSADiscriminator(cfg) if cfg.adversarial == "afsa" else GlobalDiscriminator(cfg)
