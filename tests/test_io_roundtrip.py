"""decode -> encode round trips: frame count, per-frame pts, audio/subtitle packets, colour,
depth, rotation, metadata and lossless pixels survive; both encoder backends; chunk concat."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import av
import numpy as np
import pytest
from media import ffmpeg, make_clip, packets, reader_frames

from mmcore.errors import OutputError
from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.decode import VideoReader
from mmvideo.io.encode import VideoWriter
from mmvideo.io.probe import probe
from mmvideo.io.transcode import transcode

FAST = EncodeOptions(encoder_preset="ultrafast")


def seconds(fs):
    return [f.pts * f.time_base for f in fs]


def assert_same_timing(src, out, absolute=True):
    """Same frame count and per-frame times. Matroska cannot store the negative start of copied
    AAC priming, so its muxer shifts every stream alike: there only relative times are equal."""
    a, b = reader_frames(src), reader_frames(out)
    assert len(a) == len(b)
    ta, tb = seconds(a), seconds(b)
    if not absolute:
        ta, tb = [t - ta[0] for t in ta], [t - tb[0] for t in tb]
    assert ta == tb
    return a, b


@pytest.mark.parametrize("name", ["talking_head_turn_01.mp4", "talking_head_obama_news_01.mp4"])
def test_real_clip_keeps_frames_pts_and_audio_bytes(data_dir, tmp_path, name):
    src, out = data_dir / name, tmp_path / "out.mp4"
    report = transcode(src, out, FAST)
    a, b = assert_same_timing(src, out)
    assert report.frames == len(a) == probe(src).video.frames
    assert [f.pts for f in a] == [f.pts for f in b]  # same time base too
    audio_in, audio_out = packets(src, "audio"), packets(out, "audio")
    assert len(audio_in) > 50 and audio_in == audio_out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]  # no temp files left


def test_ffv1_round_trip_is_pixel_identical(data_dir, tmp_path):
    src, out = data_dir / "talking_head_vox_01.mp4", tmp_path / "out.mkv"
    transcode(src, out, EncodeOptions(codec="ffv1"))
    a, b = assert_same_timing(src, out, absolute=False)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))


def test_ffv1_round_trip_of_10bit_is_pixel_identical(tmp_path):
    src, out = tmp_path / "deep.mkv", tmp_path / "out.mkv"
    make_clip(src, frames=4, pix_fmt="yuv420p10le")
    transcode(src, out, EncodeOptions(codec="ffv1"))
    a, b = assert_same_timing(src, out)
    assert b[0].image.dtype == np.uint16
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))


def test_vfr_stays_variable(tmp_path):
    src, out = tmp_path / "vfr.mp4", tmp_path / "out.mp4"
    make_clip(
        src,
        frames=6,
        pts=[0, 1000, 3000, 3500, 7000, 7400],
        time_base=Fraction(1, 10000),
    )
    transcode(src, out, FAST)
    assert_same_timing(src, out)
    assert probe(out).video.vfr


@pytest.mark.parametrize(("codec", "suffix"), [("libx264", ".mp4"), ("libx265", ".mkv")])
def test_color_tags_and_10bit_depth_preserved(tmp_path, codec, suffix):
    src, out = tmp_path / "hdr.mkv", tmp_path / f"out{suffix}"
    make_clip(src, frames=3, pix_fmt="yuv420p10le", color=(9, 16, 9, 1))
    transcode(src, out, EncodeOptions(codec=codec, encoder_preset="ultrafast"))
    v_in, v_out = probe(src).video, probe(out).video
    assert v_out.color == v_in.color
    assert (v_out.bit_depth, v_out.pix_fmt) == (10, "yuv420p10le")
    a, b = assert_same_timing(src, out)
    assert b[0].image.dtype == np.uint16
    assert np.abs(a[1].image.astype(int) - b[1].image).mean() < 0.02 * 65535


def test_8bit_color_tags_preserved(tmp_path):
    src, out = tmp_path / "bt709.mp4", tmp_path / "out.mov"
    make_clip(src, frames=3, color=(1, 1, 1, 1))
    transcode(src, out, FAST)
    assert probe(out).video.color == probe(src).video.color
    assert probe(out).video.color.names()["matrix"] == "bt709"


def test_rotation_is_baked_and_no_tag_written(tmp_path):
    src, out = tmp_path / "rot.mp4", tmp_path / "out.mp4"
    make_clip(src, frames=3, size=(64, 48), rotation=270)
    transcode(
        src,
        out,
        EncodeOptions(codec="libx264", crf=0, encoder_preset="ultrafast", pix_fmt="yuv444p"),
    )
    v = probe(out).video
    assert (v.rotation, v.transform, v.width, v.height) == (0.0, "none", 48, 64)
    a, b = assert_same_timing(src, out)
    assert np.abs(a[0].image.astype(int) - b[0].image).mean() < 2


def test_one_frame_and_odd_size(tmp_path):
    src, out = tmp_path / "odd.mp4", tmp_path / "out.mp4"
    make_clip(src, frames=1, size=(641, 359), pix_fmt="yuv444p")
    transcode(src, out, FAST)
    (_, (b,)) = assert_same_timing(src, out)
    assert b.image.shape == (359, 641, 3)


def test_container_metadata_and_faststart(data_dir, tmp_path):
    src, out = tmp_path / "tagged.mp4", tmp_path / "out.mp4"
    ffmpeg("-i", data_dir / "talking_head_turn_03.mp4", "-c", "copy", "-metadata", "title=Take 7",
           "-metadata", "comment=slate", "-metadata:s:v:0", "language=fra", src)  # fmt: skip
    transcode(src, out, FAST)
    meta = probe(out).metadata
    assert meta["title"] == "Take 7" and meta["comment"] == "slate"
    assert probe(out).streams[0].language == "fra"  # video stream tags too
    head = out.read_bytes()[:4096]
    assert 0 <= head.find(b"moov") < max(head.find(b"mdat"), 4096)  # index first: +faststart


def test_subtitles_copied_packet_for_packet(data_dir, tmp_path):
    srt, src, out = tmp_path / "s.srt", tmp_path / "sub.mp4", tmp_path / "out.mp4"
    srt.write_text(
        "1\n00:00:00,500 --> 00:00:01,500\nhello\n\n2\n00:00:02,000 --> 00:00:03,000\nworld\n"
    )
    ffmpeg("-i", data_dir / "talking_head_turn_02.mp4", "-i", srt, "-map", "0", "-map", "1",
           "-c", "copy", "-c:s", "mov_text", src)  # fmt: skip
    transcode(src, out, FAST)
    subs = packets(src, "subtitle")
    assert len(subs) >= 2 and packets(out, "subtitle") == subs
    assert packets(out, "audio") == packets(src, "audio")


def test_audio_the_container_cannot_hold(data_dir, tmp_path):
    src, out = tmp_path / "mulaw.mkv", tmp_path / "out.mp4"
    ffmpeg("-i", data_dir / "talking_head_turn_01.mp4", "-c:v", "copy", "-c:a", "pcm_mulaw", src)
    with pytest.raises(
        OutputError,
        match=r"cannot hold audio stream #1 \(pcm_mulaw\); use --audio-codec aac",
    ):
        transcode(src, out, FAST)
    assert list(tmp_path.iterdir()) == [src]
    transcode(src, out, EncodeOptions(encoder_preset="ultrafast", audio_codec="aac"))
    (audio,) = probe(out).audio
    assert audio.codec == "aac" and audio.sample_rate == 16000
    assert abs(probe(out).duration - probe(src).duration) < 0.1


def test_ffmpeg_backend_keeps_frames_pts_and_audio(data_dir, tmp_path):
    src, out = data_dir / "talking_head_turn_01.mp4", tmp_path / "out.mp4"
    transcode(src, out, EncodeOptions(ffmpeg_args=("-preset", "ultrafast", "-tune", "film")))
    assert_same_timing(src, out)
    assert packets(out, "audio") == packets(src, "audio")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]


def test_ffmpeg_backend_vfr_and_lossless(tmp_path):
    src, out = tmp_path / "vfr.mp4", tmp_path / "out.mkv"
    make_clip(src, frames=5, pts=[0, 1000, 3000, 3500, 7000], time_base=Fraction(1, 10000))
    transcode(src, out, EncodeOptions(codec="ffv1", ffmpeg_args=("-slices", "4")))
    a, b = assert_same_timing(src, out)
    assert all(np.array_equal(x.image, y.image) for x, y in zip(a, b))


def test_decode_thread_stops_when_left_early(data_dir):
    import threading

    from mmvideo.queues import threaded

    before = threading.active_count()
    with VideoReader(data_dir / "talking_head_turn_03.mp4") as reader:
        frames_iter = threaded(reader, threading.Event(), size=2)
        first = [next(frames_iter) for _ in range(3)]
        frames_iter.close()
    assert [f.index for f in first] == [0, 1, 2]
    assert threading.active_count() == before


def test_writer_fills_missing_pts_and_rescales_other_time_bases(tmp_path):
    src = tmp_path / "cfr.mp4"
    make_clip(src, frames=5, rate=25, time_base=Fraction(1, 12800))
    info, decoded = probe(src), reader_frames(src)
    variants = {
        "none.mp4": [replace(f, pts=None) for f in decoded],
        "tb25.mp4": [replace(f, pts=f.index, time_base=Fraction(1, 25)) for f in decoded],
    }
    for name, fs in variants.items():
        with VideoWriter(tmp_path / name, info, FAST) as writer:
            for f in fs:
                writer.write(f)
        assert [f.pts for f in reader_frames(tmp_path / name)] == [f.pts for f in decoded]


def test_quicktime_timecode_survives(data_dir, tmp_path):
    src = tmp_path / "tc.mov"
    ffmpeg("-i", data_dir / "talking_head_turn_01.mp4", "-c", "copy", "-timecode", "01:00:00:00",
           src)  # fmt: skip
    assert any(s.type == "data" for s in probe(src).streams)  # the tmcd track
    for out in (tmp_path / "out.mov", tmp_path / "out.mp4"):
        transcode(src, out, FAST)
        info = probe(out)
        assert info.streams[0].metadata.get("timecode") == "01:00:00:00"
        assert packets(out, "audio") == packets(src, "audio")


def test_unknown_audio_encoder(data_dir, tmp_path):
    with pytest.raises(OutputError, match="unknown or unusable audio encoder 'foo'"):
        transcode(
            data_dir / "talking_head_turn_01.mp4",
            tmp_path / "o.mp4",
            EncodeOptions(audio_codec="foo"),
        )
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "color",
    [(1, 1, 1, 1), (2, 2, 2, 0), (9, 16, 9, 2)],
    ids=["bt709", "unknown", "bt2020-pc"],
)
def test_ffmpeg_backend_converts_with_the_source_matrix(tmp_path, color):
    src = tmp_path / "src.mkv"
    make_clip(src, frames=3, color=color, pix_fmt="yuv444p", codec="ffv1")
    out_pipe, out_pyav = tmp_path / "pipe.mkv", tmp_path / "pyav.mkv"
    lossless = EncodeOptions(codec="libx264", crf=0, encoder_preset="ultrafast", pix_fmt="yuv444p")
    transcode(src, out_pipe, replace(lossless, ffmpeg_args=("-qp", "0")))
    transcode(src, out_pyav, lossless)
    assert probe(out_pipe).video.color == probe(src).video.color
    a, piped, direct = reader_frames(src), reader_frames(out_pipe), reader_frames(out_pyav)
    for x, y, z in zip(a, piped, direct):
        # a wrong matrix or range shifts saturated colours by tens of levels
        assert np.abs(x.image.astype(int) - y.image).mean() < 1.5
        assert np.abs(x.image.astype(int) - z.image).mean() < 1.5


def test_prores_keeps_hdr_color_tags(tmp_path):
    """prores_ks reads primaries/transfer from each frame, not the codec context."""
    src, out = tmp_path / "hdr.mkv", tmp_path / "out.mov"
    make_clip(src, frames=2, pix_fmt="yuv420p10le", color=(9, 16, 9, 1))
    transcode(src, out, EncodeOptions(codec="prores_ks"))
    names = probe(out).video.color.names()
    assert (names["primaries"], names["transfer"], names["matrix"]) == (
        "bt2020",
        "smpte2084",
        "bt2020nc",
    )


def yuv_planes(path):
    """Each decoded frame's Y, U and V planes stacked in one array, as stored."""
    with av.open(str(path)) as c:
        return [f.to_ndarray() for f in c.decode(video=0)]


