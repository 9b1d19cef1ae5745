"""Swap-quality measures (``docs/quality.md``): realism beside identity, as functions on frames.

Realism is measured on one **face chip** per frame: 150×150, aligned with dlib's
``get_face_chip`` (padding 0.1) on the landmarks of the **original** frame and cut from the
original and from the swap at the same place, in gray. On the chip pair:

- ``chip_ssim``: SSIM, Gaussian window σ 1.5 (11×11), C1 = (0.01·255)², C2 = (0.03·255)², an 8 px
  border dropped. Near 1 on a faithful same-person swap.
- ``sharpness_ratio``: variance of the Laplacian, swap over original (blur < 1, noise > 1).
- ``band_ratio``: variance of (G σ1.5 − G σ6), swap over original: the 4–16 px band where
  blotches and block artefacts live.
- ``color_band_ratio``: the same band of the chip's chroma (CIELAB a and b, from the RGB chips),
  swap over original: coloured blotches (blue, red) that the gray measures do not see.

``seam_ratio``: gradient energy (squared RGB gradients) of the swap over the original's in a
6 px band along the blend mask's edge (3 px either side of its one-half contour in the frame):
1 when the paste leaves no step there, above 1 for a seam or color band, below for a smear.

``pose_abs_error`` (mean |Δyaw, Δpitch, Δroll|) and ``jitter_ratio`` (RMS second difference of
landmarks normalised by the original's eye distance, swap over original) take landmarks the
caller measured with one landmarker on both videos.

Identity (``IdentityJudge``): dlib's 128-d descriptor on dlib's own 150 chip (padding 0.25,
unnormalised, so the Euclidean distance and its 0.6 same-person threshold mean what they mean in
dlib) and the FaceNet VGGFace2 judge (cosine), both through the project's encoders. FaceNet only
reports: it never enters a loss and never selects a checkpoint.

The functions take uint8 RGB images and 68-point landmarks in those images' pixels and never
load media; ``bench/quality.py`` (clips, end to end) and ``train.evaluate`` (stills) call them.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import dlib
import numpy as np
import torch

from magicmask.face.align import align_identity
from magicmask.face.identity import build_identity_encoder

CHIP_SIZE = 150
CHIP_PADDING = 0.1
SSIM_BORDER = 8
_C1 = (0.01 * 255) ** 2
_C2 = (0.03 * 255) ** 2
DLIB_SAME_PERSON = 0.6  # dlib's Euclidean same-person threshold on its unnormalised descriptor
_DLIB_PADDING = 0.25  # the chip dlib's descriptor was trained on
SEAM_BAND = 6  # px, the band along the mask edge where seam_ratio compares gradient energy
_EPS = 1e-9


@dataclass
class Realism:
    """Realism of one swapped face against its original (``docs/quality.md``)."""

    chip_ssim: float
    sharpness_ratio: float
    band_ratio: float
    color_band_ratio: float


def _shape(landmarks68: np.ndarray) -> dlib.full_object_detection:
    pts = np.round(np.asarray(landmarks68, dtype=np.float64)[:, :2]).astype(int)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    rect = dlib.rectangle(int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1]))
    return dlib.full_object_detection(rect, [dlib.point(int(x), int(y)) for x, y in pts])


def face_chip(
    image: np.ndarray,
    landmarks68: np.ndarray,
    size: int = CHIP_SIZE,
    padding: float = CHIP_PADDING,
) -> np.ndarray:
    """dlib's aligned face chip (uint8 RGB, size×size) of the face at ``landmarks68``."""
    return dlib.get_face_chip(
        np.ascontiguousarray(image), _shape(landmarks68), size=size, padding=padding
    )


def gray(image: np.ndarray) -> np.ndarray:
    """float64 gray levels (0–255) of a uint8 RGB image (a 2-D image is returned as float64)."""
    if image.ndim == 2:
        return image.astype(np.float64)
    return cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2GRAY).astype(np.float64)


def _blur(x: np.ndarray, sigma: float, ksize: int = 0) -> np.ndarray:
    return cv2.GaussianBlur(x, (ksize, ksize), sigma, borderType=cv2.BORDER_REFLECT)


