"""Paste a generated 224 crop back into its frame.

The crop is warped with the inverse of the alignment that made it, color-matched to the
target face (mean/std per LAB channel inside the face mask) and blended through the face mask,
eroded then feathered. Blending is limited to the warped mask's bounding box and to pixels with
a non-zero weight, so every pixel outside the (dilated) mask keeps the decoded frame's value.

The generator renders detail down to about 2 crop pixels; on a face that is large in the frame
that is several frame pixels, and the frame's finer detail (skin texture, stubble, sharp lid and
lip edges) is lost: ``detail_transfer`` adds that band of the target frame back inside the mask
(``target_detail``), finer than ``detail_sigma`` crop pixels.

``blend`` chooses how the face meets the frame at the mask edge. ``alpha``: one feathered weight
for every frequency. ``multiband``: a Laplacian stack (Burt & Adelson) of the face-minus-frame
difference in the crop, each coarser band blended through a wider transition that starts
further inside the mask, so the frame's own color and shading meet the face gradually while
fine texture still switches within the feather (``multiband_correction``). ``poisson``: the
face's color offset from the frame at the mask edge, filled across the face as a harmonic
membrane (Laplace's equation: seamless cloning with the face's own gradients inside), then the
feathered blend (``poisson_offset``). Every mode reaches no further out than the feathered
weight, so the pixels outside it keep the decoded frame's values.

``seam_match`` works on a ring along the mask edge only: the feather and ``SEAM_RING`` crop
pixels inside it, fading to nothing further in. There the face takes the frame's low frequencies
(its shading, coarser than ``SEAM_LOW_SIGMA_CROP``: no color step where a side light falls off)
and the frame's texture just coarser than detail transfer's band (where the generator is
blurrier than the frame: no smooth band along the edge) (``seam_ring``, ``seam_texture``). The
face inside the ring is untouched, yet the ring holds the jaw and cheek outline: on the shared
clips it brings the seam measure within 15 % everywhere and costs identity (bench/blend.py,
bench/quality.py; docs/benchmarks.md), so the presets do not apply it at a fixed strength.

``seam_tolerance`` makes the seam match adaptive. The seam measure of the benchmark
(``magicmask.quality.seam_ratio``) is computed on the face as pasted without it; where it lies
within ``1 ± seam_tolerance`` nothing is added (the face is the one without a seam match, bit
for bit), elsewhere the smallest strength that brings it within ``SEAM_AIM`` of that is solved
for (``seam_strength``: what the seam match adds is linear in its strength, so the ratio is a
quadratic in it). A face track's strength is then the mean need of its last ``SEAM_WINDOW``
frames (``SeamTracker``): the strength a frame needs jumps by up to 0.9 from one frame to the
next on the shared clips, and applied as it is the ring would pop. ``seam_match`` stays a
floor under the adaptive strength. At 0.15 (``balanced`` and ``quality``) it meets the seam goal on all
six clips of bench/blend.py and leaves identity as it was where the seam was fine, at an
identity cost where it acts (docs/benchmarks.md, Session 6). A render that starts inside a
clip (a farm chunk, ``--frames``) swaps the window's frames before its first without writing
them (``ComposeConfig.seam_lookback``), so its strengths are those of a run of the whole clip.

``color_match = "gradient"`` follows the target's lighting across the face: after the global LAB
match, the low-frequency LAB difference of target and face, measured inside the mask only, is
added to the face, so a side-lit target keeps its shading (``match_color_gradient``).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache

import cv2
import numpy as np
from scipy.sparse import csc_matrix
from scipy.sparse.linalg import spsolve

from magicmask.face.align import affine_scale
from magicmask.quality import seam_ratio
from mmvideo.config import SEAM_WINDOW, ComposeConfig

CROP = 224
# Lighting scale of the gradient color match, crop pixels (a face is ~150 wide): coarse enough to
# leave the generated features alone, fine enough to keep a side light's falloff across the face.
GRADIENT_SIGMA_CROP = 16.0
# Multiband transition radii (crop pixels), one per coarser band; those not wider than the
# feather are skipped. An octave apart and at most 32, since each band's transition also moves
# inside the mask by that much and the face (brows to chin) is only ~120 crop pixels tall.
MULTIBAND_RADII = (8, 16, 32)
# The Poisson membrane is solved on a grid 4 crop pixels apart: it is smooth by construction
# (finer edge detail is the feather's to cross-fade), and 1/16 of the unknowns keeps the sparse
# solve to a few milliseconds (about 50 ms at full size).
POISSON_STEP = 4
# Seam match: the ring reaches this many crop pixels inside the feather; the shading it takes from
# the frame is coarser than SEAM_LOW_SIGMA_CROP crop pixels, the texture lies between
# detail_sigma and SEAM_TEXTURE_RATIO times that. Chosen on bench/blend.py's six clips
# (2026-12-07): rings of 16, or shading at 4 px, moved the face inside more for no better seam;
# rings of 4 or 2 still cost identity, 0 misses the side-lit clip (docs/benchmarks.md).
SEAM_RING = 8
SEAM_LOW_SIGMA_CROP = 8.0
SEAM_TEXTURE_RATIO = 3.0
# A face outside the tolerance is brought to this share of it: the output's rounding and the
# track's smoothing leave a face up to about 0.01 past the strength's aim, and at 0.15 aimed at
# the bound itself half the frames of the side-lit clip ended at 1.15–1.16 (bench/blend.py).
SEAM_AIM = 0.8


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """crop → frame from a 2×3 frame → crop matrix."""
    return cv2.invertAffineTransform(np.asarray(matrix, np.float64))


def _erode_blur(hard: np.ndarray, erosion: int, radius: int) -> np.ndarray:
    """A 0/1 float32 mask eroded by ``erosion`` pixels, then blurred with a Gaussian limited to a
    box of ``radius``: it reaches at most ``max(0, radius − erosion)`` pixels outside ``hard``."""
    if erosion > 0:
        # Square kernels for both steps, so the reach bound holds in every direction.
        k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * erosion + 1,) * 2)
        hard = cv2.erode(hard, k)
    if radius > 0:
        size = 2 * radius + 1
        # A box-limited kernel (not an unbounded sigma) keeps the reach of the blend exact.
        hard = cv2.GaussianBlur(hard, (size, size), radius / 2, borderType=cv2.BORDER_CONSTANT)
    return hard


def _hard(mask: np.ndarray) -> np.ndarray:
    """The face mask as 0/1 float32 (its pixels over one half)."""
    return (np.asarray(mask, np.float32) > 0.5).astype(np.float32)


def feather_mask(mask: np.ndarray, cfg: ComposeConfig) -> np.ndarray:
    """Blend weights (224×224 float32 in [0, 1]): the mask eroded by ``mask_erosion`` pixels,
    then blurred with a kernel of radius ``mask_feather``. The weights reach at most
    ``max(0, mask_feather − mask_erosion)`` pixels outside the given mask."""
    return _erode_blur(_hard(mask), cfg.mask_erosion, cfg.mask_feather)


def _lab_matched(
    generated: np.ndarray, target: np.ndarray, inside: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """LAB of ``generated`` shifted and scaled to the target's mean/std where ``inside``, and the
    target's LAB."""
    g = cv2.cvtColor(generated, cv2.COLOR_RGB2LAB)
    t = cv2.cvtColor(target, cv2.COLOR_RGB2LAB)
    g_mean, g_std = cv2.meanStdDev(g, mask=inside)
    t_mean, t_std = cv2.meanStdDev(t, mask=inside)
    gain = (t_std / np.maximum(g_std, 1e-6)).reshape(3).astype(np.float32)
    shift = (t_mean.reshape(3) - g_mean.reshape(3) * gain).astype(np.float32)
    return g * gain + shift, t


