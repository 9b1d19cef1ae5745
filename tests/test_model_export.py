"""ONNX export against onnxruntime, the inference helper, and ``mmvideo models``."""

from __future__ import annotations

import pytest
import torch

from magicmask.checkpoint import load_checkpoint
from magicmask.export import check_onnx, export_onnx
from magicmask.inference import InferenceConfig, Swapper
from magicmask.model import create_generator
from magicmask.model.generator import example_inputs
from magicmask.model.summary import generator_summary
from mmcore.errors import ModelError
from mmvideo.commands import main

torch.set_num_threads(2)


@pytest.fixture(scope="module")
def checkpoint(tiny_checkpoint):
    return tiny_checkpoint, load_checkpoint(tiny_checkpoint).generator.eval()


def test_onnx_export_matches_torch(tmp_path, checkpoint):
    _, gen = checkpoint
    path = export_onnx(gen, tmp_path / "g.onnx")
    assert path.is_file() and not list(tmp_path.glob(".*tmp"))
    assert check_onnx(gen, path, batch=3) < 1e-3  # another batch size than the traced one


def test_swapper_runs_any_batch_and_matches_the_generator(checkpoint):
    path, gen = checkpoint
    swapper = Swapper(path, InferenceConfig(device="cpu", channels_last=True))
    assert swapper.identity_encoder == "dlib-resnet"
    for batch in (1, 3):
        x, e, depth, heat = example_inputs(gen.cfg, batch, seed=batch)
        out = swapper.swap(x, e, depth, heat)
        with torch.inference_mode():
            ref = gen(x, e, depth, heat)
        assert out.shape == (batch, 3, 224, 224) and out.dtype == torch.float32
        assert torch.allclose(out, ref, atol=1e-4)
    # one source identity broadcasts over the batch
    x, e, depth, heat = example_inputs(gen.cfg, 4)
    assert swapper.swap(x, e[:1], depth, heat).shape == (4, 3, 224, 224)


def test_swapper_refuses_bad_settings(checkpoint):
    path, _ = checkpoint
    with pytest.raises(ModelError, match="precision"):
        Swapper(path, InferenceConfig(precision="int3"))
    if not torch.cuda.is_available():
        with pytest.raises(ModelError, match="CUDA is not available"):
            Swapper(path, InferenceConfig(device="cuda"))


def test_summary_rows_add_up():
    gen = create_generator("tiny")
    rows = {r.name: r for r in generator_summary(gen, max_depth=1)}
    top = rows["MagicMaskGenerator"]
    parts = [rows[n] for n in ("visual", "geometric", "decoder")]
    assert top.params == sum(r.params for r in parts) == sum(p.numel() for p in gen.parameters())
    assert top.gmacs == pytest.approx(sum(r.gmacs for r in parts), rel=1e-6)
    assert all(r.gmacs > 0 for r in parts)


def test_cli_describe_and_export(tmp_path, checkpoint, capsys):
    path, _ = checkpoint
    assert main(["models", "describe", "tiny"]) == 0
    out = capsys.readouterr().out
    assert "GMACs/face" in out and "geometric" in out and "decoder" in out
    assert main(["models", "describe", str(path)]) == 0
    assert "identity encoder dlib-resnet" in capsys.readouterr().out
    assert main(["models", "describe", "nonsense"]) == ModelError.exit_code
    onnx_path = tmp_path / "cli.onnx"
    assert main(["models", "export-onnx", str(path), str(onnx_path)]) == 0
    assert "onnxruntime matches torch" in capsys.readouterr().out and onnx_path.is_file()
