"""The checkpoint gate of ``train-export``: a model worse than the embedded one is refused, naming
the measure; an equal one replaces it."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from media import held_out_set

from magicmask.checkpoint import (
    default_checkpoint_path,
    load_checkpoint,
    save_training_state,
)
from mmcore.errors import InvalidInput
from mmvideo.commands.train import export_command
from train import fit, gate
from train.config import TrainConfig

STILLS = {
    "id_obama_01.jpg": "obama",
    "id_obama_02.jpg": "obama",
    "id_biden_02.jpg": "biden",
    "id_kit_harington_02.jpeg": "kit_harington",
}
PAIRS = [
    ("id_obama_01.jpg", "id_biden_02.jpg"),
    ("id_biden_02.jpg", "id_kit_harington_02.jpeg"),
    ("id_kit_harington_02.jpeg", "id_obama_02.jpg"),
]


def _state(path: Path, noise: float) -> Path:
    """A training state holding the embedded generator, its weights shaken by ``noise`` × each
    tensor's spread."""
    loaded = load_checkpoint(default_checkpoint_path())
    weights = loaded.generator.state_dict()
    g = torch.Generator().manual_seed(0)
    for w in weights.values():
        if noise and w.is_floating_point() and w.numel() > 1:
            w += noise * w.float().std() * torch.randn(w.shape, generator=g).to(w.dtype)
    state = {
        "step": 1,
        "train_config": TrainConfig().to_json(),
        "model_config": loaded.config.to_dict(),
        "identity_encoder": loaded.identity_encoder,
        "generator": weights,
        "ema": weights,
    }
    save_training_state(path, state)
    return path


@pytest.fixture
def setup(data_dir, tmp_path, monkeypatch):
    held_out = held_out_set(tmp_path / "held-out", data_dir, STILLS, PAIRS)
    embedded = tmp_path / "weights" / "magicmask-tiny.pt"
    embedded.parent.mkdir()
    embedded.write_bytes(default_checkpoint_path().read_bytes())
    monkeypatch.setattr(fit, "default_checkpoint_path", lambda: embedded)
    return held_out, embedded


def _export(state: Path, out: Path, held_out: Path | None):
    args = [str(state), "--to", str(out), "--export-dtype", "float16"]
    args += ["--gate-data", str(held_out)] if held_out else []
    return CliRunner().invoke(export_command, args)


@pytest.mark.slow
def test_a_worse_checkpoint_is_refused_naming_the_measure_and_an_equal_one_ships(setup, tmp_path):
    held_out, _ = setup
    out = tmp_path / "models" / "candidate.pt"
    out.parent.mkdir()
    result = _export(_state(tmp_path / "noisy.pt", 0.5), out, held_out)
    assert isinstance(result.exception, gate.CheckpointRejected), result.output
    message = str(result.exception)
    assert "worse than" in message and any(m.name in message for m in gate.MEASURES)
    assert not list(out.parent.iterdir())  # nothing written, no leftovers

    result = _export(_state(tmp_path / "same.pt", 0.0), out, held_out)
    assert result.exit_code == 0, result.output
    assert "gate: self-swap chip SSIM" in result.output and "gate: identity gain" in result.output
    assert load_checkpoint(out).meta["steps"] == 1 and [p.name for p in out.parent.iterdir()] == [
        out.name
    ]


def test_replacing_the_embedded_checkpoint_needs_gate_data(setup, tmp_path):
    _, embedded = setup
    result = _export(tmp_path / "missing-state.pt", embedded, None)
    assert isinstance(result.exception, InvalidInput) and "--gate-data" in str(result.exception)


def test_failures_compare_each_measure_in_its_direction():
    base = {
        m.name: v
        for m, v in zip(gate.MEASURES, (0.80, 0.70, 1.10, 1.05, 0.65, 1.20, 1.10, 7.0, 0.10))
    }
    assert gate.failures(dict(base), base) == []
    better = dict(
        base, **{"self-swap chip SSIM": 0.9, "swap sharpness ratio": 0.95, "swap pose error": 5.0}
    )
    assert gate.failures(better, base) == []
    # a ratio past 1 on the other side is judged by its distance from 1 on a log scale
    assert gate.failures(dict(base, **{"self-swap band ratio": 1 / 1.08}), base) == []
    worse = dict(
        base,
        **{"self-swap chip SSIM": 0.75, "swap band ratio": 1.5, "swap colour band ratio": 1.6},
    )
    worse[f"identity gain ({gate.GATE_ENCODER} cosine)"] = float("nan")
    bad = gate.failures(worse, base)
    assert [b.split(" 0")[0].split(" 1")[0].split(" nan")[0] for b in bad] == [
        "self-swap chip SSIM",
        "swap band ratio",
        "swap colour band ratio",
        f"identity gain ({gate.GATE_ENCODER} cosine)",
    ]
