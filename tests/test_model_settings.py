"""Swap settings a checkpoint carries (``meta["swap"]``, a tuned model's paste mask): they
replace the preset's values, a flag replaces them, farm plans record them, and a bad one is a
one-line error naming the checkpoint."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from magicmask.checkpoint import default_checkpoint_path, load_checkpoint, save_checkpoint
from mmvideo.commands import main
from mmvideo.farm.swap import resolve_settings


def _with_swap(path: Path, swap) -> Path:
    base = load_checkpoint(default_checkpoint_path())
    meta = {**base.meta, "swap": swap}
    save_checkpoint(path, base.generator, base.config, base.identity_encoder, meta)
    return path


def _printed(capsys, *args) -> dict:
    assert main(["swap", "--print-config", *map(str, args)]) == 0
    return tomllib.loads(capsys.readouterr().out)


def test_a_checkpoints_swap_settings_sit_between_the_preset_and_the_flags(tmp_path, capsys):
    shot = _with_swap(tmp_path / "shot.pt", {"mask_forehead": 0.1})
    plain = _printed(capsys)
    assert plain["compose"]["mask_forehead"] == 0.0  # the balanced preset's
    tuned = _printed(capsys, "--checkpoint", shot)
    assert tuned["compose"]["mask_forehead"] == 0.1
    # nothing else moves: the rest is still the preset's
    assert {**tuned["compose"], "mask_forehead": 0.0} == plain["compose"]
    flag = _printed(capsys, "--checkpoint", shot, "--mask-forehead", 0.3)
    assert flag["compose"]["mask_forehead"] == 0.3
    # a checkpoint without any (the embedded one, exported training runs) leaves the preset
    assert _printed(capsys, "--checkpoint", default_checkpoint_path()) == plain


def test_farm_plans_record_the_checkpoints_swap_settings(tmp_path):
    shot = _with_swap(tmp_path / "shot.pt", {"mask_forehead": 0.1})
    assert resolve_settings("balanced", shot).config["compose"]["mask_forehead"] == 0.1
    flagged = resolve_settings("balanced", shot, {"mask_forehead": 0.0})
    assert flagged.config["compose"]["mask_forehead"] == 0.0


@pytest.mark.parametrize(
    "swap, message",
    [
        ({"mask_forehead": 5}, "swap setting mask_forehead must be a number from 0 to 1, not 5"),
        ({"no_such_key": 1}, "unknown swap setting 'no_such_key'"),
        ("mask_forehead=0.1", "swap settings must be a table"),
    ],
)
def test_a_bad_swap_setting_is_a_one_line_error_naming_the_checkpoint(
    tmp_path, capsys, swap, message
):
    bad = _with_swap(tmp_path / "bad.pt", swap)
    assert main(["swap", "--print-config", "--checkpoint", str(bad)]) != 0
    err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("mmvideo:")]
    assert len(err) == 1 and str(bad) in err[0] and message in err[0], err
