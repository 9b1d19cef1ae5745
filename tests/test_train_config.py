"""Loss weights are a training setting, not part of the model config; train-fit's flags are
generated from its config dataclasses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from magicmask.checkpoint import default_checkpoint_path, load_checkpoint
from magicmask.config import LOSS_KEYS_OF_OLDER_CHECKPOINTS, MagicMaskConfig, create_config
from magicmask.losses import LossConfig
from mmcore.config_keys import dataclass_keys
from mmvideo.commands import main
from mmvideo.io.probe import probe
from train import fit as fit_module
from train.config import ModelSwitches, TrainConfig, load_train_config
from train.fit import Runtime
from train.preprocess import PreprocessConfig, preprocess

STILLS = {
    "obama": ["id_obama_01.jpg", "id_obama_02.jpg"],
    "biden": ["id_biden_01.jpg", "id_biden_02.jpg"],
}


@pytest.fixture(scope="module")
def data(data_dir: Path, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("faces")
    for identity, files in STILLS.items():
        (root / identity).mkdir()
        for f in files:
            (root / identity / f).symlink_to(data_dir / f)
    out = tmp_path_factory.mktemp("shards")
    preprocess([root], out, PreprocessConfig(), workers=1)
    return out


def test_loss_weights_are_not_model_config_fields():
    names = {f for f in MagicMaskConfig.__dataclass_fields__}
    assert not names & set(LOSS_KEYS_OF_OLDER_CHECKPOINTS)
    with pytest.raises(TypeError, match="unknown arguments"):
        create_config("tiny", lambda_id=8.0)
    assert TrainConfig(loss=LossConfig(lambda_id=8.0)).resume_key() != TrainConfig().resume_key()


def test_a_checkpoint_written_when_loss_weights_were_model_config_fields_still_loads(tmp_path):
    # the embedded checkpoint until 2026-12-07 (732de80) carried λ in its model config
    raw = torch.load(default_checkpoint_path(), map_location="cpu", weights_only=True)
    raw["config"].update({"lambda_id": 5.0, "lambda_recon": 2.0, "lambda_afsa": 1.0})
    older = tmp_path / "older.pt"
    torch.save(raw, older)
    loaded = load_checkpoint(older)
    assert "lambda_id" not in loaded.config.to_dict()
    assert loaded.config == load_checkpoint(default_checkpoint_path()).config


def test_swap_with_the_embedded_checkpoint(data_dir, tmp_path):
    out = tmp_path / "embedded.mp4"
    rc = main(["swap", "--source", str(data_dir / "id_obama_01.jpg"),
               "--in", str(data_dir / "talking_head_turn_03.mp4"), "--out", str(out),
               "--stop", "4", "--warmup", "0", "--no-progress"])  # fmt: skip
    assert rc == 0 and probe(out).video.frames == 4


def test_a_run_folder_written_with_loss_weights_as_model_overrides_resumes_the_same(tmp_path):
    old = json.loads(TrainConfig().to_json())
    del old["loss"]
    old["model_overrides"] = [["lambda_id", 8.0], ["detail_path", True]]
    (tmp_path / "train-config.json").write_text(json.dumps(old))
    saved = load_train_config(tmp_path / "train-config.json")
    assert saved.loss == LossConfig(lambda_id=8.0)
    assert saved.model_overrides == (("detail_path", True),)
    now = TrainConfig(loss=LossConfig(lambda_id=8.0), model_overrides=(("detail_path", True),))
    assert saved.resume_key() == now.resume_key()


def test_fine_tune_with_another_lambda_id_is_accepted(data, tmp_path):
    """An exported model whose config carries λ_IS = 8 (as checkpoints did) fine-tuned with 5."""
    raw = torch.load(default_checkpoint_path(), map_location="cpu", weights_only=True)
    raw["config"]["lambda_id"] = 8.0
    parent = tmp_path / "parent.pt"
    torch.save(raw, parent)
    run = tmp_path / "child"
    rc = main(["train-fit", "--data", str(data), "--out", str(run), "--init-from", str(parent),
               "--lambda-id", "5", "--detail-path", "--steps", "1", "--batch-size", "2",
               "--seed", "1", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    assert load_train_config(run / "train-config.json").loss.lambda_id == 5.0
    child = torch.load(run / "magicmask-tiny.pt", map_location="cpu", weights_only=True)
    assert not set(child["config"]) & set(LOSS_KEYS_OF_OLDER_CHECKPOINTS)


def test_fine_tune_of_a_detail_path_model_without_the_flag_says_so(data, tmp_path, capsys):
    # the embedded model has the detail path since 2026-12-07
    rc = main(["train-fit", "--data", str(data), "--out", str(tmp_path / "run"),
               "--init-from", str(default_checkpoint_path()), "--steps", "1",
               "--batch-size", "2", "--device", "cpu"])  # fmt: skip
    assert rc != 0
    assert "has the detail path: train it with --detail-path" in capsys.readouterr().err


def test_train_fit_flags_come_from_the_config_dataclasses(monkeypatch, tmp_path):
    seen = {}

    def fake_fit(tcfg, data, run, resume, rt):
        seen.update(tcfg=tcfg, rt=rt)
        return fit_module.FitReport(0, 0, 0.0, 0.0, {}, None)

    monkeypatch.setattr(fit_module, "fit", fake_fit)
    parent = tmp_path / "parent.pt"
    parent.write_bytes(b"")
    rc = main(["train-fit", "--data", "d", "--out", "r", "--config", "base", "--no-amp",
               "--exclude", "a", "--exclude", "b", "--lambda-feature-match", "0.5", "--lambda-recon", "3",
               "--no-geometric", "--adversarial", "global", "--init-from", str(parent),
               "--threads", "2", "--export-dtype", "float32", "--device", "cpu"])  # fmt: skip
    assert rc == 0
    assert seen["tcfg"] == TrainConfig(
        model="base",
        amp=False,
        exclude_identities=("a", "b"),
        lambda_feature_match=0.5,
        loss=LossConfig(lambda_recon=3.0),
        model_overrides=(("use_geometric", False), ("adversarial", "global")),
        init_from=str(parent.resolve()),
    )
    assert seen["rt"] == Runtime("cpu", threads=2, export_dtype="float32")
    main(["train-fit", "--data", "d", "--out", "r", "--device", "cpu"])
    assert seen["tcfg"] == TrainConfig() and seen["rt"] == Runtime()
    flags = {k.flag for cls in (TrainConfig, ModelSwitches, LossConfig, Runtime)
             for k in dataclass_keys("", cls)}  # fmt: skip
    assert {"--config", "--exclude", "--lambda-feature-match", "--no-amp", "--geometric"} <= flags
