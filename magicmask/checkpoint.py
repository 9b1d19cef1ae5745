"""MagicMask checkpoints: config, weights, identity-encoder name, metadata and a SHA-256 of the weights.

A checkpoint is a ``torch.save`` of plain types only (the config as a dict, tensors, strings), so it
loads with ``weights_only=True`` and never runs code from the file. The digest covers every
tensor's name, dtype, shape and bytes in key order; a file whose weights do not match it is
refused. Files are written to a temporary name in the same folder and renamed when complete.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from magicmask.config import MagicMaskConfig
from magicmask.model.generator import MagicMaskGenerator
from mmcore.atomic import atomic_output
from mmcore.errors import MissingInput, ModelError, OutputError

FORMAT = "magicmask-checkpoint"
VERSION = 1
TRAINING_FORMAT = "magicmask-training-state"


@dataclass
class LoadedCheckpoint:
    """What ``load_checkpoint`` returns: a ready generator (eval mode) and what came with it."""

    generator: MagicMaskGenerator
    config: MagicMaskConfig
    identity_encoder: str
    meta: dict
    sha256: str


def default_checkpoint_path() -> Path:
    """The embedded checkpoint shipped in the package (it may not exist in a development tree)."""
    return Path(__file__).resolve().parent / "weights" / "magicmask-tiny.pt"


def weights_sha256(state_dict: dict[str, torch.Tensor]) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes, in key order."""
    digest = hashlib.sha256()
    for key in sorted(state_dict):
        tensor = state_dict[key].detach().cpu().contiguous()
        digest.update(f"{key}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        # bytes through uint8 so every dtype (bf16 included) hashes the same way
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _atomic_save(obj: dict, path: Path) -> None:
    path = Path(path)
    if not path.parent.is_dir():
        raise OutputError(f"{path}: folder {path.parent} does not exist")
    with atomic_output(path) as tmp:
        torch.save(obj, tmp)


def _check_plain(value, where: str) -> None:
    """Refuse what ``weights_only=True`` could not read back (objects other than plain containers)."""
    if isinstance(value, dict):
        for key, item in value.items():
            _check_plain(key, where)
            _check_plain(item, f"{where}[{key!r}]")
    elif isinstance(value, (list, tuple)):
        for item in value:
            _check_plain(item, where)
    elif not isinstance(value, (str, int, float, bool, type(None), torch.Tensor)):
        raise ModelError(
            f"{where}: {type(value).__name__} is not a plain type (use str/int/float/list/dict)"
        )


def _unwrap(module: nn.Module) -> nn.Module:
    """The plain module under DDP / torch.compile wrappers, so keys carry no prefixes."""
    module = getattr(module, "_orig_mod", module)
    return getattr(module, "module", module)


def save_checkpoint(
    path: str | os.PathLike,
    generator: nn.Module,
    config: MagicMaskConfig,
    identity_encoder: str,
    meta: dict | None = None,
    dtype: torch.dtype | None = None,
) -> str:
    """Write a generator checkpoint atomically and return its weights' SHA-256.

    ``meta`` (training steps, data, metrics...) must hold plain types only. ``dtype`` (e.g.
    ``torch.float16``) stores floating-point weights narrower to keep a shipped file small;
    ``load_checkpoint`` casts back to float32.
    """
    meta = dict(meta or {})
    _check_plain(meta, f"{path}: meta")
    state = {k: v.detach().cpu().clone() for k, v in _unwrap(generator).state_dict().items()}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
    sha = weights_sha256(state)
    obj = {
        "format": FORMAT,
        "version": VERSION,
        "config": config.to_dict(),
        "identity_encoder": identity_encoder,
        "meta": meta,
        "state_dict": state,
        "sha256": sha,
    }
    _atomic_save(obj, Path(path))
    return sha


def _read(path: Path, map_location, expected_format: str) -> dict:
    if not path.is_file():
        if path == default_checkpoint_path():
            raise ModelError(
                f"{path}: the embedded checkpoint is not in this install yet (train one or pass --checkpoint FILE)"
            )
        raise MissingInput(f"{path}: checkpoint file not found")
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # torch raises many kinds for a foreign or truncated file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"{path}: not a readable checkpoint ({reason})") from exc
    if not isinstance(obj, dict) or obj.get("format") != expected_format:
        raise ModelError(f"{path}: not a {expected_format} file")
    if obj.get("version") != VERSION:
        raise ModelError(
            f"{path}: {expected_format} version {obj.get('version')} (this code reads {VERSION})"
        )
    return obj


def read_meta(path: str | os.PathLike) -> dict:
    """A checkpoint's metadata without building its generator (the weights are read, not checked:
    ``load_checkpoint`` checks them)."""
    return dict(_read(Path(path), "cpu", FORMAT).get("meta") or {})


def load_checkpoint(
    path: str | os.PathLike, map_location: str | torch.device = "cpu"
) -> LoadedCheckpoint:
    """Read, verify (SHA-256) and build the generator of a checkpoint, in eval mode, float32."""
    path = Path(path)
    obj = _read(path, map_location, FORMAT)
    state = obj["state_dict"]
    sha = weights_sha256(state)
    if sha != obj.get("sha256"):
        raise ModelError(
            f"{path}: weights do not match their SHA-256 (file corrupted or tampered with)"
        )
    config = MagicMaskConfig.from_dict(obj["config"])
    generator = MagicMaskGenerator(config)
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}
    try:
        generator.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(
            f"{path}: weights do not fit config {config.name!r} ({str(exc).splitlines()[0]})"
        ) from exc
    generator.to(map_location).eval()
    return LoadedCheckpoint(generator, config, obj["identity_encoder"], obj["meta"], sha)


def save_training_state(path: str | os.PathLike, state: dict) -> None:
    """Atomically save a training-resume dict (discriminator / optimiser / EMA state dicts, step, RNG
    states...) of plain types and tensors, readable with ``weights_only=True``."""
    _atomic_save({"format": TRAINING_FORMAT, "version": VERSION, "state": state}, Path(path))


def load_training_state(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> dict:
    """The dict given to ``save_training_state``; a clear ModelError for a foreign file."""
    return _read(Path(path), map_location, TRAINING_FORMAT)["state"]
