"""Merge a finished job: stream-copy the chunk videos, mux the source's audio once, verify.

Nothing is re-encoded, so merging takes seconds and a lossless chunk stays bit-exact. Before
anything is written every chunk is checked against the plan (present, finished, same checkpoint,
same config, file intact); after, the merged file's frame count and timestamps are checked
against the source. The output is written to a temp file in its folder and renamed.
"""

from __future__ import annotations

import json
import logging
import subprocess
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import av

from mmcore.atomic import atomic_output, check_output, write_errors, write_json_atomic
from mmcore.errors import InvalidInput, MissingInput, ModelError, OutputError
from mmcore.hashing import file_sha256
from mmvideo.farm.chunk import read_status
from mmvideo.farm.plan import (
    JobPlan,
    check_inputs,
    load_plan,
    parts_dir,
)
from mmvideo.farm.scan import StreamScan, scan_video
from mmvideo.io.ffmpeg_backend import concat_command
from mmvideo.io.timecode import read_video_timecode

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MergeRecord:
    """``<job>.parts/merged.json``: which output a finished job produced, to skip it on rerun."""

    output: str
    sha256: str
    chunk_sha256: tuple[str, ...]
    frames: int
    seconds: float


def check_chunks(plan: JobPlan, job_path: str | Path) -> tuple[str, ...]:
    """Refuse unless every chunk finished for this plan; return the chunks' SHA-256 in order."""
    digests = []
    for span in plan.chunks:
        i = span.index
        status = read_status(job_path, i)
        if status is None or status.state != "done":
            state = "never run" if status is None else status.state
            raise MissingInput(
                f"{job_path}: chunk {i} is not finished ({state}); run `mmvideo run-chunk {job_path} --index {i}`"
            )
        if status.checkpoint_sha256 != plan.settings.checkpoint_sha256:
            raise ModelError(
                f"{span.output}: chunk {i} was made with checkpoint {status.checkpoint_sha256[:12]}…, "
                f"the plan uses {plan.settings.checkpoint_sha256[:12]}…; rerun that chunk"
            )
        if status.config_sha256 != plan.settings.config_sha256:
            raise InvalidInput(
                f"{span.output}: chunk {i} was made with another preset/config than the plan's "
                f"{plan.settings.preset!r}; rerun that chunk"
            )
        if status.fingerprint != plan.chunk_fingerprint(i):
            raise InvalidInput(
                f"{span.output}: chunk {i} was made for another input or frame range; rerun it"
            )
        if not Path(span.output).is_file():
            raise MissingInput(f"{span.output}: chunk {i} file is missing; rerun it")
        digest = file_sha256(span.output)
        if digest != status.sha256:
            raise InvalidInput(
                f"{span.output}: chunk {i} file changed since it was made (SHA-256 differs); rerun it"
            )
        digests.append(digest)
    return tuple(digests)


def merged_is_current(plan: JobPlan, job_path: str | Path, out: str | Path) -> bool:
    """True when ``out`` is the intact result of merging the plan's current chunks."""
    record = _read_record(job_path)
    out = Path(out).resolve()
    if record is None or record.output != str(out) or not out.is_file():
        return False
    try:
        current = check_chunks(plan, job_path)
    except (MissingInput, ModelError, InvalidInput):
        return False
    return current == record.chunk_sha256 and file_sha256(out) == record.sha256


def merge(job_path: str | Path, out: str | Path, overwrite: bool | None = True) -> MergeRecord:
    """Concatenate the chunks of ``job_path`` into ``out`` with the source's audio/subtitles;
    an existing ``out`` is replaced only when ``overwrite`` is True (the command's -y)."""
    started = time.perf_counter()
    job_path, out = Path(job_path).resolve(), Path(out).resolve()
    plan = load_plan(job_path)
    with write_errors(out):
        out.parent.mkdir(parents=True, exist_ok=True)
    check_output(
        out,
        plan.input,
        plan.source,
        *(t.source for t in plan.targets or ()),
        job_path,
        overwrite=overwrite,
    )
    digests = check_chunks(plan, job_path)
    check_inputs(plan, full=True)  # no edited clip or photo in a merged file
    source = scan_video(plan.input)
    if source.frames != plan.frames:
        raise InvalidInput(
            f"{plan.input}: now has {source.frames} frames, the plan was made for {plan.frames}"
        )
    with atomic_output(out, suffix=out.suffix) as tmp:
        _concat(plan, job_path, source, tmp)
        _verify(scan_video(tmp), source, out)
    record = MergeRecord(
        output=str(out),
        sha256=file_sha256(out),
        chunk_sha256=digests,
        frames=plan.frames,
        seconds=time.perf_counter() - started,
    )
    write_json_atomic(parts_dir(job_path) / "merged.json", asdict(record))
    log.info(
        "%s: merged %d chunks, %d frames in %.1f s",
        out,
        len(plan.chunks),
        plan.frames,
        record.seconds,
    )
    return record


