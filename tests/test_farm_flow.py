"""Render-farm mode end to end with the real swap pipeline and a random tiny generator.

The clip is the first 12 frames (with audio) of a real 224×224 talking-head clip, the model a
randomly initialised ``tiny`` generator saved with the checkpoint API, so these tests check
plumbing and identity of results, never swap quality. ``threads=1`` keeps torch's results
independent of how frames are batched across chunks; FFV1 is lossless.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from media import first_frames, packets

from mmcore.errors import InvalidInput, MissingInput, ModelError
from mmvideo.commands import main
from mmvideo.farm.chunk import read_status, run_chunk, status_path
from mmvideo.farm.executors import RayExecutor, Task
from mmvideo.farm.merge import merge
from mmvideo.farm.plan import load_plan, make_plan, save_plan
from mmvideo.farm.scan import scan_video
from mmvideo.farm.swap import lookahead_frames, resolve_settings, run_job

SETS = {"threads": 1, "codec": "ffv1", "batch_size": 4}
CREATED = "2026-11-26T00:00:00Z"


@pytest.fixture(scope="module")
def media(tmp_path_factory, data_dir, tiny_checkpoint, other_tiny_checkpoint):
    root = tmp_path_factory.mktemp("farm")
    return {
        "root": root,
        "clip": first_frames(data_dir / "talking_head_turn_01.mp4", root / "clip.mp4"),
        "source": data_dir / "id_obama_01.jpg",
        "model": tiny_checkpoint,
        "other_model": other_tiny_checkpoint,
    }


def _plan(media, job: Path, chunks: int = 2, model: str = "model"):
    settings = resolve_settings("fast", media[model], SETS)
    # One planning time for every job here, so chunk files of different jobs are comparable.
    plan = make_plan(job, media["clip"], media["source"], settings, chunks=chunks, created=CREATED)
    save_plan(plan, job)
    return plan


def _frames(path: Path) -> list[tuple[int, np.ndarray]]:
    with av.open(str(path)) as c:
        return [(f.pts, f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]


def _audio(path: Path) -> tuple[list[float], list[bytes]]:
    """Audio packet times from the file's origin (Matroska shifts negative priming) and payloads."""
    origin = scan_video(path).origin
    audio = packets(path, "audio")
    return [float(t) - origin for _, t in audio], [payload for payload, _ in audio]


def _tags(path: Path) -> dict[str, str]:
    with av.open(str(path)) as c:
        return {k.lower(): v for k, v in c.metadata.items()}


def _assert_same_video(a: Path, b: Path) -> None:
    fa, fb = _frames(a), _frames(b)
    assert len(fa) == len(fb) == 12
    assert [p for p, _ in fa] == [p for p, _ in fb]
    for i, ((_, x), (_, y)) in enumerate(zip(fa, fb, strict=True)):
        assert np.array_equal(x, y), f"frame {i} differs by up to {np.abs(x.astype(int) - y).max()}"


@pytest.fixture(scope="module")
def finished(media):
    """A 2-chunk job run chunk by chunk and merged, plus a single run of the whole clip."""
    job = media["root"] / "job" / "job.json"
    plan = _plan(media, job)
    results = [run_chunk(job, i) for i in range(2)]
    merged = merge(job, media["root"] / "merged.mkv")
    single = media["root"] / "single.mkv"
    run_job(
        # a plain swap of the whole clip: with its audio, which chunks leave to the merge
        dict(plan.jobs[0], start=0, stop=None, warmup=0, output=str(single), copy_streams=True),
        plan.settings.config,
    )
    return {
        "job": job,
        "plan": plan,
        "results": results,
        "merged": Path(merged.output),
        "single": single,
    }


def test_chunked_and_merged_equals_single_run(media, finished):
    plan = finished["plan"]
    # cut on the generator batch (4): the chunks batch their faces as the single run does
    assert [(c.start, c.end) for c in plan.chunks] == [(0, 8), (8, 12)]
    assert plan.chunks[1].decode_start == 0  # the warm-up covers the whole first chunk
    assert [r.frames for r in finished["results"]] == [8, 4]
    _assert_same_video(finished["merged"], finished["single"])
    # the audio is the source's, muxed once, packet for packet
    (merged_times, merged_data), (source_times, source_data) = (
        _audio(finished["merged"]),
        _audio(media["clip"]),
    )
    assert merged_data == source_data
    # the provenance tag the pipeline wrote into the chunks survives the merge
    merged_tags, single_tags = _tags(finished["merged"]), _tags(finished["single"])
    assert CREATED in merged_tags["comment"] and merged_tags["comment"] == single_tags["comment"]
    assert merged_times == pytest.approx(source_times, abs=1e-3)  # Matroska stores milliseconds
    # a rerun skips finished chunks without touching them
    before = status_path(finished["job"], 0).stat().st_mtime_ns
    assert run_chunk(finished["job"], 0).skipped
    assert status_path(finished["job"], 0).stat().st_mtime_ns == before


