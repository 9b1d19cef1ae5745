"""ONNX export against onnxruntime, the inference helper, and ``mmvideo models``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magicmask.checkpoint import load_checkpoint
from magicmask.export import check_onnx, export_onnx
from magicmask.face.prepare import TargetInputs
from magicmask.inference import InferenceConfig, Swapper
from magicmask.model import create_generator
from magicmask.model.generator import example_inputs
from magicmask.model.summary import generator_summary
from mmcore.errors import InvalidInput, ModelError
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
    swapper = Swapper.load(path, InferenceConfig(device="cpu", channels_last=True))
    assert swapper.sha256 and swapper.device == "cpu"
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
    # the identity encoder the checkpoint names (dlib's, 128-d) comes with it
    codes = swapper.embed(np.zeros((2, 112, 112, 3), np.uint8))
    assert codes.shape == (2, 128) and np.allclose(np.linalg.norm(codes, axis=1), 1)


def _prepared(gen, n: int) -> list[TargetInputs]:
    x, _, depth, heat = example_inputs(gen.cfg, n, seed=7)
    crops = (x.permute(0, 2, 3, 1).numpy() * 255).astype(np.uint8)
    return [
        TargetInputs(crops[i], None, None, depth[i, 0].numpy(), heat[i].numpy(), None, None, None)
        for i in range(n)
    ]


def test_generate_batches_prepared_faces_exactly_as_swap(checkpoint):
    """The pipeline's path (lists of prepared faces, in batches) is the same forward as ``swap``:
    NCHW on CPU, bit for bit, one identity shared or one per face."""
    path, gen = checkpoint
    swapper = Swapper.load(path)
    faces = _prepared(gen, 5)
    _, e, _, _ = example_inputs(gen.cfg, 5, seed=3)
    for e_s in (e[:1], e):
        out = swapper.generate(faces, e_s, batch_size=2)
        assert out.shape == (5, 224, 224, 3) and out.dtype == np.float32
        for start in (0, 2, 4):  # batches of 2, 2, 1
            rows = faces[start : start + 2]
            x = torch.from_numpy(np.stack([f.crop for f in rows])).permute(0, 3, 1, 2)
            depth = torch.from_numpy(np.stack([f.depth for f in rows]))[:, None]
            heat = torch.from_numpy(np.stack([f.heatmaps for f in rows]))
            ids = e_s if len(e_s) == 1 else e_s[start : start + 2]
            ref = swapper.swap(x.float() / 255.0, ids, depth, heat).numpy()
            assert np.array_equal(out[start : start + 2], ref.transpose(0, 2, 3, 1))


def test_swapper_refuses_bad_settings(checkpoint):
    path, gen = checkpoint
    swapper = Swapper.load(path)
    with pytest.raises(ModelError, match="precision"):
        swapper.swap(*example_inputs(gen.cfg, 1), precision="int3")
    with pytest.raises(InvalidInput, match="unknown device"):
        Swapper.load(path, InferenceConfig(device="tpu"))
    if not torch.cuda.is_available():
        with pytest.raises(InvalidInput, match="CUDA is not available"):
            Swapper.load(path, InferenceConfig(device="cuda"))


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
