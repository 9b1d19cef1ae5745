"""The fixed in-graph warp every identity encoder applies to its 112 input (generated images:
the matrix convention is the point, not the content)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from magicmask.face.encoders.arcface import IDENTITY_AFFINE
from magicmask.face.encoders.base import IdentityEncoder
from magicmask.face.identity import DLIB_FROM_112, FACENET_FROM_112


@pytest.mark.parametrize(
    ("matrix", "size"),
    [(DLIB_FROM_112, 150), (FACENET_FROM_112, 160)],
    ids=["dlib", "facenet"],
)
def test_to_native_matches_cv2_warp_affine(matrix, size):
    """The in-graph warp (affine_grid/grid_sample) follows the project's matrix convention:
    same pixels as cv2.warpAffine with the same 2×3 frame → crop matrix."""
    rng = np.random.default_rng(0)
    # A smooth image, so bilinear sampling differences stay below quantisation.
    yy, xx = np.mgrid[0:112, 0:112].astype(np.float32)
    image = np.stack([xx * 2, yy * 2, (xx + yy)], axis=2) + rng.uniform(0, 1, (112, 112, 3))
    image = np.clip(image, 0, 255).astype(np.float32)
    encoder = IdentityEncoder("probe", 3, size, matrix, nn.Identity())
    x = torch.from_numpy(image / 255.0).permute(2, 0, 1)[None]
    ours = encoder.to_native(x)[0].permute(1, 2, 0).numpy() * 255.0
    expected = cv2.warpAffine(
        image,
        matrix,
        (size, size),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
    )
    inside = cv2.warpAffine(np.ones((112, 112), np.float32), matrix, (size, size)) > 0.999
    assert inside.mean() > 0.6
    np.testing.assert_allclose(ours[inside], expected[inside], atol=0.5)


def test_identity_affine_skips_the_warp():
    encoder = IdentityEncoder("probe", 3, 112, IDENTITY_AFFINE, nn.Identity())
    x = torch.rand(2, 3, 112, 112)
    assert encoder.to_native(x) is x
