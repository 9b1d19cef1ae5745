"""``mmvideo tune``: a short real tune writes a checkpoint that swap loads and describe shows,
a tune killed mid-run resumes bit-exactly, and each bad input is a one-line error."""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from media import blank_image

from magicmask.checkpoint import load_checkpoint, load_training_state, save_checkpoint
from magicmask.config import create_config
from magicmask.model.generator import MagicMaskGenerator
from mmvideo.commands import main

CLIP = "talking_head_turn_03.mp4"  # 224 px, 108 frames: the cheapest real clip
SOURCE = "id_biden_01.jpg"
REPO = Path(__file__).resolve().parent.parent


def _args(data_dir: Path, out: Path, *extra) -> list[str]:
    # a few faces and one-step checkpoints keep every run to seconds of training
    return ["tune", "--source", str(data_dir / SOURCE), "--in", str(data_dir / CLIP), "--out", str(out),
            "--max-frames", "10", "--min-frames", "4", "--checkpoint-every", "1", "--no-progress", *map(str, extra)]  # fmt: skip


def _run(*args) -> int:
    return main([str(a) for a in args])


def _error(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    lines = [line for line in err if line.startswith("mmvideo: error:")]
    assert len(lines) == 1, err
    return lines[0]


@pytest.fixture(scope="module")
def tuned(data_dir, tmp_path_factory) -> Path:
    """A two-step tune on a real clip, uninterrupted (the reference for the resume test), with
    a preview sheet after every step (which must not disturb the training)."""
    out = tmp_path_factory.mktemp("tune") / "shot.pt"
    assert main(_args(data_dir, out, "--steps", 2, "--preview-every", 1e-6)) == 0
    return out


def test_two_step_tune_writes_a_checkpoint_that_swap_loads_and_describe_shows(
    tuned, data_dir, tmp_path, capsys
):
    ckpt = load_checkpoint(tuned)  # the SHA-256 is checked here
    rec = ckpt.meta["tune"]
    assert rec["steps"] == 2 and ckpt.config.detail_path
    assert rec["clips"][0]["sha256"] and rec["clips"][0]["frames_used"] == 10
    assert rec["sources"][0]["path"].endswith(SOURCE) and rec["target_faces"] == 10
    assert (
        rec["base"]["sha256"]
        == load_checkpoint(REPO / "magicmask/weights/magicmask-tiny.pt").sha256
    )
    capsys.readouterr()
    assert _run("models", "describe", tuned) == 0
    shown = capsys.readouterr().out
    assert (
        "tuned: 2 steps" in shown
        and f"clip: {data_dir / CLIP}" in shown
        and "10 of 108 frames" in shown
        and 'swap settings (a flag overrides them): {"mask_forehead": 0.1}' in shown
    )
    video = tmp_path / "swap.mp4"
    assert _run("swap", "--source", data_dir / SOURCE, "--in", data_dir / CLIP, "--out", video,
                "--checkpoint", tuned, "--stop", 3, "--no-progress") == 0  # fmt: skip
    assert video.stat().st_size > 0
    sheet = cv2.imread(str(tuned.with_name("shot.pt.preview.png")))
    assert sheet is not None and sheet.shape[0] > 4 * 200  # original | swap, four rows


def test_by_default_the_tune_keeps_the_base_detail_path_and_doubles_the_identity_weight(tuned):
    base = load_checkpoint(REPO / "magicmask/weights/magicmask-tiny.pt").generator.state_dict()
    after = load_checkpoint(tuned).generator.state_dict()
    detail = [k for k in base if k.startswith("detail.")]
    assert detail and all(torch.equal(base[k], after[k]) for k in detail)
    assert not all(torch.equal(base[k], after[k]) for k in base if k.startswith("decoder."))
    settings = load_checkpoint(tuned).meta["tune"]["settings"]
    assert settings["freeze"] == ["detail"] and settings["lambda_id"] == 10.0
    assert settings["lambda_afsa"] == 0.2 and settings["identity_augment"] == 2.0
    assert settings["lambda_texture"] == 1.0
    # swap pastes it over the brows unless a flag says otherwise (test_model_settings)
    assert load_checkpoint(tuned).meta["swap"] == {"mask_forehead": 0.1}


def test_the_adversarial_weight_and_identity_augment_reach_the_training_losses(tmp_path):
    from mmvideo.tune import TuneSettings, train_config

    base = REPO / "magicmask/weights/magicmask-tiny.pt"
    cfg = load_checkpoint(base).config
    for weight in (0.2, 0.0, 1.0):
        tcfg = train_config(TuneSettings(lambda_afsa=weight), cfg, base, steps=3)
        assert tcfg.loss.lambda_afsa == weight and tcfg.loss.lambda_id == 10.0
    for amount in (0.0, 1.5):
        tcfg = train_config(TuneSettings(identity_augment=amount), cfg, base, steps=3)
        assert tcfg.loss.identity_augment == amount
    for weight in (0.0, 2.0):
        tcfg = train_config(TuneSettings(lambda_texture=weight), cfg, base, steps=3)
        assert tcfg.lambda_texture == weight


def test_the_training_mask_reach_is_a_flag_recorded_and_range_checked(data_dir, tmp_path, capsys):
    from mmvideo.tune import TuneSettings, train_config

    base = REPO / "magicmask/weights/magicmask-tiny.pt"
    tcfg = train_config(TuneSettings(mask_forehead=0.3), load_checkpoint(base).config, base, 3)
    assert tcfg.mask_forehead == 0.3
    out = tmp_path / "shot.pt"
    assert main(_args(data_dir, out, "--steps", 1, "--mask-forehead", 0.3)) == 0
    assert load_checkpoint(out).meta["tune"]["settings"]["mask_forehead"] == 0.3
    assert main(_args(data_dir, tmp_path / "other.pt", "--steps", 1, "--mask-forehead", 1.5)) == 2
    assert "--mask-forehead" in capsys.readouterr().err
    assert not (tmp_path / "other.pt.tune").exists()


def test_freeze_keeps_named_parts_and_passes_over_a_part_the_architecture_leaves_out():
    from types import SimpleNamespace

    from mmcore.errors import InvalidInput
    from mmvideo.tune import freeze

    def models(detail_path: bool) -> SimpleNamespace:
        cfg = create_config("tiny", detail_path=detail_path)
        return SimpleNamespace(generator=MagicMaskGenerator(cfg))

    plain = models(False)  # the paper's architecture: no detail path, nothing of it to keep
    freeze(plain, ("detail", "decoder"))
    assert not any(p.requires_grad for p in plain.generator.decoder.parameters())
    assert all(p.requires_grad for p in plain.generator.visual.parameters())
    for bad in ("detial", "", "decoder.nope"):
        with pytest.raises(InvalidInput, match=f"--freeze {bad}: no such generator module"):
            freeze(plain, (bad,))
    ours = models(True)
    freeze(ours, ("detail",))
    assert not any(p.requires_grad for p in ours.generator.detail.parameters())
    assert all(p.requires_grad for p in ours.generator.decoder.parameters())


def test_without_a_budget_the_tune_trains_the_default_steps(data_dir, tmp_path, monkeypatch):
    import mmvideo.commands.tune as tune_command

    seen = {}

    def fake_train(run, tcfg, base, resume, steps, seconds, *rest, **kw):
        seen.update(steps=steps, seconds=seconds, tcfg_steps=tcfg.steps)
        raise KeyboardInterrupt  # stop before any training

    monkeypatch.setattr(tune_command, "train", fake_train)
    assert main(_args(data_dir, tmp_path / "shot.pt")) != 0
    assert seen == {"steps": 200, "seconds": None, "tcfg_steps": 200}


def test_a_killed_tune_resumes_bit_exactly(tuned, data_dir, tmp_path):
    out = tmp_path / "shot.pt"
    cmd = [sys.executable, "-m", "mmvideo", *_args(data_dir, out, "--steps", 2)]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    first = out.with_name("shot.pt.tune") / "checkpoints" / "step-00000001.pt"
    try:
        while not first.exists() and proc.poll() is None:
            time.sleep(0.1)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    # killed during step 2 (a step takes seconds, the poll 0.1 s): the resumed run trains it
    assert first.exists() and not first.with_name("step-00000002.pt").exists() and not out.exists()
    assert main(_args(data_dir, out, "--steps", 2, "--resume")) == 0
    assert load_checkpoint(out).sha256 == load_checkpoint(tuned).sha256
    # resuming with other settings is not the same tune
    assert main(_args(data_dir, out, "--steps", 3, "--resume", "--lr", 1e-3, "-y")) != 0


def test_a_tune_recorded_before_the_identity_view_resumes_with_it_off(data_dir, tmp_path, capsys):
    out = tmp_path / "shot.pt"
    assert main(_args(data_dir, out, "--steps", 1, "--identity-augment", 0)) == 0
    record = out.with_name("shot.pt.tune") / "record.json"
    rec = json.loads(record.read_text())
    del rec["settings"]["identity_augment"]  # as written before the setting existed
    record.write_text(json.dumps(rec))
    assert main(_args(data_dir, out, "--steps", 2, "--resume", "-y")) != 0
    assert "differ from the tune's (identity_augment)" in _error(capsys)
    assert main(_args(data_dir, out, "--steps", 2, "--resume", "--identity-augment", 0, "-y")) == 0
    assert load_checkpoint(out).meta["tune"]["steps"] == 2


def test_disk_full_while_saving_keeps_the_previous_checkpoint(
    data_dir, tmp_path, monkeypatch, capsys
):
    import magicmask.checkpoint as ckpt_module

    real_save, calls = torch.save, []

    def save(obj, path, *a, **k):
        if obj.get("format") == ckpt_module.TRAINING_FORMAT:
            calls.append(path)
            if len(calls) == 2:
                Path(path).write_bytes(b"partial")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(ckpt_module.torch, "save", save)
    out = tmp_path / "shot.pt"
    assert main(_args(data_dir, out, "--steps", 3)) != 0
    line = _error(capsys)
    assert "No space left on device" in line and "previous checkpoint is kept" in line
    folder = tmp_path / "shot.pt.tune" / "checkpoints"
    assert load_training_state(folder / "step-00000001.pt")["step"] == 1
    assert sorted(p.name for p in folder.iterdir()) == ["step-00000001.json", "step-00000001.pt"]
    assert not out.exists()


def test_disk_full_while_writing_the_faces_leaves_no_state_folder(
    data_dir, tmp_path, monkeypatch, capsys
):
    def full(*a, **k):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(np, "savez_compressed", full)  # how train.shards writes a shard
    out = tmp_path / "shot.pt"
    assert main(_args(data_dir, out, "--steps", 1)) != 0
    assert "cannot write the tune's faces (No space left on device)" in _error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_disk_full_while_writing_the_tuned_checkpoint_keeps_the_previous_one(
    tuned, data_dir, tmp_path, monkeypatch, capsys
):
    """A finished tune resumed to export again (as ``--resume --minutes 40 -y`` does once it has
    trained): the disk fills while the tuned checkpoint is written."""
    import magicmask.checkpoint as ckpt_module

    shutil.copytree(tuned.parent, tmp_path / "t")
    out = tmp_path / "t" / tuned.name
    before = out.read_bytes()
    real_save = torch.save

    def save(obj, path, *a, **k):
        if obj.get("format") == ckpt_module.FORMAT:
            Path(path).write_bytes(b"partial")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, path, *a, **k)

    monkeypatch.setattr(ckpt_module.torch, "save", save)
    assert main(_args(data_dir, out, "--steps", 2, "--resume", "-y")) != 0
    line = _error(capsys)
    assert "cannot write the tuned checkpoint (No space left on device)" in line
    assert out.read_bytes() == before
    assert not [p.name for p in out.parent.iterdir() if p.name.startswith(".")]  # no temp left


