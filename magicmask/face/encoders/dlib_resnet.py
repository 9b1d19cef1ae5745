"""A PyTorch port of dlib's ResNet face descriptor, read from dlib's own ``.dat`` file.

dlib's ``dlib_face_recognition_resnet_model_v1`` is a 29-conv ResNet on a 150×150 chip with a
128-d output (``dnn_face_recognition_ex.cpp``). The file is dlib's own serialisation of the
network: layers appear input-first, each one announced by its type name as a length-prefixed
string (``con_4``, ``affine_``, ``max_pool_2``, ``avg_pool_2``, ``add_prev_111``, ``fc_2``),
followed by its parameters. Parameter tensors are raw little-endian float32 after a shape header;
integers use dlib's variable-length encoding. We read only what the forward pass needs and check
the layer sequence against the known architecture, so a different file fails loudly.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from mmcore.errors import ModelError

log = logging.getLogger(__name__)

# Channel means that dlib's input_rgb_image layer subtracts; it then divides by 256 (not 255).
# They are also stored in the file and checked against these values on load.
DLIB_RGB_MEAN = (122.782, 117.001, 104.298)
DLIB_INPUT_SCALE = 256.0
DLIB_CHIP_SIZE = 150
# ARCFACE_112 crop pixels → dlib's 150×150 chip (get_face_chip_details(shape, 150, 0.25)).
# Least-squares similarity between the 68 landmarks of the 54 faces in shared/data's identity
# stills mapped into both frames, dlib's own chip transform on one side and align.align_identity's
# on the other (tests/test_face_identity.py re-derives it; mean residual 1.8 px).
DLIB_FROM_112 = np.array([[1.48810, -0.00164, -9.600], [0.00164, 1.48810, -32.569]])

# Output widths of the 14 residual blocks in forward order; "d" blocks halve the resolution
# (dlib's ares_down: stride-2 conv on the main path, 2×2 average pool on the skip path).
_BLOCKS = (
    ((32, False),) * 3 + ((64, True),) + ((64, False),) * 3 + ((128, True),) + ((128, False),) * 2
)
_BLOCKS += ((256, True),) + ((256, False),) * 2 + ((256, True),)

_LAYER_NAMES = (
    b"con_4",
    b"affine_",
    b"relu_110",
    b"max_pool_2",
    b"avg_pool_2",
    b"add_prev_111",
    b"fc_2",
)
_NAME_RE = re.compile(b"|".join(re.escape(b"\x01" + bytes([len(n)]) + n) for n in _LAYER_NAMES))


@dataclass
class DlibLayer:
    """One layer of the serialised net: its dlib type, parameters, and geometry (conv/pool)."""

    kind: str
    params: np.ndarray | None = None  # float32, dlib's layout
    shape: tuple[int, ...] = ()
    geometry: tuple[int, ...] = ()  # conv: filters, nr, nc, stride_y, stride_x, pad_y, pad_x


class _Reader:
    """Cursor over dlib's serialisation primitives."""

    def __init__(self, data: bytes, path: Path):
        self.data, self.pos, self.path = data, 0, path

    def int(self) -> int:
        head = self.data[self.pos]
        size, negative = head & 0x0F, bool(head & 0x80)
        value = int.from_bytes(self.data[self.pos + 1 : self.pos + 1 + size], "little")
        self.pos += 1 + size
        return -value if negative else value

    def float(self) -> float:
        mantissa, exponent = self.int(), self.int()
        return float(mantissa) * 2.0**exponent

    def tensor(self) -> tuple[np.ndarray, tuple[int, ...]]:
        version = self.int()
        if version != 2:
            raise ModelError(
                f"{self.path}: unsupported dlib tensor version {version} at byte {self.pos}"
            )
        shape = tuple(self.int() for _ in range(4))
        count = int(np.prod(shape))
        end = self.pos + 4 * count
        if end > len(self.data):
            raise ModelError(f"{self.path}: truncated dlib tensor at byte {self.pos}")
        values = np.frombuffer(self.data, dtype="<f4", count=count, offset=self.pos).astype(
            np.float32
        )
        self.pos = end
        return values, shape