def test_rts_chunks_look_ahead_and_merge_to_a_single_run(media):
    """With RTS smoothing (the quality preset) each chunk analyses frames past its end, so the
    backward pass near a cut sees what a single run sees: merged output equals a single run."""
    root = media["root"] / "rts"
    job = root / "job.json"
    settings = resolve_settings("quality", media["model"], SETS)
    plan = make_plan(job, media["clip"], media["source"], settings, chunks=2, created=CREATED)
    save_plan(plan, job)
    assert plan.lookahead == lookahead_frames(settings.config) > 0
    assert [j["lookahead"] for j in plan.jobs] == [plan.lookahead] * 2
    for i in range(2):
        run_chunk(job, i)
    merged = merge(job, root / "merged.mkv")
    single = root / "single.mkv"
    whole = dict(plan.jobs[0], start=0, stop=None, warmup=0, lookahead=0, copy_streams=True)
    run_job(dict(whole, output=str(single)), plan.settings.config)
    _assert_same_video(Path(merged.output), single)
    # without the look-ahead the first chunk's last frames come out otherwise
    blind = root / "blind.mkv"
    run_job(dict(plan.jobs[0], lookahead=0, output=str(blind)), plan.settings.config)
    end = plan.chunks[0].end
    assert any(
        not np.array_equal(a, b)
        for (_, a), (_, b) in zip(_frames(blind), _frames(single)[:end], strict=True)
    )


def test_merge_equals_single_run_when_a_chunk_would_end_in_a_lone_batch(media):
    """The tester's case: batch 3 and 3 chunks of 4 frames put each chunk's last frame alone in
    a generator batch, which torch computes with other kernels than a batch of 3 (1e-6 apart: one
    level on a few pixels of frames 3 and 11). The plan cuts on the batch instead."""
    root = media["root"] / "lone"
    job = root / "job.json"
    settings = resolve_settings("fast", media["model"], dict(SETS, batch_size=3))
    plan = make_plan(job, media["clip"], media["source"], settings, chunks=3, created=CREATED)
    save_plan(plan, job)
    for span in plan.chunks:
        run_chunk(job, span.index)
    merged = merge(job, root / "merged.mkv")
    single = root / "single.mkv"
    whole = dict(plan.jobs[0], start=0, stop=None, warmup=0, lookahead=0, copy_streams=True)
    run_job(dict(whole, output=str(single)), plan.settings.config)
    _assert_same_video(Path(merged.output), single)
    assert [(c.start, c.end) for c in plan.chunks] == [(0, 3), (3, 9), (9, 12)]


