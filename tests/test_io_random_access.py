"""Random access for chunked runs: frame N is exactly VideoReader's frame N, whichever backend."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from media import make_clip, reader_frames

from mmcore.errors import InvalidInput
from mmvideo.io.random_access import open_random_access, read_frames


def assert_exact(got, reference, start, stop):
    assert [f.index for f in got] == list(range(start, stop))
    for f in got:
        ref = reference[f.index]
        assert f.pts == ref.pts and f.time_base == ref.time_base
        assert np.array_equal(f.image, ref.image)


def test_decord_used_where_it_agrees(data_dir):
    path = data_dir / "talking_head_turn_03.mp4"
    reader = open_random_access(path)
    assert reader.backend == "decord" and len(reader) == 108
    reference = reader_frames(path)
    for start, stop in [(0, 3), (50, 57), (105, 108), (20, 20)]:
        assert_exact(reader.read(start, stop), reference, start, stop)
    reader.close()


def test_edit_list_clip_falls_back_to_pyav(data_dir):
    # decord counts the 103 edit-list-discarded frames too (158), so it must not be used here
    path = data_dir / "talking_head_obama_news_01.mp4"
    reader = open_random_access(path)
    assert reader.backend == "pyav" and len(reader) == 55
    assert_exact(reader.read(30, 34), reader_frames(path), 30, 34)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"rotation": 90},
        {"pix_fmt": "yuv420p10le"},
        {
            "pts": [0, 1000, 3000, 3500, 7000, 7400, 9000, 9100],
            "time_base": Fraction(1, 10000),
        },
    ],
    ids=["rotated", "10bit", "vfr"],
)
def test_generated_edge_cases_are_exact(tmp_path, kwargs):
    clip = tmp_path / "clip.mkv"
    make_clip(clip, frames=8, options={"g": "3"}, **kwargs)  # several key frames to seek between
    reference = reader_frames(clip)
    assert_exact(read_frames(clip, 4, 7), reference, 4, 7)
    if kwargs.get("rotation") or kwargs.get("pix_fmt"):
        assert open_random_access(clip).backend == "pyav"


def test_pyav_backend_forced(data_dir):
    path = data_dir / "talking_head_turn_03.mp4"
    reader = open_random_access(path, prefer_decord=False)
    assert reader.backend == "pyav"
    assert_exact(reader.read(60, 64), reader_frames(path), 60, 64)


def test_range_outside_clip(data_dir):
    reader = open_random_access(data_dir / "talking_head_turn_03.mp4", prefer_decord=False)
    with pytest.raises(InvalidInput, match="outside 0..108"):
        reader.read(100, 200)


def test_decord_failure_mid_run_falls_back_to_pyav(data_dir, monkeypatch):
    path = data_dir / "talking_head_turn_03.mp4"
    reader = open_random_access(path)
    assert reader.backend == "decord"

    def broken(indices):
        raise RuntimeError("decord could not seek")

    monkeypatch.setattr(reader._reader, "get_batch", broken)
    assert_exact(reader.read(10, 13), reader_frames(path), 10, 13)