def read_dlib_layers(path: str | Path) -> tuple[tuple[float, ...], list[DlibLayer]]:
    """The input means and the forward-ordered layers of a dlib metric-learning ResNet ``.dat``."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"{path}: cannot read dlib model: {exc.strerror}") from exc
    marker = data.find(b"input_rgb_image_sized")
    if not data.startswith(b"\x01\x01\x01\x0dloss_metric_") or marker < 0:
        raise ModelError(
            f"{path}: not a dlib face-recognition ResNet (loss_metric + input_rgb_image) file"
        )
    reader = _Reader(data, path)
    reader.pos = marker + len(b"input_rgb_image_sized")
    means = tuple(reader.float() for _ in range(3))
    layers: list[DlibLayer] = []
    while (match := _NAME_RE.search(data, reader.pos)) is not None:
        kind = match.group()[2:].decode()
        reader.pos = match.end()
        if kind == "con_4":
            params, shape = reader.tensor()
            layers.append(DlibLayer(kind, params, shape, tuple(reader.int() for _ in range(7))))
        elif kind == "affine_":
            params, shape = reader.tensor()
            layers.append(DlibLayer(kind, params, shape))
        elif kind == "fc_2":
            num_outputs, num_inputs = reader.int(), reader.int()
            params, shape = reader.tensor()
            layers.append(DlibLayer(kind, params, shape, (num_outputs, num_inputs)))
        elif kind in ("max_pool_2", "avg_pool_2"):
            layers.append(DlibLayer(kind, geometry=tuple(reader.int() for _ in range(6))))
        else:
            layers.append(DlibLayer(kind))
    return means, layers


def _add_padded(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """dlib's add_prev: tensors of different shapes add where they overlap, the rest is zero-padded
    (bottom/right and trailing channels). It matters where a stride-2 conv gives 3×3 but the
    average-pooled skip gives 4×4."""
    c, h, w = (max(x, y) for x, y in zip(a.shape[1:], b.shape[1:]))

    def grow(t: torch.Tensor) -> torch.Tensor:
        return F.pad(t, (0, w - t.shape[3], 0, h - t.shape[2], 0, c - t.shape[1]))

    return grow(a) + grow(b)


class _ResBlock(nn.Module):
    """dlib's ``ares`` / ``ares_down``: relu(BN(conv(relu(BN(conv(x))))) + skip(x)), with the
    affine ("frozen BN") layers folded into the convs."""

    def __init__(self, conv1: nn.Conv2d, conv2: nn.Conv2d, down: bool):
        super().__init__()
        self.conv1, self.conv2 = conv1, conv2
        self.skip = nn.AvgPool2d(2, 2) if down else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv2(F.relu(self.conv1(x)))
        return F.relu(_add_padded(y, self.skip(x)))


def _conv_from(con: DlibLayer, affine: DlibLayer, in_channels: int, path: Path) -> nn.Conv2d:
    """A Conv2d equal to dlib's con_ followed by its affine_ (per-channel gamma, beta)."""
    filters, nr, nc, stride_y, stride_x, pad_y, pad_x = con.geometry
    n_weights = filters * in_channels * nr * nc
    if con.params is None or con.params.size != n_weights + filters:
        raise ModelError(
            f"{path}: dlib conv with {filters} filters does not match {in_channels} input channels"
        )
    weight = con.params[:n_weights].reshape(filters, in_channels, nr, nc)
    bias = con.params[n_weights:]
    gamma, beta = affine.params[:filters], affine.params[filters:]
    conv = nn.Conv2d(in_channels, filters, (nr, nc), (stride_y, stride_x), (pad_y, pad_x))
    conv.weight.data = torch.from_numpy(weight * gamma[:, None, None, None])
    conv.bias.data = torch.from_numpy(bias * gamma + beta)
    return conv


class DlibResNetBackbone(nn.Module):
    """dlib's face ResNet on a native chip: ``[B,3,150,150]`` RGB in [0, 1] → ``[B,128]`` raw
    (unnormalised) descriptor, the same numbers ``compute_face_descriptor`` returns."""

    def __init__(self, means: tuple[float, ...], layers: list[DlibLayer], path: Path):
        super().__init__()
        kinds = [layer.kind for layer in layers]
        convs = [layer for layer in layers if layer.kind == "con_4"]
        affines = [layer for layer in layers if layer.kind == "affine_"]
        fcs = [layer for layer in layers if layer.kind == "fc_2"]
        expected = 1 + 2 * len(_BLOCKS)
        if (
            len(convs) != expected
            or len(affines) != expected
            or len(fcs) != 1
            or kinds.count("max_pool_2") != 1
        ):
            raise ModelError(
                f"{path}: unexpected dlib layer sequence ({len(convs)} convs, {len(fcs)} fc); "
                "expected dlib_face_recognition_resnet_model_v1"
            )
        if not np.allclose(means, DLIB_RGB_MEAN, atol=1e-3):
            raise ModelError(f"{path}: unexpected input means {means}")
        self.register_buffer(
            "mean", torch.tensor(means, dtype=torch.float32).view(1, 3, 1, 1) / 255.0
        )
        pool = next(layer for layer in layers if layer.kind == "max_pool_2").geometry
        self.stem = nn.Sequential(
            _conv_from(convs[0], affines[0], 3, path),
            nn.ReLU(),
            nn.MaxPool2d(pool[:2], pool[2:4], pool[4:6]),
        )
        blocks, channels = [], convs[0].geometry[0]
        for i, (width, down) in enumerate(_BLOCKS):
            conv1 = _conv_from(convs[1 + 2 * i], affines[1 + 2 * i], channels, path)
            conv2 = _conv_from(convs[2 + 2 * i], affines[2 + 2 * i], width, path)
            if conv1.out_channels != width or (conv1.stride[0] == 2) != down:
                raise ModelError(
                    f"{path}: residual block {i} does not match the dlib ResNet v1 layout"
                )
            blocks.append(_ResBlock(conv1, conv2, down))
            channels = width
        self.blocks = nn.Sequential(*blocks)
        num_outputs, num_inputs = fcs[0].geometry
        weight = fcs[0].params.reshape(num_inputs, num_outputs)  # dlib: out = in @ W
        self.fc = nn.Linear(num_inputs, num_outputs, bias=False)
        self.fc.weight.data = torch.from_numpy(np.ascontiguousarray(weight.T))

    def forward(self, chip: torch.Tensor) -> torch.Tensor:
        # dlib feeds (pixel - mean) / 256 with pixels in 0..255.
        x = (chip - self.mean) * (255.0 / DLIB_INPUT_SCALE)  # [B,3,150,150]
        x = self.blocks(self.stem(x))  # [B,256,2,2]
        return self.fc(x.mean(dim=(2, 3)))  # [B,128]


def load_dlib_resnet(path: str | Path) -> DlibResNetBackbone:
    """Build the torch port from a ``dlib_face_recognition_resnet_model_v1.dat`` file."""
    path = Path(path)
    means, layers = read_dlib_layers(path)
    log.debug("read %d dlib layers from %s", len(layers), path)
    return DlibResNetBackbone(means, layers, path)