def ssim(a: np.ndarray, b: np.ndarray, border: int = SSIM_BORDER) -> float:
    """Mean SSIM of two gray images (0–255 scale), Gaussian window σ 1.5 (11×11), ``border``
    pixels dropped on every side (the window never reaches past the image there)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    mu_a, mu_b = _blur(a, 1.5, 11), _blur(b, 1.5, 11)
    var_a = _blur(a * a, 1.5, 11) - mu_a**2
    var_b = _blur(b * b, 1.5, 11) - mu_b**2
    cov = _blur(a * b, 1.5, 11) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + _C1) * (2 * cov + _C2)) / (
        (mu_a**2 + mu_b**2 + _C1) * (var_a + var_b + _C2)
    )
    if border:
        s = s[border:-border, border:-border]
    return float(s.mean())


def sharpness(image: np.ndarray) -> float:
    """Variance of the (3×3) Laplacian of a gray image."""
    return float(cv2.Laplacian(np.asarray(image, np.float64), cv2.CV_64F).var())


def band_energy(image: np.ndarray) -> float:
    """Variance of G(σ 1.5) − G(σ 6) of a gray image: the energy of 4–16 px structures."""
    x = np.asarray(image, np.float64)
    return float((_blur(x, 1.5) - _blur(x, 6.0)).var())


def color_band_energy(image: np.ndarray) -> float:
    """``band_energy`` of the chroma of a uint8 RGB image: CIELAB a plus b."""
    lab = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2LAB).astype(np.float64)
    return band_energy(lab[..., 1]) + band_energy(lab[..., 2])


def ratio(swap: float, original: float) -> float:
    """swap / original, NaN when the original has no energy at all (a flat chip says nothing)."""
    return float(swap / original) if original > _EPS else float("nan")


def realism(original: np.ndarray, swap: np.ndarray, landmarks68: np.ndarray) -> Realism:
    """Chip SSIM, sharpness ratio, band-energy ratio and chroma band-energy ratio of one frame
    (uint8 RGB, same size)."""
    o, s = face_chip(original, landmarks68), face_chip(swap, landmarks68)
    a, b = gray(o), gray(s)
    return Realism(
        ssim(a, b),
        ratio(sharpness(b), sharpness(a)),
        ratio(band_energy(b), band_energy(a)),
        ratio(color_band_energy(s), color_band_energy(o)),
    )


def edge_band(mask: np.ndarray, width: int = SEAM_BAND) -> np.ndarray:
    """Pixels (bool H×W) within ``width``/2 of the edge of ``mask`` (its one-half contour), on
    both sides: a band ``width`` pixels wide along the edge."""
    hard = (np.asarray(mask, np.float32) > 0.5).astype(np.uint8)
    k = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * (width // 2) + 1,) * 2)
    return cv2.dilate(hard, k) != cv2.erode(hard, k)


def gradient_energy(image: np.ndarray, where: np.ndarray) -> float:
    """Mean over ``where`` of the squared gradient (3×3 Sobel / 8, per gray level and pixel)
    summed over the channels of a uint8 image: a color step counts as well as a luminance one."""
    x = np.asarray(image, np.float32)
    gx = cv2.Sobel(x, cv2.CV_32F, 1, 0, ksize=3) / 8
    gy = cv2.Sobel(x, cv2.CV_32F, 0, 1, ksize=3) / 8
    energy = gx * gx + gy * gy
    if energy.ndim == 3:
        energy = energy.sum(-1)
    return float(energy[where].mean()) if where.any() else float("nan")


def seam_ratio(
    original: np.ndarray, swap: np.ndarray, mask: np.ndarray, width: int = SEAM_BAND
) -> float:
    """Gradient energy of ``swap`` over that of ``original`` in the ``width``-px band along the
    edge of ``mask`` (the blend weight in the frame, [0, 1]; its one-half contour is the edge).
    The goal is within 15 % of 1: a visible seam or color band raises it, a smeared edge lowers
    it."""
    band = edge_band(mask, width)
    return ratio(gradient_energy(swap, band), gradient_energy(original, band))


def pose_abs_error(pose_swap, pose_original) -> np.ndarray:
    """Mean of |Δyaw|, |Δpitch|, |Δroll| in degrees, per row of two [N, 3] pose arrays."""
    d = np.asarray(pose_swap, np.float64).reshape(-1, 3) - np.asarray(
        pose_original, np.float64
    ).reshape(-1, 3)
    return np.abs(d).mean(axis=1)


def eye_distance(landmarks68: np.ndarray) -> np.ndarray:
    """Distance between the eye centers of [..., 68, 2] landmarks (the normalising length)."""
    pts = np.asarray(landmarks68, np.float64)
    return np.linalg.norm(pts[..., 36:42, :2].mean(-2) - pts[..., 42:48, :2].mean(-2), axis=-1)


def landmark_jitter(
    landmarks: np.ndarray, scale: np.ndarray, valid: np.ndarray | None = None
) -> float:
    """RMS second difference over time of [T, 68, 2] landmarks divided by ``scale`` [T] (e.g. the
    eye distance); only triples of consecutive frames that are all ``valid`` count."""
    pts = np.asarray(landmarks, np.float64)[..., :2] / np.asarray(scale, np.float64)[:, None, None]
    ok = np.ones(len(pts), bool) if valid is None else np.asarray(valid, bool)
    if len(pts) < 3:
        return float("nan")
    keep = ok[:-2] & ok[1:-1] & ok[2:]
    if not keep.any():
        return float("nan")
    d2 = pts[2:] - 2 * pts[1:-1] + pts[:-2]  # [T-2, 68, 2]
    return float(np.sqrt((d2[keep] ** 2).sum(-1).mean()))


def jitter_ratio(
    swap_landmarks: np.ndarray,
    original_landmarks: np.ndarray,
    valid: np.ndarray | None = None,
) -> float:
    """Landmark jitter of the swap over that of the original, both normalised by the original's
    eye distance (1 = the swap adds no shake)."""
    scale = eye_distance(original_landmarks)
    return ratio(
        landmark_jitter(swap_landmarks, scale, valid),
        landmark_jitter(original_landmarks, scale, valid),
    )


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of [N, D] ``b`` with ``a`` ([D] or [N, D])."""
    a = np.asarray(a, np.float64)
    b = np.asarray(b, np.float64)
    a = a / np.linalg.norm(a, axis=-1, keepdims=True).clip(_EPS)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True).clip(_EPS)
    return np.sum(a * b, axis=-1)


