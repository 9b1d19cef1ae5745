"""Where model files come from: files that installed packages ship, or files the user names.

Nothing here downloads. Package files are located with ``importlib.util.find_spec`` (no
``pkg_resources``); a missing file is a ``ModelError`` that says which file to put where.
"""

from __future__ import annotations

import importlib.util
import pickle
from pathlib import Path

from mmcore.errors import ModelError


def package_dir(package: str, install_hint: str) -> Path:
    """The folder of an installed package, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(f"{package}: package not installed (pip install {install_hint})")
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(package: str, relative: str, install_hint: str) -> Path:
    """A model file shipped inside an installed package."""
    path = package_dir(package, install_hint) / relative
    if not path.is_file():
        raise ModelError(
            f"{path}: model file missing from package {package} (reinstall {install_hint})"
        )
    return path


def dlib_model(name: str) -> Path:
    """A dlib model from ``face-recognition-models`` (e.g. ``shape_predictor_68_face_landmarks.dat``)."""
    return package_file("face_recognition_models", f"models/{name}", "face-recognition-models")


def user_file(folder: Path | None, name: str, what: str, option: str) -> Path:
    """A model file the user provides in ``folder`` (named by ``option`` on the command line)."""
    if folder is None:
        raise ModelError(
            f"{name}: {what} needs a model folder; pass {option} DIR containing {name}"
        )
    path = Path(folder) / name
    if not path.is_file():
        raise ModelError(f"{path}: {what} model file not found; put {name} in {folder} ({option})")
    return path


def read_state_dict(path: Path, what: str, device: str = "cpu") -> dict:
    """A torch ``state_dict`` a user gave us (``weights_only``: nothing in the file runs), as
    research code saves them: possibly wrapped in ``{"state_dict": ...}`` and with DataParallel's
    ``module.`` prefixes, both removed. An unreadable file is a ``ModelError`` naming ``what``."""
    import torch  # deferred: finding and checking model files needs no torch, only this reader

    try:
        data = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message runs over several lines and advises weights_only=False: not ours to
        # pass on, since a file that needs it would run code as it loads
        raise ModelError(f"{path}: cannot read {what} (not a file of plain torch weights)") from exc
    except Exception as exc:  # torch raises several types for a truncated or foreign file
        raise ModelError(f"{path}: cannot read {what} ({type(exc).__name__}: {exc})") from exc
    if isinstance(data, dict) and "state_dict" in data:
        data = data["state_dict"]
    if not isinstance(data, dict):
        raise ModelError(f"{path}: not a state_dict")
    return {k.removeprefix("module."): v for k, v in data.items()}