def _noise_clip(path: Path, frames: int = 12) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25, (160, 160))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 255, (160, 160, 3), np.uint8))
    writer.release()
    return path


def test_no_face_in_a_source_photo(data_dir, tmp_path, capsys):
    blank = blank_image(tmp_path / "wall.png", 128)
    out = tmp_path / "shot.pt"
    args = _args(data_dir, out, "--steps", 1)
    args[args.index("--source") + 1] = str(blank)
    assert main(args) != 0
    assert "wall.png: no face found" in _error(capsys)
    assert not (tmp_path / "shot.pt.tune").exists()  # nothing half-made is left behind


def test_no_face_in_the_clip(data_dir, tmp_path, capsys):
    out = tmp_path / "shot.pt"
    args = _args(data_dir, out, "--steps", 1)
    args[args.index("--in") + 1] = str(_noise_clip(tmp_path / "noise.mp4"))
    assert main(args) != 0
    assert "noise.mp4: no face found in the clip" in _error(capsys)


def test_too_few_usable_frames(data_dir, tmp_path, capsys):
    args = _args(data_dir, tmp_path / "shot.pt", "--steps", 1)
    args[args.index("--max-frames") + 1] = "3"
    assert main(args) != 0
    assert "only 3 usable target faces (at least 4 needed)" in _error(capsys)


