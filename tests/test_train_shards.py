"""The shard format: round trip, and clear errors for files that are not (complete) shards."""

from __future__ import annotations

import json

import numpy as np
import pytest

from mmcore.errors import InvalidInput, MissingInput
from train.shards import (
    ShardData,
    ShardHeader,
    list_shards,
    read_header,
    read_shard,
    write_shard,
)


def _shard(n: int = 3, size: int = 224) -> ShardData:
    rng = np.random.default_rng(0)
    return ShardData(
        header=ShardHeader(size, 112, ["a", "b"], n, [("x.jpg", "no face")], "test"),
        target=rng.integers(0, 255, (n, size, size, 3), dtype=np.uint8),
        source=rng.integers(0, 255, (n, 112, 112, 3), dtype=np.uint8),
        landmarks=rng.uniform(0, size, (n, 68, 2)).astype(np.float32),
        depth=rng.integers(0, 255, (n, size, size), dtype=np.uint8),
        mask=rng.integers(0, 255, (n, size, size), dtype=np.uint8),
        boxes=rng.uniform(0, size, (n, 4, 4)).astype(np.float32),
        pose=rng.uniform(-30, 30, (n, 3)).astype(np.float32),
        label=np.array([0, 1, 1][:n], np.int64),
        frame=np.full(n, -1, np.int64),
        origin=np.array([f"img{i}.jpg" for i in range(n)]),
    )


def test_round_trip_keeps_every_array_and_the_header(tmp_path):
    shard = _shard()
    write_shard(tmp_path / "shard-1.npz", shard)
    back = read_shard(tmp_path / "shard-1.npz")
    for key in (
        "target",
        "source",
        "landmarks",
        "depth",
        "mask",
        "boxes",
        "pose",
        "label",
        "frame",
        "origin",
    ):
        assert np.array_equal(getattr(back, key), getattr(shard, key)), key
    assert back.header == shard.header and read_header(tmp_path / "shard-1.npz").skipped == [
        ("x.jpg", "no face")
    ]
    assert [p.name for p in tmp_path.iterdir()] == ["shard-1.npz"]  # no temp file left behind


def test_bad_shards_are_clear_errors(tmp_path):
    with pytest.raises(MissingInput):
        read_shard(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(InvalidInput, match="unreadable shard"):
        read_shard(tmp_path / "junk.npz")
    np.savez(tmp_path / "foreign.npz", x=np.zeros(3))
    with pytest.raises(InvalidInput, match="not a training shard"):
        read_shard(tmp_path / "foreign.npz")
    header = json.dumps({**_shard().header.__dict__, "version": 99})
    np.savez(tmp_path / "future.npz", header=np.array(header))
    with pytest.raises(InvalidInput, match="v99"):
        read_header(tmp_path / "future.npz")
    bad = _shard()
    bad.label = np.array([0, 1, 5])
    with pytest.raises(InvalidInput, match="labels out of range"):
        write_shard(tmp_path / "shard-bad.npz", bad)
    bad = _shard()
    bad.depth = bad.depth[:, :100]
    with pytest.raises(InvalidInput, match="depth has shape"):
        write_shard(tmp_path / "shard-bad.npz", bad)


def test_list_shards_needs_an_existing_folder_with_shards(tmp_path):
    with pytest.raises(MissingInput, match="does not exist"):
        list_shards(tmp_path / "nope")
    with pytest.raises(InvalidInput, match="no shard"):
        list_shards(tmp_path)
