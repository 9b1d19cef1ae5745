"""Render-farm planning, manifests and batch files: the parts that need no model."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from magicmask.checkpoint import load_checkpoint
from mmcore.errors import InvalidInput, MissingInput, OutputError
from mmcore.hashing import file_sha256
from mmvideo.commands import main
from mmvideo.config import config_to_dict, load_config
from mmvideo.farm.batch import ClipOutcome, format_summary, load_batch
from mmvideo.farm.chunk import read_status, run_chunk
from mmvideo.farm.plan import (
    SAMPLE_BYTES,
    check_inputs,
    chunk_container,
    chunk_spans,
    codec_alignment,
    default_alignment,
    load_plan,
    make_plan,
    parts_dir,
    sample_sha256,
    save_plan,
    split_frames,
)
from mmvideo.farm.swap import (
    SwapSettings,
    lookahead_frames,
    resolve_settings,
    settle_frames,
)
from mmvideo.pipeline import group_ends
from mmvideo.smooth import smooth_series

CLIP = "talking_head_turn_01.mp4"  # 224×224, 128 frames at 25 fps
SOURCE = "id_obama_01.jpg"


@pytest.mark.parametrize(
    "total, kwargs, expected",
    [
        (10, {"chunks": 1}, [(0, 10)]),
        (10, {"chunks": 2}, [(0, 5), (5, 10)]),
        (10, {"chunks": 3}, [(0, 3), (3, 7), (7, 10)]),
        (10, {"chunk_frames": 4}, [(0, 4), (4, 8), (8, 10)]),
        (10, {"chunk_frames": 10}, [(0, 10)]),
        (100, {"chunks": 3, "align": 12}, [(0, 36), (36, 72), (72, 100)]),
        (100, {"chunk_frames": 30, "align": 12}, [(0, 36), (36, 72), (72, 100)]),
        (20, {"chunks": 4, "align": 12}, [(0, 12), (12, 20)]),  # alignment merges parts
        (3, {"chunks": 8}, [(0, 1), (1, 2), (2, 3)]),  # never an empty chunk
    ],
)
def test_split_frames(total, kwargs, expected):
    ranges = split_frames(total, **kwargs)
    assert ranges == expected
    assert ranges[0][0] == 0 and ranges[-1][1] == total
    assert all(a[1] == b[0] for a, b in itertools.pairwise(ranges))


@pytest.mark.parametrize("kwargs", [{"chunks": 0}, {"chunk_frames": 0}])
def test_split_frames_refuses_nonsense(kwargs):
    with pytest.raises(InvalidInput):
        split_frames(10, **kwargs)


@pytest.mark.parametrize(
    "codec, gop, align",
    [
        ("ffv1", 12, 1),
        ("prores_ks", None, 1),
        ("libx264", None, 1),
        ("libx264", 48, 48),
        ("hevc_nvenc", 0, 1),
    ],
)
def test_codec_alignment(codec, gop, align):
    assert codec_alignment(codec, gop) == align


@pytest.mark.parametrize(
    "codec, ext",
    [("libx264", "mp4"), ("ffv1", "mp4"), ("prores_ks", "mov"), ("utvideo", "nut")],
)
def test_chunk_container_keeps_codec_and_time_base(codec, ext):
    assert chunk_container(codec) == ext


def test_warmup_starts_on_the_detector_cadence(tmp_path):
    spans = chunk_spans(
        [(0, 43), (43, 85), (85, 128)], warmup=25, cadence=10, parts=tmp_path, ext="mp4"
    )
    assert [(s.decode_start, s.start, s.end) for s in spans] == [
        (0, 0, 43),
        (10, 43, 85),
        (60, 85, 128),
    ]
    assert all(s.start - s.decode_start >= min(25, s.start) for s in spans)
    assert spans[1].output == str(tmp_path / "chunk_0001.mp4")


@pytest.fixture
def settings(tiny_checkpoint) -> SwapSettings:
    return resolve_settings("fast", tiny_checkpoint, {"codec": "ffv1"})


def test_plan_carries_everything_a_node_needs(data_dir, tmp_path, settings):
    job = tmp_path / "job.json"
    plan = make_plan(
        job, data_dir / CLIP, data_dir / SOURCE, settings, chunks=3, warmup_seconds=1.0
    )
    save_plan(plan, job)
    data = json.loads(job.read_text())
    assert data["frames"] == 128 and data["warmup"] == 25 and len(data["chunks"]) == 3
    assert data["settings"]["checkpoint_sha256"] == file_sha256(settings.checkpoint)
    assert data["settings"]["config"]["encode"]["codec"] == "ffv1"
    chunk = data["chunks"][1]
    # resolved: every node must reach the same files whatever links the planner's path went through
    assert chunk["job"]["input"] == str((data_dir / CLIP).resolve())
    assert chunk["job"]["source"] == str((data_dir / SOURCE).resolve())
    assert (chunk["job"]["start"], chunk["job"]["stop"]) == (
        chunk["start"],
        chunk["end"],
    )
    assert chunk["job"]["warmup"] == chunk["start"] - chunk["decode_start"] >= 25
    # the SwapJob carries the checkpoint API's digest, as `mmvideo swap` does
    assert chunk["job"]["checkpoint_sha256"] == load_checkpoint(settings.checkpoint).sha256
    assert chunk["job"]["output"] == chunk["output"] and chunk["output"].startswith(
        str(parts_dir(job))
    )
    assert load_plan(job) == plan
    assert plan.chunk_fingerprint(0) != plan.chunk_fingerprint(1)


def test_plan_by_seconds(data_dir, tmp_path, settings):
    plan = make_plan(
        tmp_path / "j.json",
        data_dir / CLIP,
        data_dir / SOURCE,
        settings,
        chunk_seconds=2.0,
        align=10,
    )
    assert [(c.start, c.end) for c in plan.chunks] == [(0, 50), (50, 100), (100, 128)]


def test_plan_refuses_missing_files(data_dir, tmp_path, settings):
    with pytest.raises(MissingInput, match="nope.mp4"):
        make_plan(
            tmp_path / "j.json",
            data_dir / "nope.mp4",
            data_dir / SOURCE,
            settings,
            chunks=2,
        )
    with pytest.raises(MissingInput, match="source image"):
        make_plan(
            tmp_path / "j.json",
            data_dir / CLIP,
            tmp_path / "actor.jpg",
            settings,
            chunks=2,
        )
    with pytest.raises(MissingInput, match="checkpoint"):
        resolve_settings("fast", tmp_path / "missing.pt")


def test_a_plan_from_before_the_chroma_key_is_refused_as_an_older_version(
    data_dir, tmp_path, settings
):
    job = tmp_path / "job.json"
    save_plan(make_plan(job, data_dir / CLIP, data_dir / SOURCE, settings, chunks=2), job)
    data = json.loads(job.read_text())
    del data["settings"]["config"]["compose"]["chroma_from_target"]
    data["version"] = 3
    job.write_text(json.dumps(data))
    with pytest.raises(InvalidInput, match="version 4 .re-plan it"):
        load_plan(job)


def test_load_plan_errors(tmp_path):
    with pytest.raises(MissingInput, match="mmvideo plan"):
        load_plan(tmp_path / "job.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(InvalidInput, match="bad.json"):
        load_plan(tmp_path / "bad.json")
    (tmp_path / "other.json").write_text('{"version": 99}')
    with pytest.raises(InvalidInput, match="version"):
        load_plan(tmp_path / "other.json")


def test_batch_file_paths_defaults_and_names(tmp_path):
    batch = tmp_path / "jobs.toml"
    batch.write_text(
        """
