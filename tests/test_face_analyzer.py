"""FaceAnalyzer with the offline backends (dlib HOG + 68 points, MTCNN) on the real stills."""

from __future__ import annotations

import logging

import cv2
import numpy as np
import pytest

from magicmask.face.analyzer import FaceAnalyzer, FaceConfig, source_face
from magicmask.face.image import load_image
from mmcore.errors import InvalidInput, ModelError, NoFaceFound

# Faces a person counts in each group photo (looking at the camera, at least both eyes visible).
GROUPS = {
    "multi_face_bbt_cast_01.jpg": 4,
    "multi_face_bbt_cast_03.jpg": 5,
    "multi_face_bbt_cast_04.jpg": 6,
    "multi_face_bbt_cast_05.jpg": 5,
    "multi_face_obama_biden_01.jpg": 2,
    "multi_face_obama_biden_02.jpg": 3,
    "multi_face_kit_rose_01.jpg": 2,
}


@pytest.fixture(scope="module")
def hog():
    return FaceAnalyzer()


@pytest.fixture(scope="module")
def mtcnn():
    return FaceAnalyzer(FaceConfig(detector="mtcnn"))


@pytest.mark.parametrize("name,count", sorted(GROUPS.items()))
def test_every_face_in_group_photos_is_found(data_dir, hog, name, count):
    image = load_image(data_dir / name)
    faces = hog.detect(image)
    assert len(faces) == count
    for f in faces:
        assert f.landmarks.shape == (68, 2) and f.landmarks.dtype == np.float32
        # The landmarks belong to the box they were fitted in.
        cx, cy = f.landmarks[30]
        assert f.box[0] <= cx <= f.box[2] and f.box[1] <= cy <= f.box[3]
        assert f.landmarks[36:48, 1].mean() < f.landmarks[48:68, 1].mean()  # eyes above mouth
        assert f.pose is not None and f.score > 0
    areas = [f.area for f in faces]
    assert areas == sorted(areas, reverse=True)


def test_mtcnn_finds_the_face_cut_by_the_border_that_hog_misses(data_dir, hog, mtcnn):
    image = load_image(data_dir / "multi_face_bbt_cast_02.jpg")
    assert len(hog.detect(image)) == 2
    faces = mtcnn.detect(image)
    assert len(faces) == 3
    for f in faces:
        assert f.extra["points5"].shape == (5, 2)
        left_eye, right_eye = f.extra["points5"][:2]
        assert left_eye[0] < right_eye[0]


@pytest.mark.parametrize("name,count", sorted(GROUPS.items())[:3])
def test_mtcnn_counts_match_on_group_photos(data_dir, mtcnn, name, count):
    assert len(mtcnn.detect(load_image(data_dir / name))) == count


def test_landmark_update_follows_a_moved_box(data_dir, hog):
    image = load_image(data_dir / "id_obama_01.jpg")
    (face,) = hog.detect(image)
    shifted = np.roll(image, (7, -11), axis=(0, 1))
    (moved,) = hog.landmarks(shifted, face.box + np.array([-11, 7, -11, 7], np.float32))
    assert np.abs(moved.landmarks - face.landmarks - [-11, 7]).mean() < 1.0
    assert moved.score == 1.0 and moved.pose is not None
    assert hog.landmarks(image, np.zeros((0, 4))) == []


def test_batches_match_single_calls(data_dir, hog):
    images = [load_image(data_dir / n) for n in ("id_obama_01.jpg", "multi_face_kit_rose_01.jpg")]
    batch = hog.detect_batch(images)
    assert [len(b) for b in batch] == [1, 2]
    for image, faces in zip(images, batch):
        assert np.array_equal(faces[0].landmarks, hog.detect(image)[0].landmarks)
    again = hog.landmarks_batch(images, [np.stack([f.box for f in b]) for b in batch])
    assert [len(b) for b in again] == [1, 2]


def test_grayscale_and_16_bit_frames(data_dir, hog):
    image = load_image(data_dir / "id_bbt_amy_01.png")  # a greyscale 150 px crop
    assert len(hog.detect(image)) == 1
    gray = cv2.cvtColor(load_image(data_dir / "id_obama_01.jpg"), cv2.COLOR_RGB2GRAY)
    assert len(hog.detect(gray)) == 1
    deep = load_image(data_dir / "id_obama_01.jpg").astype(np.uint16) * 257
    assert len(hog.detect(deep)) == 1
    with pytest.raises(InvalidInput):
        hog.detect(np.zeros((10, 10, 3), np.float32))


