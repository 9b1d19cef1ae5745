"""train.fit on a few real faces with the tiny config: steps, checkpoints, bit-exact resume, errors.

The model is untrained, so these tests assert plumbing and determinism, never quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from media import identity_folders

from magicmask import losses
from magicmask.checkpoint import load_checkpoint
from magicmask.model.discriminators import GlobalDiscriminator
from magicmask.model.generator import NoGeometry
from mmcore.errors import InvalidInput, OutputError
from train.config import TrainConfig
from train.data import PairSampler, load_faces, redraw_masks
from train.fit import Runtime, fit
from train.preprocess import PreprocessConfig, preprocess
from train.shards import empty_shard, write_shard
from train.trainer import (
    TrainingDiverged,
    build_models,
    checkpoint_path,
    latest_checkpoint,
)

STILLS = {
    "obama": ["id_obama_01.jpg", "id_obama_02.jpg"],
    "biden": ["id_biden_01.jpg", "id_biden_02.jpg"],
    "kit_harington": ["id_kit_harington_01.jpeg", "id_kit_harington_02.jpeg"],
}


@pytest.fixture(scope="module")
def data(data_dir: Path, tmp_path_factory) -> Path:
    root = identity_folders(tmp_path_factory.mktemp("faces"), data_dir, STILLS)
    out = tmp_path_factory.mktemp("shards")
    preprocess([root], out, PreprocessConfig(), workers=1)
    return out


def _cfg(**kw) -> TrainConfig:
    base = {
        "model": "tiny",
        "batch_size": 2,
        "steps": 2,
        "checkpoint_every": 1,
        "log_every": 1,
        "image_every": 1,
    }
    base["seed"] = 3
    return TrainConfig(**{**base, **kw})


def _state(path: Path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)["state"]


def _assert_equal(a, b, where: str = "") -> None:
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            _assert_equal(a[k], b[k], f"{where}.{k}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            _assert_equal(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), where
    else:
        assert a == b, where


def test_two_steps_write_a_checkpoint_that_resumes_bit_exactly(data, tmp_path):
    straight = fit(_cfg(), data, tmp_path / "a")
    assert straight.end_step == 2 and all(np.isfinite(v) for v in straight.last_losses.values())
    assert set(straight.last_losses) >= {
        "identity",
        "reconstruction",
        "cycle",
        "adversarial",
        "discriminator",
    }

    fit(_cfg(steps=1), data, tmp_path / "b")
    resumed = fit(_cfg(), data, tmp_path / "b", resume=True)
    assert (resumed.start_step, resumed.end_step) == (1, 2)
    a, b = _state(checkpoint_path(tmp_path / "a", 2)), _state(checkpoint_path(tmp_path / "b", 2))
    for key in ("generator", "discriminator", "ema", "opt_g", "opt_d"):
        _assert_equal(a[key], b[key], key)

    # The exported EMA generator is a regular, loadable magicmask checkpoint.
    loaded = load_checkpoint(straight.exported)
    assert loaded.identity_encoder == "dlib-resnet" and loaded.config.identity_dim == 128
    assert loaded.meta["steps"] == 2
    x = torch.rand(1, 3, 224, 224)
    out = loaded.generator(
        x, torch.nn.functional.normalize(torch.randn(1, 128)), x[:, :1], torch.rand(1, 8, 224, 224)
    )
    assert out.shape == (1, 3, 224, 224) and 0 <= out.min() and out.max() <= 1
    assert (tmp_path / "a" / "tb").is_dir() and any((tmp_path / "a" / "tb").iterdir())


def test_resume_refuses_another_run_and_reuse_needs_resume(data, tmp_path):
    fit(_cfg(steps=1), data, tmp_path / "r")
    with pytest.raises(InvalidInput, match="differ.*lr"):
        fit(_cfg(lr=3e-4), data, tmp_path / "r", resume=True)
    with pytest.raises(OutputError, match="already holds checkpoints"):
        fit(_cfg(), data, tmp_path / "r")
    with pytest.raises(InvalidInput, match="nothing to resume"):
        fit(_cfg(), data, tmp_path / "fresh", resume=True)


def test_init_from_starts_a_new_run_from_another_runs_weights(data, tmp_path):
    fit(_cfg(), data, tmp_path / "parent")
    parent = checkpoint_path(tmp_path / "parent", 2)
    # lr 0 leaves the loaded weights as they are (batch-norm statistics still move), so step 1 of
    # the child shows exactly what it loaded.
    child = fit(_cfg(steps=1, lr=0.0, seed=9, init_from=str(parent)), data, tmp_path / "child")
    assert (child.start_step, child.end_step) == (0, 1)
    p, c = _state(parent), _state(checkpoint_path(tmp_path / "child", 1))
    for key in ("generator", "discriminator"):
        weights = [
            k
            for k in p[key]
            if not k.endswith(("running_mean", "running_var", "num_batches_tracked"))
        ]
        assert weights and all(torch.equal(p[key][k], c[key][k]) for k in weights), key
    assert c["step"] == 1 and TrainConfig.from_json(c["train_config"]).init_from == str(parent)

    with pytest.raises(InvalidInput, match="same model config"):
        fit(
            _cfg(init_from=str(parent), model_overrides=(("use_geometric", False),)),
            data,
            tmp_path / "other",
        )


def test_init_from_an_exported_model_adds_a_detail_path_and_new_loss_terms(data, tmp_path):
    """The shipped model has no training state: fine-tune from the exported generator (fresh
    discriminators), with the [ours] detail path and loss terms that the parent did not have."""
    exported = fit(_cfg(), data, tmp_path / "parent").exported
    parent = load_checkpoint(exported)
    cfg = _cfg(
        steps=1,
        lr=0.0,
        init_from=str(exported),
        model_overrides=(("detail_path", True), ("lambda_id", 8.0)),
        lambda_feature_match=1.0,
        lambda_perceptual=1.0,
        lambda_texture=1.0,
    )
    child = fit(cfg, data, tmp_path / "child")
    assert child.last_losses["feature_match"] > 0 and child.last_losses["perceptual"] > 0
    assert child.last_losses["texture"] > 0
    state = _state(checkpoint_path(tmp_path / "child", 1))
    for key in ("generator", "ema"):
        weights = state[key]
        assert {k for k in weights if not k.startswith("detail.")} == set(
            parent.generator.state_dict()
        )
        assert any(k.startswith("detail.out.") for k in weights)
    # zero-initialised: the child's generator paints exactly what the exported one does (given the
    # parent's batch-norm statistics, which the training step moved)
    child_gen = load_checkpoint(child.exported).generator
    assert child_gen.cfg.detail_path and not parent.config.detail_path
    for name, buffer in parent.generator.named_buffers():
        child_gen.get_buffer(name).copy_(buffer)
    x = torch.rand(2, 3, 224, 224, generator=torch.Generator().manual_seed(1))
    e = torch.nn.functional.normalize(torch.randn(2, 128), dim=1)
    depth, heat = x[:, :1], torch.rand(2, 8, 224, 224)
    with torch.no_grad():
        assert torch.allclose(
            child_gen(x, e, depth, heat), parent.generator(x, e, depth, heat), atol=1e-6
        )

    assert TrainConfig(lambda_feature_match=1.0).resume_key() != TrainConfig().resume_key()
    assert TrainConfig(lambda_perceptual=1.0).resume_key() != TrainConfig().resume_key()
    assert TrainConfig(lambda_texture=1.0).resume_key() != TrainConfig().resume_key()
    with pytest.raises(InvalidInput, match="same model config"):
        fit(
            _cfg(init_from=str(exported), model_overrides=(("arie_blocks", 3),)),
            data,
            tmp_path / "other",
        )


def test_mask_forehead_redraws_the_loss_mask_from_the_landmarks(data):
    faces = load_faces(data, 224, 112)
    stored = faces.mask.copy()
    redraw_masks(faces, 0.3)  # what prepare_target drew into the shards
    assert np.array_equal(faces.mask, stored)
    redraw_masks(faces, 0.0)
    inner, full = faces.mask > 127, stored > 127
    assert not (inner & ~full).any() and inner.sum() < 0.9 * full.sum()
    assert TrainConfig(mask_forehead=0.0).resume_key() != TrainConfig().resume_key()


def test_nan_loss_stops_with_step_and_terms_and_keeps_last_checkpoint(data, tmp_path, monkeypatch):
    fit(_cfg(steps=1), data, tmp_path / "n")
    good = checkpoint_path(tmp_path / "n", 1)
    before = good.read_bytes()
    monkeypatch.setattr(losses, "cycle_loss", lambda x, t: (x - t).sum() * float("nan"))
    with pytest.raises(TrainingDiverged, match=r"step 2: non-finite loss .*cycle=nan"):
        fit(_cfg(steps=3), data, tmp_path / "n", resume=True)
    assert latest_checkpoint(tmp_path / "n") == good and good.read_bytes() == before


def test_empty_data_folder_and_shard_of_another_config_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidInput, match="no shard"):
        fit(_cfg(), tmp_path / "empty", tmp_path / "run")
    other = tmp_path / "other"
    other.mkdir()
    write_shard(other / "shard-x.npz", empty_shard(128, 112, [], "test"))
    with pytest.raises(InvalidInput, match="shard made for 128px targets"):
        load_faces(other, 224, 112)
    with pytest.raises(InvalidInput, match="no usable faces"):
        load_faces(other, 128, 112)


def test_pairs_are_deterministic_and_mix_same_and_cross_identity(data):
    faces = load_faces(data, 224, 112)
    sampler = PairSampler(faces, batch_size=64, seed=1, same_identity_prob=0.3)
    t, s, same = sampler.pairs(7, rank=0)
    t2, s2, _ = sampler.pairs(7, rank=0)
    t3, _, _ = sampler.pairs(7, rank=1)
    assert np.array_equal(t, t2) and np.array_equal(s, s2) and not np.array_equal(t, t3)
    assert 0 < same.sum() < len(same)
    assert (faces.label[t][same] == faces.label[s][same]).all()
    assert (faces.label[t][~same] != faces.label[s][~same]).all()
    assert (t[same] != s[same]).all()  # every identity here has 2 images: use the other one


def test_ablation_switches_build_the_table_1_variants():
    from magicmask.face.identity import build_identity_encoder

    enc = build_identity_encoder("dlib-resnet")
    overrides = (("use_geometric", False), ("adversarial", "global"))
    m = build_models(_cfg(model_overrides=overrides), enc, torch.device("cpu"))
    assert isinstance(m.generator.geometric, NoGeometry) and isinstance(
        m.discriminator, GlobalDiscriminator
    )
    full = build_models(_cfg(), enc, torch.device("cpu"))
    assert not isinstance(full.generator.geometric, NoGeometry)
    assert sum(p.numel() for p in full.generator.parameters()) > sum(
        p.numel() for p in m.generator.parameters()
    )


def test_runtime_defaults_are_cpu_single_thread():
    assert Runtime().device == "cpu" and Runtime().threads == 1
