"""Merge timing on generated media: VFR, a late first frame, audio, with a transcode stand-in.

The property under test is the merge's (timestamps and audio survive chunking exactly), so the
chunks are made by a plain decode → encode of their range instead of the swap, which keeps
these tests fast and independent of the model.
"""

from __future__ import annotations

import os
import subprocess

import av
import pytest
import torch

from magicmask.checkpoint import save_checkpoint
from magicmask.config import create_config
from magicmask.model.generator import MagicMaskGenerator
from mmcore.errors import OutputError
from mmvideo.farm import chunk as chunk_module
from mmvideo.farm.chunk import read_status, run_chunk
from mmvideo.farm.merge import merge
from mmvideo.farm.plan import make_plan, save_plan
from mmvideo.farm.swap import resolve_settings
from mmvideo.io.codecs import EncodeOptions
from mmvideo.io.decode import VideoReader
from mmvideo.io.encode import VideoWriter
from mmvideo.io.probe import probe
from mmvideo.io.timecode import read_video_timecode


def _transcode(job: dict, config: dict) -> None:
    """What the swap does to timing, without the swap: frames [start, stop) re-encoded."""
    info = probe(job["input"])
    whole = job["start"] == 0 and job["stop"] >= info.video.frames
    with (
        VideoReader(job["input"], start=job["start"], stop=job["stop"], info=info) as reader,
        VideoWriter(
            job["output"],
            info,
            EncodeOptions(codec="libx264", crf=0),
            copy_streams=whole,
        ) as writer,
    ):
        for frame in reader:
            writer.write(frame)


@pytest.fixture
def vfr_clip(tmp_path):
    """20 frames, 25 fps then 12.5 fps from frame 11, first frame at 0.5 s, AAC audio."""
    clip = tmp_path / "vfr.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-f", "lavfi",
         "-i", "sine=frequency=440:sample_rate=16000", "-t", "1.2",
         "-vf", "setpts='(N+if(gt(N,10),N-10,0))/25/TB'", "-fps_mode", "vfr", "-c:v", "libx264",
         "-g", "6", "-c:a", "aac", "-output_ts_offset", "0.5", str(clip)],
        check=True,
    )  # fmt: skip
    return clip


def _job(tmp_path, clip, chunks):
    model = tmp_path / "model.pt"  # the transcode never loads it; planning checks it
    torch.manual_seed(0)
    cfg = create_config("tiny", identity_dim=128)
    save_checkpoint(model, MagicMaskGenerator(cfg), cfg, "dlib-resnet", {"note": "random"})
    settings = resolve_settings("fast", model)
    job = tmp_path / f"job{chunks}.json"
    # Cut anywhere (not on the generator batch): the transcode stand-in batches nothing
    plan = make_plan(job, clip, clip, settings, chunks=chunks, warmup_seconds=0.2, align=1)
    save_plan(plan, job)
    return job, plan


def _video_times(path):
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        return sorted(float(p.pts * s.time_base) for p in c.demux(s) if p.size)


def _audio(path):
    with av.open(str(path)) as c:
        s = c.streams.audio[0]
        return [(float(p.pts * s.time_base), bytes(p)) for p in c.demux(s) if p.size]


@pytest.mark.parametrize("chunks", [1, 3])
def test_merge_keeps_vfr_timestamps_late_start_and_audio(tmp_path, vfr_clip, monkeypatch, chunks):
    monkeypatch.setattr(chunk_module, "run_job", _transcode)
    job, plan = _job(tmp_path, vfr_clip, chunks)
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


def test_chunk_with_missing_frames_is_failed_not_done(tmp_path, vfr_clip, monkeypatch):
    def short(job, config):
        _transcode(dict(job, stop=job["stop"] - 1), config)

    monkeypatch.setattr(chunk_module, "run_job", short)
    job, _plan = _job(tmp_path, vfr_clip, 2)
    with pytest.raises(OutputError, match="chunk has 9 frames, the plan asked for 10"):
        run_chunk(job, 0)
    status = read_status(job, 0)
    assert status.state == "failed" and "9 frames" in status.error


def test_merge_refuses_when_timestamps_do_not_match_the_source(tmp_path, vfr_clip, monkeypatch):
    def shifted(job, config):
        _transcode(job, config)
        # a chunk that lost its timing (constant 25 fps from 0) but has the right frame count
        fixed = job["output"] + ".cfr.mp4"
        subprocess.run(
            ["ffmpeg", "-v", "error", "-i", job["output"], "-vf", "setpts=N/25/TB", "-c:v", "libx264",
             "-crf", "0", fixed],
            check=True,
        )  # fmt: skip
        os.replace(fixed, job["output"])

    monkeypatch.setattr(chunk_module, "run_job", shifted)
    job, _plan = _job(tmp_path, vfr_clip, 1)
    run_chunk(job, 0)
    out = tmp_path / "merged.mp4"
    with pytest.raises(OutputError, match="timestamps differ, not written"):
        merge(job, out)
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".merged")]


@pytest.mark.parametrize("chunks", [1, 2])
def test_merge_keeps_the_source_start_timecode(tmp_path, monkeypatch, chunks):
    clip = tmp_path / "tc.mov"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-f", "lavfi", "-i", "testsrc=size=64x48:rate=25", "-t", "0.48",
         "-c:v", "libx264", "-g", "4", "-timecode", "01:00:00:00", str(clip)],
        check=True,
    )  # fmt: skip
    monkeypatch.setattr(chunk_module, "run_job", _transcode)
    job, plan = _job(tmp_path, clip, chunks)
    for span in plan.chunks:
        run_chunk(job, span.index)
    merged = merge(job, tmp_path / "merged.mov").output
    assert read_video_timecode(merged) == "01:00:00:00"