def match_color_lab(generated: np.ndarray, target: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Shift and scale each LAB channel of ``generated`` to the target's mean/std inside the mask.

    Both images are float32 RGB in [0, 1]; the statistics are taken where the blend weight is
    above one half, so hair and background inside the crop do not pull the skin tone.
    """
    inside = (weight > 0.5).astype(np.uint8)
    if not inside.any():
        return generated
    matched, _ = _lab_matched(generated, target, inside)
    return np.clip(cv2.cvtColor(matched, cv2.COLOR_LAB2RGB), 0.0, 1.0)


def match_color_gradient(
    generated: np.ndarray,
    target: np.ndarray,
    weight: np.ndarray,
    sigma: float = GRADIENT_SIGMA_CROP,
) -> np.ndarray:
    """``match_color_lab``, then the target's lighting: the LAB difference target − face,
    low-passed at ``sigma`` crop pixels inside the mask (``masked_blur``), added to the face.
    A global mean/std cannot carry a side light across the face; this offset map can."""
    inside = (weight > 0.5).astype(np.uint8)
    if not inside.any():
        return generated
    g, t = _lab_matched(generated, target, inside)
    g += masked_blur(t - g, inside.astype(np.float32), sigma)
    return np.clip(cv2.cvtColor(g, cv2.COLOR_LAB2RGB), 0.0, 1.0)


def target_chroma(generated: np.ndarray, target: np.ndarray, weight: float) -> np.ndarray:
    """``generated`` (float32 RGB in [0, 1]) with its CIELAB chroma moved ``weight`` of the way to
    ``target``'s (the aligned crop, same size and range); its lightness is kept."""
    g = cv2.cvtColor(generated, cv2.COLOR_RGB2LAB)
    t = cv2.cvtColor(target, cv2.COLOR_RGB2LAB)
    g[..., 1:] += weight * (t[..., 1:] - g[..., 1:])
    return np.clip(cv2.cvtColor(g, cv2.COLOR_LAB2RGB), 0.0, 1.0)


def target_detail(roi: np.ndarray, sigma: float) -> np.ndarray:
    """The band of ``roi`` (float32 frame pixels) finer than ``sigma`` frame pixels (the config's
    ``detail_sigma`` crop pixels × frame pixels per crop pixel): ``roi − G(σ)``; zero where the
    crop is as fine as the frame (σ under half a frame pixel)."""
    if sigma < 0.5:
        return np.zeros_like(roi)
    return roi - cv2.GaussianBlur(roi, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)


def masked_blur(image: np.ndarray, weight: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur (σ ``sigma``) of ``image`` (H×W×C) that averages only where ``weight`` is 1
    (a normalised convolution): hair and background next to the face do not leak into it.
    Zero where no weighted pixel is in reach."""
    # Computed on a grid ``step`` times coarser (σ about 2 cells there, then upsampled): a
    # Gaussian this wide keeps nothing finer than σ/2, and the full-size blur costs 10× more.
    step = 1 << max(0, int(np.log2(max(sigma, 1.0) / 2)))
    h, w = weight.shape
    small = (max(1, w // step), max(1, h // step))
    wt = cv2.resize(weight, small, interpolation=cv2.INTER_AREA)
    x = cv2.resize(image * weight[..., None], small, interpolation=cv2.INTER_AREA)
    wt = cv2.GaussianBlur(wt, (0, 0), sigma / step, borderType=cv2.BORDER_CONSTANT)
    x = cv2.GaussianBlur(x, (0, 0), sigma / step, borderType=cv2.BORDER_CONSTANT)
    mean = np.where(wt[..., None] > 1e-4, x / np.maximum(wt, 1e-4)[..., None], 0.0)
    return cv2.resize(mean.astype(np.float32), (w, h), interpolation=cv2.INTER_LINEAR)


def multiband_correction(
    generated: np.ndarray,
    target: np.ndarray,
    mask: np.ndarray,
    alpha: np.ndarray,
    cfg: ComposeConfig,
) -> np.ndarray:
    """What multiband blending adds to the alpha blend, in the crop (float32, [0, 1] units).

    The blend of bands B_k of d = face − frame through masks m_k sums, by parts, to
    ``alpha·d + Σ_k (m_k − m_{k−1})·L_k`` with L_k the low-pass of d at σ_k: the first term is
    the alpha blend (``alpha`` = m_0, from ``feather_mask``), the sum is returned. m_k is the
    mask blurred with radius R_k and eroded by R_k − ``mask_feather`` more than the feather, so
    it is 1 only further inside the face and never reaches further out than the feather; σ_k = R_k / 4 puts in L_k what is coarser than
    its transition. L_k is measured on the face only (``masked_blur``): what the generator
    painted over hair and background does not enter.
    """
    hard = _hard(mask)
    inside = _erode_blur(hard, cfg.mask_erosion, 0)
    diff = generated - target
    previous = alpha
    total = np.zeros_like(generated)
    for radius in (r for r in MULTIBAND_RADII if r > cfg.mask_feather):
        level = _erode_blur(hard, cfg.mask_erosion + radius - cfg.mask_feather, radius)
        total += (level - previous)[..., None] * masked_blur(diff, inside, radius / 4)
        previous = level
    return total


def seam_ring(mask: np.ndarray, cfg: ComposeConfig) -> np.ndarray:
    """The seam match's weight in the crop (float32, [0, 1]): 1 across the feather and out,
    falling to 0 ``SEAM_RING`` pixels inside it, as a feather of the mask eroded that much more."""
    return 1.0 - _erode_blur(_hard(mask), cfg.mask_erosion + SEAM_RING, cfg.mask_feather)


def seam_texture(roi: np.ndarray, sigma: float) -> np.ndarray:
    """The band of ``roi`` (float32 frame pixels) between detail transfer's cutoff ``sigma``
    (frame pixels, as for ``target_detail``) and ``SEAM_TEXTURE_RATIO`` × that: texture just
    coarser than detail transfer's, which a generator rendering at half the crop's resolution
    smooths."""
    sigma = max(sigma, 0.5)
    fine = cv2.GaussianBlur(roi, (0, 0), sigma, borderType=cv2.BORDER_REFLECT)
    coarse = cv2.GaussianBlur(
        roi, (0, 0), SEAM_TEXTURE_RATIO * sigma, borderType=cv2.BORDER_REFLECT
    )
    return fine - coarse


def seam_strength(
    original: np.ndarray,
    blended: np.ndarray,
    change: Callable[[], np.ndarray],
    weight: np.ndarray,
    tolerance: float,
    aim: float = SEAM_AIM,
) -> float:
    """0 when ``blended`` (float frame pixels) has a seam ratio (``seam_ratio`` against
    ``original`` along the edge of ``weight``) within ``1 ± tolerance`` (or the band holds no
    gradient to compare); else the smallest strength s in [0, 1] for which ``blended +
    s·change()`` (``change()``: what the full seam match adds, asked for only then) has one
    within ``1 ± aim·tolerance``, and where no s reaches that, the s whose ratio comes closest
    to 1.

    The ratio is a quadratic in s (a mean of squared gradients, each linear in s), so three
    measures (s = 0, ½, 1) give it exactly and the crossing is solved in closed form."""
    r0 = seam_ratio(original, blended, weight)
    if not abs(r0 - 1) > tolerance:  # NaN: nothing to measure, nothing to fix
        return 0.0
    change = change()
    r_half = seam_ratio(original, blended + 0.5 * change, weight)
    r1 = seam_ratio(original, blended + change, weight)
    # r(s) = r0 + b·s + c·s²
    c = 2 * (r1 - 2 * r_half + r0)
    b = r1 - r0 - c
    goal = 1 + aim * tolerance if r0 > 1 else 1 - aim * tolerance  # on the side it starts from
    roots = np.roots([c, b, r0 - goal]) if abs(c) > 1e-12 else np.roots([b, r0 - goal])
    inside = [float(x.real) for x in roots if abs(x.imag) < 1e-9 and 0 <= x.real <= 1]
    if inside:
        return min(inside)
    # it stays beyond the bound all the way: the nearest it comes is at s = 1 or at the vertex
    candidates = [0.0, 1.0] + ([-b / (2 * c)] if c != 0 and 0 < -b / (2 * c) < 1 else [])
    return min(candidates, key=lambda s: abs(r0 + b * s + c * s * s - 1))


class SeamTracker:
    """One face track's seam-match strength, frame after frame: ``update(needed, index)`` → the
    strength applied in frame ``index``, the mean of the needs (``seam_strength``) over the last
    ``window`` frames ``(index − window, index]``; a frame of the window before the track's
    first counts with its first need. So a track's first frame takes its need at once (there is
    nothing to pop from), and the strength moves by at most 1 / ``window`` per frame. After a
    frame without the track's face (not swapped there: the face itself changed) it starts
    afresh the same way.

    The memory is finite on purpose: the strength of frame ``index`` depends only on the needs of
    the ``window`` − 1 frames before it, so a render that composes those frames first (a farm
    chunk's look-back, ``ComposeConfig.seam_lookback``) applies what a single run of the clip
    applies. The caller owns one per face track and gives it the track's frames in order."""

    def __init__(self, window: int = SEAM_WINDOW):
        self.window = window
        self._needs: list[float] = []
        self._index: int | None = None

    def update(self, needed: float, index: int) -> float:
        if self._index is None or index != self._index + 1:
            self._needs = []
        self._needs = (self._needs + [float(needed)])[-self.window :]
        self._index = index
        padding = (self.window - len(self._needs)) * self._needs[0]
        return (padding + sum(self._needs)) / self.window


def membrane(values: np.ndarray, inside: np.ndarray) -> np.ndarray:
    """``values`` (H×W×C float) kept outside ``inside`` (H×W bool) and replaced inside it by the
    solution of Laplace's equation that meets them at its edge: the smoothest fill (a harmonic
    membrane), what Poisson cloning adds to the pasted image."""
    inside = inside.copy()
    inside[[0, -1], :] = False  # the image border is always given
    inside[:, [0, -1]] = False
    ys, xs = np.nonzero(inside)
    out = values.astype(np.float64)
    if not len(ys):
        return out.astype(np.float32)
    index = np.full(inside.shape, -1, np.int64)
    index[ys, xs] = np.arange(len(ys))
    rows, cols, data = [np.arange(len(ys))], [np.arange(len(ys))], [np.full(len(ys), 4.0)]
    rhs = np.zeros((len(ys), out.shape[2]))
    for dy, dx in ((0, 1), (0, -1), (1, 0), (-1, 0)):
        ny, nx = ys + dy, xs + dx
        j = index[ny, nx]
        unknown = j >= 0
        rows.append(np.nonzero(unknown)[0])
        cols.append(j[unknown])
        data.append(np.full(int(unknown.sum()), -1.0))
        np.add.at(rhs, np.nonzero(~unknown)[0], out[ny[~unknown], nx[~unknown]])
    n = len(ys)
    a = csc_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), (n, n))
    out[ys, xs] = spsolve(a, rhs).reshape(n, -1)
    return out.astype(np.float32)


