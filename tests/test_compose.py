"""Paste-back: inverse alignment, feathered mask, colour match, untouched pixels outside."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from magicmask.quality import grey, sharpness
from mmvideo.compose import (
    feather_mask,
    invert_affine,
    match_colour_lab,
    paste,
    target_detail,
)
from mmvideo.config import ComposeConfig


def ellipse_mask() -> np.ndarray:
    m = np.zeros((224, 224), np.float32)
    cv2.ellipse(m, (112, 120), (70, 90), 0, 0, 360, 1.0, -1)
    return m


def similarity(scale: float, angle: float, tx: float, ty: float) -> np.ndarray:
    """frame → crop: the crop sees the face ``scale`` times larger than the frame."""
    m = cv2.getRotationMatrix2D((0, 0), angle, scale)
    m[:, 2] = (-tx * scale, -ty * scale)
    return m


def allowed_region(frame_shape, matrix, mask, reach: int) -> np.ndarray:
    """Frame pixels the paste may touch: the mask warped to the frame, dilated by ``reach``+2."""
    h, w = frame_shape[:2]
    warped = cv2.warpAffine(mask, invert_affine(matrix), (w, h), flags=cv2.INTER_NEAREST)
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * (reach + 2) + 1,) * 2)
    return cv2.dilate((warped > 0).astype(np.uint8), k) > 0


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("erosion,feather", [(4, 8), (0, 0), (6, 3)])
def test_only_masked_pixels_change(dtype, erosion, feather):
    rng = np.random.default_rng(0)
    top = 255 if dtype == np.uint8 else 65535
    frame = rng.integers(0, top, (360, 640, 3), dtype=np.int64).astype(dtype)
    original = frame.copy()
    matrix = similarity(1.6, 10, 200, 100)
    gen = rng.random((224, 224, 3), np.float32)
    crop = cv2.warpAffine(frame, matrix, (224, 224))
    cfg = ComposeConfig(mask_erosion=erosion, mask_feather=feather, color_match="lab")
    mask = ellipse_mask()
    out = paste(frame, gen, crop, matrix, mask, cfg)
    assert out is frame and out.dtype == dtype
    changed = np.any(out != original, axis=-1)
    allowed = allowed_region(frame.shape, matrix, mask, max(0, feather - erosion))
    assert changed.sum() > 1000
    assert not np.any(changed & ~allowed)


def test_face_at_the_frame_edge_is_clipped():
    frame = np.full((200, 300, 3), 50, np.uint8)
    matrix = similarity(1.0, 0, 220, -60)  # crop hangs over the right and top borders
    paste(
        frame,
        np.ones((224, 224, 3), np.float32),
        frame[:1, :1],
        matrix,
        ellipse_mask(),
        ComposeConfig(color_match="none"),
    )
    assert frame[0, 299].tolist() == [255, 255, 255]
    assert frame[199, 0].tolist() == [50, 50, 50]


def test_empty_mask_or_offscreen_crop_changes_nothing():
    frame = np.full((100, 100, 3), 7, np.uint8)
    cfg = ComposeConfig()
    crop = np.full((224, 224, 3), 7, np.uint8)
    paste(
        frame,
        np.ones((224, 224, 3), np.float32),
        crop,
        similarity(1, 0, 0, 0),
        np.zeros((224, 224)),
        cfg,
    )
    paste(
        frame,
        np.ones((224, 224, 3), np.float32),
        crop,
        similarity(1, 0, 5000, 5000),
        ellipse_mask(),
        cfg,
    )
    assert np.all(frame == 7)


def test_feather_reach_is_bounded():
    mask = ellipse_mask()
    alpha = feather_mask(mask, ComposeConfig(mask_erosion=2, mask_feather=10))
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * 8 + 1,) * 2)
    assert not np.any((alpha > 0) & (cv2.dilate(mask, k) == 0))
    assert alpha.max() == pytest.approx(1.0) and 0 < alpha[120, 112 + 70] < 1


def test_lab_colour_match_moves_statistics_to_the_target():
    rng = np.random.default_rng(1)
    target = np.clip(rng.normal([0.7, 0.5, 0.4], 0.05, (224, 224, 3)), 0, 1).astype(np.float32)
    gen = np.clip(rng.normal([0.3, 0.4, 0.6], 0.1, (224, 224, 3)), 0, 1).astype(np.float32)
    w = feather_mask(ellipse_mask(), ComposeConfig())
    out = match_colour_lab(gen, target, w)

    def lab(x):
        return cv2.cvtColor(x, cv2.COLOR_RGB2LAB)[w > 0.5]

    np.testing.assert_allclose(lab(out).mean(0), lab(target).mean(0), atol=1.5)
    np.testing.assert_allclose(lab(out).std(0), lab(target).std(0), rtol=0.15, atol=0.5)
    assert match_colour_lab(gen, target, np.zeros_like(w)) is gen


def _textured_frame(seed: int = 0) -> np.ndarray:
    """A frame with fine texture (1-px noise) on a smooth gradient: detail a 224 crop of a large
    face cannot carry."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(60, 190, 640, dtype=np.float32)[None, :, None]
    frame = ramp + rng.normal(0, 20, (480, 640, 3)).astype(np.float32)
    return np.clip(frame, 0, 255).astype(np.uint8)


