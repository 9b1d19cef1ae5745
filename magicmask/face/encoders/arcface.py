"""ArcFace (insightface iresnet, e.g. buffalo_l's ``w600k_r50.onnx``) run in torch from a
user-provided ONNX file.

The ONNX graph is executed node by node with torch operators, its weights read with
``onnx.numpy_helper`` into frozen buffers, so the encoder is differentiable and needs neither
onnx2torch (which pulls torchvision and a CUDA torch) nor a hand-matched layer table: whatever
batch-norm folding the exporter did, the graph says what to compute. Only the operators an
iresnet export uses are implemented; any other is refused with its name.

Input convention (as insightface's ``ArcFaceONNX``): RGB 112×112 aligned to ``ARCFACE_112``,
``(pixel - 127.5) / 127.5``, unless the graph normalises itself (MXNet-converted models start with
``Sub``/``Mul`` nodes and take raw 0..255 pixels).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import torch
import torch.nn.functional as F
from onnx import numpy_helper
from torch import nn

from mmcore.errors import ModelError

log = logging.getLogger(__name__)

ARCFACE_SIZE = 112


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _conv(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None, **a) -> torch.Tensor:
    if a.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
        raise ModelError(f"Conv auto_pad={a['auto_pad']!r} is not supported")
    top, left, bottom, right = a.get("pads", [0, 0, 0, 0])
    if (top, left) != (bottom, right):
        x = F.pad(x, (left, right, top, bottom))
        top = left = 0
    return F.conv2d(
        x,
        w,
        b,
        a.get("strides", 1),
        (top, left),
        a.get("dilations", 1),
        a.get("group", 1),
    )


def _batch_norm(x, scale, bias, mean, var, **a) -> torch.Tensor:
    return F.batch_norm(x, mean, var, scale, bias, training=False, eps=a.get("epsilon", 1e-5))


def _prelu(x: torch.Tensor, slope: torch.Tensor) -> torch.Tensor:
    if slope.dim() == 1 and x.dim() > 2 and slope.numel() == x.shape[1]:
        slope = slope.view(1, -1, *([1] * (x.dim() - 2)))  # per-channel slope stored flat
    return torch.where(x >= 0, x, x * slope)


def _gemm(a_: torch.Tensor, b_: torch.Tensor, c_: torch.Tensor | None = None, **a) -> torch.Tensor:
    a_ = a_.t() if a.get("transA", 0) else a_
    b_ = b_.t() if a.get("transB", 0) else b_
    out = a.get("alpha", 1.0) * (a_ @ b_)
    return out if c_ is None else out + a.get("beta", 1.0) * c_


def _reshape(x: torch.Tensor, shape: torch.Tensor, **_a) -> torch.Tensor:
    dims = [x.shape[i] if d == 0 else int(d) for i, d in enumerate(shape.tolist())]
    return x.reshape(dims)


_OPS: dict[str, Callable[..., torch.Tensor]] = {
    "Conv": _conv,
    "BatchNormalization": _batch_norm,
    "PRelu": lambda x, s, **_a: _prelu(x, s),
    "Relu": lambda x, **_a: F.relu(x),
    "Add": lambda x, y, **_a: x + y,
    "Sub": lambda x, y, **_a: x - y,
    "Mul": lambda x, y, **_a: x * y,
    "Div": lambda x, y, **_a: x / y,
    "Flatten": lambda x, **a: (
        x.flatten(a.get("axis", 1)) if a.get("axis", 1) > 0 else x.reshape(1, -1)
    ),
    "Reshape": _reshape,
    "Gemm": _gemm,
    "MatMul": lambda x, y, **_a: x @ y,
    "Identity": lambda x, **_a: x,
    "Dropout": lambda x, *_r, **_a: x,
}


class OnnxGraph(nn.Module):
    """An ONNX graph of the supported operators, executed in torch; weights are frozen buffers."""

    def __init__(self, model: onnx.ModelProto, path: Path):
        super().__init__()
        graph = model.graph
        self._names: dict[str, str] = {}
        for i, init in enumerate(graph.initializer):
            self._names[init.name] = f"w{i}"
            self.register_buffer(f"w{i}", torch.from_numpy(numpy_helper.to_array(init).copy()))
        self._nodes = []
        for node in graph.node:
            if node.op_type == "Constant":
                value = torch.from_numpy(numpy_helper.to_array(_attrs(node)["value"]).copy())
                self._names[node.output[0]] = f"w{len(self._names)}"
                self.register_buffer(self._names[node.output[0]], value)
                continue
            if node.op_type not in _OPS:
                raise ModelError(
                    f"{path}: ONNX operator {node.op_type} is not supported (not an iresnet export?)"
                )
            self._nodes.append((node.op_type, list(node.input), node.output[0], _attrs(node)))
        inputs = [i.name for i in graph.input if i.name not in self._names]
        if len(inputs) != 1 or len(graph.output) != 1:
            raise ModelError(
                f"{path}: expected one image input and one embedding output, got {inputs}"
            )
        self._input, self._output = inputs[0], graph.output[0].name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        values = {self._input: x}
        for onnx_name, buffer in self._names.items():
            values[onnx_name] = getattr(self, buffer)
        for op, inputs, output, attrs in self._nodes:
            args = [values[name] if name else None for name in inputs]
            values[output] = _OPS[op](*args, **attrs)
        return values[self._output]


def _normalizes_itself(model: onnx.ModelProto) -> bool:
    """insightface's rule: MXNet-converted models begin with their own Sub and Mul nodes."""
    first = [node.op_type for node in model.graph.node[:8]]
    return "Sub" in first and "Mul" in first


class ArcFaceBackbone(nn.Module):
    """``[B,3,112,112]`` RGB in [0, 1] → ``[B,D]`` raw embedding of an ONNX ArcFace model."""

    def __init__(self, path: str | Path):
        super().__init__()
        path = Path(path)
        try:
            model = onnx.load(str(path))
        except Exception as exc:  # onnx raises DecodeError, OSError, ... for a bad file
            raise ModelError(
                f"{path}: cannot read ONNX model ({type(exc).__name__}: {exc})"
            ) from exc
        shape = [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        if shape[1:] != [3, ARCFACE_SIZE, ARCFACE_SIZE]:
            raise ModelError(
                f"{path}: input shape {shape}, expected [N,3,112,112] (an ArcFace ONNX model)"
            )
        self.graph = OnnxGraph(model, path)
        self.raw_pixels = _normalizes_itself(model)
        out_dims = [d.dim_value for d in model.graph.output[0].type.tensor_type.shape.dim]
        self.dim = out_dims[-1] if out_dims and out_dims[-1] > 0 else self._probe_dim()
        log.debug(
            "ArcFace ONNX %s: %d nodes, %d-d, raw pixels %s",
            path,
            len(self.graph._nodes),
            self.dim,
            self.raw_pixels,
        )

    def _probe_dim(self) -> int:
        with torch.no_grad():
            return int(self.forward(torch.zeros(1, 3, ARCFACE_SIZE, ARCFACE_SIZE)).shape[-1])

    def forward(self, x112: torch.Tensor) -> torch.Tensor:
        x = x112 * 255.0 if self.raw_pixels else (x112 - 0.5) / 0.5  # insightface's 127.5 / 127.5
        return self.graph(x).flatten(1)  # [B,D]


IDENTITY_AFFINE = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
