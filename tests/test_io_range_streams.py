"""A frame range (``--frames``, ``--start``/``--stop``) carries the audio and subtitles of that range.

The clips are made by the ffmpeg command line: a test pattern at 25 fps with a tone whose pitch
steps every quarter second (so audio from the wrong time is audibly different) and subtitle
cues before, across, inside and after the range. Frames 30-69 are 1.2 s to 2.8 s.
"""

from __future__ import annotations

import av
import numpy as np
import pytest
from media import TONE_RATE, decoded_audio, stepped_tone_clip

from mmcore.errors import InvalidInput
from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.decode import VideoReader
from mmvideo.io.media import open_writer
from mmvideo.io.probe import probe
from mmvideo.io.transcode import open_writer as open_video_writer

START, STOP = 30, 70  # 1.2 s to 2.8 s


def write_range(clip, out, start=START, stop=STOP, **options) -> None:
    """What the swap does with a range: frames [start, stop) through the shared writer."""
    info = probe(clip)
    with (
        VideoReader(clip, start=start, stop=stop, info=info) as reader,
        open_writer(out, info, EncodeOptions(**options), start=start, stop=stop) as writer,
    ):
        for frame in reader:
            writer.write(frame)


def video_span(path) -> tuple[float, float]:
    v = probe(path).video
    return float(v.frame_pts[0] * v.time_base), v.frames / float(v.fps)


@pytest.mark.parametrize("suffix", [".mkv", ".mov"])
def test_lossless_range_audio_is_the_sources_samples_at_the_same_time(tmp_path, suffix):
    clip, out = tmp_path / f"clip{suffix}", tmp_path / f"range{suffix}"
    stepped_tone_clip(clip, "pcm_s16le")
    write_range(clip, out)
    begin, seconds = video_span(out)
    assert (begin, seconds) == (1.2, 1.6)
    t0, samples = decoded_audio(out)
    s0, source = decoded_audio(clip)
    assert t0 == begin and s0 == 0.0
    assert len(samples) == round(seconds * TONE_RATE)  # to the sample
    at = round(begin * TONE_RATE)
    assert np.array_equal(samples, source[at : at + len(samples)])


def dominant_hz(samples: np.ndarray) -> float:
    spectrum = np.abs(np.fft.rfft(samples[:, 0] * np.hanning(len(samples))))
    return float(np.argmax(spectrum) * TONE_RATE / len(samples))


@pytest.mark.parametrize("suffix", [".mp4", ".mkv"])
def test_aac_range_audio_covers_the_range_in_sync(tmp_path, suffix):
    clip, out = tmp_path / "clip.mp4", tmp_path / f"range{suffix}"
    stepped_tone_clip(clip, "aac")
    write_range(clip, out)
    begin, seconds = video_span(out)
    t0, samples = decoded_audio(out)
    s0, source = decoded_audio(clip)
    # within one AAC frame (MP4 shows the encoder's delay before the first frame, MKV trims it)
    assert abs(len(samples) / TONE_RATE - seconds) <= 1024 / TONE_RATE
    assert begin - 1024 / TONE_RATE - 0.001 <= t0 <= begin
    # the pitch heard at each moment is the source's pitch at that moment
    window = 2400  # 50 ms, centred away from the quarter-second steps
    for t in np.arange(1.25 + 0.1, 2.8, 0.25):
        i, j = round((t - t0) * TONE_RATE), round((t - s0) * TONE_RATE)
        heard = dominant_hz(samples[i - window // 2 : i + window // 2])
        expected = dominant_hz(source[j - window // 2 : j + window // 2])
        assert abs(heard - expected) <= 20, t


def test_range_keeps_the_subtitles_shown_within_it(tmp_path):
    clip, out = tmp_path / "clip.mkv", tmp_path / "range.mkv"
    stepped_tone_clip(clip, "pcm_s16le", subtitles=True)
    write_range(clip, out)
    with av.open(str(out)) as c:
        texts = [bytes(p).decode() for p in c.demux(c.streams.subtitles[0]) if p.size]
    assert texts == ["across the start", "inside", "across the end"]


@pytest.mark.parametrize(
    ("start", "stop", "begin", "end"), [(0, 50, 0.0, 2.0), (30, 100, 1.2, 4.0)]
)
def test_a_range_at_either_end_of_the_clip(tmp_path, start, stop, begin, end):
    clip, out = tmp_path / "clip.mkv", tmp_path / "range.mkv"
    stepped_tone_clip(clip, "pcm_s16le")
    write_range(clip, out, start, stop)
    t0, samples = decoded_audio(out)
    assert t0 == begin and len(samples) == round((end - begin) * TONE_RATE)


def test_ffmpeg_pipe_refuses_a_range_it_cannot_cut(tmp_path):
    clip = tmp_path / "clip.mkv"
    stepped_tone_clip(clip, "pcm_s16le")
    info = probe(clip)
    options = EncodeOptions(ffmpeg_args=("-g", "5"))
    with pytest.raises(InvalidInput, match="--ffmpeg-args writes whole clips only"):
        open_video_writer(tmp_path / "o.mkv", info, options, copy_range=(30, 70))


def test_audio_whose_encoder_is_unusable_is_cut_into_the_containers_default(tmp_path, caplog):
    """FFmpeg's Vorbis encoder is experimental: a range of a Vorbis clip gets the muxer's
    default codec (AC-3 in Matroska) instead of an error after the render."""
    clip, out = tmp_path / "clip.mkv", tmp_path / "range.mkv"
    stepped_tone_clip(clip, "libvorbis")
    with caplog.at_level("INFO", logger="mmvideo.io.encode"):
        write_range(clip, out)
    with av.open(str(out)) as c:
        assert c.streams.audio[0].codec_context.name == "ac3"
    _, samples = decoded_audio(out)
    _, seconds = video_span(out)
    assert abs(len(samples) / TONE_RATE - seconds) <= 1536 / TONE_RATE  # one AC-3 frame
    assert "re-encoded (ac3)" in caplog.text