def poisson_offset(generated: np.ndarray, target: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """What Poisson blending adds to the face before the alpha blend (crop, [0, 1] units): the
    frame-minus-face difference just outside the blend weight's reach, and over the whole
    blended region a harmonic membrane that meets it there. Face + offset keeps the face's own
    gradients and takes the frame's color at the edge, so the feather cross-fades texture only.
    (Fixing the membrane at the weight's one-half contour instead left the outer half of the
    feather with the generator's blurrier texture: seam ratio 0.77 vs 0.83 on obama_news_01.)"""
    size = (generated.shape[1] // POISSON_STEP, generated.shape[0] // POISSON_STEP)
    diff = cv2.resize(target - generated, size, interpolation=cv2.INTER_AREA)
    inside = cv2.resize(alpha, size, interpolation=cv2.INTER_AREA) > 0.02
    filled = membrane(diff, inside)
    return cv2.resize(filled, generated.shape[1::-1], interpolation=cv2.INTER_LINEAR)


def paste(
    image: np.ndarray,
    generated: np.ndarray,
    target_crop: np.ndarray,
    matrix: np.ndarray,
    mask: np.ndarray,
    cfg: ComposeConfig,
    matte: np.ndarray | None = None,
    face_out: np.ndarray | None = None,
    seam: Callable[[float], float] | None = None,
) -> np.ndarray:
    """Blend one generated face into ``image`` **in place** and return it.

    ``generated``: 224×224×3 float32 RGB in [0, 1]; ``target_crop``: the aligned input crop
    (uint8, uint16, or float32 in [0, 1]) for color matching; ``matrix``: the 2×3 frame → crop alignment;
    ``mask``: 224×224 face mask in [0, 1]. ``image`` is uint8 or uint16 RGB. ``matte`` (H×W
    float32, optional) gathers the blend weight in place, as ``over`` does: ``m + a·(1 − m)``,
    exactly ``a`` where it was 0 (``mmvideo.matte``). ``face_out`` (224×224×4 float32, optional)
    receives the face as it is blended, in the crop: RGB after the colour match, the chroma from
    the target, the Poisson offset and the seam match's shading, and the blend weight as the 4th
    channel (``--crop-out``).
    ``seam`` maps the seam-match strength this face needs (``seam_tolerance``) to the one
    applied: its track's ``SeamTracker.update`` at this frame; None applies the need as it is.
    """
    alpha = feather_mask(mask, cfg)
    if not alpha.any():
        return image
    generated = generated.astype(np.float32)
    seam_on = cfg.seam_match > 0 or cfg.seam_tolerance > 0
    if cfg.color_match != "none" or cfg.blend != "alpha" or seam_on or cfg.chroma_from_target > 0:
        tgt = target_crop.astype(np.float32)
        if target_crop.dtype != np.float32:
            tgt /= 65535.0 if target_crop.dtype == np.uint16 else 255.0
    if cfg.color_match == "lab":
        generated = match_color_lab(generated, tgt, alpha)
    elif cfg.color_match == "gradient":
        generated = match_color_gradient(generated, tgt, alpha)
    if cfg.chroma_from_target > 0:
        generated = target_chroma(generated, tgt, cfg.chroma_from_target)
    correction = None
    if cfg.blend == "poisson":
        generated = generated + poisson_offset(generated, tgt, alpha)
    if face_out is not None:
        face_out[..., :3], face_out[..., 3] = generated, alpha
    if cfg.blend == "multiband":
        correction = multiband_correction(generated, tgt, mask, alpha, cfg)
    inv = invert_affine(matrix)
    h, w = image.shape[:2]
    # every mode's weights lie inside the feathered weight's reach: its box bounds the blend
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
    roi_inv = inv.copy()
    roi_inv[:, 2] -= (x0, y0)
    size = (x1 - x0, y1 - y0)

    def warp(crop: np.ndarray, border: int = cv2.BORDER_CONSTANT) -> np.ndarray:
        return cv2.warpAffine(crop, roi_inv, size, flags=cv2.INTER_LINEAR, borderMode=border)

    face = warp(generated, cv2.BORDER_REPLICATE)
    a = warp(alpha)
    if matte is not None:
        m = matte[y0:y1, x0:x1]
        m += a * (1 - m)
    roi = image[y0:y1, x0:x1]
    scale = 65535.0 if image.dtype == np.uint16 else 255.0
    original = roi.astype(np.float32)
    face = face * scale
    # detail transfer's cutoff in frame pixels
    detail_sigma = cfg.detail_sigma * affine_scale(inv)
    if cfg.detail_transfer > 0:
        face += cfg.detail_transfer * target_detail(original, detail_sigma)
    blended = original * (1 - a[..., None]) + face * a[..., None]
    touched = a > 0
    if correction is not None:
        c = warp(correction)
        blended += c * scale
        touched |= np.any(c != 0, axis=-1)
    if seam_on:
        shading = None

        @cache
        def seam_change() -> np.ndarray:
            """What the full seam match adds to ``blended``: in the ring, the frame's shading
            (measured on the face only, not hair or background) and the frame's texture band in
            place of the face's own (replaced, not added to)."""
            nonlocal shading
            ring = seam_ring(mask, cfg)
            inside = _erode_blur(_hard(mask), cfg.mask_erosion, 0)
            shading = ring[..., None] * masked_blur(tgt - generated, inside, SEAM_LOW_SIGMA_CROP)
            shaded = face + warp(shading, cv2.BORDER_REPLICATE) * scale
            r = warp(ring, cv2.BORDER_REPLICATE)
            texture = seam_texture(original, detail_sigma) - seam_texture(shaded, detail_sigma)
            return a[..., None] * (shaded - face + r[..., None] * texture)

        strength = cfg.seam_match
        if cfg.seam_tolerance > 0:
            # a face whose seam is fine costs one measure and gets nothing added
            needed = seam_strength(original, blended, seam_change, a, cfg.seam_tolerance)
            strength = max(strength, seam(needed) if seam is not None else needed)
        if strength > 0:
            blended += strength * seam_change()
            if face_out is not None:
                face_out[..., :3] += strength * shading
    roi[touched] = np.clip(np.rint(blended[touched]), 0, scale).astype(image.dtype)
    return image