def _concat(plan: JobPlan, job_path: Path, source: StreamScan, tmp: Path) -> None:
    listing = len(plan.chunks) > 1
    if listing:
        chunks = _concat_list(plan, job_path, source)
        # The demuxer starts at 0; a source whose first frame is later is matched by an offset.
        offset = float(source.pts[0] * source.time_base)
    else:
        # A chunk covering the whole clip is the one the pipeline writes with the audio too, whose
        # encoder delay the concat demuxer would add to the video; a plain remux keeps its times.
        chunks, offset = Path(plan.chunks[0].output), 0.0
    cmd = concat_command(
        chunks,
        plan.input,
        tmp,
        listing=listing,
        offset=offset,
        # what the pipeline wrote into the chunks (the provenance tag saying the faces are
        # synthetic), which the concat demuxer would drop
        metadata=_chunk_tags(plan),
        # the merged video starts where chunk 0 does: its start timecode (the job's, which may
        # override the source's) else the source's, on the video stream where mov/mxf keep it
        timecode=read_video_timecode(plan.chunks[0].output) or read_video_timecode(plan.input),
    )
    done = subprocess.run(cmd, capture_output=True, check=False)
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        last = lines[-1] if lines else f"exit code {done.returncode}"
        raise OutputError(f"{tmp}: ffmpeg concat failed: {last}")


# Container bookkeeping the muxer rewrites itself; copying it would only mislabel the output.
_MUXER_TAGS = frozenset({"major_brand", "minor_version", "compatible_brands", "encoder"})


def _chunk_tags(plan: JobPlan) -> dict[str, str]:
    with av.open(plan.chunks[0].output) as container:
        return {k: v for k, v in container.metadata.items() if k.lower() not in _MUXER_TAGS}


def _concat_list(plan: JobPlan, job_path: Path, source: StreamScan) -> Path:
    """The concat demuxer's list: each chunk with an explicit inpoint and duration.

    Chunks keep their source timestamps. The demuxer places file k at the sum of the earlier
    files' durations minus file k's start time; a chunk's container duration runs from 0 to its
    last frame, so both are given explicitly: the chunk's first frame and its span in the source.
    """
    listing = parts_dir(job_path) / "concat.txt"
    lines = ["ffconcat version 1.0"]
    for span in plan.chunks:
        lines.append("file '" + span.output.replace("'", "'\\''") + "'")
        lines.append(f"inpoint {float(source.pts[span.start] * source.time_base):.6f}")
        if span.end < source.frames:
            seconds = (source.pts[span.end] - source.pts[span.start]) * source.time_base
            lines.append(f"duration {float(seconds):.6f}")
    listing.write_text("\n".join(lines) + "\n")
    return listing


def _verify(merged: StreamScan, source: StreamScan, out: Path) -> None:
    if merged.frames != source.frames:
        raise OutputError(
            f"{out}: merged video has {merged.frames} frames, the source {source.frames}; not written"
        )
    # One tick of the coarser time base is the rounding a container may legitimately apply.
    # Times are taken from each file's origin (see ``scan._origin``), which keeps A/V sync.
    tolerance = float(max(merged.time_base, source.time_base)) + 1e-6
    for i, (a, b) in enumerate(zip(merged.pts, source.pts, strict=True)):
        at = float(a * merged.time_base) - merged.origin
        bt = float(b * source.time_base) - source.origin
        if abs(at - bt) > tolerance:
            raise OutputError(
                f"{out}: frame {i} is at {at:.6f} s from the start, in the source at {bt:.6f} s; "
                "timestamps differ, not written"
            )


def _read_record(job_path: str | Path) -> MergeRecord | None:
    path = parts_dir(job_path) / "merged.json"
    try:
        data = json.loads(path.read_text())
        data["chunk_sha256"] = tuple(data["chunk_sha256"])
        return MergeRecord(**data)
    except (OSError, ValueError, TypeError, KeyError):
        return None
