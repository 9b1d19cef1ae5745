"""Small pieces of the swap job: progress reporting, model loading errors, encoder options."""

from __future__ import annotations

import json
import sys
import time

import pytest
import torch

from magicmask.checkpoint import default_checkpoint_path
from magicmask.inference import resolve_device
from mmcore.errors import InvalidInput, MMVideoError
from mmvideo.config import EncodeConfig
from mmvideo.generate import load_models
from mmvideo.pipeline import SwapSummary, encode_options
from mmvideo.progress import Progress


def test_json_progress_lines():
    lines: list[str] = []
    p = Progress(bars=False, json_sink=lines.append, interval=0.05)
    p.begin("render", ["decode", "generate"], total=10)
    p.advance("decode", 6)
    p.advance("generate", 4)
    time.sleep(0.2)
    p.end()
    records = [json.loads(line) for line in lines]
    assert len(records) >= 2
    last = records[-1]
    assert last["phase"] == "render" and last["total"] == 10
    assert last["done"] == 4  # the slowest stage
    assert last["stages"] == {"decode": 6, "generate": 4}
    assert last["fps"] > 0 and last["eta_s"] >= 0


def test_progress_bars_count_frames(monkeypatch):
    # tqdm bars are for a terminal (a log gets plain lines: tests/test_swap_faults.py)
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    p = Progress(bars=True)
    p.begin("analyse", ["analyse"], total=3)
    for _ in range(3):
        p.advance("analyse")
    assert p.snapshot()["done"] == 3 and p._bars["analyse"].n == 3
    p.end()


def test_missing_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(MMVideoError, match="nope.pt"):
        load_models(str(tmp_path / "nope.pt"))
    if not default_checkpoint_path().is_file():
        with pytest.raises(MMVideoError, match="embedded checkpoint"):
            load_models(None)
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(MMVideoError, match="bad.pt"):
        load_models(str(bad))


def test_device_names():
    assert resolve_device("cpu").type == "cpu"
    with pytest.raises(InvalidInput, match="unknown device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInput, match="CUDA is not available"):
            resolve_device("cuda")


@pytest.mark.parametrize(
    "cfg,crf,preset",
    [
        (EncodeConfig("libx264", 18, "medium"), 18, "medium"),
        (EncodeConfig("libx265", 22, "slow"), 22, "slow"),
        (EncodeConfig("ffv1", 18, "medium"), None, None),
        (EncodeConfig("prores_ks", 18, "medium"), None, None),
    ],
)
def test_encode_options_table(cfg, crf, preset):
    opts = encode_options(cfg)
    assert (opts.codec, opts.crf, opts.encoder_preset) == (cfg.codec, crf, preset)


def test_summary_lines():
    s = SwapSummary(
        frames=10,
        faces_per_track={2: 7},
        frames_without_face=3,
        tracks=2,
        selected=[2],
        cuts=[],
        stage_seconds={"analyse": 1.0},
        jitter={"raw": 2.0, "kalman": 1.0},
    )
    text = "\n".join(s.lines())
    assert "10 written, 3 without a swapped face" in text and "track 2: 7" in text
