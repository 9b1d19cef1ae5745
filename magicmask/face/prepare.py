"""Everything the generator and the losses need about one target face, from one frame.

Used by the swap pipeline (per frame, with smoothed landmarks) and by training preprocessing, so
both see identical crops, depth, heat-maps and masks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from magicmask.face.align import affine_scale, align_target, transform_points
from magicmask.face.depth import render_depth
from magicmask.face.heatmaps import landmark_heatmaps
from magicmask.face.mask import component_boxes, face_mask
from magicmask.face.pose import fit_shape

if TYPE_CHECKING:
    from magicmask.face.parsing import FaceParser


@dataclass(frozen=True)
class PrepareConfig:
    """How target inputs are rendered; the defaults are what the model is trained with."""

    size: int = 224
    heatmap_sigma: float = 2.0
    mask_erosion: float = 0.0
    mask_feather: float = 4.0
    mask_forehead: float = 0.3
    box_margin: float = 6.0
    # With a face parser: how far (px) parsed face pixels may reach beyond the landmark hull.
    parse_reach: float = 12.0


@dataclass
class TargetInputs:
    """Model inputs for one target face (docs/design.md, "Per-face model inputs")."""

    crop: np.ndarray  # (size, size, 3) uint8 RGB
    matrix: np.ndarray  # (2, 3) float64 frame → crop
    landmarks: np.ndarray  # (68, 2) float32 crop pixels
    depth: np.ndarray  # (size, size) float32 [0, 1], 0 = background, larger = nearer
    heatmaps: np.ndarray  # (8, size, size) float32 [0, 1], LANDMARK_GROUPS order
    mask: np.ndarray  # (size, size) float32 [0, 1]
    boxes: np.ndarray  # (4, 4) float32 eyes, nose, mouth, jaw (x0, y0, x1, y1) crop pixels
    pose: tuple[float, float, float]  # yaw, pitch, roll in degrees


def _mask(
    crop: np.ndarray, pts: np.ndarray, cfg: PrepareConfig, parser: FaceParser | None
) -> np.ndarray:
    hull = face_mask(pts, cfg.size, cfg.mask_erosion, cfg.mask_feather, cfg.mask_forehead)
    if parser is None:
        return hull
    # The hull bounds the region (a hand or neck far off is not face); parsing cuts it inside.
    reach = face_mask(pts, cfg.size, -cfg.parse_reach, cfg.mask_feather, cfg.mask_forehead)
    parsed = parser.face_mask(crop[None], feather=cfg.mask_feather)[0]
    return np.minimum(parsed, reach)


def prepare_target(
    image: np.ndarray,
    landmarks68: np.ndarray,
    landmarks3d: np.ndarray | None = None,
    cfg: PrepareConfig = PrepareConfig(),
    parser: FaceParser | None = None,
) -> TargetInputs:
    """Align one face of ``image`` (H×W×3 uint8/uint16 RGB) and render its model inputs.

    ``landmarks68`` are frame pixels; ``landmarks3d`` (68×3, z toward the camera, frame pixels)
    when the backend predicts them. One mean-face fit gives both the pose and, without 3-D
    landmarks, the depth.
    """
    size = cfg.size
    crop, m = align_target(image, landmarks68, size)
    pts = transform_points(landmarks68, m)
    fit = fit_shape(landmarks68, image.shape[:2], landmarks3d)
    # Heights are in frame pixels; a similarity scales them like the x/y coordinates.
    heights = fit.depth * affine_scale(m)
    return TargetInputs(
        crop=crop,
        matrix=m,
        landmarks=pts,
        depth=render_depth(pts, heights, size),
        heatmaps=landmark_heatmaps(pts, size, cfg.heatmap_sigma),
        mask=_mask(crop, pts, cfg, parser),
        boxes=component_boxes(pts, cfg.box_margin, size=size),
        pose=fit.pose,
    )
