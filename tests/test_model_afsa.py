"""AFSA component cropping (eq. 11): crops land on the right landmarks and pass gradients."""

from __future__ import annotations

import numpy as np
import torch

from magicmask.config import COMPONENTS, create_config
from magicmask.model.discriminators import (
    COMPONENT_POINTS,
    AFSADiscriminator,
    boxes_from_landmarks,
    crop_components,
)

# A known layout: each component's landmarks spread over its own rectangle of the 224 crop.
RECTS = {
    "eyes": (60, 70, 164, 94),
    "nose": (96, 96, 128, 140),
    "mouth": (80, 150, 144, 176),
    "jaw": (30, 40, 194, 210),
}
COLORS = {"eyes": (1.0, 0.0, 0.0), "nose": (0.0, 1.0, 0.0), "mouth": (0.0, 0.0, 1.0)}


def _layout_landmarks() -> torch.Tensor:
    pts = np.zeros((68, 2), np.float32)
    rng = np.random.default_rng(0)
    for name, (start, stop) in zip(COMPONENTS, COMPONENT_POINTS):
        x0, y0, x1, y1 = RECTS[name]
        n = stop - start
        pts[start:stop, 0] = rng.uniform(x0, x1, n)
        pts[start:stop, 1] = rng.uniform(y0, y1, n)
        pts[start, :] = (x0, y0)  # make the extremes exact
        pts[start + 1, :] = (x1, y1)
    return torch.from_numpy(pts)[None]


def test_boxes_from_landmarks_known_layout():
    boxes = boxes_from_landmarks(_layout_landmarks())
    assert boxes.shape == (1, 4, 4)
    for k, name in enumerate(COMPONENTS):
        assert boxes[0, k].tolist() == list(map(float, RECTS[name]))


def _painted_image() -> torch.Tensor:
    """Grey image with each of eyes/nose/mouth boxes painted a pure colour (pixel-inclusive)."""
    img = torch.full((1, 3, 224, 224), 0.5)
    for name, color in COLORS.items():
        x0, y0, x1, y1 = RECTS[name]
        img[0, :, y0 : y1 + 1, x0 : x1 + 1] = torch.tensor(color)[:, None, None]
    return img


def test_crops_land_on_their_components():
    img = _painted_image()
    boxes = boxes_from_landmarks(_layout_landmarks())
    sizes = ((16, 32), (24, 16), (16, 32), (32, 48))
    crops = crop_components(img, boxes, sizes, margin=0.0)
    for k, name in enumerate(COMPONENTS):
        assert crops[k].shape == (1, 3, *sizes[k])
        if name in COLORS:
            expected = torch.tensor(COLORS[name])[None, :, None, None].expand_as(crops[k])
            assert torch.allclose(crops[k], expected, atol=1e-5), name
    # the jaw box holds everything: all three colours and the grey background appear in its crop
    jaw = crops[3][0].reshape(3, -1).T
    for color in (*COLORS.values(), (0.5, 0.5, 0.5)):
        assert (jaw - torch.tensor(color)).abs().sum(dim=1).min() < 1e-4


def test_margin_grows_the_crop_around_the_box():
    img = _painted_image()
    boxes = boxes_from_landmarks(_layout_landmarks())
    (eyes_tight, *_), (eyes_wide, *_) = (
        crop_components(img, boxes, ((16, 32),) * 4, margin=m) for m in (0.0, 0.25)
    )
    assert (eyes_tight[0, 0] == 1).all()
    wide_red = (eyes_wide[0, 0] > 0.99) & (eyes_wide[0, 1] < 0.01)
    # with 25% margin on each side the box fills the middle ~2/3 of the crop: red centre, grey rim
    assert wide_red[8, 16] and not wide_red[0, 0] and not wide_red[-1, -1]
    frac = wide_red.float().mean().item()
    assert abs(frac - (1 / 1.5) ** 2) < 0.1


def test_crops_are_differentiable_for_the_fake_branch():
    cfg = create_config("tiny")
    disc = AFSADiscriminator(cfg)
    fake = torch.rand(2, 3, 224, 224, requires_grad=True)
    boxes = boxes_from_landmarks(_layout_landmarks().expand(2, 68, 2))
    logits = disc(fake, boxes)
    assert len(logits) == 4
    sum(lg.mean() for lg in logits).backward()
    grad = fake.grad.abs().sum(dim=(0, 1))
    # gradient only inside the union of the boxes (jaw covers the others)
    x0, y0, x1, y1 = RECTS["jaw"]
    assert grad[y0 : y1 + 1, x0 : x1 + 1].sum() > 0
    outside = grad.clone()
    outside[y0 - 1 : y1 + 2, x0 - 1 : x1 + 2] = 0
    assert outside.sum() == 0
