"""Image sequences: naming, numbering and gaps, headers, bit-exact round trips, bad input.

Every sequence is generated here with OpenImageIO (EXR half/float, 10-bit DPX, 16-bit PNG/TIFF),
starting at a frame other than 0 and, where the point is numbering, with a gap.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import OpenImageIO as oiio
import pytest
from media import read_image, write_image

from mmcore.errors import InvalidInput, MissingInput, OutputError
from mmvideo.io.frame import Frame
from mmvideo.io.sequence import (
    SequenceError,
    SequencePattern,
    SequenceReader,
    display_to_linear,
    format_frames,
    linear_to_display,
    parse_pattern,
    probe_sequence,
)
from mmvideo.io.sequence_write import (
    SequenceWriter,
    SequenceWriterOptions,
    writer_options_like,
)
from mmvideo.io.timecode import FrameRange, parse_timecode

H, W = 24, 32


def make_exr_sequence(folder: Path, numbers, fmt="half", tc_text="01:00:00:00", seed=0):
    rng = np.random.default_rng(seed)
    tc = parse_timecode(tc_text, 24)
    for n in numbers:
        # Scene-linear values well outside [0, 1] (negatives, highlights) must survive untouched.
        pixels = rng.normal(0.4, 0.8, (H, W, 4)).astype(np.float16).astype(np.float32)
        write_image(
            folder / f"plate.{n:04d}.exr",
            pixels,
            fmt,
            channels=("R", "G", "B", "A"),
            tc=tc + (n - numbers[0]),
        )
    return folder / "plate.%04d.exr"


def paint_box(frame: Frame) -> Frame:
    """A stand-in for a swap: change a box, leave the rest of the frame alone."""
    image = frame.image.copy()
    image[4:12, 6:20] = image[4:12, 6:20] // 2 + 1000
    frame.image = image
    return frame


BOX = np.zeros((H, W), bool)
BOX[4:12, 6:20] = True


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("plate.%04d.exr", SequencePattern("plate.", 4, ".exr")),
        ("a/b/plate.####.dpx", SequencePattern("a/b/plate.", 4, ".dpx")),
        ("shot_%d.png", SequencePattern("shot_", 0, ".png")),
        ("v2/x.@@@.tif", SequencePattern("v2/x.", 3, ".tif")),
        ("x.#.tiff", SequencePattern("x.", 4, ".tiff")),
        ("clip%03d.mp4", None),
        ("plate.0001.exr", None),
    ],
)
def test_parse_pattern(text, expected):
    assert parse_pattern(text) == expected


def test_format_frames():
    assert format_frames([3, 4, 5, 9, 11, 12]) == "3-5, 9, 11-12"


def test_transfer_inverts_every_16bit_code():
    codes = np.arange(65536, dtype=np.uint16)
    assert np.array_equal(linear_to_display(display_to_linear(codes)), codes)
    assert linear_to_display(np.array([-1.0, 0.0, 0.0031308, 1.0, 7.5]))[[0, 1, 3, 4]].tolist() == [
        0,
        0,
        65535,
        65535,
    ]


def test_half_lookup_matches_the_transfer_and_tames_nan():
    from mmvideo.io.sequence import _half_table

    every_half = np.arange(65536, dtype=np.uint16).view(np.float16)
    assert np.array_equal(_half_table(), linear_to_display(every_half.astype(np.float32)))
    special = np.array([np.nan, np.inf, -np.inf], np.float32)
    assert linear_to_display(special).tolist() == [0, 65535, 0]


def test_gap_is_an_error_listing_the_missing_frames(tmp_path):
    pattern = make_exr_sequence(tmp_path, [1001, 1002, 1005, 1007])
    with pytest.raises(SequenceError) as info:
        probe_sequence(str(pattern))
    assert str(info.value) == (
        f"{pattern}: missing frames 1003-1004, 1006 (use --fill-missing to repeat the previous frame)"
    )


@pytest.mark.parametrize("fmt", ["half", "float"])
def test_exr_numbers_timecode_and_untouched_pixels_survive(tmp_path, fmt):
    numbers = [1001, 1002, 1004]
    pattern = make_exr_sequence(tmp_path, numbers, fmt=fmt)
    reader = SequenceReader(str(pattern).replace("%04d", "####"), fill_missing=True)
    assert reader.info.pixel_type == fmt and reader.info.scene_linear
    assert str(reader.info.timecode) == "01:00:00:00"
    out_pattern = tmp_path / "out" / "swap.%04d.exr"
    out_pattern.parent.mkdir()
    with SequenceWriter(
        str(out_pattern), source=reader.info, options=writer_options_like(reader.info)
    ) as writer:
        seen = []
        for frame in reader:
            assert frame.image.dtype == np.uint16 and frame.image.shape == (H, W, 3)
            seen.append((frame.index, frame.pts))
            writer.write(paint_box(frame))
    assert seen == [
        (0, 0),
        (1, 1),
        (2, 2),
        (3, 3),
    ]  # positions; numbers come back on write
    assert reader.filled == [1003]

    out = probe_sequence(str(out_pattern))
    assert out.frames == (1001, 1002, 1003, 1004) and out.pixel_type == fmt
    assert out.channels == ("R", "G", "B", "A")
    for n in out.frames:
        src = read_image(tmp_path / f"plate.{min(n, 1002) if n == 1003 else n:04d}.exr")
        dst = read_image(out_pattern.parent / f"swap.{n:04d}.exr")
        # Outside the box and in the alpha channel: the same float bits as the plate.
        assert np.array_equal(src[~BOX].view(np.uint32), dst[~BOX].view(np.uint32))
        assert np.array_equal(src[..., 3].view(np.uint32), dst[..., 3].view(np.uint32))
        assert not np.array_equal(src[BOX][:, :3], dst[BOX][:, :3])
        tc = oiio.ImageInput.open(str(out_pattern.parent / f"swap.{n:04d}.exr")).spec()
        expected = parse_timecode("01:00:00:00", 24) + (n - 1001)
        assert tc.getattribute("smpte:TimeCode")[0] == expected.to_smpte_words()[0]
    assert not list(out_pattern.parent.glob(".*")), "temporary folder left behind"


def make_dpx_sequence(folder: Path, numbers, seed=1):
    rng = np.random.default_rng(seed)
    codes = {}
    tc = parse_timecode("00:59:58:00", 25)
    for n in numbers:
        c = rng.integers(0, 1024, (H, W, 3))
        codes[n] = c
        # OIIO reads 10-bit as bit-replicated 16-bit and writes it back by >> 6.
        write_image(
            folder / f"scan.{n:04d}.dpx",
            ((c << 6) | (c >> 4)).astype(np.uint16),
            "uint16",
            bits=10,
            tc=tc + (n - numbers[0]),
        )
    return folder / "scan.####.dpx", codes


def dpx_codes(path: Path) -> np.ndarray:
    """10-bit codes as FFmpeg decodes them: an independent check of what OIIO wrote."""
    with av.open(str(path)) as container:
        frame = next(container.decode(video=0))
        assert frame.format.name == "gbrp10le"
        return frame.to_ndarray(format="rgb48le") >> 6


def test_dpx_10bit_codes_and_timecode_survive(tmp_path):
    pattern, codes = make_dpx_sequence(tmp_path, [2001, 2002, 2003])
    reader = SequenceReader(str(pattern))
    info = reader.info
    assert (info.bits, info.first, str(info.timecode), info.rate) == (
        10,
        2001,
        "00:59:58:00",
        Fraction(24),
    )
    out_pattern = tmp_path / "out.%04d.dpx"
    with SequenceWriter(str(out_pattern), source=info, options=writer_options_like(info)) as w:
        for frame in reader:
            w.write(paint_box(frame))
    out = probe_sequence(str(out_pattern))
    assert out.bits == 10 and out.frames == (2001, 2002, 2003)
    assert str(out.timecode) == "00:59:58:00"
    for n, c in codes.items():
        got = dpx_codes(tmp_path / f"out.{n:04d}.dpx")
        assert np.array_equal(got[~BOX], c[~BOX])
        assert not np.array_equal(got[BOX], c[BOX])
    spec = oiio.ImageInput.open(str(tmp_path / "out.2003.dpx")).spec()
    assert spec.getattribute("dpx:TimeCode") == "00:59:58:02"


@pytest.mark.parametrize("ext", ["png", "tif"])
def test_16bit_png_and_tiff_round_trip_exactly(tmp_path, ext):
    rng = np.random.default_rng(2)
    images = {n: rng.integers(0, 65536, (H, W, 3)).astype(np.uint16) for n in (7, 8, 10)}
    for n, img in images.items():
        write_image(tmp_path / f"s.{n:03d}.{ext}", img, "uint16")
    with pytest.raises(SequenceError, match="missing frames 9 "):
        SequenceReader(str(tmp_path / f"s.%03d.{ext}"))
    reader = SequenceReader(str(tmp_path / f"s.%03d.{ext}"), fill_missing=True, fps=25)
    tc = parse_timecode("02:00:00:00", 25)
    opts = writer_options_like(reader.info, timecode=tc, provenance='{"synthetic": true}')
    with SequenceWriter(str(tmp_path / f"o.%03d.{ext}"), source=reader.info, options=opts) as w:
        for frame in reader:
            w.write(frame)
    for n in (7, 8, 9, 10):
        got = read_image(tmp_path / f"o.{n:03d}.{ext}", "uint16")
        assert np.array_equal(got, images[8 if n == 9 else n])
    out = probe_sequence(str(tmp_path / f"o.%03d.{ext}"))
    assert json.loads(out.provenance)["synthetic"] is True
    assert str(out.timecode) == "02:00:00:00" and out.first == 7
    assert out.rate == Fraction(25)  # kept in a text chunk (PNG) / the description (TIFF)


def test_range_reads_only_its_frames(tmp_path):
    pattern, codes = make_dpx_sequence(tmp_path, [2001, 2002, 2003, 2004])
    info = probe_sequence(str(pattern))
    start, stop = info.positions(FrameRange(2002, 2003))
    assert (start, stop) == (1, 3)
    reader = SequenceReader(str(pattern), start=start, stop=stop)
    frames = list(reader)
    assert [f.index for f in frames] == [1, 2] and len(reader) == 2
    assert np.array_equal(frames[0].image >> 6, codes[2002])
    # Written back, positions 1 and 2 become frame numbers 2002 and 2003 again.
    with SequenceWriter(str(tmp_path / "r.%04d.dpx"), source=info) as writer:
        for frame in frames:
            writer.write(frame)
    assert probe_sequence(str(tmp_path / "r.%04d.dpx")).frames == (2002, 2003)
    with pytest.raises(InvalidInput, match="outside the sequence"):
        info.positions(FrameRange(1, 5))
    with pytest.raises(InvalidInput, match="bad frame range"):
        SequenceReader(str(pattern), start=3, stop=1)


def test_mixed_resolutions_are_refused(tmp_path):
    make_exr_sequence(tmp_path, [1, 2])
    write_image(
        tmp_path / "plate.0003.exr",
        np.zeros((H + 2, W, 4), np.float32),
        "half",
        channels=("R", "G", "B", "A"),
    )
    with pytest.raises(
        SequenceError, match=r"plate\.0003\.exr: 32x26 differs .* \(mixed resolutions\)"
    ):
        probe_sequence(str(tmp_path / "plate.%04d.exr"))


def test_exr_without_rgb_channels_is_refused(tmp_path):
    write_image(
        tmp_path / "depth.0001.exr",
        np.zeros((H, W, 1), np.float32),
        "float",
        channels=("Z",),
    )
    with pytest.raises(SequenceError, match="EXR has channels Z, no R, G and B"):
        probe_sequence(str(tmp_path / "depth.%04d.exr"))


def test_corrupt_file_is_refused_before_decoding(tmp_path):
    make_exr_sequence(tmp_path, [1, 2])
    (tmp_path / "plate.0003.exr").write_bytes(b"not an exr at all")
    with pytest.raises(SequenceError, match=r"plate\.0003\.exr: cannot read image header"):
        SequenceReader(str(tmp_path / "plate.%04d.exr"))


def test_no_frames_and_bad_patterns(tmp_path):
    with pytest.raises(MissingInput, match="no frames match"):
        probe_sequence(str(tmp_path / "none.%04d.exr"))
    with pytest.raises(InvalidInput, match="not an image-sequence pattern"):
        probe_sequence("clip.mp4")


def test_failed_write_leaves_nothing(tmp_path):
    pattern = make_exr_sequence(tmp_path, [1, 2, 3])
    reader = SequenceReader(str(pattern))
    out_pattern = tmp_path / "out" / "o.%04d.exr"
    out_pattern.parent.mkdir()
    with (
        pytest.raises(RuntimeError),
        SequenceWriter(str(out_pattern), source=reader.info) as writer,
    ):
        for frame in reader:
            writer.write(frame)
            raise RuntimeError("render died")
    assert list(out_pattern.parent.iterdir()) == []
    with pytest.raises(OutputError, match="output pattern is the input"):
        SequenceWriter(str(pattern), source=reader.info)
    with pytest.raises(OutputError, match="does not exist"):
        SequenceWriter(str(tmp_path / "nowhere" / "o.%04d.png"))


def test_video_frames_to_exr_and_dpx(tmp_path):
    """Frames from a video (8-bit, numbered from 0) written as EXR and DPX with a timecode."""
    rng = np.random.default_rng(3)
    frames = [
        Frame(i, i, Fraction(1, 25), rng.integers(0, 256, (H, W, 3)).astype(np.uint8))
        for i in range(2)
    ]
    tc = parse_timecode("10:00:00:00", 25)
    for ext in ("exr", "dpx"):
        options = SequenceWriterOptions(fps=Fraction(25), timecode=tc, provenance="tag")
        with SequenceWriter(str(tmp_path / f"v.%04d.{ext}"), options=options) as w:
            for f in frames:
                w.write(f)
        info = probe_sequence(str(tmp_path / f"v.%04d.{ext}"))
        assert info.frames == (0, 1) and info.rate == Fraction(25)
        assert str(info.timecode) == "10:00:00:00" and info.provenance == "tag"
        back = [f.image for f in SequenceReader(str(tmp_path / f"v.%04d.{ext}"))]
        for f, img in zip(frames, back):
            # 8-bit values survive exactly through 16-bit display space.
            assert np.array_equal((img.astype(np.uint32) + 128) // 257, f.image)
