"""The FAN backend with randomly initialised face-alignment networks saved where it looks.

Random weights: these tests check loading, file locations, shapes, coordinate frames and
determinism, never landmark quality. Downloads are made impossible, so a test that passes proves
no fetch was attempted.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magicmask.face.analyzer import FaceAnalyzer, FaceConfig
from magicmask.face.fan_backend import weight_name
from magicmask.face.image import load_image
from mmcore.errors import ModelError

fa_models = pytest.importorskip("face_alignment.models")

BOX = np.array([[357.0, 144.0, 634.0, 421.0]], np.float32)  # dlib's box of the portrait's face


@pytest.fixture(autouse=True)
def no_downloads(monkeypatch, offline):
    def refuse(*args, **kwargs):
        raise AssertionError("a download was attempted")

    import face_alignment.utils

    monkeypatch.setattr(torch.hub, "download_url_to_file", refuse)
    monkeypatch.setattr(face_alignment.utils, "download_url_to_file", refuse)


@pytest.fixture(scope="module")
def fan_weights(tmp_path_factory):
    """A random 2DFAN-4 state_dict under face-alignment's file name."""
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("fan")
    torch.save(fa_models.FAN(4).state_dict(), folder / weight_name("2DFAN-4"))
    return folder


@pytest.fixture(scope="module")
def portrait(data_dir):
    return load_image(data_dir / "id_obama_01.jpg")


def _cfg(**kw) -> FaceConfig:
    return FaceConfig(face_backend="fan", landmark_flip=False, **kw)


def test_weights_are_read_from_face_alignments_cache(monkeypatch, tmp_path, fan_weights, portrait):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    cache = tmp_path / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    (cache / weight_name("2DFAN-4")).symlink_to(fan_weights / weight_name("2DFAN-4"))
    analyzer = FaceAnalyzer(_cfg())
    # One batch holding the same box twice: also shows a face's result does not depend on its
    # neighbours in the batch (FAN runs in eval mode).
    face, twin = analyzer.landmarks(portrait, np.concatenate([BOX, BOX]))
    assert face.landmarks.shape == (68, 2) and face.landmarks.dtype == np.float32
    assert face.landmarks_3d is None
    # Whatever random weights predict, the points lie in FAN's crop around the box, in frame pixels.
    side = BOX[0, 2] - BOX[0, 0]
    assert (face.landmarks[:, 0] > BOX[0, 0] - side).all() and (
        face.landmarks[:, 0] < BOX[0, 2] + side
    ).all()
    assert (face.landmarks[:, 1] > BOX[0, 1] - side).all() and (
        face.landmarks[:, 1] < BOX[0, 3] + side
    ).all()
    assert np.allclose(twin.landmarks, face.landmarks)


def test_a_named_folder_wins_and_detection_goes_through_hog(fan_weights, portrait):
    analyzer = FaceAnalyzer(_cfg(face_models=fan_weights))
    faces = analyzer.detect(portrait)
    assert len(faces) == 1 and faces[0].landmarks.shape == (68, 2)
    assert np.abs(faces[0].box - BOX[0]).max() < 3  # HOG's box, the one FAN was given


def test_missing_weights_say_where_to_put_them(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ModelError, match=r"2DFAN4-11f355bf06\.pth\.tar.*face-alignment's cache"):
        FaceAnalyzer(_cfg())
    with pytest.raises(ModelError, match=f"put 3DFAN4.* in {tmp_path}"):
        FaceAnalyzer(_cfg(face_models=tmp_path, fan_landmarks="3d"))


def test_foreign_or_corrupt_weights_are_refused(tmp_path):
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / weight_name("2DFAN-4"))
    with pytest.raises(ModelError, match="do not fit"):
        FaceAnalyzer(_cfg(face_models=tmp_path))
    (tmp_path / weight_name("2DFAN-4")).write_bytes(b"truncated")
    with pytest.raises(ModelError, match="cannot read FAN weights"):
        FaceAnalyzer(_cfg(face_models=tmp_path))


@pytest.mark.slow
def test_fan_3d_adds_depth_from_the_depth_network(tmp_path, portrait):
    torch.manual_seed(1)
    torch.save(fa_models.FAN(4).state_dict(), tmp_path / weight_name("3DFAN-4"))
    depth = {f"module.{k}": v for k, v in fa_models.ResNetDepth().state_dict().items()}
    torch.save({"state_dict": depth}, tmp_path / weight_name("depth"))
    analyzer = FaceAnalyzer(_cfg(face_models=tmp_path, fan_landmarks="3d"))
    (face,) = analyzer.landmarks(portrait, BOX)
    assert face.landmarks_3d.shape == (68, 3)
    assert np.array_equal(face.landmarks_3d[:, :2], face.landmarks)
    assert np.isfinite(face.landmarks_3d).all()
