"""Shared fixtures: where the real test media live, no network, and a random tiny checkpoint."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _data_dir() -> Path:
    env = os.environ.get("MMVIDEO_TEST_DATA")
    path = Path(env) if env else REPO.parent / "shared" / "data"
    if not (path / "SOURCES.md").is_file():
        raise RuntimeError(
            f"test media not found at {path}: set MMVIDEO_TEST_DATA to the shared/data folder"
        )
    # resolved: commands record the real paths of their inputs (farm plans, tune records), and
    # ../shared may be a link
    return path.resolve()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The read-only folder of real media (``../shared/data``); tests never write there."""
    return _data_dir()


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    """The training corpus folder (``../shared/corpus``), holding the LFW tar."""
    env = os.environ.get("MMVIDEO_TEST_CORPUS")
    return Path(env) if env else REPO.parent / "shared" / "corpus"


@pytest.fixture
def offline(monkeypatch):
    """Any network connection fails the test: a backend must never try to fetch a model."""

    def refuse(*args, **kwargs):
        raise AssertionError("a network connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _tiny_checkpoint(path: Path, seed: int) -> Path:
    # imported here: torch loads only in sessions that use a checkpoint
    import torch

    from magicmask.checkpoint import save_checkpoint
    from magicmask.model.generator import create_generator

    # the weights follow from the seed alone; the global generator is left as it was
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        gen = create_generator("tiny", identity_dim=128)  # dlib-resnet gives 128-d identities
    save_checkpoint(path, gen, gen.cfg, "dlib-resnet", {"note": "random, for tests"})
    return path


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory) -> Path:
    """A randomly initialised tiny generator (seed 0) saved with the checkpoint API. Shared by
    the whole session: a test that changes the file works on a copy."""
    return _tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny.pt", seed=0)


@pytest.fixture(scope="session")
def other_tiny_checkpoint(tmp_path_factory) -> Path:
    """A second random tiny generator (seed 1): another model of the same architecture."""
    return _tiny_checkpoint(tmp_path_factory.mktemp("ckpt") / "other.pt", seed=1)
