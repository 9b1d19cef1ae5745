"""Presets, flag overrides and the SwapJob record."""

from __future__ import annotations

import json
import math
import tomllib

import pytest

from mmcore.config_keys import Range
from mmcore.errors import InvalidInput, MissingInput
from mmvideo.commands import main
from mmvideo.config import (
    PRESET_NAMES,
    SwapConfig,
    SwapJob,
    config_keys,
    config_to_dict,
    config_to_toml,
    load_config,
    preset_dirs,
    preset_path,
)


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
    assert cfg.smooth.process_noise == 1.0 and isinstance(cfg.smooth.process_noise, float)
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


# The values an independent test run found accepted (issue 17), as preset entries and as flags.
OUT_OF_RANGE = [
    ("detect", "detect_interval", -1, "an integer >= 1"),
    ("detect", "detect_interval", 0, "an integer >= 1"),
    ("generate", "batch_size", -4, "an integer >= 1"),
    ("generate", "threads", -2, "an integer >= 1"),
    ("compose", "mask_feather", -8, "an integer from 0 to 112"),
    ("compose", "mask_forehead", -0.5, "a number from 0 to 1"),
    ("compose", "detail_transfer", 1.5, "a number from 0 to 1"),
    ("compose", "seam_tolerance", 0.6, "a number from 0 to 0.5"),
    ("encode", "crf", 99, "an integer from 0 to 51"),
    ("encode", "crf", -5, "an integer from 0 to 51"),
    ("smooth", "process_noise", 0, "a number > 0"),
    ("track", "reid_min_similarity", 1.5, "a number from -1 to 1"),
]
# the flags of these are click choices, which list the choices themselves
NOT_A_CHOICE = [
    ("encode", "encoder_preset", "turbo", "one of ultrafast, superfast"),
    ("encode", "codec", "mpeg4", "one of libx264, libx265"),
    ("detect", "face_backend", "deca", "one of dlib, insightface, fan, mediapipe"),
    ("detect", "second_detector", "yolo", "one of none, hog, cnn, mtcnn, scrfd"),
    ("generate", "precision", "int8", "one of fp32, fp16, bf16"),
]


def test_choices_are_the_lists_the_libraries_use_not_copies():
    from magicmask.config import PRECISIONS
    from magicmask.face.backends import BACKENDS, DETECTORS
    from magicmask.inference import AUTOCAST
    from mmvideo.io.codecs import VIDEO_CODECS, X264_PRESETS

    keys = {k.name: k for k in config_keys()}
    assert keys["face_backend"].choices is BACKENDS
    assert keys["detector"].choices is DETECTORS and keys["detector"].optional
    assert keys["second_detector"].choices == ("none", *DETECTORS)
    assert keys["codec"].choices is VIDEO_CODECS
    assert keys["encoder_preset"].choices is X264_PRESETS
    assert keys["precision"].choices is PRECISIONS and tuple(AUTOCAST) == PRECISIONS


@pytest.mark.parametrize(("section", "name", "value", "allowed"), OUT_OF_RANGE + NOT_A_CHOICE)
def test_out_of_range_preset_values_are_refused_with_the_range(
    tmp_path, section, name, value, allowed
):
    preset = tmp_path / "bad.toml"
    preset.write_text(f"[{section}]\n{name} = {json.dumps(value)}\n")
    with pytest.raises(InvalidInput) as err:
        load_config(str(preset))
    assert str(err.value).startswith(f"{preset}: [{section}] {name} must be {allowed}")
    assert str(err.value).endswith(f", not {value!r}") and "\n" not in str(err.value)


@pytest.mark.parametrize(("section", "name", "value", "allowed"), OUT_OF_RANGE)
def test_out_of_range_flags_are_refused_before_any_model_loads(
    monkeypatch, capsys, section, name, value, allowed
):
    import mmvideo.generate

    def no_models(*args, **kwargs):
        raise AssertionError("models loaded before the config was checked")

    monkeypatch.setattr(mmvideo.generate, "load_models", no_models)
    flag = "--" + name.replace("_", "-")
    rc = main(["swap", "--source", "a.jpg", "--in", "b.mp4", "--out", "c.mp4", flag, str(value)])
    err = capsys.readouterr().err
    assert rc != 0
    assert err.startswith(f"mmvideo: error: {flag} must be {allowed}, not ")
    assert err.count("\n") == 1