@pytest.mark.parametrize(
    "encoder, overrides, message",
    [
        (
            "facenet-vggface2",
            {},
            "trained with identity encoder facenet-vggface2; tune trains with dlib-resnet",
        ),
        ("dlib-resnet", {"latent_channels": 32}, "model config differs from the registered 'tiny'"),
        ("dlib-resnet", {"name": "custom"}, "model config 'custom' is not a registered one"),
    ],
)
def test_a_base_of_another_encoder_or_config_is_refused(
    data_dir, tmp_path, capsys, encoder, overrides, message
):
    cfg = dataclasses.replace(create_config("tiny", identity_dim=128), **overrides)
    base = tmp_path / "base.pt"
    save_checkpoint(base, MagicMaskGenerator(cfg), cfg, encoder)
    assert main(_args(data_dir, tmp_path / "shot.pt", "--steps", 1, "--checkpoint", base)) != 0
    assert message in _error(capsys)
    assert not (tmp_path / "shot.pt.tune").exists()


def test_a_missing_output_folder_is_refused_before_any_work(
    data_dir, tmp_path, capsys, monkeypatch
):
    import magicmask.checkpoint as ckpt_module

    def no_load(*a, **k):
        raise AssertionError("a model was loaded before the output was checked")

    monkeypatch.setattr(ckpt_module, "load_checkpoint", no_load)
    assert main(_args(data_dir, tmp_path / "missing" / "shot.pt", "--steps", 1)) != 0
    assert f"folder {tmp_path / 'missing'} does not exist" in _error(capsys)
    assert main(_args(data_dir, tmp_path / "shot.pt", "--steps", 1, "--resume")) != 0
    assert "nothing to resume" in _error(capsys)


@pytest.mark.parametrize(
    "case, message", [("a file", "is not a folder"), ("read-only", "is not writable")]
)
def test_an_output_folder_that_cannot_be_written_is_refused_before_any_work(
    data_dir, tmp_path, capsys, monkeypatch, case, message
):
    import magicmask.checkpoint as ckpt_module

    def no_load(*a, **k):
        raise AssertionError("a model was loaded before the output was checked")

    monkeypatch.setattr(ckpt_module, "load_checkpoint", no_load)
    folder = tmp_path / "out"
    if case == "a file":
        folder.write_text(
            "a file where the output's folder should be"
        )  # root cannot write in it either
    else:
        folder.mkdir()
        folder.chmod(0o555)
        if os.access(folder, os.W_OK):
            # root: mode bits do not stop it, so the check is shown what they say to other users
            real_access = os.access
            monkeypatch.setattr(
                os, "access", lambda p, mode: False if Path(p) == folder else real_access(p, mode)
            )
    assert main(_args(data_dir, folder / "shot.pt", "--steps", 1)) != 0
    assert f"folder {folder} {message}" in _error(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]
    assert folder.is_file() or not any(folder.iterdir())
