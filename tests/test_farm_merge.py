"""Merge timing on generated media: VFR, a late first frame, audio, with a transcode stand-in.

The property under test is the merge's (timestamps and audio survive chunking exactly), so the
chunks are made by a plain decode → encode of their range instead of the swap, which keeps
these tests fast and independent of the model.
"""

from __future__ import annotations

import os

import pytest
from media import SINE, TESTSRC, farm_job, ffmpeg, packets, transcode_chunk

from mmcore.errors import OutputError
from mmvideo.farm import chunk as chunk_module
from mmvideo.farm.chunk import read_status, run_chunk
from mmvideo.farm.merge import merge
from mmvideo.io.timecode import read_video_timecode


@pytest.fixture
def vfr_clip(tmp_path):
    """20 frames, 25 fps then 12.5 fps from frame 11, first frame at 0.5 s, AAC audio."""
    clip = tmp_path / "vfr.mp4"
    ffmpeg(*TESTSRC, *SINE, "-t", "1.2", "-vf", "setpts='(N+if(gt(N,10),N-10,0))/25/TB'",
           "-fps_mode", "vfr", "-c:v", "libx264", "-g", "6", "-c:a", "aac",
           "-output_ts_offset", "0.5", clip)  # fmt: skip
    return clip


def _video_times(path):
    return sorted(float(t) for _, t in packets(path, "video"))


def _audio(path):
    return [(float(t), payload) for payload, t in packets(path, "audio")]


@pytest.mark.parametrize("chunks", [1, 3])
def test_merge_keeps_vfr_timestamps_late_start_and_audio(
    tmp_path, vfr_clip, monkeypatch, chunks, tiny_checkpoint
):
    monkeypatch.setattr(chunk_module, "run_job", transcode_chunk)
    job, plan = farm_job(tmp_path, vfr_clip, chunks, tiny_checkpoint)
    assert len(plan.chunks) == chunks
    for span in plan.chunks:
        run_chunk(job, span.index)
    out = tmp_path / "merged.mkv"
    record = merge(job, out)
    assert record.frames == 20
    source = _video_times(vfr_clip)
    assert source[0] == 0.5 and source[11] - source[10] == pytest.approx(0.08)
    assert _video_times(out) == pytest.approx(source, abs=1e-3)  # mkv stores milliseconds
    assert _audio(out) == _audio(vfr_clip)  # copied once, packet for packet


def test_chunk_with_missing_frames_is_failed_not_done(
    tmp_path, vfr_clip, monkeypatch, tiny_checkpoint
):
    def short(job, config):
        return transcode_chunk(dict(job, stop=job["stop"] - 1), config)

    monkeypatch.setattr(chunk_module, "run_job", short)
    job, _plan = farm_job(tmp_path, vfr_clip, 2, tiny_checkpoint)
    with pytest.raises(OutputError, match="chunk has 9 frames, the plan asked for 10"):
        run_chunk(job, 0)
    status = read_status(job, 0)
    assert status.state == "failed" and "9 frames" in status.error


def test_merge_refuses_when_timestamps_do_not_match_the_source(
    tmp_path, vfr_clip, monkeypatch, tiny_checkpoint
):
    def shifted(job, config):
        transcode_chunk(job, config)
        # a chunk that lost its timing (constant 25 fps from 0) but has the right frame count
        fixed = job["output"] + ".cfr.mp4"
        ffmpeg("-i", job["output"], "-vf", "setpts=N/25/TB", "-c:v", "libx264", "-crf", "0", fixed)
        os.replace(fixed, job["output"])
        return {}

    monkeypatch.setattr(chunk_module, "run_job", shifted)
    job, _plan = farm_job(tmp_path, vfr_clip, 1, tiny_checkpoint)
    run_chunk(job, 0)
    out = tmp_path / "merged.mp4"
    with pytest.raises(OutputError, match="timestamps differ, not written"):
        merge(job, out)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".merged")]


@pytest.mark.parametrize("chunks", [1, 2])
def test_merge_keeps_the_source_start_timecode(tmp_path, monkeypatch, chunks, tiny_checkpoint):
    clip = tmp_path / "tc.mov"
    ffmpeg(*TESTSRC, "-t", "0.48", "-c:v", "libx264", "-g", "4", "-timecode", "01:00:00:00", clip)
    monkeypatch.setattr(chunk_module, "run_job", transcode_chunk)
    job, plan = farm_job(tmp_path, clip, chunks, tiny_checkpoint)
    for span in plan.chunks:
        run_chunk(job, span.index)
    merged = merge(job, tmp_path / "merged.mov").output
    assert read_video_timecode(merged) == "01:00:00:00"
