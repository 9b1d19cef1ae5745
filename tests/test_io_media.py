"""Generated test clips (``media.make_clip``: rotation, VFR, 10-bit) are what the other I/O tests
assume."""

from __future__ import annotations

from fractions import Fraction

import av
import pytest
from media import make_clip


def test_generated_rotation_is_in_the_container(tmp_path):
    clip = tmp_path / "rot.mp4"
    make_clip(clip, frames=3, rotation=90)
    with av.open(str(clip)) as c:
        frame = next(c.decode(video=0))
        assert frame.rotation == 90


def test_generated_vfr_keeps_its_timestamps(tmp_path):
    clip = tmp_path / "vfr.mp4"
    pts = [0, 1000, 3000, 3500, 7000]
    make_clip(clip, frames=5, pts=pts, time_base=Fraction(1, 10000))
    with av.open(str(clip)) as c:
        assert [f.pts for f in c.decode(video=0)] == pts


@pytest.mark.parametrize("pix_fmt", ["yuv420p10le"])
def test_generated_10bit_decodes_as_10bit(tmp_path, pix_fmt):
    clip = tmp_path / "deep.mkv"
    make_clip(clip, frames=2, pix_fmt=pix_fmt)
    with av.open(str(clip)) as c:
        assert next(c.decode(video=0)).format.name == pix_fmt
