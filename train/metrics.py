"""Evaluation metrics as pure functions on arrays (no model, no I/O).

Names say what is measured. The paper's expression error is an L2 of 3DMM expression
coefficients; we have no 3DMM offline, so ``expression_error`` is a landmark proxy and is
reported under that name.
"""

from __future__ import annotations

import numpy as np
from scipy import linalg

# iBUG-68 points that move with expression: brows, eyes, mouth (jaw and nose mostly follow pose).
EXPRESSION_POINTS = np.r_[17:27, 36:48, 48:68]
LEFT_EYE, RIGHT_EYE = np.r_[36:42], np.r_[42:48]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of two [N, D] arrays."""
    a = a / np.linalg.norm(a, axis=1, keepdims=True).clip(1e-12)
    b = b / np.linalg.norm(b, axis=1, keepdims=True).clip(1e-12)
    return np.sum(a * b, axis=1)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two [N, D] feature sets (FID's formula,
    ``|μa − μb|² + Tr(Σa + Σb − 2(ΣaΣb)^½)``). FID proper uses Inception-v3 pool features, which
    are not available offline; the caller says which features it used."""
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b)
    root = np.real(root)  # rounding leaves tiny imaginary parts
    # never below 0 in exact arithmetic; rank-deficient covariances of small sets round to -1e-6
    return max(0.0, float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2.0 * root)))


def paired_gain(
    after: np.ndarray, before: np.ndarray, boots: int = 10_000, seed: int = 0
) -> dict[str, float]:
    """Per-pair ``after − before``: its mean, a percentile-bootstrap 95 % interval of that mean
    (fixed seed) and the fraction of pairs that improved. The interval excluding 0 is what
    "significant" means in our reports."""
    d = np.asarray(after, dtype=np.float64) - np.asarray(before, dtype=np.float64)
    idx = np.random.default_rng(seed).integers(0, len(d), (boots, len(d)))
    means = d[idx].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {
        "mean": float(d.mean()),
        "ci95_lo": float(lo),
        "ci95_hi": float(hi),
        "improved": float((d > 0).mean()),
    }


def retrieval_top1(
    queries: np.ndarray,
    query_labels: np.ndarray,
    gallery: np.ndarray,
    gallery_labels: np.ndarray,
) -> float:
    """Fraction of queries whose nearest gallery embedding (cosine) has the query's label, in %."""
    q = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-12)
    g = gallery / np.linalg.norm(gallery, axis=1, keepdims=True).clip(1e-12)
    nearest = np.argmax(q @ g.T, axis=1)
    return float(np.mean(gallery_labels[nearest] == query_labels) * 100.0)


def pose_error(pose_a: np.ndarray, pose_b: np.ndarray) -> np.ndarray:
    """L2 distance of (yaw, pitch, roll) in degrees, per row (the paper's pose error)."""
    return np.linalg.norm(np.asarray(pose_a, np.float64) - np.asarray(pose_b, np.float64), axis=1)


def procrustes_align(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Similarity transform (rotation, scale, shift) of ``src`` points that best fits ``dst``."""
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    u, sig, vt = np.linalg.svd(s.T @ d)
    sign = np.sign(np.linalg.det(u @ vt))
    corr = np.diag([1.0, sign])
    rot = u @ corr @ vt
    scale = np.sum(sig * np.diag(corr)) / max(np.sum(s * s), 1e-12)
    return s @ rot * scale + mu_d


def expression_error(landmarks_a: np.ndarray, landmarks_b: np.ndarray) -> np.ndarray:
    """Landmark expression distance: after a similarity (Procrustes) alignment of all 68 points,
    the mean distance of brow/eye/mouth points, in % of the inter-ocular distance; per face.

    The alignment removes in-plane pose and scale, so what is left is mostly expression (and
    out-of-plane pose residue, which is why this is a proxy, not the paper's 3DMM metric).
    """
    out = []
    for a, b in zip(np.asarray(landmarks_a, np.float64), np.asarray(landmarks_b, np.float64)):
        a_fit = procrustes_align(a, b)
        iod = np.linalg.norm(b[LEFT_EYE].mean(0) - b[RIGHT_EYE].mean(0))
        err = np.linalg.norm(a_fit[EXPRESSION_POINTS] - b[EXPRESSION_POINTS], axis=1).mean()
        out.append(100.0 * err / max(iod, 1e-6))
    return np.asarray(out)


def temporal_jitter(swaps: np.ndarray, targets: np.ndarray, masks: np.ndarray) -> float:
    """Flicker the swap adds to a clip: mean |frame-to-frame change| inside the face mask of the
    swapped crops minus that of the original crops, in 0–255 gray levels (0 = no added flicker).

    Both sequences share the same per-frame crop, so crop motion cancels out; ``swaps`` and
    ``targets`` are [T, H, W, 3] uint8, ``masks`` [T, H, W] in [0, 1].
    """
    if len(swaps) < 2:
        return 0.0
    m = (masks[1:] * masks[:-1])[..., None].astype(np.float64)
    denom = max(m.sum() * 3.0, 1.0)
    d_swap = np.abs(np.diff(swaps.astype(np.float64), axis=0)) * m
    d_tgt = np.abs(np.diff(targets.astype(np.float64), axis=0)) * m
    return float((d_swap.sum() - d_tgt.sum()) / denom)