@dataclass
class Embedding:
    """One face's identity embeddings: dlib's raw descriptor and FaceNet's (L2-normalised)."""

    dlib: np.ndarray  # (128,)
    facenet: np.ndarray  # (512,)


class IdentityJudge:
    """dlib's descriptor and the FaceNet judge of faces given by their 68 landmarks."""

    def __init__(self):
        self.dlib = build_identity_encoder("dlib-resnet")
        self.facenet = build_identity_encoder("facenet-vggface2")

    @torch.no_grad()
    def embed(self, images: list[np.ndarray], landmarks: list[np.ndarray]) -> list[Embedding]:
        """Embeddings of the face at ``landmarks[i]`` in ``images[i]`` (uint8 RGB)."""
        if not images:
            return []
        chips = np.stack(
            [face_chip(im, lm, 150, _DLIB_PADDING) for im, lm in zip(images, landmarks)]
        )
        crops = np.stack([align_identity(im, lm)[0] for im, lm in zip(images, landmarks)])

        def tensor(x: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(x).permute(0, 3, 1, 2).float() / 255.0

        # the network's raw output is dlib's unnormalised descriptor (the 0.6 threshold's scale)
        d = self.dlib.network(tensor(chips)).numpy()
        f = self.facenet(tensor(crops)).numpy()
        return [Embedding(a, b) for a, b in zip(d, f)]


@dataclass
class Identity:
    """Identity of a video's faces to the source photo, for the original and for the swap."""

    facenet_original: float
    facenet_swap: float
    dlib_cos_original: float
    dlib_cos_swap: float
    dlib_dist_original: float
    dlib_dist_swap: float
    dlib_same_original: float  # share of frames under dlib's 0.6
    dlib_same_swap: float

    @property
    def facenet_gain(self) -> float:
        return self.facenet_swap - self.facenet_original

    @property
    def dlib_distance_drop(self) -> float:
        return self.dlib_dist_original - self.dlib_dist_swap


def identity(source: Embedding, originals: list[Embedding], swaps: list[Embedding]) -> Identity:
    """Means over frames of the source photo's similarity to each original and swapped face."""

    def stats(faces: list[Embedding]) -> tuple[float, float, float, float]:
        dl = np.stack([e.dlib for e in faces])
        fn = np.stack([e.facenet for e in faces])
        dist = np.linalg.norm(dl - source.dlib, axis=1)
        return (
            float(cosine(source.facenet, fn).mean()),
            float(cosine(source.dlib, dl).mean()),
            float(dist.mean()),
            float((dist < DLIB_SAME_PERSON).mean()),
        )

    fo, co, do, so = stats(originals)
    fs, cs, ds, ss = stats(swaps)
    return Identity(fo, fs, co, cs, do, ds, so, ss)
