"""ArcFace ONNX loader, plumbing only: a small random iresnet built here, exported to ONNX with
insightface's signature (1×3×112×112 → 1×512), loaded back through the real loader and compared
with onnxruntime. The model is random, so nothing here says anything about recognition quality.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn

from magicmask.face.identity import build_identity_encoder
from mmcore.errors import ModelError


class IBasicBlock(nn.Module):
    """insightface's iresnet block: BN → conv → BN → PReLU → conv(stride) → BN, plus shortcut."""

    def __init__(self, inplanes: int, planes: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.BatchNorm2d(inplanes, eps=1e-5),
            nn.Conv2d(inplanes, planes, 3, 1, 1, bias=False),
            nn.BatchNorm2d(planes, eps=1e-5),
            nn.PReLU(planes),
            nn.Conv2d(planes, planes, 3, stride, 1, bias=False),
            nn.BatchNorm2d(planes, eps=1e-5),
        )
        self.downsample = nn.Sequential(
            nn.Conv2d(inplanes, planes, 1, stride, bias=False),
            nn.BatchNorm2d(planes, eps=1e-5),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + self.downsample(x)


class TinyIResNet(nn.Module):
    """iresnet with one block per stage and narrow widths; 112 → 7×7 → fc 512 → BN1d."""

    def __init__(self, widths=(8, 16, 16, 32), dim: int = 512):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 1, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.PReLU(widths[0]),
        )
        stages, inplanes = [], widths[0]
        for planes in widths:
            stages.append(IBasicBlock(inplanes, planes, 2))
            inplanes = planes
        self.stages = nn.Sequential(*stages)
        self.bn2 = nn.BatchNorm2d(inplanes, eps=1e-5)
        self.fc = nn.Linear(inplanes * 7 * 7, dim)
        self.features = nn.BatchNorm1d(dim, eps=1e-5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn2(self.stages(self.stem(x)))  # [B,C,7,7]
        return self.features(self.fc(torch.flatten(x, 1)))  # [B,512]


def randomised(model: nn.Module) -> nn.Module:
    """Random weights and batch-norm statistics, so no BN is the identity."""
    torch.manual_seed(0)
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.running_mean.uniform_(-0.2, 0.2)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.uniform_(-0.2, 0.2)
        if isinstance(module, nn.PReLU):
            module.weight.data.uniform_(0.05, 0.4)
    return model.eval()


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("arcface") / "tiny_iresnet.onnx"
    model = randomised(TinyIResNet())
    torch.onnx.export(
        model,
        (torch.zeros(1, 3, 112, 112),),
        str(path),
        dynamo=False,  # the TorchScript exporter: no onnxscript needed
        input_names=["input.1"],
        output_names=["embedding"],
    )
    return path


def test_loader_matches_onnxruntime(tiny_onnx):
    encoder = build_identity_encoder("arcface-onnx", onnx_path=tiny_onnx)
    assert (encoder.name, encoder.dim) == ("arcface-onnx", 512)
    session = ort.InferenceSession(str(tiny_onnx), providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, 112, 112, generator=torch.Generator().manual_seed(1))
    (expected,) = session.run(None, {"input.1": ((x.numpy() - 0.5) / 0.5).astype(np.float32)})
    with torch.no_grad():
        raw = encoder.network(x).numpy()
        emb = encoder(x).numpy()
    np.testing.assert_allclose(raw, expected, atol=1e-4, rtol=0)
    np.testing.assert_allclose(emb, expected / np.linalg.norm(expected), atol=1e-5, rtol=0)


def test_loader_is_differentiable_and_batched(tiny_onnx):
    encoder = build_identity_encoder("arcface-onnx", onnx_path=tiny_onnx)
    x = torch.rand(3, 3, 112, 112, generator=torch.Generator().manual_seed(2), requires_grad=True)
    emb = encoder(x)
    assert emb.shape == (3, 512)
    (1 - torch.cosine_similarity(emb[:1], emb[1:]).mean()).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert all(not b.requires_grad for b in encoder.buffers())
    with torch.no_grad():
        single = encoder(x[1:2])
    torch.testing.assert_close(single, emb[1:2].detach(), atol=1e-5, rtol=0)


def test_arcface_needs_an_onnx_path():
    with pytest.raises(ModelError, match="onnx_path"):
        build_identity_encoder("arcface-onnx")


def test_missing_onnx_file_names_it(tmp_path):
    with pytest.raises(ModelError, match="w600k_r50.onnx"):
        build_identity_encoder("arcface-onnx", onnx_path=tmp_path / "w600k_r50.onnx")


def test_wrong_input_shape_is_refused(tmp_path):
    path = tmp_path / "wrong.onnx"
    torch.onnx.export(
        nn.Conv2d(3, 4, 3).eval(), (torch.zeros(1, 3, 64, 64),), str(path), dynamo=False
    )
    with pytest.raises(ModelError, match="expected \\[N,3,112,112\\]"):
        build_identity_encoder("arcface-onnx", onnx_path=path)


def test_unsupported_operator_is_named(tmp_path):
    path = tmp_path / "sigmoid.onnx"
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Sigmoid()).eval()
    torch.onnx.export(net, (torch.zeros(1, 3, 112, 112),), str(path), dynamo=False)
    with pytest.raises(ModelError, match="Sigmoid"):
        build_identity_encoder("arcface-onnx", onnx_path=path)


def test_corrupt_file_is_a_model_error(tmp_path):
    path = tmp_path / "corrupt.onnx"
    path.write_bytes(b"not an onnx model")
    with pytest.raises(ModelError, match="corrupt.onnx"):
        build_identity_encoder("arcface-onnx", onnx_path=path)


def test_exported_graph_uses_only_what_iresnet_exports_contain(tiny_onnx):
    """Guards the test itself: the export exercises Conv, BN, PReLU, Add, Flatten and Gemm."""
    ops = {node.op_type for node in onnx.load(str(tiny_onnx)).graph.node}
    assert {"Conv", "PRelu", "Add", "Flatten", "Gemm", "BatchNormalization"} <= ops