def test_untouched_frames_keep_the_decoded_yuv_exactly(data_dir, tmp_path):
    """Lossless YUV out: a frame nobody changed is the decoder's own picture, with no RGB round trip
    (which would round almost every pixel), so the planes come back bit for bit."""
    src, out = data_dir / "talking_head_vox_01.mp4", tmp_path / "out.mkv"
    assert probe(src).video.pix_fmt == "yuv420p"
    transcode(src, out, EncodeOptions(codec="ffv1", pix_fmt="yuv420p"))
    a, b = yuv_planes(src), yuv_planes(out)
    assert len(a) == len(b) == probe(src).video.frames
    assert all(np.array_equal(x, y) for x, y in zip(a, b))


def test_frame_keeps_the_decoded_picture_until_its_pixels_are_replaced(data_dir):
    with VideoReader(data_dir / "talking_head_vox_01.mp4", stop=2, convert=False) as reader:
        first, second = list(reader)
    assert first.decoded is not None and first.decoded.format.name == "yuv420p"
    with pytest.raises(ValueError, match="read-only"):
        first.image[0, 0] = 0  # an in-place edit would be lost: the writer encodes the picture
    first.image = first.image.copy()
    assert first.decoded is None
    assert replace(second, image=second.image.copy()).decoded is None


def test_data_stream_copied_packet_for_packet_where_the_container_holds_it(tmp_path, caplog):
    blob = tmp_path / "klv.bin"
    blob.write_bytes(np.random.default_rng(0).integers(0, 256, 3000, np.uint8).tobytes())
    src = tmp_path / "in.ts"
    ffmpeg("-f", "lavfi", "-i", "testsrc=size=64x48:rate=10:duration=2", "-f", "data", "-i", blob,
           "-map", "0", "-map", "1", "-c:v", "libx264", "-c:d", "copy", "-f", "mpegts", src)  # fmt: skip
    assert [s.codec for s in probe(src).streams] == ["h264", "bin_data"]
    transcode(src, tmp_path / "out.ts", FAST)
    data_in, data_out = packets(src, "data"), packets(tmp_path / "out.ts", "data")
    assert data_in and data_out == data_in
    # mp4 cannot hold it: the video is written and the warning names the stream
    transcode(src, tmp_path / "out.mp4", FAST)
    assert "data stream #1 (bin_data) not copied (the mp4 container cannot hold it)" in caplog.text
    assert [s.type for s in probe(tmp_path / "out.mp4").streams] == ["video"]
