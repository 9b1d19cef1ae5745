"""Paste-back: inverse alignment, feathered mask, colour match, blend modes, untouched pixels
outside."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from magicmask.quality import gray, seam_ratio, sharpness
from mmcore.errors import InvalidInput
from mmvideo.commands import main
from mmvideo.compose import (
    SeamTracker,
    feather_mask,
    invert_affine,
    match_color_gradient,
    match_color_lab,
    membrane,
    paste,
    seam_ring,
    seam_strength,
    target_chroma,
    target_detail,
)
from mmvideo.config import ComposeConfig, config_keys, load_config

BLENDS = ("alpha", "multiband", "poisson")


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


def test_lab_color_match_moves_statistics_to_the_target():
    rng = np.random.default_rng(1)
    target = np.clip(rng.normal([0.7, 0.5, 0.4], 0.05, (224, 224, 3)), 0, 1).astype(np.float32)
    gen = np.clip(rng.normal([0.3, 0.4, 0.6], 0.1, (224, 224, 3)), 0, 1).astype(np.float32)
    w = feather_mask(ellipse_mask(), ComposeConfig())
    out = match_color_lab(gen, target, w)

    def lab(x):
        return cv2.cvtColor(x, cv2.COLOR_RGB2LAB)[w > 0.5]

    np.testing.assert_allclose(lab(out).mean(0), lab(target).mean(0), atol=1.5)
    np.testing.assert_allclose(lab(out).std(0), lab(target).std(0), rtol=0.15, atol=0.5)
    assert match_color_lab(gen, target, np.zeros_like(w)) is gen


def test_target_chroma_takes_the_targets_colour_and_keeps_the_faces_lightness():
    rng = np.random.default_rng(2)
    target = np.clip(rng.normal([0.7, 0.5, 0.4], 0.05, (224, 224, 3)), 0, 1).astype(np.float32)
    gen = np.clip(rng.normal([0.3, 0.4, 0.6], 0.1, (224, 224, 3)), 0, 1).astype(np.float32)

    def lab(x):
        return cv2.cvtColor(x, cv2.COLOR_RGB2LAB)

    full, half = target_chroma(gen, target, 1.0), target_chroma(gen, target, 0.5)
    inside = (full > 0.001).all(-1) & (full < 0.999).all(-1)  # away from the gamut's clip
    np.testing.assert_allclose(lab(full)[inside][:, 1:], lab(target)[inside][:, 1:], atol=1.0)
    np.testing.assert_allclose(lab(full)[inside][:, 0], lab(gen)[inside][:, 0], atol=1.0)
    mid = (lab(gen)[..., 1:] + lab(target)[..., 1:]) / 2
    np.testing.assert_allclose(lab(half)[inside][:, 1:], mid[inside], atol=1.5)
    np.testing.assert_allclose(target_chroma(gen, target, 0.0), gen, atol=5e-3)  # the round trip


def test_chroma_from_target_takes_a_blue_blotch_out_of_the_paste():
    frame = np.full((300, 300, 3), (200, 150, 120), np.uint8)
    matrix = similarity(1.0, 0.0, 38, 38)
    crop = cv2.warpAffine(frame, matrix, (224, 224))
    gen = crop.astype(np.float32) / 255.0
    gen[100:130, 80:110] = (0.45, 0.5, 0.75)  # a blue blotch on the cheek
    blotch = (slice(38 + 105, 38 + 125), slice(38 + 85, 38 + 105))

    def pasted(weight: float) -> np.ndarray:
        cfg = ComposeConfig(color_match="none", chroma_from_target=weight)
        return paste(frame.copy(), gen, crop, matrix, ellipse_mask(), cfg)[blotch]

    def chroma_error(out: np.ndarray) -> float:
        lab = cv2.cvtColor(out, cv2.COLOR_RGB2LAB).astype(np.float32)
        ref = cv2.cvtColor(frame[blotch], cv2.COLOR_RGB2LAB).astype(np.float32)
        return float(np.abs(lab[..., 1:] - ref[..., 1:]).mean())

    assert chroma_error(pasted(0.0)) > 20
    assert chroma_error(pasted(1.0)) < 2
    assert load_config("balanced", {"chroma_from_target": 0.5}).compose.chroma_from_target == 0.5
    with pytest.raises(InvalidInput, match="--chroma-from-target must be a number from 0 to 1"):
        load_config("balanced", {"chroma_from_target": 1.5})


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
    ratio = sharpness(gray(frame[inner])) / sharpness(gray(original[inner]))
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


def test_detail_sigma_widens_the_band_taken_from_the_frame():
    """Texture one to two crop pixels wide on a large face (two frame pixels per crop pixel), a
    smooth render: the default cutoff (1 crop pixel) brings back little of it, a cutoff of 2
    brings back most, the frame's own texture rather than noise."""
    noise = np.random.default_rng(2).normal(0, 40, (480, 640, 3)).astype(np.float32)
    frame = np.clip(128 + 3 * cv2.GaussianBlur(noise, (0, 0), 2.5), 0, 255).astype(np.uint8)
    matrix = similarity(0.5, 0, 100, 40)
    crop = cv2.warpAffine(frame, matrix, (224, 224), flags=cv2.INTER_AREA)
    smooth = cv2.GaussianBlur(crop, (0, 0), 4).astype(np.float32) / 255.0
    inner = (slice(180, 420), slice(200, 460))
    texture = frame[inner].astype(np.float32) - cv2.GaussianBlur(frame, (0, 0), 8)[inner]
    left = {}
    for sigma in (1.0, 2.0):
        cfg = ComposeConfig(
            mask_erosion=0,
            mask_feather=0,
            color_match="none",
            detail_transfer=1.0,
            detail_sigma=sigma,
        )
        out = paste(frame.copy(), smooth, crop, matrix, np.ones((224, 224), np.float32), cfg)
        left[sigma] = np.abs(out[inner].astype(np.float32) - frame[inner]).mean()
    assert left[2.0] < 0.6 * left[1.0], left
    assert left[2.0] < 0.5 * np.abs(texture).mean(), (left, np.abs(texture).mean())