[defaults]
preset = "fast"
chunks = 2
overrides = { codec = "ffv1" }

[[clip]]
input = "plates/a.mp4"
source = "actors/jane.jpg"
output = "out/a.mkv"

[[clip]]
name = "second"
input = "/abs/b.mp4"
source = "actors/jane.jpg"
output = "out/b.mkv"
preset = "quality"
chunk_seconds = 5.0
chunks = 1
overrides = { crf = 20 }
"""
    )
    specs, workdir = load_batch(batch)
    assert workdir == tmp_path / "jobs.farm"
    a, b = specs
    assert (a.name, a.input, a.output, a.preset, a.chunks) == (
        "a",
        str(tmp_path / "plates/a.mp4"),
        str(tmp_path / "out/a.mkv"),
        "fast",
        2,
    )
    assert a.overrides == {"codec": "ffv1"} and b.overrides == {
        "codec": "ffv1",
        "crf": 20,
    }
    assert (b.name, b.input, b.preset, b.chunk_seconds) == (
        "second",
        "/abs/b.mp4",
        "quality",
        5.0,
    )


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "no \\[\\[clip\\]\\]"),
        ('[[clip]]\ninput = "a.mp4"\nsource = "s.jpg"', "missing output"),
        (
            '[[clip]]\ninput = "a.mp4"\nsource = "s.jpg"\noutput = "o.mp4"\ncolour = 1',
            "unknown keys colour",
        ),
        (
            '[[clip]]\ninput = "a.mp4"\nsource = "s.jpg"\noutput = "o.mp4"\n' * 2,
            "unique, repeated: a",
        ),
        ("[[clip]\n", "not a readable TOML"),
    ],
)
def test_batch_file_errors_name_the_file(tmp_path, text, message):
    batch = tmp_path / "jobs.toml"
    batch.write_text(text)
    with pytest.raises(InvalidInput, match=message):
        load_batch(batch)


def test_summary_table_lists_every_clip_and_the_failure():
    table = format_summary(
        [
            ClipOutcome("shot010", "done", "out/a.mkv", frames=128, chunks=2, seconds=3.25),
            ClipOutcome("broken", "failed", "out/b.mkv", error="b.mp4: no such file"),
        ]
    )
    lines = table.splitlines()
    assert lines[0].split() == [
        "clip",
        "state",
        "frames",
        "chunks",
        "seconds",
        "output",
        "/",
        "error",
    ]
    assert lines[1].split() == ["shot010", "done", "128", "2", "3.2", "out/a.mkv"]
    assert "broken" in lines[2] and "failed" in lines[2] and "b.mp4: no such file" in lines[2]
    assert lines[-1] == "2 clips: 1 ok, 1 failed"


@pytest.mark.parametrize("preset", ["fast", "balanced"])
def test_default_warmup_makes_chunk_geometry_bit_identical(preset):
    """The smoothed landmarks/depth a chunk sees after its warm-up equal a single run's (float32)."""
    config = config_to_dict(load_config(preset))
    warmup = settle_frames(config)
    assert 20 < warmup < 200
    rng = np.random.default_rng(0)
    frames, scale = (
        4 * warmup,
        150.0,
    )  # scale: face size in pixels, as smooth_track uses it
    truth = np.cumsum(rng.normal(0, 0.5, (frames, 136)), axis=0) + 300  # wandering landmarks
    measured = truth + rng.normal(0, 1.5, truth.shape)
    observed = rng.random(frames) > 0.1  # frames without a face are predicted only
    start = 3 * warmup
    observed[start - warmup] = True  # a chunk's track begins at a detection
    smooth = config["smooth"]
    for process, measurement in [
        (smooth["process_noise"], smooth["measurement_noise"]),
        (smooth["depth_process_noise"], smooth["depth_measurement_noise"]),
    ]:

        def run(first, process=process, measurement=measurement):
            out = smooth_series(
                measured[first:],
                observed[first:],
                process * scale,
                measurement * scale,
                "kalman",
            )
            return out[start - first :].astype(np.float32)

        assert np.array_equal(run(0), run(start - warmup))
        assert not np.array_equal(run(0), run(start - warmup // 4))  # a short warm-up is not enough


def test_default_lookahead_makes_rts_geometry_bit_identical():
    """RTS-smoothed landmarks/depth before a chunk's end equal a single run's (float32) when the
    analysis goes on ``lookahead_frames`` past it; Kalman needs none."""
    assert lookahead_frames(config_to_dict(load_config("balanced"))) == 0
    config = config_to_dict(load_config("quality"))
    lookahead = lookahead_frames(config)
    assert 20 < lookahead < 200
    rng = np.random.default_rng(1)
    frames, scale = 4 * lookahead, 150.0
    truth = np.cumsum(rng.normal(0, 0.5, (frames, 136)), axis=0) + 300
    measured = truth + rng.normal(0, 1.5, truth.shape)
    observed = rng.random(frames) > 0.1
    stop = frames // 2
    smooth = config["smooth"]
    for process, measurement in [
        (smooth["process_noise"], smooth["measurement_noise"]),
        (smooth["depth_process_noise"], smooth["depth_measurement_noise"]),
    ]:

        def run(end, process=process, measurement=measurement):
            out = smooth_series(
                measured[:end],
                observed[:end],
                process * scale,
                measurement * scale,
                "rts",
            )
            return out[:stop].astype(np.float32)

        assert np.array_equal(run(frames), run(stop + lookahead))
        assert not np.array_equal(run(frames), run(stop + lookahead // 4))


def test_plan_sets_the_lookahead_rts_needs(data_dir, tmp_path):
    settings = SwapSettings(
        "quality", config_to_dict(load_config("quality")), None, "0" * 64, "1" * 64
    )
    plan = make_plan(tmp_path / "j.json", data_dir / CLIP, data_dir / SOURCE, settings, chunks=2)
    assert plan.lookahead == lookahead_frames(settings.config)
    assert all(job["lookahead"] == plan.lookahead for job in plan.jobs)
    one = make_plan(tmp_path / "k.json", data_dir / CLIP, data_dir / SOURCE, settings, chunks=1)
    assert one.lookahead == 0 and one.jobs[0]["lookahead"] == 0
    save_plan(plan, tmp_path / "j.json")
    assert load_plan(tmp_path / "j.json").lookahead == plan.lookahead


def test_plan_uses_the_filters_warmup_by_default(data_dir, tmp_path, settings):
    plan = make_plan(tmp_path / "j.json", data_dir / CLIP, data_dir / SOURCE, settings, chunks=2)
    assert plan.warmup == settle_frames(settings.config)
    assert (
        plan.chunks[1].decode_start == max(0, 64 - plan.warmup) // 10 * 10
    )  # fast: detect every 10


def test_plan_command_takes_the_swap_config_flags(data_dir, tmp_path, tiny_checkpoint, capsys):
    job = tmp_path / "job.json"
    args = ["plan", "--in", str(data_dir / CLIP), "--source", str(data_dir / SOURCE), "--out", str(job),
            "--chunks", "2", "--preset", "fast", "--checkpoint", str(tiny_checkpoint), "--codec", "ffv1",
            "--threads", "1"]  # fmt: skip
    assert main(args) == 0
    assert "128 frames in 2 chunks" in capsys.readouterr().out
    config = load_plan(job).settings.config
    assert config["encode"]["codec"] == "ffv1" and config["generate"]["threads"] == 1
    assert main([*args[:-4], "--chunk-seconds", "2"]) == 3  # not both
    assert "not both" in capsys.readouterr().err


def test_default_cuts_fall_on_the_generator_batch_and_the_gop(data_dir, tmp_path, tiny_checkpoint):
    """A chunk that ends inside a generator batch would batch its last faces differently from a
    single run (see test_farm_flow: the merge identity with a lone last batch)."""
    settings = resolve_settings("fast", tiny_checkpoint, {"codec": "ffv1", "batch_size": 6})
    plan = make_plan(tmp_path / "j.json", data_dir / CLIP, data_dir / SOURCE, settings, chunks=3)
    assert plan.align == 6 and all(c.start % 6 == 0 for c in plan.chunks)
    config = {"encode": {"codec": "libx264", "gop": 8}, "generate": {"batch_size": 6}}
    assert default_alignment(config) == 24


# -- the job file is untrusted input -----------------------------------------------------------


@pytest.fixture
def job(data_dir, tmp_path, settings):
    """A saved 2-chunk plan of a copy of the clip, and what the chunks must never touch."""
    clip, source = tmp_path / "clip.mp4", tmp_path / "actor.jpg"
    clip.write_bytes((data_dir / CLIP).read_bytes())
    source.write_bytes((data_dir / SOURCE).read_bytes())
    path = tmp_path / "jobs" / "job.json"
    save_plan(make_plan(path, clip, source, settings, chunks=2), path)
    return path


def _edit(job, change) -> None:
    data = json.loads(job.read_text())
    change(data)
    job.write_text(json.dumps(data))


def _set_output(index: int, output: str):
    def change(data):
        data["chunks"][index]["output"] = output
        data["chunks"][index]["job"]["output"] = output  # a consistent edit, not a typo

    return change


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda d: d["chunks"][0].update(start="abc"), r"chunks\[0\]\.start: expected an integer, got 'abc'"),
        (lambda d: d.pop("input_sha256"), r"input_sha256: missing"),
        (lambda d: d.update(settings=[]), r"settings: expected an object, got a list"),
        (lambda d: d.update(chunks={}), r"chunks: expected a list, got an object"),
        (lambda d: d["chunks"][1].update(decode_start=-5), r"chunks\[1\]\.decode_start: must be 0 to start"),
        (lambda d: d["chunks"][1].update(end=1000), r"chunks\[1\]\.end: must be after start"),
        (lambda d: d["chunks"][1].update(start=True), r"chunks\[1\]\.start: expected an integer, got True"),
        (lambda d: d.update(fps="25"), r"fps: expected a number, got '25'"),
        (lambda d: d.update(input_sha256="x"), r"input_sha256: expected a SHA-256"),
        (lambda d: d["settings"]["config"]["generate"].update(batch_size="8"),
         r"settings\.config\.generate\.batch_size: expected an integer"),
        (lambda d: d["settings"]["config"]["smooth"].update(smoothing="median"),
         r"settings\.config\.smooth\.smoothing: expected one of none, kalman, rts"),
        (lambda d: d["settings"]["config"].pop("encode"), r"settings\.config\.encode: missing"),
        (lambda d: d["chunks"][0].update(surprise=1), r"chunks\[0\]\.surprise: unknown key"),
        (lambda d: d["chunks"][1]["job"].update(warmup=0), r"chunks\[1\]\.job\.warmup: 0 does not match"),
        (lambda d: d["chunks"][0].update(job=[]), r"chunks\[0\]\.job: expected an object"),
        (lambda d: [x.update(source="actor.jpg") for x in [d] + [c["job"] for c in d["chunks"]]],
         r"source: 'actor.jpg' is not absolute"),
    ],
)  # fmt: skip
def test_load_plan_names_the_bad_key(job, change, message):
    _edit(job, change)
    with pytest.raises(InvalidInput, match=message):
        load_plan(job)


def test_run_chunk_with_a_broken_job_file_says_one_line(job, capsys):
    _edit(job, lambda d: d["chunks"][0].update(start="abc"))
    assert main(["run-chunk", str(job), "--index", "0"]) == 3
    err = capsys.readouterr().err
    assert "chunks[0].start: expected an integer" in err and str(job) in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


@pytest.mark.parametrize("where", ["dotdot", "absolute", "symlink", "input", "status"])
def test_run_chunk_refuses_chunk_outputs_outside_the_parts_folder(job, where):
    """A job file pointing a chunk at another file must not remove or write anything."""
    other = job.parent.parent / "other"
    other.mkdir()
    precious = other / "precious.mp4"
    precious.write_bytes(b"precious")
    # what a restart clears beside a chunk's output
    beside = other / ".precious.mp4.1234.partial"
    beside.write_bytes(b"beside")
    parts = parts_dir(job)
    parts.mkdir()
    plan = load_plan(job)
    clip = plan.input
    target, message = {
        "dotdot": (f"{parts}/../../other/precious.mp4", "not a file in the job's parts folder"),
        "absolute": (str(precious), "not a file in the job's parts folder"),
        "symlink": (str(parts / "chunk_0000.mp4"), "not a file in the job's parts folder"),
        "input": (str(parts / "clip.mp4"), "is the input clip"),
        "status": (str(parts / "chunk_0001.status.json"), "reserved"),
    }[where]  # fmt: skip
    if where == "symlink":
        (parts / "chunk_0000.mp4").symlink_to(precious)
    if where == "input":
        (parts / "clip.mp4").hardlink_to(clip)
    _edit(job, _set_output(0, target))
    before = {p: p.read_bytes() for p in (precious, beside, Path(clip))}
    with pytest.raises(InvalidInput, match=re.escape("chunks[0].output") + ".*" + message):
        run_chunk(job, 0)
    assert {p: p.read_bytes() for p in before} == before
    assert read_status(job, 0) is None


@pytest.mark.parametrize("what", ["input", "source", "checkpoint", "hardlink"])
def test_plan_refuses_to_overwrite_a_file_it_reads(job, what, settings):
    plan = load_plan(job)
    clip, source = Path(plan.input), Path(plan.source)
    out = {
        "input": clip,
        "source": source,
        "checkpoint": Path(settings.checkpoint),
        "hardlink": job.parent / "link.json",
    }[what]
    if what == "hardlink":
        out.hardlink_to(clip)  # another name for the same file
    before = out.read_bytes()
    with pytest.raises(
        OutputError, match="would overwrite the (input clip|source image|checkpoint)"
    ):
        make_plan(out, clip, source, settings, chunks=2)
    assert out.read_bytes() == before


def test_plan_command_refuses_out_as_its_input(job, tiny_checkpoint, capsys):
    clip = load_plan(job).input
    before = Path(clip).read_bytes()
    args = ["plan", "--in", clip, "--source", load_plan(job).source, "--out", clip,
            "--chunks", "2", "--preset", "fast", "--checkpoint", str(tiny_checkpoint)]  # fmt: skip
    assert main(args) == 4
    assert Path(clip).read_bytes() == before
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


# -- the clip and the photo a plan was made from ------------------------------------------------


def _same_size_edit(path: Path, offset: int) -> None:
    """Change one byte, keep the size and the mtime: what a size check alone never sees."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_run_chunk_refuses_a_same_size_edit_of_the_clip(job):
    clip = Path(load_plan(job).input)
    _same_size_edit(clip, clip.stat().st_size // 2)
    with pytest.raises(InvalidInput, match=re.escape(str(clip)) + ".*sampled SHA-256 differs"):
        run_chunk(job, 0)
    assert read_status(job, 0) is None


def test_run_chunk_refuses_an_edited_source_photo(job):
    source = Path(load_plan(job).source)
    _same_size_edit(source, 100)
    with pytest.raises(InvalidInput, match=re.escape(str(source)) + ".*source image changed"):
        run_chunk(job, 0)


def test_fast_check_hashes_a_large_clip_whole_when_its_mtime_moved(job, tmp_path):
    """A clip larger than the samples: an edit between them is found by the full SHA-256 when
    the mtime moved, and always at merge (``full``); a touched but unchanged clip passes."""
    big = tmp_path / "big.mov"
    big.write_bytes(bytes(range(256)) * (5 * SAMPLE_BYTES // 256))
    stat = big.stat()
    plan = dataclasses.replace(
        load_plan(job),
        input=str(big),
        input_size=stat.st_size,
        input_mtime_ns=stat.st_mtime_ns,
        input_sample_sha256=sample_sha256(big),
        input_sha256=file_sha256(big),
    )
    check_inputs(plan)
    os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    check_inputs(plan)  # touched, same bytes
    os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    _same_size_edit(big, SAMPLE_BYTES + 10)  # between the first and the middle sample
    # the mtime kept and the samples missed: only the full hash sees it
    check_inputs(plan)
    with pytest.raises(InvalidInput, match="big.mov: input clip changed.*SHA-256 differs"):
        check_inputs(plan, full=True)
    os.utime(big, ns=(stat.st_atime_ns, stat.st_mtime_ns + 2 * 10**9))
    with pytest.raises(InvalidInput, match="big.mov: input clip changed.*SHA-256 differs"):
        check_inputs(plan)


def _groups(faces: list[int], start: int, stop: int, batch: int) -> list[list[int]]:
    """The frames of each generator group of a run over ``[start, stop)`` (as ``render``)."""
    groups, group, n = [], [], 0
    for index in range(start, stop):
        group.append(index)
        n += faces[index]
        if group_ends(index, n, batch):
            groups.append(group)
            group, n = [], 0
    return groups + [group] if group else groups


def test_a_chunk_on_a_batch_boundary_groups_faces_as_a_single_run():
    """With several faces a frame, groups close on the face count and drift off the batch
    boundaries; blocks counted from frame 0 bring every run back onto them."""
    faces = [3, 3, 3, 0, 1, 2, 3, 3, 1] * 4
    single = _groups(faces, 0, len(faces), 8)
    for start, stop in [(8, 24), (16, 32), (24, len(faces))]:
        inside = [g for g in single if start <= g[0] < stop]
        assert _groups(faces, start, stop, 8) == inside


def test_a_status_file_of_wrong_types_means_redo_not_a_traceback(job):
    """Status files are farm input too: ``merge`` formats their digests into its messages."""
    status = parts_dir(job) / "chunk_0000.status.json"
    status.parent.mkdir()
    good = {"index": 0, "state": "done", "fingerprint": "f" * 64, "host": "h", "pid": 1,
            "checkpoint_sha256": "0" * 64, "config_sha256": "1" * 64, "started": 1.0,
            "finished": 2.0, "frames": 64, "sha256": "2" * 64, "error": None,
            "unswapped": {"1": [{"first": 3, "last": 5, "reason": "rejected"}]}}  # fmt: skip
    status.write_text(json.dumps(good))
    assert read_status(job, 0).checkpoint_sha256 == "0" * 64
    status.write_text(json.dumps(dict(good, checkpoint_sha256=5)))
    assert read_status(job, 0) is None
