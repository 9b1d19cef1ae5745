"""The shard format: one ``.npz`` file holding N preprocessed faces and a JSON header.

A shard is written by ``train.preprocess`` and read by ``train.data``. Keeping every array of a
sample in one file means a shard is either complete (renamed into place) or absent, which is what
makes preprocessing resumable: a chunk whose shard exists is never recomputed.

Arrays (N = faces in the shard, S = ``image_size`` = 224, s = ``id_size`` = 112):

============  ==================  =======  ==============================================
key           shape               dtype    meaning
============  ==================  =======  ==============================================
target        N×S×S×3             uint8    aligned target crop (TEMPLATE_224), RGB
source        N×s×s×3             uint8    aligned identity crop (ARCFACE_112), RGB
landmarks     N×68×2              float32  68 iBUG landmarks in target-crop pixels
depth         N×S×S               uint8    depth map × 255 (0 = background, 255 = nearest)
mask          N×S×S               uint8    face mask × 255
boxes         N×4×4               float32  eyes, nose, mouth, jaw boxes (x0, y0, x1, y1)
pose          N×3                 float32  yaw, pitch, roll in degrees
label         N                   int64    identity index into ``header.identities``
frame         N                   int64    frame index for video samples, -1 for images
origin        N                   str      source file path (relative to its SRC root)
header        ()                  str      JSON, see ``ShardHeader``
============  ==================  =======  ==============================================

Depth and mask are stored as uint8 because a float32 map per face would triple the size for no
visible gain; landmark heat-maps are not stored at all, they are re-rendered from ``landmarks``.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from mmcore.atomic import atomic_output
from mmcore.errors import InvalidInput, MissingInput

FORMAT_NAME = "mmvideo-train-shard"
FORMAT_VERSION = 1
COMPONENTS = ("eyes", "nose", "mouth", "jaw")
ARRAY_KEYS = (
    "target",
    "source",
    "landmarks",
    "depth",
    "mask",
    "boxes",
    "pose",
    "label",
    "frame",
    "origin",
)


@dataclass
class ShardHeader:
    """What a reader must know before trusting a shard's arrays."""

    image_size: int
    id_size: int
    identities: list[str]  # label index -> identity name
    count: int
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (origin, reason)
    landmark_backend: str = ""
    format: str = FORMAT_NAME
    version: int = FORMAT_VERSION


@dataclass
class ShardData:
    """The arrays of one shard, in memory (see the module table for shapes)."""

    header: ShardHeader
    target: np.ndarray
    source: np.ndarray
    landmarks: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    boxes: np.ndarray
    pose: np.ndarray
    label: np.ndarray
    frame: np.ndarray
    origin: np.ndarray

    def __len__(self) -> int:
        return int(self.target.shape[0])


def empty_shard(
    image_size: int, id_size: int, skipped: list[tuple[str, str]], backend: str
) -> ShardData:
    """A shard with no faces: it still records that its chunk was done and what was skipped."""
    s, i = image_size, id_size
    return ShardData(
        header=ShardHeader(
            image_size=s,
            id_size=i,
            identities=[],
            count=0,
            skipped=skipped,
            landmark_backend=backend,
        ),
        target=np.zeros((0, s, s, 3), np.uint8),
        source=np.zeros((0, i, i, 3), np.uint8),
        landmarks=np.zeros((0, 68, 2), np.float32),
        depth=np.zeros((0, s, s), np.uint8),
        mask=np.zeros((0, s, s), np.uint8),
        boxes=np.zeros((0, 4, 4), np.float32),
        pose=np.zeros((0, 3), np.float32),
        label=np.zeros((0,), np.int64),
        frame=np.zeros((0,), np.int64),
        origin=np.zeros((0,), dtype="<U1"),
    )


def write_shard(path: Path, shard: ShardData) -> None:
    """Write atomically: a temp file in the same folder, renamed when complete."""
    path = Path(path)
    _check_shapes(path, shard)
    shard.header.count = len(shard)
    arrays = {k: getattr(shard, k) for k in ARRAY_KEYS}
    arrays["header"] = np.array(json.dumps(asdict(shard.header)))
    with atomic_output(path, suffix=".npz.tmp") as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)


def read_header(path: Path) -> ShardHeader:
    """Read only the JSON header (cheap: the arrays are not decompressed)."""
    with _open(path) as npz:
        return _parse_header(path, npz)


def read_shard(path: Path) -> ShardData:
    """Load every array of a shard, checking format, version and shapes."""
    with _open(path) as npz:
        header = _parse_header(path, npz)
        missing = [k for k in ARRAY_KEYS if k not in npz.files]
        if missing:
            raise InvalidInput(f"{path}: not a complete shard, missing arrays {missing}")
        shard = ShardData(header=header, **{k: npz[k] for k in ARRAY_KEYS})
    _check_shapes(path, shard)
    return shard


def check_compatible(path: Path, header: ShardHeader, image_size: int, id_size: int) -> None:
    """Refuse a shard made for other crop sizes than the model config expects."""
    if (header.image_size, header.id_size) != (image_size, id_size):
        raise InvalidInput(
            f"{path}: shard made for {header.image_size}px targets / {header.id_size}px sources, "
            f"config needs {image_size}/{id_size} (re-run train.preprocess)"
        )


def list_shards(folder: Path) -> list[Path]:
    """Shard files of a data folder in name order; a clear error if there are none."""
    folder = Path(folder)
    if not folder.is_dir():
        raise MissingInput(f"{folder}: data folder does not exist")
    paths = sorted(folder.glob("shard-*.npz"))
    if not paths:
        raise InvalidInput(f"{folder}: no shard-*.npz files (run mmvideo train-preprocess first)")
    return paths


def _open(path: Path):
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"{path}: shard file does not exist")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InvalidInput(f"{path}: unreadable shard ({exc})") from exc


def _parse_header(path: Path, npz) -> ShardHeader:
    if "header" not in npz.files:
        raise InvalidInput(f"{path}: not a training shard (no header)")
    try:
        raw = json.loads(str(npz["header"]))
        header = ShardHeader(**raw)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{path}: corrupt shard header ({exc})") from exc
    if header.format != FORMAT_NAME or header.version != FORMAT_VERSION:
        raise InvalidInput(
            f"{path}: shard format {header.format} v{header.version}, expected {FORMAT_NAME} v{FORMAT_VERSION}"
        )
    header.skipped = [tuple(x) for x in header.skipped]
    return header


def _check_shapes(path: Path, shard: ShardData) -> None:
    n, s, i = len(shard), shard.header.image_size, shard.header.id_size
    expected = {
        "target": (n, s, s, 3),
        "source": (n, i, i, 3),
        "landmarks": (n, 68, 2),
        "depth": (n, s, s),
        "mask": (n, s, s),
        "boxes": (n, len(COMPONENTS), 4),
        "pose": (n, 3),
        "label": (n,),
        "frame": (n,),
        "origin": (n,),
    }
    for key, shape in expected.items():
        got = tuple(getattr(shard, key).shape)
        if got != shape:
            raise InvalidInput(f"{path}: shard array {key} has shape {got}, expected {shape}")
    if n and (shard.label.min() < 0 or shard.label.max() >= len(shard.header.identities)):
        raise InvalidInput(
            f"{path}: shard labels out of range of its {len(shard.header.identities)} identities"
        )