def test_target_detail_is_the_band_above_the_crop_resolution():
    rng = np.random.default_rng(1)
    roi = rng.normal(100, 20, (64, 64, 3)).astype(np.float32)
    assert not target_detail(roi, 0.4).any()  # σ 0.4 px: nothing the crop misses
    band = target_detail(roi, 3.0)
    assert abs(float(band.mean())) < 1.0 and band.std() > 10.0  # zero-mean, most of the noise
    flat = np.full((32, 32, 3), 80, np.float32)
    assert np.allclose(target_detail(flat, 3.0), 0, atol=1e-3)


@pytest.mark.parametrize("blend", BLENDS)
@pytest.mark.parametrize("dtype", [np.uint8, np.uint16])
@pytest.mark.parametrize("erosion,feather", [(4, 8), (0, 0), (6, 12)])
def test_every_blend_changes_only_the_feathered_reach(blend, dtype, erosion, feather):
    rng = np.random.default_rng(2)
    top = 255 if dtype == np.uint8 else 65535
    frame = rng.integers(0, top, (360, 640, 3), dtype=np.int64).astype(dtype)
    original = frame.copy()
    matrix = similarity(1.3, -8, 180, 60)
    crop = cv2.warpAffine(frame, matrix, (224, 224))
    cfg = ComposeConfig(mask_erosion=erosion, mask_feather=feather, blend=blend)
    mask = ellipse_mask()
    paste(frame, rng.random((224, 224, 3), np.float32), crop, matrix, mask, cfg)
    changed = np.any(frame != original, axis=-1)
    allowed = allowed_region(frame.shape, matrix, mask, max(0, feather - erosion))
    assert changed.sum() > 1000
    assert not np.any(changed & ~allowed)


