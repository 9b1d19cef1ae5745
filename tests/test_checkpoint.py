"""Checkpoint format: bit-exact round trip, SHA-256 refusal of tampered files, clear errors."""

from __future__ import annotations

import pytest
import torch

from magicmask.checkpoint import (
    default_checkpoint_path,
    load_checkpoint,
    load_training_state,
    save_checkpoint,
    save_training_state,
    weights_sha256,
)
from magicmask.config import create_config
from magicmask.model import create_discriminator, create_generator
from magicmask.model.generator import example_inputs
from mmcore.errors import MissingInput, ModelError

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    cfg = create_config("tiny", identity_dim=128)
    return cfg, create_generator(cfg).eval()


def test_round_trip_is_bit_exact(tmp_path, tiny):
    cfg, gen = tiny
    path = tmp_path / "g.pt"
    meta = {"step": 12, "data": ["lfw"], "metrics": {"csim": 0.5}}
    sha = save_checkpoint(path, gen, cfg, "dlib-resnet", meta)
    loaded = load_checkpoint(path)
    assert loaded.config == cfg and loaded.identity_encoder == "dlib-resnet" and loaded.meta == meta
    assert loaded.sha256 == sha == weights_sha256(gen.state_dict())
    ref, got = gen.state_dict(), loaded.generator.state_dict()
    assert ref.keys() == got.keys() and all(torch.equal(ref[k], got[k]) for k in ref)
    inputs = example_inputs(cfg, 2)
    with torch.inference_mode():
        assert torch.equal(gen(*inputs), loaded.generator(*inputs))
    assert not loaded.generator.training
    assert not list(tmp_path.glob(".*tmp"))  # the temporary file was renamed away


def test_tampered_weights_are_refused(tmp_path, tiny):
    cfg, gen = tiny
    path = tmp_path / "g.pt"
    save_checkpoint(path, gen, cfg, "dlib-resnet", {})
    obj = torch.load(path, weights_only=True)
    key = next(iter(obj["state_dict"]))
    obj["state_dict"][key].view(-1)[0] += 1e-3
    torch.save(obj, path)
    with pytest.raises(ModelError, match="SHA-256"):
        load_checkpoint(path)


def test_truncated_and_foreign_files_are_refused(tmp_path, tiny):
    cfg, gen = tiny
    path = tmp_path / "g.pt"
    save_checkpoint(path, gen, cfg, "dlib-resnet", {})
    data = path.read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "cut.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ModelError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "text.pt")
    torch.save(gen.state_dict(), tmp_path / "bare.pt")  # a bare state_dict is not our format
    with pytest.raises(ModelError, match="not a magicmask-checkpoint"):
        load_checkpoint(tmp_path / "bare.pt")
    with pytest.raises(MissingInput, match="not found"):
        load_checkpoint(tmp_path / "nope.pt")


def test_weights_that_do_not_fit_the_config_are_refused(tmp_path, tiny):
    cfg, gen = tiny
    path = tmp_path / "g.pt"
    save_checkpoint(path, gen, cfg, "dlib-resnet", {})
    obj = torch.load(path, weights_only=True)
    obj["config"]["latent_channels"] = 64
    torch.save(obj, path)
    with pytest.raises(ModelError, match="do not fit config"):
        load_checkpoint(path)


def test_code_objects_never_load(tmp_path, tiny):
    cfg, gen = tiny
    # a pickled module (not plain types) is refused by weights_only loading
    torch.save(
        {"format": "magicmask-checkpoint", "version": 1, "model": gen},
        tmp_path / "obj.pt",
    )
    with pytest.raises(ModelError, match="not a readable checkpoint"):
        load_checkpoint(tmp_path / "obj.pt")
    with pytest.raises(ModelError, match="not a plain type"):
        save_checkpoint(tmp_path / "m.pt", gen, cfg, "dlib-resnet", {"opt": object()})
    assert not (tmp_path / "m.pt").exists()


def test_half_precision_storage(tmp_path, tiny):
    cfg, gen = tiny
    save_checkpoint(tmp_path / "f32.pt", gen, cfg, "dlib-resnet")
    save_checkpoint(tmp_path / "f16.pt", gen, cfg, "dlib-resnet", dtype=torch.float16)
    assert (tmp_path / "f16.pt").stat().st_size < 0.6 * (tmp_path / "f32.pt").stat().st_size
    loaded = load_checkpoint(tmp_path / "f16.pt")
    p = next(loaded.generator.parameters())
    assert p.dtype == torch.float32
    inputs = example_inputs(cfg, 1)
    with torch.inference_mode():
        assert (gen(*inputs) - loaded.generator(*inputs)).abs().max() < 1e-2


def test_default_checkpoint_path_and_missing_message(tmp_path, monkeypatch):
    path = default_checkpoint_path()
    assert path.name == "magicmask-tiny.pt" and path.parent.name == "weights"
    monkeypatch.setattr(
        "magicmask.checkpoint.default_checkpoint_path", lambda: tmp_path / "missing.pt"
    )
    with pytest.raises(ModelError, match="embedded checkpoint is not in this install"):
        load_checkpoint(tmp_path / "missing.pt")


def test_training_state_round_trip(tmp_path, tiny):
    cfg, gen = tiny
    disc = create_discriminator(cfg)
    opt = torch.optim.AdamW(disc.parameters(), lr=1e-4)
    disc(torch.rand(1, 3, 224, 224), torch.tensor([[[60.0, 60, 160, 90]] * 4]))[0].mean().backward()
    opt.step()
    state = {
        "step": 3,
        "discriminator": disc.state_dict(),
        "opt_d": opt.state_dict(),
        "rng": torch.get_rng_state(),
    }
    save_training_state(tmp_path / "state.pt", state)
    got = load_training_state(tmp_path / "state.pt")
    assert got["step"] == 3 and torch.equal(got["rng"], state["rng"])
    opt2 = torch.optim.AdamW(disc.parameters(), lr=1e-4)
    opt2.load_state_dict(got["opt_d"])
    assert torch.equal(
        opt2.state_dict()["state"][0]["exp_avg"],
        opt.state_dict()["state"][0]["exp_avg"],
    )
    save_checkpoint(tmp_path / "g.pt", gen, cfg, "dlib-resnet")
    with pytest.raises(ModelError, match="not a magicmask-training-state"):
        load_training_state(tmp_path / "g.pt")
