"""Paste a generated 224 crop back into its frame.

The crop is warped with the inverse of the alignment that made it, colour-matched to the
target face (mean/std per LAB channel inside the face mask) and blended through the face mask,
eroded then feathered. Blending is limited to the warped mask's bounding box and to pixels with
a non-zero weight, so every pixel outside the (dilated) mask keeps the decoded frame's value.

The generator renders detail down to about 2 crop pixels; on a face that is large in the frame
that is several frame pixels, and the frame's finer detail (skin texture, stubble, sharp lid and
lip edges) is lost: ``detail_transfer`` adds that band of the target frame back inside the mask
(``target_detail``).
"""

from __future__ import annotations

import cv2
import numpy as np

from magicmask.face.align import affine_scale
from mmvideo.config import ComposeConfig

CROP = 224
# The generator's finest detail is about 2 crop pixels (its decoder works at 112); structure
# finer than this Gaussian sigma, in crop pixels, is what it cannot render.
DETAIL_SIGMA_CROP = 1.0


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """crop → frame from a 2×3 frame → crop matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def feather_mask(mask: np.ndarray, cfg: ComposeConfig) -> np.ndarray:
    """Blend weights (224×224 float32 in [0, 1]): the mask eroded by ``mask_erosion`` pixels,
    then blurred with a kernel of radius ``mask_feather``. The weights reach at most
    ``max(0, mask_feather − mask_erosion)`` pixels outside the given mask."""
    alpha = (np.asarray(mask, np.float32) > 0.5).astype(np.float32)
    if cfg.mask_erosion > 0:
        # Square kernels for both steps, so the reach bound holds in every direction.
        k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * cfg.mask_erosion + 1,) * 2)
        alpha = cv2.erode(alpha, k)
    if cfg.mask_feather > 0:
        size = 2 * cfg.mask_feather + 1
        # A box-limited kernel (not an unbounded sigma) keeps the reach of the blend exact.
        alpha = cv2.GaussianBlur(
            alpha, (size, size), cfg.mask_feather / 2, borderType=cv2.BORDER_CONSTANT
        )
    return alpha


def match_colour_lab(generated: np.ndarray, target: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Shift and scale each LAB channel of ``generated`` to the target's mean/std inside the mask.

    Both images are float32 RGB in [0, 1]; the statistics are taken where the blend weight is
    above one half, so hair and background inside the crop do not pull the skin tone.
    """
    inside = (weight > 0.5).astype(np.uint8)
    if not inside.any():
        return generated
    g = cv2.cvtColor(generated, cv2.COLOR_RGB2LAB)
    t = cv2.cvtColor(target, cv2.COLOR_RGB2LAB)
    g_mean, g_std = cv2.meanStdDev(g, mask=inside)
    t_mean, t_std = cv2.meanStdDev(t, mask=inside)
    gain = (t_std / np.maximum(g_std, 1e-6)).reshape(3).astype(np.float32)
    shift = (t_mean.reshape(3) - g_mean.reshape(3) * gain).astype(np.float32)
    rgb = cv2.cvtColor(g * gain + shift, cv2.COLOR_LAB2RGB)
    return np.clip(rgb, 0.0, 1.0)


def target_detail(roi: np.ndarray, frame_per_crop: float) -> np.ndarray:
    """The band of ``roi`` (float32 frame pixels) finer than ``DETAIL_SIGMA_CROP`` crop pixels:
    ``roi − G(σ)`` with σ = DETAIL_SIGMA_CROP × frame pixels per crop pixel; zero where the crop
    is as fine as the frame (σ under half a frame pixel)."""
    sigma = DETAIL_SIGMA_CROP * frame_per_crop
    if sigma < 0.5:
        return np.zeros_like(roi)
    return roi - cv2.GaussianBlur(roi, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def paste(
    image: np.ndarray,
    generated: np.ndarray,
    target_crop: np.ndarray,
    matrix: np.ndarray,
    mask: np.ndarray,
    cfg: ComposeConfig,
) -> np.ndarray:
    """Blend one generated face into ``image`` **in place** and return it.

    ``generated``: 224×224×3 float32 RGB in [0, 1]; ``target_crop``: the aligned input crop
    (uint8, uint16, or float32 in [0, 1]) for colour matching; ``matrix``: the 2×3 frame → crop alignment;
    ``mask``: 224×224 face mask in [0, 1]. ``image`` is uint8 or uint16 RGB.
    """
    alpha = feather_mask(mask, cfg)
    if not alpha.any():
        return image
    inv = invert_affine(matrix)
    h, w = image.shape[:2]
    ys, xs = np.nonzero(alpha)
    corners = np.array(
        [
            [xs.min(), ys.min()],
            [xs.max(), ys.min()],
            [xs.min(), ys.max()],
            [xs.max(), ys.max()],
        ]
    )
    frame_pts = corners @ inv[:, :2].T + inv[:, 2]
    x0, y0 = np.floor(frame_pts.min(0)).astype(int) - 1
    x1, y1 = np.ceil(frame_pts.max(0)).astype(int) + 2
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, w), min(y1, h)
    if x1 <= x0 or y1 <= y0:
        return image
    if cfg.color_match == "lab":
        tgt = target_crop.astype(np.float32)
        if target_crop.dtype != np.float32:
            tgt /= 65535.0 if target_crop.dtype == np.uint16 else 255.0
        generated = match_colour_lab(generated.astype(np.float32), tgt, alpha)
    roi_inv = inv.copy()
    roi_inv[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)
    face = cv2.warpAffine(
        generated,
        roi_inv,
        size,
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_REPLICATE,
    )
    a = cv2.warpAffine(alpha, roi_inv, size, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    roi = image[y0:y1, x0:x1]
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    original = roi.astype(np.float32)
    face = face * scale
    if cfg.detail_transfer > 0:
        face += cfg.detail_transfer * target_detail(original, affine_scale(inv))
    blended = original * (1 - a[..., None]) + face * a[..., None]
    touched = a > 0
    roi[touched] = np.clip(np.rint(blended[touched]), 0, scale).astype(image.dtype)
    return image