def test_every_number_key_declares_its_range_and_defaults_and_presets_keep_to_it():
    keys = config_keys()
    assert all(k.range is not None for k in keys if k.type in (int, float))
    # a comma list (mask) declares its items instead of choices
    assert all(
        k.choices is not None or k.items is not None or k.optional for k in keys if k.type is str
    )
    defaults = config_to_dict(SwapConfig())
    for cfg in [defaults] + [config_to_dict(load_config(n)) for n in PRESET_NAMES]:
        for k in keys:
            value = cfg[k.section][k.name]
            if value is None:
                continue
            assert k.range is None or value in k.range, (k.name, value)
            assert k.choices is None or value in k.choices, (k.name, value)
            assert k.items is None or value in k.items, (k.name, value)


def test_range_edges():
    assert 0 in Range(0, 1) and 1 in Range(0, 1) and 1.01 not in Range(0, 1)
    assert 0 not in Range(0, open_low=True) and 1e-9 in Range(0, open_low=True)
    assert not Range(0).__contains__(math.nan)
    assert str(Range(0, 51)) == "from 0 to 51" and str(Range(0, open_low=True)) == "> 0"


@pytest.mark.parametrize(
    ("section", "name", "value", "message"),
    [
        ("detect", "detect_interval", 0, "expected >= 1, got 0"),
        ("encode", "crf", 99, "expected from 0 to 51, got 99"),
        ("encode", "codec", "mpeg4", "expected one of libx264, libx265"),
        (
            "compose",
            "mask",
            "hull,mouth",
            "expected a comma list of hull, hands, parser that includes hull, got 'hull,mouth'",
        ),
    ],
)
def test_a_farm_plans_config_is_range_checked_like_a_preset(section, name, value, message):
    from mmvideo.farm.swap import config_from_dict

    data = config_to_dict(load_config("balanced"))
    data[section][name] = value
    with pytest.raises(InvalidInput, match=f"settings.config.{section}.{name}: {message}"):
        config_from_dict(data)


MASK_ALLOWED = "a comma list of hull, hands, parser that includes hull"


def test_mask_is_a_comma_list_of_the_mask_types():
    from mmvideo.config import MASK_TYPES
    from mmvideo.farm.swap import config_from_dict

    keys = {k.name: k for k in config_keys()}
    assert keys["mask"].items.items is MASK_TYPES and keys["mask"].allowed() == MASK_ALLOWED
    for value in ("hull", "hull,hands", "hull,parser", "hull,hands,parser", "parser,hull"):
        cfg = load_config(overrides={"mask": value})
        assert cfg.compose.mask == value and cfg.compose.mask_types() == tuple(value.split(","))
        # what a farm plan carries reads back on the nodes
        assert config_from_dict(config_to_dict(cfg)).compose.mask == value


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("hull,occlusion", "'occlusion' is not one of them"),
        ("hull, parser", "' parser' is not one of them"),
        ("hull,parser,parser", "'parser' is given twice"),
        ("parser", "hull is missing"),
    ],
)
def test_a_bad_mask_item_is_named_in_one_line(tmp_path, capsys, monkeypatch, value, problem):
    import mmvideo.generate

    preset = tmp_path / "bad.toml"
    preset.write_text(f"[compose]\nmask = {json.dumps(value)}\n")
    with pytest.raises(InvalidInput) as err:
        load_config(str(preset))
    assert (
        str(err.value)
        == f"{preset}: [compose] mask must be {MASK_ALLOWED}, not {value!r}: {problem}"
    )

    def no_models(*args, **kwargs):
        raise AssertionError("models loaded before the config was checked")

    monkeypatch.setattr(mmvideo.generate, "load_models", no_models)
    out = tmp_path / "c.mp4"
    rc = main(["swap", "--source", "a.jpg", "--in", "b.mp4", "--out", str(out), "--mask", value])
    err = capsys.readouterr().err
    assert (
        rc == 3
        and err == f"mmvideo: error: --mask must be {MASK_ALLOWED}, not {value!r}: {problem}\n"
    )
    assert not out.exists()