@pytest.mark.parametrize("strength", [0.0, 0.5, 1.0])
def test_detail_transfer_puts_the_frames_fine_detail_back_on_a_large_face(strength):
    frame = _textured_frame()
    original = frame.copy()
    matrix = similarity(0.5, 0, 100, 40)  # the face is twice the crop's size in the frame
    crop = cv2.warpAffine(frame, matrix, (224, 224), flags=cv2.INTER_AREA)
    smooth = cv2.GaussianBlur(crop, (0, 0), 3).astype(np.float32) / 255.0  # a detail-free render
    cfg = ComposeConfig(
        mask_erosion=0, mask_feather=0, color_match="none", detail_transfer=strength
    )
    paste(frame, smooth, crop, matrix, np.ones((224, 224), np.float32), cfg)
    inner = (slice(180, 420), slice(200, 460))  # inside the pasted square, off its edges
    ratio = sharpness(grey(frame[inner])) / sharpness(grey(original[inner]))
    if strength == 0:
        assert ratio < 0.05  # the upsampled render alone is smooth
    else:
        # the added band is the frame's own fine detail, not noise of its own
        assert ratio > 0.3 * strength
        fine = [
            target_detail(im[inner].astype(np.float32), 2.0).ravel() for im in (frame, original)
        ]
        corr = np.corrcoef(*fine)[0, 1]
        assert corr > 0.5


def test_detail_transfer_adds_nothing_where_the_crop_is_finer_than_the_frame():
    frame = _textured_frame()
    matrix = similarity(2.5, 0, 250, 180)  # a small face: the crop upsamples the frame
    crop = cv2.warpAffine(frame, matrix, (224, 224))
    gen = np.full((224, 224, 3), 0.5, np.float32)
    mask = ellipse_mask()
    outs = []
    for strength in (0.0, 1.0):
        cfg = ComposeConfig(color_match="none", detail_transfer=strength)
        outs.append(paste(frame.copy(), gen, crop, matrix, mask, cfg))
    assert np.array_equal(outs[0], outs[1])


def test_target_detail_is_the_band_above_the_crop_resolution():
    rng = np.random.default_rng(1)
    roi = rng.normal(100, 20, (64, 64, 3)).astype(np.float32)
    assert not target_detail(roi, 0.4).any()  # σ 0.4 px: nothing the crop misses
    band = target_detail(roi, 3.0)
    assert abs(float(band.mean())) < 1.0 and band.std() > 10.0  # zero-mean, most of the noise
    flat = np.full((32, 32, 3), 80, np.float32)
    assert np.allclose(target_detail(flat, 3.0), 0, atol=1e-3)
