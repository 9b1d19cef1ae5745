"""Shared fixtures: where the real test media live, and small helpers to reach them."""

from __future__ import annotations

import os
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