@pytest.mark.parametrize("color", ["none", "lab"])
def test_alpha_blend_is_todays_feathered_blend_bit_for_bit(color):
    """The alpha mode (the default) is the weighted sum it always was: warp face and weight back,
    ``frame·(1 − a) + face·a``, rounded, only where a > 0."""
    rng = np.random.default_rng(4)
    frame = rng.integers(0, 255, (300, 400, 3), dtype=np.int64).astype(np.uint8)
    matrix = similarity(1.2, 5, 100, 40)
    crop = cv2.warpAffine(frame, matrix, (224, 224))
    gen = rng.random((224, 224, 3), np.float32)
    cfg = ComposeConfig(color_match=color)
    assert cfg.blend == "alpha"
    out = paste(frame.copy(), gen, crop, matrix, ellipse_mask(), cfg)

    alpha = feather_mask(ellipse_mask(), cfg)
    if color == "lab":
        gen = match_color_lab(gen, crop.astype(np.float32) / 255.0, alpha)
    inv = invert_affine(matrix)
    face = cv2.warpAffine(gen, inv, (400, 300), borderMode=cv2.BORDER_REPLICATE) * 255.0
    a = cv2.warpAffine(alpha, inv, (400, 300))[..., None]
    expected = frame.copy()
    blended = np.clip(np.rint(frame * (1 - a) + face * a), 0, 255).astype(np.uint8)
    expected[a[..., 0] > 0] = blended[a[..., 0] > 0]
    # the ROI warp differs from a whole-frame warp only by float rounding of the offset
    assert np.abs(out.astype(int) - expected).max() <= 1
    assert np.mean(out != expected) < 1e-3
    default = paste(frame.copy(), gen, crop, matrix, ellipse_mask(), ComposeConfig())
    assert np.array_equal(
        default,
        paste(frame.copy(), gen, crop, matrix, ellipse_mask(), ComposeConfig(blend="alpha")),
    )