def test_tiny_faces_are_dropped_and_large_frames_downscaled(data_dir):
    image = load_image(data_dir / "multi_face_bbt_cast_03.jpg")  # faces ~52-64 px
    assert len(FaceAnalyzer(FaceConfig(min_face_size=60)).detect(image)) < 5
    big = cv2.resize(image, None, fx=4, fy=4, interpolation=cv2.INTER_LINEAR)  # 2376×1532
    faces = FaceAnalyzer(FaceConfig(detect_max_side=640)).detect(big)
    assert len(faces) == 5
    assert min(f.box[2] - f.box[0] for f in faces) > 150  # boxes are in the big image's pixels


def test_source_face_picks_the_largest_and_says_so(data_dir, hog, caplog):
    image = load_image(data_dir / "multi_face_obama_biden_02.jpg")
    with caplog.at_level(logging.WARNING):
        face = source_face(image, hog)
    assert "3 faces found" in caplog.text and "--source-face-index" in caplog.text
    assert face.area == max(f.area for f in hog.detect(image))
    second = source_face(image, hog, index=1)
    assert second.area <= face.area and not np.array_equal(second.box, face.box)
    with pytest.raises(InvalidInput, match="out of range"):
        source_face(image, hog, index=3)


def test_source_without_a_face_is_a_clear_error(hog):
    blank = np.full((300, 400, 3), 128, np.uint8)
    with pytest.raises(NoFaceFound, match="actor.png: no face found"):
        source_face(blank, hog, name="actor.png")
    assert hog.detect(blank) == []  # for a frame it is just an empty list


def test_unknown_names_and_missing_models_are_clear_errors(tmp_path):
    with pytest.raises(InvalidInput, match="unknown"):
        FaceAnalyzer(FaceConfig(detector="yolo"))
    with pytest.raises(InvalidInput, match="unknown"):
        FaceAnalyzer(FaceConfig(face_backend="deca"))
    with pytest.raises(ModelError, match="--face-models"):
        FaceAnalyzer(FaceConfig(face_backend="insightface"))
    with pytest.raises(ModelError, match=str(tmp_path)):
        FaceAnalyzer(FaceConfig(face_backend="insightface", face_models=tmp_path))


def test_dlib_descriptor_fills_unit_embeddings(data_dir, hog):
    names = ("id_obama_01.jpg", "id_obama_03.jpg", "id_biden_02.jpg")
    emb = []
    for name in names:
        image = load_image(data_dir / name)
        faces = hog.describe(image, hog.detect(image)[:1])
        assert faces[0].embedding.shape == (128,) and faces[0].embedding.dtype == np.float32
        assert abs(float(np.linalg.norm(faces[0].embedding)) - 1) < 1e-5
        emb.append(faces[0].embedding)
    # Plumbing check (landmarks reach dlib in the right order): one person is nearer to himself.
    assert np.linalg.norm(emb[0] - emb[1]) < np.linalg.norm(emb[0] - emb[2])
    assert hog.describe(np.zeros((50, 50, 3), np.uint8), []) == []


def test_mtcnn_boxes_are_converted_for_dlibs_predictor(data_dir, hog, mtcnn):
    # dlib's 68-point predictor was trained on HOG's boxes; fed MTCNN's converted boxes it must
    # place the points where it does from HOG's own boxes (mean error < 2.5% of the eye distance).
    errors = []
    for name in ("multi_face_bbt_cast_01.jpg", "multi_face_obama_biden_01.jpg"):
        image = load_image(data_dir / name)
        for h in hog.detect(image):
            m = min(
                mtcnn.detect(image),
                key=lambda f: np.abs(f.landmarks[30] - h.landmarks[30]).sum(),
            )
            iod = np.linalg.norm(h.landmarks[36:42].mean(0) - h.landmarks[42:48].mean(0))
            errors.append(np.linalg.norm(m.landmarks - h.landmarks, axis=1).mean() / iod)
    assert len(errors) == 6 and np.mean(errors) < 0.025
