"""Presets, flag overrides and the SwapJob record."""

from __future__ import annotations

import tomllib

import pytest

from mmvideo.config import (
    PRESET_NAMES,
    SwapJob,
    config_keys,
    config_to_toml,
    load_config,
    preset_dirs,
    preset_path,
)
from mmvideo.errors import InvalidInput, MissingInput


def test_key_names_are_unique_so_each_can_be_a_flag():
    names = [k.name for k in config_keys()]
    assert len(names) == len(set(names))
    assert "--batch-size" in {k.flag for k in config_keys()}


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_sets_every_key(name):
    data = tomllib.loads(preset_path(name).read_text())
    in_file = {(s, k) for s, values in data.items() for k in values}
    wanted = {(k.section, k.name) for k in config_keys() if not k.optional}
    assert wanted <= in_file


def test_presets_differ_where_they_should():
    fast, balanced, quality = (load_config(n) for n in PRESET_NAMES)
    assert (
        fast.detect.detect_interval
        > balanced.detect.detect_interval
        > quality.detect.detect_interval
    )
    assert quality.smooth.smoothing == "rts" and balanced.smooth.smoothing == "kalman"
    assert fast.encode.encoder_preset == "veryfast"


def test_flag_overrides_preset_and_none_means_unset():
    cfg = load_config(
        "quality",
        {"batch_size": 3, "smoothing": "none", "crf": None, "process_noise": 1},
    )
    assert cfg.generate.batch_size == 3
    assert cfg.smooth.smoothing == "none"
    assert cfg.encode.crf == load_config("quality").encode.crf
    assert cfg.smooth.process_noise == 1.0 and isinstance(
        cfg.smooth.process_noise, float
    )
    assert cfg.detect.detect_interval == 2  # untouched keys keep the preset's value


@pytest.mark.parametrize(
    "overrides",
    [
        {"batch_size": "8"},
        {"smoothing": "median"},
        {"no_such_key": 1},
        {"detect_interval": True},
    ],
)
def test_bad_overrides_are_refused(overrides):
    with pytest.raises(InvalidInput):
        load_config("balanced", overrides)


def test_unknown_preset_and_bad_toml(tmp_path):
    with pytest.raises(MissingInput, match="unknown preset"):
        load_config("ultra")
    bad = tmp_path / "bad.toml"
    bad.write_text("[detect]\nno_such = 1\n")
    with pytest.raises(InvalidInput, match="no_such"):
        load_config(str(bad))
    wrong_section = tmp_path / "ws.toml"
    wrong_section.write_text("[track]\nbatch_size = 1\n")
    with pytest.raises(InvalidInput, match="batch_size"):
        load_config(str(wrong_section))


def test_printed_config_reads_back_identically(tmp_path):
    cfg = load_config("fast", {"batch_size": 5, "target": "largest"})
    path = tmp_path / "merged.toml"
    path.write_text(config_to_toml(cfg))
    assert load_config(str(path)) == cfg


def test_env_folder_is_searched_first(tmp_path, monkeypatch):
    (tmp_path / "balanced.toml").write_text("[generate]\nbatch_size = 2\n")
    monkeypatch.setenv("MMVIDEO_PRESETS", str(tmp_path))
    assert preset_dirs()[0] == tmp_path
    assert load_config("balanced").generate.batch_size == 2


def test_swap_job_round_trips_through_json():
    job = SwapJob(
        source="a.jpg",
        input="in.mp4",
        output="out.mp4",
        start=100,
        stop=200,
        checkpoint="m.pt",
    )
    assert SwapJob.from_json(job.to_json()) == job
    with pytest.raises(InvalidInput):
        SwapJob.from_json('{"source": "a", "input": "b", "output": "c", "colour": 1}')