def _patch_on_a_ramp(blend: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A flat light-grey face pasted onto a horizontal grey ramp: (original, output, matte)."""
    ramp = np.linspace(30, 220, 640, dtype=np.float32)[None, :, None]
    frame = np.repeat(np.repeat(ramp, 480, axis=0), 3, axis=2).astype(np.uint8)
    original = frame.copy()
    matrix = similarity(1.0, 0, 200, 110)
    crop = cv2.warpAffine(frame, matrix, (224, 224), borderMode=cv2.BORDER_REPLICATE)
    cfg = ComposeConfig(color_match="none", blend=blend)
    gen = np.full((224, 224, 3), 0.8, np.float32)
    paste(frame, gen, crop, matrix, ellipse_mask(), cfg)
    matte = cv2.warpAffine(feather_mask(ellipse_mask(), cfg), invert_affine(matrix), (640, 480))
    return original, frame, matte


def test_multiband_and_poisson_leave_no_step_where_alpha_does():
    """A flat patch on a ramp: the alpha blend steps by up to ~100 grey levels across its
    16 px feather; multiband spreads the low frequencies over 64 px, Poisson over the whole face,
    so the steepest slope at the seam falls several times and the seam measure nears 1."""
    steepest, seam = {}, {}
    for blend in BLENDS:
        original, out, matte = _patch_on_a_ramp(blend)
        gx = np.abs(np.diff(out[..., 0].astype(np.float32), axis=1))
        band = ((matte > 0.02) & (matte < 0.98))[:, :-1]
        steepest[blend] = float(gx[band].max())
        seam[blend] = seam_ratio(original, out, matte)
    assert steepest["alpha"] > 8
    assert steepest["multiband"] < steepest["alpha"] / 2.5
    assert steepest["poisson"] < steepest["alpha"] / 4
    assert seam["alpha"] > 10  # a hard-looking seam: many times the ramp's gradient
    assert seam["multiband"] < seam["alpha"] / 4
    assert 0.5 < seam["poisson"] < 1.5


def _seam_match_pair(frame: np.ndarray, gen: np.ndarray, scale: float, color: str):
    """``gen`` pasted into ``frame`` without and with ``seam_match``: (original, [out 0, out 1],
    matte, ring weight in the frame)."""
    matrix = similarity(scale, 0, 200, 110)
    crop = cv2.warpAffine(frame, matrix, (224, 224), borderMode=cv2.BORDER_REPLICATE)
    outs = []
    for strength in (0.0, 1.0):
        cfg = ComposeConfig(color_match=color, detail_transfer=1.0, seam_match=strength)
        outs.append(paste(frame.copy(), gen, crop, matrix, ellipse_mask(), cfg))
    h, w = frame.shape[:2]
    inv = invert_affine(matrix)
    matte = cv2.warpAffine(feather_mask(ellipse_mask(), cfg), inv, (w, h))
    ring = cv2.warpAffine(seam_ring(ellipse_mask(), cfg), inv, (w, h), borderValue=1.0)
    return frame, outs, matte, ring


def test_seam_match_takes_away_the_step_of_a_side_light_and_leaves_the_face_inside():
    """A flat face on a steep side light (the ramp): the alpha blend steps at the edge (seam ratio
    417 against a ramp of 0.3 levels per pixel); with the seam match the ring takes the frame's
    shading and the step all but goes (6.7). Inside the ring the face is the same as without it
    (to a level: the ring's Gaussian tail)."""
    ramp = np.linspace(30, 220, 640, dtype=np.float32)[None, :, None]
    frame = np.repeat(np.repeat(ramp, 480, axis=0), 3, axis=2).astype(np.uint8)
    gen = np.full((224, 224, 3), 0.8, np.float32)
    original, (before, after), matte, ring = _seam_match_pair(frame, gen, 1.0, "none")
    seams = [seam_ratio(original, out, matte) for out in (before, after)]
    assert seams[0] > 100 and seams[1] < seams[0] / 30, seams
    inner = ring < 1e-3
    change = np.abs(before.astype(int) - after.astype(int))[inner]
    assert inner.sum() > 5000 and change.max() <= 1 and (change > 0).mean() < 0.01


def test_seam_match_brings_the_frames_texture_to_a_smooth_face_at_the_edge():
    """A face blurrier than the frame on a large face (the crop is half the frame's scale), the
    frame's texture 2 crop pixels wide: detail transfer gives back only what is finer than one
    crop pixel, so the edge band is smoother than the frame's (seam ratio 0.48); the seam match
    brings the frame's band up to 3 crop pixels into the ring (0.76)."""
    noise = np.random.default_rng(0).normal(0, 40, (480, 640, 3)).astype(np.float32)
    frame = np.clip(128 + 4 * cv2.GaussianBlur(noise, (0, 0), 4), 0, 255).astype(np.uint8)
    matrix = similarity(0.5, 0, 200, 110)
    crop = cv2.warpAffine(frame, matrix, (224, 224), flags=cv2.INTER_AREA)
    gen = cv2.GaussianBlur(crop, (0, 0), 6).astype(np.float32) / 255.0
    original, (before, after), matte, ring = _seam_match_pair(frame, gen, 0.5, "lab")
    seams = [seam_ratio(original, out, matte) for out in (before, after)]
    assert seams[0] < 0.6 and seams[1] > seams[0] + 0.2, seams
    inner = ring < 1e-3
    change = np.abs(before.astype(int) - after.astype(int))[inner]
    assert inner.sum() > 5000 and change.max() <= 1 and (change > 0).mean() < 0.01


def _tinted_face_on_a_textured_ramp(tint: float):
    """A frame with a gentle side light and fine texture, and as the generated face its own crop
    with red raised and blue lowered by ``tint``: (frame, face, crop, matrix). Tint 0 is the
    target composited onto itself."""
    noise = np.random.default_rng(0).normal(0, 40, (480, 640, 3)).astype(np.float32)
    ramp = np.linspace(90, 170, 640, dtype=np.float32)[None, :, None]
    frame = np.clip(ramp + 0.4 * cv2.GaussianBlur(noise, (0, 0), 1.5), 0, 255).astype(np.uint8)
    matrix = similarity(1.0, 0, 200, 110)
    crop = cv2.warpAffine(frame, matrix, (224, 224), borderMode=cv2.BORDER_REPLICATE)
    face = crop.astype(np.float32) / 255 + np.float32([tint, 0, -tint])
    return frame, face, crop, matrix


def _adaptive_paste(tint: float, tolerance: float):
    """The tinted face pasted with ``seam_tolerance``: (original, output, frame-size blend
    weight, the strengths the paste asked its track for)."""
    frame, face, crop, matrix = _tinted_face_on_a_textured_ramp(tint)
    cfg = ComposeConfig(color_match="none", seam_tolerance=tolerance)
    asked: list[float] = []

    def seam(needed: float) -> float:
        asked.append(needed)
        return needed

    out = paste(frame.copy(), face, crop, matrix, ellipse_mask(), cfg, seam=seam)
    matte = cv2.warpAffine(feather_mask(ellipse_mask(), cfg), invert_affine(matrix), (640, 480))
    return frame, out, matte, asked


@pytest.mark.parametrize("tint", [0.0, 0.02])
def test_adaptive_seam_match_leaves_a_face_whose_seam_is_fine_bit_for_bit(tint):
    """The target pasted onto itself (seam ratio 1) and with a slight tint (1.07): within a
    tolerance of 0.15 the adaptive seam match asks for nothing and the output is the paste
    without any seam match."""
    original, out, matte, asked = _adaptive_paste(tint, 0.15)
    assert asked == [0.0]
    assert abs(seam_ratio(original, out, matte) - 1) < 0.1
    frame, face, crop, matrix = _tinted_face_on_a_textured_ramp(tint)
    plain = paste(frame, face, crop, matrix, ellipse_mask(), ComposeConfig(color_match="none"))
    assert np.array_equal(out, plain)


def test_adaptive_seam_match_takes_only_as_much_as_the_colour_step_needs():
    """A face tinted 0.08 off its frame steps at the edge (seam ratio 1.86); the full seam match
    takes it to about 1. The adaptive one (tolerance 0.15) asks for a strength between: the
    smallest that brings the ratio to 1 + 0.8 × 0.15 = 1.12 (``SEAM_AIM``, to the output's
    rounding); a strength of 1 by hand moves the face more."""
    original, before, matte, _ = _adaptive_paste(0.08, 0.0)
    _, after, _, asked = _adaptive_paste(0.08, 0.15)
    seams = [seam_ratio(original, out, matte) for out in (before, after)]
    assert seams[0] > 1.5
    assert len(asked) == 1 and 0.3 < asked[0] < 0.9
    assert 1.1 < seams[1] < 1.14, seams
    frame, face, crop, matrix = _tinted_face_on_a_textured_ramp(0.08)
    cfg = ComposeConfig(color_match="none", seam_match=1.0)
    full = paste(frame, face, crop, matrix, ellipse_mask(), cfg)
    assert abs(seam_ratio(original, full, matte) - 1) < 0.05
    moved = [np.abs(out.astype(int) - before).sum() for out in (after, full)]
    assert 0 < moved[0] < moved[1]


def test_seam_strength_solves_the_quadratic_exactly():
    """The seam ratio of ``blended + s·change`` is a quadratic in s: the strength returned
    lands on the aim's bound (1 + 0.15 × ``aim``), checked by measuring there; a step the full
    change cannot take within it gets the nearest the change comes (here 1)."""
    rng = np.random.default_rng(1)
    weight = np.zeros((120, 160), np.float32)
    cv2.circle(weight, (80, 60), 40, 1.0, -1)
    weight = cv2.GaussianBlur(weight, (0, 0), 3)
    original = rng.normal(128, 6, (120, 160, 3)).astype(np.float32)
    blended = original + 60 * weight[..., None]  # a bright patch: a step at its edge
    change = -(blended - original)  # the full change takes the step away entirely
    for aim in (1.0, 0.8, 0.0):
        s = seam_strength(original, blended, lambda: change, weight, 0.15, aim)
        assert 0 < s <= 1
        ratio = seam_ratio(original, blended + s * change, weight)
        assert ratio == pytest.approx(1 + 0.15 * aim, abs=1e-3)
    assert seam_strength(original, original.copy(), lambda: change, weight, 0.15) == 0.0
    assert seam_strength(original, blended, lambda: 0.1 * change, weight, 0.15) == 1.0


def test_a_tracks_seam_strength_moves_at_most_a_tenth_per_frame_and_forgets_after_its_window():
    """Needs that jump between 0 and 1 from frame to frame are followed by at most 1/window per
    frame; a new track, and a track back after a frame without its face, take their need at
    once; and two trackers with different pasts agree exactly once they have seen the same last
    ``window`` frames (what a farm chunk's look-back relies on)."""
    rng = np.random.default_rng(0)
    needs = rng.choice([0.0, 1.0], 80) * rng.random(80)
    tracker = SeamTracker(window=10)
    got = [tracker.update(n, i) for i, n in enumerate(needs)]
    assert got[0] == pytest.approx(needs[0])
    assert max(abs(b - a) for a, b in zip(got, got[1:])) <= 0.1 + 1e-9
    assert max(abs(b - a) for a, b in zip(needs, needs[1:])) > 0.8
    other = SeamTracker(window=10)
    for i in range(10, 40):  # another past: frames that all needed everything
        other.update(1.0, i)
    for i in range(40, 49):  # the look-back: the window's 9 frames before frame 49
        other.update(needs[i], i)
    assert [other.update(needs[i], i) for i in range(49, 80)] == got[49:]
    assert tracker.update(0.6, 81) == pytest.approx(0.6)  # frame 80 had no face of the track
    assert SeamTracker().update(0.6, 50) == pytest.approx(0.6)


def test_seam_tolerance_is_a_validated_key_and_a_flag():
    keys = {k.name: k for k in config_keys()}
    assert keys["seam_tolerance"].flag == "--seam-tolerance"
    presets = {name: load_config(name).compose for name in ("fast", "balanced", "quality")}
    assert {name: c.seam_tolerance for name, c in presets.items()} == {
        "fast": 0.0,
        "balanced": 0.15,
        "quality": 0.15,
    }
    assert [c.seam_lookback() for c in presets.values()] == [0, 9, 9]
    assert load_config("balanced", {"seam_tolerance": 0.1}).compose.seam_tolerance == 0.1
    with pytest.raises(InvalidInput, match="--seam-tolerance must be a number from 0 to 0.5"):
        load_config("balanced", {"seam_tolerance": 0.6})
    with pytest.raises(InvalidInput, match="--seam-tolerance must be a number"):
        load_config("balanced", {"seam_tolerance": "0.1"})


def test_poisson_takes_the_frames_color_at_the_edge_and_the_face_inside():
    original, out, _ = _patch_on_a_ramp("poisson")
    # a flat face has no gradients of its own: Poisson fills it with the ramp it sits in
    inside = (slice(160, 280), slice(260, 340))
    assert np.abs(out[inside].astype(int) - original[inside]).max() <= 3


def test_membrane_fills_a_linear_field_exactly():
    """Linear functions are harmonic: the membrane over any region reproduces them."""
    yy, xx = np.mgrid[0:40, 0:50].astype(np.float32)
    field = np.stack([0.3 * xx - 0.1 * yy, 0.05 * yy + 2], -1)
    values = field.copy()
    inside = np.zeros((40, 50), bool)
    cv2.circle(inside.view(np.uint8), (25, 20), 14, 1, -1)
    values[inside] = 99.0
    np.testing.assert_allclose(membrane(values, inside), field, atol=1e-3)
    np.testing.assert_array_equal(membrane(values, np.zeros_like(inside)), values)


def _side_lit_target() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A skin-like texture lit from the right (brightness ×0.45 → ×1.0 across the face), and a
    generated face with the same texture lit evenly: (generated, target, weight)."""
    rng = np.random.default_rng(5)
    texture = cv2.GaussianBlur(rng.normal(0, 0.04, (224, 224, 3)).astype(np.float32), (0, 0), 1.5)
    skin = np.float32([0.75, 0.55, 0.45]) + texture
    light = np.linspace(0.45, 1.0, 224, dtype=np.float32)[None, :, None]
    target = np.clip(skin * light, 0, 1).astype(np.float32)
    generated = np.clip(skin * 0.8, 0, 1).astype(np.float32)
    return generated, target, feather_mask(ellipse_mask(), ComposeConfig())


def _left_right_lightness(image: np.ndarray, weight: np.ndarray) -> tuple[float, float]:
    lab = cv2.cvtColor(image, cv2.COLOR_RGB2LAB)[..., 0]
    inside = weight > 0.5
    left, right = inside.copy(), inside.copy()
    left[:, 90:] = False
    right[:, :134] = False
    return float(lab[left].mean()), float(lab[right].mean())


def test_gradient_color_match_follows_a_side_light_where_lab_cannot():
    gen, target, w = _side_lit_target()
    t_left, t_right = _left_right_lightness(target, w)
    assert t_right - t_left > 10  # the light's falloff, in L units
    l_left, l_right = _left_right_lightness(match_color_lab(gen, target, w), w)
    g_left, g_right = _left_right_lightness(match_color_gradient(gen, target, w), w)
    assert abs(l_right - l_left) < 3  # a global mean/std keeps the face evenly lit
    assert g_right - g_left == pytest.approx(t_right - t_left, rel=0.15)
    assert g_left == pytest.approx(t_left, abs=3) and g_right == pytest.approx(t_right, abs=3)
    # the profile across the face follows the light, not only the two halves
    lab_t = cv2.cvtColor(target, cv2.COLOR_RGB2LAB)[..., 0]
    lab_g = cv2.cvtColor(match_color_gradient(gen, target, w), cv2.COLOR_RGB2LAB)[..., 0]
    rows = slice(100, 140)
    cols = np.nonzero((w > 0.5)[120])[0]
    lab_l = cv2.cvtColor(match_color_lab(gen, target, w), cv2.COLOR_RGB2LAB)[..., 0]
    profile_t, profile_g, profile_l = (x[rows, cols].mean(0) for x in (lab_t, lab_g, lab_l))
    assert np.corrcoef(profile_t, profile_g)[0, 1] > 0.9
    assert np.abs(profile_t - profile_g).mean() < 2  # L units, vs ~5 for the global match
    assert np.corrcoef(profile_t, profile_l)[0, 1] < 0.3
    # and the face's own texture stays: the fine detail is the generated face's
    fine = cv2.GaussianBlur(lab_g, (0, 0), 1) - cv2.GaussianBlur(lab_g, (0, 0), 4)
    assert fine[rows, cols].std() > 0.5
    assert match_color_gradient(gen, target, np.zeros_like(w)) is gen


def test_gradient_color_match_pastes_through_every_blend():
    rng = np.random.default_rng(6)
    frame = rng.integers(0, 255, (300, 400, 3), dtype=np.int64).astype(np.uint8)
    matrix = similarity(1.2, 0, 100, 40)
    crop = cv2.warpAffine(frame, matrix, (224, 224))
    gen = rng.random((224, 224, 3), np.float32)
    outs = [
        paste(frame.copy(), gen, crop, matrix, ellipse_mask(), ComposeConfig(color_match=c))
        for c in ("lab", "gradient")
    ]
    assert not np.array_equal(*outs)


def test_blend_and_color_keys_are_validated_and_are_flags(tmp_path, capsys):
    keys = {k.name: k for k in config_keys()}
    assert keys["blend"].choices == BLENDS and keys["blend"].flag == "--blend"
    assert "gradient" in keys["color_match"].choices
    cfg = load_config("balanced", {"blend": "poisson", "color_match": "gradient"})
    assert (cfg.compose.blend, cfg.compose.color_match) == ("poisson", "gradient")
    with pytest.raises(InvalidInput, match="--blend must be one of alpha, multiband, poisson"):
        load_config("balanced", {"blend": "pyramid"})
    preset = tmp_path / "bad.toml"
    preset.write_text(f"[compose]\nblend = {json.dumps('seamless')}\n")
    with pytest.raises(InvalidInput, match=r"\[compose\] blend must be one of alpha"):
        load_config(str(preset))
    rc = main(["swap", "--source", "a.jpg", "--in", "b.mp4", "--out", "c.mp4", "--blend", "x"])
    assert rc != 0 and "--blend" in capsys.readouterr().err


@pytest.mark.parametrize("blend", BLENDS)
def test_crop_out_does_not_change_the_render(blend):
    """``face_out`` (``--crop-out``) only reports the face: the frame is the same with it as
    without, in every blend mode (multiband was once skipped when crops were asked for)."""
    ramp = np.linspace(30, 220, 640, dtype=np.float32)[None, :, None]
    plate = np.repeat(np.repeat(ramp, 480, axis=0), 3, axis=2).astype(np.uint8)
    matrix = similarity(1.0, 0, 200, 110)
    crop = cv2.warpAffine(plate, matrix, (224, 224), borderMode=cv2.BORDER_REPLICATE)
    cfg = ComposeConfig(color_match="none", blend=blend)
    gen = np.full((224, 224, 3), 0.8, np.float32)
    plain = paste(plate.copy(), gen, crop, matrix, ellipse_mask(), cfg)
    face_out = np.zeros((224, 224, 4), np.float32)
    reported = paste(plate.copy(), gen, crop, matrix, ellipse_mask(), cfg, face_out=face_out)
    assert np.array_equal(plain, reported)
    assert face_out[..., 3].max() == pytest.approx(1.0)
