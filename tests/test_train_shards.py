"""The shard format: round trip, and clear errors for files that are not (complete) shards."""

from __future__ import annotations

import json

import numpy as np
import pytest
from media import random_shard

from mmcore.errors import InvalidInput, MissingInput
from train.shards import (
    list_shards,
    read_header,
    read_shard,
    write_shard,
)


def test_round_trip_keeps_every_array_and_the_header(tmp_path):
    shard = random_shard()
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
    header = json.dumps({**random_shard().header.__dict__, "version": 99})
    np.savez(tmp_path / "future.npz", header=np.array(header))
    with pytest.raises(InvalidInput, match="v99"):
        read_header(tmp_path / "future.npz")
    bad = random_shard()
    bad.label = np.array([0, 1, 5])
    with pytest.raises(InvalidInput, match="labels out of range"):
        write_shard(tmp_path / "shard-bad.npz", bad)
    bad = random_shard()
    bad.depth = bad.depth[:, :100]
    with pytest.raises(InvalidInput, match="depth has shape"):
        write_shard(tmp_path / "shard-bad.npz", bad)


def test_list_shards_needs_an_existing_folder_with_shards(tmp_path):
    with pytest.raises(MissingInput, match="does not exist"):
        list_shards(tmp_path / "nope")
    with pytest.raises(InvalidInput, match="no shard"):
        list_shards(tmp_path)
