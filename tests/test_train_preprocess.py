"""train.preprocess on real stills and a real clip: the documented shard fields, skips, resume."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
from media import identity_folders

from mmcore.errors import InvalidInput, MissingInput
from mmvideo.commands import main as cli_main
from train.preprocess import PreprocessConfig, preprocess
from train.shards import list_shards, read_shard

STILLS = {"obama": ["id_obama_01.jpg", "id_obama_02.jpg"], "biden": ["id_biden_02.jpg"]}
CLIP = "talking_head_turn_01.mp4"
STRIDE = 32


@pytest.fixture(scope="module")
def sources(data_dir: Path, tmp_path_factory) -> list[Path]:
    """Identity sub-folders of real stills (+ an unreadable file and a face-less image) and a clip."""
    root = identity_folders(tmp_path_factory.mktemp("src") / "people", data_dir, STILLS)
    (root / "obama" / "broken.jpg").write_bytes(b"not a jpeg at all")
    rng = np.random.default_rng(0)
    cv2.imwrite(
        str(root / "biden" / "noface.png"), rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    )
    return [root, data_dir / CLIP]


@pytest.fixture(scope="module")
def shards(sources, tmp_path_factory) -> tuple[Path, object]:
    out = tmp_path_factory.mktemp("shards")
    report = preprocess(sources, out, PreprocessConfig(stride=STRIDE), chunk_size=50, workers=1)
    return out, report


def test_shards_hold_the_documented_fields(shards):
    out, report = shards
    paths = list_shards(out)
    assert len(paths) == 2 == report.chunks_total  # one image chunk, one video chunk
    data = [read_shard(p) for p in paths]
    video = next(s for s in data if s.header.identities == [Path(CLIP).stem])
    images = next(s for s in data if s is not video)
    assert sorted(images.header.identities) == ["biden", "obama"]
    assert len(images) == 3 and report.faces == len(images) + len(video)
    assert list(video.frame) == list(range(0, STRIDE * len(video), STRIDE)) and len(video) >= 3
    assert set(images.frame) == {-1}
    for s in data:
        n = len(s)
        assert s.target.shape == (n, 224, 224, 3) and s.target.dtype == np.uint8
        assert s.source.shape == (n, 112, 112, 3) and s.source.dtype == np.uint8
        assert s.depth.shape == s.mask.shape == (n, 224, 224)
        assert (
            s.landmarks.shape == (n, 68, 2)
            and s.boxes.shape == (n, 4, 4)
            and s.pose.shape == (n, 3)
        )
        # Aligned crops put the face in the middle: brows, eyes and nose inside (the ArcFace
        # framing may cut the chin and an open mouth's lower lip), eyes above the mouth.
        inner = s.landmarks[:, 17:48]
        assert (inner > 0).all() and (inner < 224).all()
        assert (s.landmarks[:, 36:48, 1].mean(1) < s.landmarks[:, 48:68, 1].mean(1)).all()
        assert (s.boxes[..., 2] > s.boxes[..., 0]).all() and (
            s.boxes[..., 3] > s.boxes[..., 1]
        ).all()
        assert (s.boxes >= 0).all() and (s.boxes <= 224).all()
        face = s.mask > 127
        assert 0.15 < face.mean() < 0.9
        assert s.depth[face].mean() > 50 and s.depth[~face].mean() < s.depth[face].mean()
        assert np.isfinite(s.pose).all() and (np.abs(s.pose) < 90).all()
        assert s.label.max() < len(s.header.identities)


def test_unusable_inputs_are_skipped_and_counted(shards):
    out, report = shards
    skipped = dict(x for p in list_shards(out) for x in read_shard(p).header.skipped)
    assert skipped["obama/broken.jpg"].startswith("unreadable")
    assert skipped["biden/noface.png"] == "no face"
    assert report.skipped == len(skipped) == 2


def test_rerun_resumes_without_redoing_chunks(shards, sources):
    out, _ = shards
    before = {p: p.stat().st_mtime_ns for p in list_shards(out)}
    report = preprocess(sources, out, PreprocessConfig(stride=STRIDE), chunk_size=50, workers=1)
    assert report.chunks_done_before == report.chunks_total == 2 and report.faces == 0
    assert {p: p.stat().st_mtime_ns for p in list_shards(out)} == before


def test_empty_or_missing_sources_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="no images or videos"):
        preprocess([tmp_path / "empty"], tmp_path / "out", PreprocessConfig())
    with pytest.raises(MissingInput, match="does not exist"):
        preprocess([tmp_path / "nope"], tmp_path / "out", PreprocessConfig())
    assert (
        cli_main(["train-preprocess", str(tmp_path / "empty"), "--out", str(tmp_path / "o2")]) == 3
    )