def test_merge_refuses_a_clip_edited_after_planning(media, finished, tmp_path):
    """An edit that keeps the size and the mtime passes a node's fast check only where it
    misses the samples; merge hashes the whole clip, so it never mixes two plates."""
    clip, out = media["clip"], tmp_path / "out.mkv"
    original, stat = clip.read_bytes(), clip.stat()
    edited = bytearray(original)
    edited[len(edited) // 2] ^= 0xFF
    try:
        clip.write_bytes(bytes(edited))
        os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
        with pytest.raises(InvalidInput, match="clip.mp4: input clip changed.*SHA-256"):
            merge(finished["job"], out)
    finally:
        clip.write_bytes(original)
        os.utime(clip, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert not out.exists()


def test_merge_refuses_missing_chunk_or_other_model_or_preset(media, finished, tmp_path):
    job, out = finished["job"], tmp_path / "out.mkv"
    status1 = status_path(job, 1)
    saved = status1.read_text()
    try:
        status1.unlink()
        with pytest.raises(MissingInput, match="chunk 1 is not finished"):
            merge(job, out)
        data = json.loads(saved)
        status1.write_text(json.dumps(dict(data, checkpoint_sha256="0" * 64)))
        with pytest.raises(ModelError, match="chunk 1 was made with checkpoint 000000000000"):
            merge(job, out)
        status1.write_text(json.dumps(dict(data, config_sha256="1" * 64)))
        with pytest.raises(InvalidInput, match="chunk 1 was made with another preset"):
            merge(job, out)
    finally:
        status1.write_text(saved)
    chunk = Path(finished["plan"].chunks[0].output)
    original = chunk.read_bytes()
    try:
        chunk.write_bytes(original[: len(original) // 2])
        with pytest.raises(InvalidInput, match="chunk 0 file changed"):
            merge(job, out)
    finally:
        chunk.write_bytes(original)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_run_chunk_refuses_a_checkpoint_that_changed_since_planning(media, tmp_path):
    model = tmp_path / "model.pt"
    model.write_bytes(media["model"].read_bytes())
    settings = resolve_settings("fast", model, SETS)
    job = tmp_path / "job.json"
    save_plan(make_plan(job, media["clip"], media["source"], settings, chunks=2), job)
    model.write_bytes(media["other_model"].read_bytes())
    with pytest.raises(ModelError, match="differs from the plan's"):
        run_chunk(job, 0)
    assert read_status(job, 0) is None and not Path(load_plan(job).chunks[0].output).exists()


def _cli(*args: str, **kwargs) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "mmvideo", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own process group, so the kill takes its workers too
        **kwargs,
    )


@pytest.mark.slow
def test_job_killed_mid_run_resumes_to_identical_output(media, finished, tmp_path):
    job = tmp_path / "job.json"
    plan = _plan(media, job)
    proc = _cli("run-chunk", str(job), "--executor", "local", "--workers", "1")
    deadline = time.monotonic() + 120
    while (status := read_status(job, 0)) is None or status.state != "done":
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "chunk 0 never finished"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the node dies while chunk 1 runs
    proc.wait()
    status1 = read_status(job, 1)
    assert status1 is None or status1.state == "running"
    finished_chunk = Path(plan.chunks[0].output).read_bytes()

    resumed = _cli("run-chunk", str(job), "--executor", "local", "--workers", "1")
    output = resumed.communicate(timeout=180)[0]
    assert resumed.returncode == 0, output
    assert "chunk 0" not in output and "chunk 1: ok" in output  # only the unfinished chunk ran
    assert Path(plan.chunks[0].output).read_bytes() == finished_chunk
    assert not [p for p in job.with_name("job.parts").iterdir() if p.name.startswith(".")]
    merge(job, tmp_path / "resumed.mkv")
    _assert_same_video(tmp_path / "resumed.mkv", finished["merged"])


def test_require_all_fails_run_chunk_and_merge_like_swap(media, finished, tmp_path, capsys):
    """A chunk's status records the written frames of swapped tracks it left unswapped (as the
    swap summary does); with --require-all, run-chunk and merge exit 6 naming them, after doing
    their work (the merged file is kept), as `swap --require-all` does."""
    job = finished["job"]
    path = status_path(job, 1)
    original = path.read_text()
    assert isinstance(read_status(job, 1).unswapped, dict)  # recorded by the real run
    data = json.loads(original)
    data["unswapped"] = {"1": [{"first": 9, "last": 10, "reason": "no detection"}]}
    try:
        path.write_text(json.dumps(data))  # what a chunk with a 2-frame hole records
        assert main(["run-chunk", str(job), "--index", "1", "--require-all"]) == 6
        err = capsys.readouterr().err
        assert "2 frames of swapped tracks not swapped (chunk 1: track 1: 9-10 no detection)" in err
        out = tmp_path / "merged.mkv"
        assert main(["merge", str(job), "--out", str(out), "--require-all"]) == 6
        assert out.is_file() and "chunk 1: track 1: 9-10" in capsys.readouterr().err
        assert main(["merge", str(job), "--out", str(out)]) == 0  # without the flag: fine
        assert main(["run-chunk", str(job), "--index", "0", "--require-all"]) == 0
    finally:
        path.write_text(original)


def test_batch_finishes_good_clips_and_fails_for_the_broken_one(media, finished, tmp_path, capsys):
    (tmp_path / "broken.mp4").write_bytes(b"\x00not a video" * 100)
    batch = tmp_path / "jobs.toml"
    batch.write_text(
        f"""
[defaults]
preset = "fast"
checkpoint = "{media["model"]}"
source = "{media["source"]}"
overrides = {{ threads = 1, codec = "ffv1", batch_size = 4 }}

[[clip]]
name = "good"
input = "{media["clip"]}"
output = "out/good.mkv"

[[clip]]
name = "broken"
input = "broken.mp4"
output = "out/broken.mkv"
"""
    )
    assert main(["batch", str(batch), "--workers", "1"]) != 0
    out = capsys.readouterr()
    assert "broken" in out.err and "1 of 2 clips failed" in out.err
    rows = {line.split()[0]: line.split() for line in out.out.splitlines()}
    assert rows["good"][1:4] == ["done", "12", "1"] and rows["broken"][1] == "failed"
    assert not (tmp_path / "out" / "broken.mkv").exists()
    _assert_same_video(tmp_path / "out" / "good.mkv", finished["single"])
    # rerun: the merged clip is recognised as finished and skipped
    assert main(["batch", str(batch), "--workers", "1"]) != 0
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()}
    assert rows["good"][1] == "skipped" and rows["broken"][1] == "failed"


def test_batch_require_all_exits_6_when_a_merged_clip_left_faces_unswapped(media, tmp_path, capsys):
    """`batch --require-all` means what it means for swap, run-chunk and merge: the clip is
    finished and merged, then exit 6 naming clip, chunk, track and ranges; without the flag, or
    with nothing unswapped, exit 0."""
    batch = tmp_path / "jobs.toml"
    batch.write_text(
        f"""
[[clip]]
name = "good"
preset = "fast"
checkpoint = "{media["model"]}"
source = "{media["source"]}"
input = "{media["clip"]}"
output = "out/good.mkv"
chunks = 2
overrides = {{ threads = 1, codec = "ffv1", batch_size = 4 }}
"""
    )
    assert main(["batch", str(batch), "--workers", "1", "--require-all"]) == 0  # all swapped
    path = status_path(tmp_path / "jobs.farm" / "good.json", 1)
    data = json.loads(path.read_text())
    data["unswapped"] = {"1": [{"first": 9, "last": 10, "reason": "no detection"}]}
    path.write_text(json.dumps(data))  # what a chunk with a 2-frame hole records
    capsys.readouterr()
    assert main(["batch", str(batch), "--workers", "1", "--require-all"]) == 6
    out = capsys.readouterr()
    assert "good" in out.out and "skipped" in out.out  # the merged clip is kept
    assert (
        "2 frames of swapped tracks not swapped (good: chunk 1: track 1: 9-10 no detection)"
        in out.err
    )
    assert main(["batch", str(batch), "--workers", "1"]) == 0


@pytest.fixture(scope="module")
def local_ray():
    ray = pytest.importorskip("ray")
    started = not ray.is_initialized()
    if started:
        # Workers import this module's helpers by name, so they need the tests folder on their path.
        env = {
            "PYTHONPATH": os.pathsep.join(
                [str(Path(__file__).parent), os.environ.get("PYTHONPATH", "")]
            )
        }
        ray.init(
            num_cpus=2,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env={"env_vars": env},
        )
    yield ray
    if started:
        ray.shutdown()


@pytest.mark.slow
def test_ray_executor_gives_the_local_result(media, finished, local_ray, tmp_path):
    job = tmp_path / "job.json"
    plan = _plan(media, job)
    tasks = [
        Task(run_chunk, (str(job), s.index), f"chunk {s.index}", s.frames) for s in plan.chunks
    ]
    outcomes = RayExecutor(retries=1).run(tasks)
    assert [o.ok for o in outcomes] == [True, True], [o.error for o in outcomes]
    merge(job, tmp_path / "ray.mkv")
    _assert_same_video(tmp_path / "ray.mkv", finished["merged"])
    for a, b in zip(plan.chunks, finished["plan"].chunks, strict=True):
        assert Path(a.output).read_bytes() == Path(b.output).read_bytes()


def _fails(x: int) -> int:
    if x == 1:
        raise InvalidInput("clip 1: broken on purpose")
    return x * 10


def test_ray_executor_keeps_order_and_survives_a_failing_task(local_ray):
    tasks = [Task(_fails, (i,), f"t{i}") for i in range(4)]
    outcomes = RayExecutor().run(tasks)
    assert [o.label for o in outcomes] == ["t0", "t1", "t2", "t3"]
    assert [o.value for o in outcomes if o.ok] == [0, 20, 30]
    assert outcomes[1].error == "clip 1: broken on purpose"


def test_chunks_write_the_matte_of_a_single_run_with_its_frame_numbers(media, tmp_path):
    """``--matte-out`` in a farm job: each chunk writes its own frames into one sequence, numbered
    as the clip's frames, equal to what a single run writes."""
    (tmp_path / "chunks").mkdir()
    (tmp_path / "single").mkdir()
    matte = {"matte_out": str(tmp_path / "chunks" / "matte.%04d.png")}
    settings = resolve_settings("fast", media["model"], {**SETS, **matte})
    job = tmp_path / "job.json"
    plan = make_plan(job, media["clip"], media["source"], settings, chunks=2, created=CREATED)
    save_plan(plan, job)
    for i in range(2):
        run_chunk(job, i)
    config = dict(plan.settings.config)
    config["encode"] = dict(config["encode"], matte_out=str(tmp_path / "single" / "m.%04d.png"))
    single = dict(plan.jobs[0], start=0, stop=None, warmup=0, output=str(tmp_path / "s.mkv"))
    run_job(single, config)
    names = sorted(p.name for p in (tmp_path / "chunks").iterdir())
    assert names == [f"matte.{n:04d}.png" for n in range(12)]
    for n in range(12):
        a = cv2.imread(str(tmp_path / "chunks" / f"matte.{n:04d}.png"), cv2.IMREAD_UNCHANGED)
        b = cv2.imread(str(tmp_path / "single" / f"m.{n:04d}.png"), cv2.IMREAD_UNCHANGED)
        assert a.max() > 0 and np.array_equal(a, b), f"frame {n}"
