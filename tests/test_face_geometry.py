"""Alignment, landmark heat-maps, depth, masks, component boxes and prepare_target."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import scipy.io as sio

from magicmask.face.align import (
    ARCFACE_112,
    TEMPLATE_224,
    align_identity,
    align_target,
    five_points,
    invert_affine,
    similarity_matrix,
    transform_points,
)
from magicmask.face.analyzer import FaceAnalyzer
from magicmask.face.depth import depth_map
from magicmask.face.heatmaps import LANDMARK_GROUPS, landmark_heatmaps
from magicmask.face.image import load_image
from magicmask.face.mask import component_boxes, face_mask
from magicmask.face.pose import mean_face
from magicmask.face.prepare import PrepareConfig, prepare_target


@pytest.fixture(scope="module")
def obama(data_dir):
    image = load_image(data_dir / "id_obama_01.jpg")
    (face,) = FaceAnalyzer().detect(image)
    return image, face


def _similarity(angle_deg: float, scale: float, tx: float, ty: float) -> np.ndarray:
    a = np.radians(angle_deg)
    return np.array(
        [
            [scale * np.cos(a), -scale * np.sin(a), tx],
            [scale * np.sin(a), scale * np.cos(a), ty],
        ]
    )


def test_template_224_is_the_paper_resize_and_crop():
    assert np.allclose(TEMPLATE_224, ARCFACE_112 * 256 / 112 - 16)
    # Both eyes on one row, mouth below the nose, all inside the crop.
    assert abs(TEMPLATE_224[0, 1] - TEMPLATE_224[1, 1]) < 1
    assert (TEMPLATE_224 > 0).all() and (TEMPLATE_224 < 224).all()


def test_similarity_matrix_recovers_a_known_similarity_exactly():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 500, (5, 2))
    m_true = _similarity(23.0, 0.4, 17.0, -30.0)
    dst = transform_points(src, m_true)
    assert np.allclose(similarity_matrix(src, dst), m_true, atol=1e-4)


def test_similarity_matrix_never_reflects():
    src = ARCFACE_112.astype(np.float64)
    mirrored = src * [-1, 1]
    m = similarity_matrix(src, mirrored)
    assert np.linalg.det(m[:, :2]) > 0


def test_five_points_take_eye_centers_nose_tip_and_mouth_corners():
    pts = np.arange(136, dtype=np.float32).reshape(68, 2)
    five = five_points(pts)
    assert np.allclose(five[0], pts[36:42].mean(0)) and np.allclose(five[1], pts[42:48].mean(0))
    assert np.allclose(five[2:], pts[[30, 48, 54]])


def test_alignment_round_trip_under_half_a_pixel_on_a_real_face(obama):
    image, face = obama
    crop, m = align_target(image, face.landmarks)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8
    back = transform_points(transform_points(face.landmarks, m), invert_affine(m))
    assert np.abs(back - face.landmarks).max() < 0.5
    # The anchors land on the template (a real face is not the template: a few px of residual).
    assert np.abs(transform_points(five_points(face.landmarks), m) - TEMPLATE_224).max() < 20


def test_warped_pixels_land_where_the_matrix_puts_them():
    # A blurred dot at a sub-pixel position must appear in the crop at M·p (pixel centres at integers).
    h, w = 300, 400
    p = np.array([[211.3, 143.7]])
    yy, xx = np.mgrid[0:h, 0:w]
    image = np.exp(-((xx - p[0, 0]) ** 2 + (yy - p[0, 1]) ** 2) / (2 * 3.0**2))
    image = np.repeat((image * 255).astype(np.uint8)[..., None], 3, axis=2)
    m = _similarity(-17.0, 0.8, -60.0, 20.0)
    crop = cv2.warpAffine(image, m, (224, 224))[..., 0].astype(np.float64)
    ys, xs = np.mgrid[0:224, 0:224]
    centroid = np.array([(crop * xs).sum(), (crop * ys).sum()]) / crop.sum()
    assert np.linalg.norm(centroid - transform_points(p, m)[0]) < 0.5
    # ... and pasting back with the inverse puts it where it was.
    pasted = cv2.warpAffine(crop, invert_affine(m), (w, h))
    back = np.array([(pasted * xx).sum(), (pasted * yy).sum()]) / pasted.sum()
    assert np.linalg.norm(back - p[0]) < 0.5


def test_identity_crop_is_the_fixed_similarity_of_the_target_crop(obama):
    image, face = obama
    _, m224 = align_target(image, face.landmarks)
    crop112, m112 = align_identity(image, face.landmarks)
    assert crop112.shape == (112, 112, 3)
    # docs/design.md: p112 = (p224 + 16) * 112 / 256.
    p = transform_points(face.landmarks, m224)
    assert np.abs((p + 16) * 112 / 256 - transform_points(face.landmarks, m112)).max() < 1e-3


def test_uint16_frames_align_like_uint8(obama):
    image, face = obama
    crop8, _ = align_target(image, face.landmarks)
    crop16, _ = align_target(image.astype(np.uint16) * 257, face.landmarks)
    assert crop16.dtype == np.uint8
    assert np.abs(crop16.astype(int) - crop8).max() <= 1


def test_heatmaps_peak_on_each_group_and_vanish_far_away():
    pts = TEMPLATE_224.mean(0) + (mean_face()[:, :2] * 90).astype(np.float32)
    maps = landmark_heatmaps(pts, 224, sigma=2.0)
    assert maps.shape == (8, 224, 224) and maps.dtype == np.float32
    assert maps.min() >= 0 and maps.max() <= 1
    for i, idx in enumerate(LANDMARK_GROUPS.values()):
        on = maps[i][
            np.round(pts[list(idx), 1]).astype(int),
            np.round(pts[list(idx), 0]).astype(int),
        ]
        assert on.min() > 0.6, i
        assert maps[i, :5, :5].max() == 0.0  # the crop corner is far from every group
    # A group that lies outside the crop gives an empty channel, not an error.
    outside = landmark_heatmaps(pts + 1000, 224)
    assert outside.max() == 0.0


def test_heatmaps_get_wider_with_sigma():
    pts = TEMPLATE_224.mean(0) + (mean_face()[:, :2] * 90).astype(np.float32)
    assert landmark_heatmaps(pts, sigma=4.0).sum() > 1.5 * landmark_heatmaps(pts, sigma=2.0).sum()


def _cheeks_and_nose(pts: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nose = pts[30]
    left = pts[3] + 0.35 * (nose - pts[3])
    right = pts[13] + 0.35 * (nose - pts[13])
    return (
        np.round(nose).astype(int),
        np.round(left).astype(int),
        np.round(right).astype(int),
    )


def test_depth_is_highest_at_the_nose_and_zero_off_the_face(obama):
    image, face = obama
    _, m = align_target(image, face.landmarks)
    pts = transform_points(face.landmarks, m)
    depth = depth_map(pts)
    assert depth.shape == (224, 224) and depth.dtype == np.float32
    assert depth.min() >= 0 and depth.max() <= 1
    nose, left, right = _cheeks_and_nose(pts)
    assert depth[nose[1], nose[0]] > depth[left[1], left[0]] + 0.05
    assert depth[nose[1], nose[0]] > depth[right[1], right[0]] + 0.05
    assert depth[2, 2] == 0 and depth[2, 221] == 0
    assert (depth[depth > 0] >= 0.05).all()  # the face never touches the background value


def test_depth_from_3d_landmarks_puts_the_near_cheek_above_the_far_one(data_dir):
    # AFLW2000 image00251: yaw -55 deg; its ground-truth 3-D landmarks (z toward the camera).
    mat = sio.loadmat(data_dir / "pose_aflw2000_image00251.mat")
    p3 = mat["pt3d_68"].T.astype(np.float32)
    m = similarity_matrix(five_points(p3), TEMPLATE_224)
    crop3 = np.concatenate(
        [transform_points(p3, m), p3[:, 2:] * np.sqrt(np.linalg.det(m[:, :2]))], 1
    )
    depth = depth_map(crop3[:, :2], crop3)
    # The outer eye corners (36, 45) stay visible at 55 deg; the cheeks are partly hidden by the nose.
    corners = np.round(crop3[[36, 45], :2]).astype(int)
    near, far = (corners[0], corners[1]) if p3[36, 2] > p3[45, 2] else (corners[1], corners[0])
    nose = np.round(crop3[30, :2]).astype(int)
    assert depth[near[1], near[0]] > depth[far[1], far[0]] + 0.1
    assert depth[nose[1], nose[0]] > depth[far[1], far[0]] + 0.1


def test_mask_covers_the_landmarks_and_erosion_and_feathering_work(obama):
    image, face = obama
    _, m = align_target(image, face.landmarks)
    pts = transform_points(face.landmarks, m)
    mask = face_mask(pts, erosion=0, feather=0)
    assert mask.dtype == np.float32 and mask.shape == (224, 224)
    inner = np.round(pts[17:]).astype(int)  # brows, eyes, nose, mouth are inside the hull
    assert mask[inner[:, 1], inner[:, 0]].min() == 1.0
    assert mask[2, 2] == 0.0
    # The forehead extension reaches above the brows.
    brow_top = int(pts[17:27, 1].min())
    assert mask[brow_top - 15, int(pts[27, 0])] == 1.0
    eroded = face_mask(pts, erosion=8, feather=0)
    grown = face_mask(pts, erosion=-8, feather=0)
    assert eroded.sum() < mask.sum() < grown.sum()
    soft = face_mask(pts, feather=6)
    assert ((soft > 0.05) & (soft < 0.95)).sum() > 500  # a real soft edge
    assert soft[inner[:, 1], inner[:, 0]].min() > 0.9


def test_component_boxes_contain_their_landmarks(obama):
    image, face = obama
    _, m = align_target(image, face.landmarks)
    pts = transform_points(face.landmarks, m)
    boxes = component_boxes(pts, margin=4)
    assert boxes.shape == (4, 4) and boxes.dtype == np.float32
    groups = [
        range(36, 48),
        range(27, 36),
        range(48, 68),
        range(17),
    ]  # eyes, nose, mouth, jaw
    for box, idx in zip(boxes, groups):
        p = pts[list(idx)]
        assert (p[:, 0] >= box[0]).all() and (p[:, 0] <= box[2]).all()
        assert (p[:, 1] >= box[1]).all() and (p[:, 1] <= box[3]).all() or box[3] == 224
        assert box[2] - box[0] >= 16 and box[3] - box[1] >= 8
    assert boxes[0, 1] < boxes[2, 1]  # eyes above the mouth


def test_prepare_target_fields(obama):
    image, face = obama
    t = prepare_target(image, face.landmarks)
    assert t.crop.shape == (224, 224, 3) and t.crop.dtype == np.uint8
    assert t.matrix.shape == (2, 3) and t.landmarks.shape == (68, 2)
    assert t.depth.shape == (224, 224) and t.depth.dtype == np.float32
    assert t.heatmaps.shape == (8, 224, 224) and t.heatmaps.dtype == np.float32
    assert t.mask.shape == (224, 224) and t.boxes.shape == (4, 4)
    assert abs(t.pose[0]) < 20  # a frontal portrait
    # Depth lies under the mask: the generator and the losses see the same face region.
    assert t.mask[t.depth > 0].mean() > 0.95
    small = prepare_target(image, face.landmarks, cfg=PrepareConfig(size=128))
    assert small.crop.shape == (128, 128, 3) and small.heatmaps.shape == (8, 128, 128)
    again = prepare_target(image, face.landmarks)
    assert np.array_equal(again.depth, t.depth) and np.allclose(
        again.heatmaps, t.heatmaps, atol=1e-6
    )
