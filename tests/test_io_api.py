"""``mmvideo.io`` exports the Python API that README documents ("From Python", under "Probe and
transcode"), so a user's ``from mmvideo.io import ...`` works as written there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import mmvideo.io

README = Path(__file__).resolve().parent.parent / "README.md"
DOCUMENTED = (
    "probe",
    "MediaInfo",
    "VideoReader",
    "Frame",
    "VideoWriter",
    "EncodeOptions",
    "open_random_access",
    "read_frames",
    "concat_command",
)


def _from_python_paragraph() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"^From Python\b.*?(?=\n\n)", text, re.S | re.M)
    assert match, "README lost its 'From Python' paragraph of the io API"
    return match.group(0)


@pytest.mark.parametrize("name", DOCUMENTED)
def test_readme_name_imports_from_mmvideo_io(name):
    assert re.search(rf"\b{name}\b", _from_python_paragraph()), f"{name} is not in README"
    assert name in mmvideo.io.__all__
    assert getattr(mmvideo.io, name).__name__ == name


def test_all_is_what_readme_documents():
    assert sorted(mmvideo.io.__all__) == sorted(DOCUMENTED)
