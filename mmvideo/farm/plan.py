"""Chunk plans: where one clip is cut, with what warm-up, and the job manifest a node reads.

A plan is a JSON file (``job.json``) holding everything a farm node needs and nothing it must
look up elsewhere: absolute input/source paths with their SHA-256, the resolved swap config (so a
node's own ``presets/`` cannot change the result), the checkpoint with its SHA-256, and per chunk
the frame range it writes, where its warm-up starts (frames analysed but not written, so the
tracker and Kalman filters are settled at the chunk's first frame) and its output path; with RTS
smoothing each chunk also analyses ``lookahead`` frames past its end, as the backward pass of a
single run sees them. Chunk outputs and status files live in ``<job stem>.parts/`` beside the
plan.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import os
import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mmvideo.errors import InvalidInput, MissingInput, OutputError
from mmvideo.farm.scan import scan_video
from mmvideo.farm.swap import (
    SwapSettings,
    chunk_job,
    lookahead_frames,
    settle_frames,
    sha256_json,
)

PLAN_VERSION = 1

# Codecs whose every chunk may start on any frame without changing the keyframe cadence a single
# run would produce; inter-frame codecs with a fixed GOP get their cuts aligned to the GOP.
INTRA_ONLY_CODECS = frozenset(
    {
        "ffv1",
        "prores",
        "prores_ks",
        "prores_aw",
        "mjpeg",
        "png",
        "dnxhd",
        "rawvideo",
        "utvideo",
        "huffyuv",
        "ffvhuff",
        "qtrle",
        "v210",
    }
)


def codec_alignment(codec: str, gop: int | None) -> int:
    """Frames a chunk boundary must be a multiple of, so the merged GOPs match a single run."""
    if codec in INTRA_ONLY_CODECS or not gop or gop < 1:
        return 1
    return int(gop)


def split_frames(
    total: int,
    *,
    chunks: int | None = None,
    chunk_frames: int | None = None,
    align: int = 1,
) -> list[tuple[int, int]]:
    """Cut ``[0, total)`` into contiguous ``(start, end)`` ranges with starts on multiples of ``align``.

    Give either ``chunks`` (about equal parts) or ``chunk_frames`` (fixed length, last one
    shorter). Alignment can merge parts, so fewer ranges than asked may come back, never empty ones.
    """
    if total < 1:
        raise InvalidInput(f"cannot plan a clip of {total} frames")
    if (chunks is None) == (chunk_frames is None):
        raise ValueError("give exactly one of chunks or chunk_frames")
    if align < 1:
        raise ValueError(f"align must be >= 1, got {align}")
    if chunks is not None:
        if chunks < 1:
            raise InvalidInput(f"--chunks must be >= 1, got {chunks}")
        ideal = [total * k / chunks for k in range(1, chunks)]
    else:
        if chunk_frames < 1:
            raise InvalidInput(f"chunk length must be >= 1 frame, got {chunk_frames}")
        step = math.ceil(chunk_frames / align) * align
        ideal = list(range(step, total, step))
    cuts = sorted({round(c / align) * align for c in ideal} - {0})
    bounds = [0] + [c for c in cuts if c < total] + [total]
    return list(itertools.pairwise(bounds))


@dataclass(frozen=True)
class ChunkSpan:
    index: int
    start: int  # first frame written
    end: int  # one past the last frame written
    decode_start: int  # first frame decoded: the warm-up starts here
    output: str  # absolute path of the chunk video

    @property
    def frames(self) -> int:
        return self.end - self.start


@dataclass(frozen=True)
class JobPlan:
    input: str
    input_size: int
    input_sha256: str
    source: str
    source_sha256: str
    frames: int
    fps: float
    warmup: int
    align: int
    settings: SwapSettings
    chunks: tuple[ChunkSpan, ...]
    # When the job was planned (ISO 8601): every chunk's provenance tag carries it, so chunks and
    # reruns of them are byte-identical.
    created: str
    version: int = PLAN_VERSION
    # Frames analysed after each chunk's end (RTS smoothing looks ahead; 0 for Kalman)
    lookahead: int = 0
    # The SwapJob JSON of each chunk, as the pipeline serialises it; filled by ``swap``.
    jobs: tuple[dict[str, Any], ...] = field(default=())

    def chunk_fingerprint(self, index: int) -> str:
        """Identifies what a chunk's output depends on; a status with another one is stale."""
        span = self.chunks[index]
        return sha256_json(
            {
                "input": self.input_sha256,
                "source": self.source_sha256,
                "checkpoint": self.settings.checkpoint_sha256,
                "config": self.settings.config_sha256,
                "span": [span.start, span.end, span.decode_start],
                "lookahead": self.lookahead,
            }
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["chunks"] = [
            dict(asdict(c), job=j) for c, j in zip(self.chunks, self.jobs)
        ]
        del data["jobs"]
        data["settings"]["config_sha256"] = self.settings.config_sha256
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> JobPlan:
        settings = dict(data["settings"])
        settings.pop("config_sha256", None)
        chunks = [dict(c) for c in data["chunks"]]
        jobs = tuple(c.pop("job") for c in chunks)
        return cls(
            **{k: v for k, v in data.items() if k not in ("settings", "chunks")},
            settings=SwapSettings(**settings),
            chunks=tuple(ChunkSpan(**c) for c in chunks),
            jobs=jobs,
        )


def parts_dir(job_path: str | Path) -> Path:
    """Folder of a job's chunk outputs and status files: ``job.json`` → ``job.parts/``."""
    job_path = Path(job_path).resolve()
    return job_path.with_name(job_path.stem + ".parts")


def chunk_spans(
    ranges: list[tuple[int, int]], *, warmup: int, cadence: int, parts: Path, ext: str
) -> tuple[ChunkSpan, ...]:
    """Add the warm-up to each range, its start rounded down to the pipeline's cadence.

    The detector runs every ``cadence`` frames counted from the first decoded frame, so starting
    the warm-up on a multiple of it keeps detections on the same frames as in a single run.
    """
    return tuple(
        ChunkSpan(
            index=i,
            start=s,
            end=e,
            decode_start=max(0, s - warmup) // cadence * cadence,
            output=str(parts / f"chunk_{i:04d}.{ext}"),
        )
        for i, (s, e) in enumerate(ranges)
    )


def sha256_file(path: str | Path, block: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


def write_json_atomic(path: str | Path, data: Any) -> None:
    """Write JSON beside ``path`` and rename, so readers never see a half-written file."""
    path = Path(path)
    # A unique name opened with O_EXCL honours the umask (mkstemp would make it private, and
    # other farm nodes must read it).
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "x") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: cannot write: {exc.strerror}") from exc


def save_plan(plan: JobPlan, job_path: str | Path) -> None:
    write_json_atomic(job_path, plan.to_json())


def load_plan(job_path: str | Path) -> JobPlan:
    job_path = Path(job_path)
    try:
        data = json.loads(job_path.read_text())
    except FileNotFoundError as exc:
        raise MissingInput(
            f"{job_path}: no such job file (create it with `mmvideo plan`)"
        ) from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{job_path}: not a readable job file: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != PLAN_VERSION:
        raise InvalidInput(
            f"{job_path}: not an mmvideo job plan of version {PLAN_VERSION}"
        )
    try:
        return JobPlan.from_json(data)
    except (KeyError, TypeError) as exc:
        raise InvalidInput(f"{job_path}: malformed job plan: {exc}") from exc


# Chunk containers keep the stream's own time base (MKV would round it to milliseconds) so chunk
# timestamps survive the merge exactly; MP4 holds most codecs, the rest go where they fit.
_CHUNK_CONTAINERS = {
    "prores": "mov", "prores_ks": "mov", "prores_aw": "mov", "dnxhd": "mov", "qtrle": "mov",
    "utvideo": "nut", "huffyuv": "nut", "ffvhuff": "nut", "rawvideo": "nut",
}  # fmt: skip


def chunk_container(codec: str) -> str:
    """File extension of the chunk videos for an output codec."""
    return _CHUNK_CONTAINERS.get(codec, "mp4")


def make_plan(
    job_path: str | Path,
    input: str | Path,
    source: str | Path,
    settings: SwapSettings,
    *,
    chunks: int | None = None,
    chunk_seconds: float | None = None,
    warmup_seconds: float | None = None,
    align: int | None = None,
    created: str | None = None,
) -> JobPlan:
    """Scan ``input`` and cut it into chunks; nothing is written.

    ``warmup_seconds=None`` analyses as many frames before each chunk as the config's smoothing
    filters need to forget their start (see ``swap.settle_frames``).
    """
    input, source = Path(input).resolve(), Path(source).resolve()
    if not source.is_file():
        raise MissingInput(f"{source}: source image not found")
    if warmup_seconds is not None and warmup_seconds < 0:
        raise InvalidInput(f"warm-up must be >= 0 seconds, got {warmup_seconds}")
    scan = scan_video(input)
    if align is None:
        align = codec_alignment(settings.codec, settings.config["encode"].get("gop"))
    chunk_frames = None
    if chunk_seconds is not None:
        if chunk_seconds <= 0:
            raise InvalidInput(f"--chunk-seconds must be > 0, got {chunk_seconds}")
        chunk_frames = max(1, round(chunk_seconds * scan.fps))
    ranges = split_frames(
        scan.frames, chunks=chunks, chunk_frames=chunk_frames, align=align
    )
    if created is None:
        created = (
            datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
        )
    if warmup_seconds is None:
        warmup = settle_frames(settings.config)
    else:
        warmup = math.ceil(warmup_seconds * scan.fps)
    spans = chunk_spans(
        ranges,
        warmup=warmup,
        cadence=settings.cadence,
        parts=parts_dir(job_path),
        ext=chunk_container(settings.codec),
    )
    lookahead = lookahead_frames(settings.config) if len(spans) > 1 else 0
    jobs = tuple(
        chunk_job(
            settings,
            input=str(input),
            source=str(source),
            output=s.output,
            start=s.start,
            stop=s.end,
            warmup=s.start - s.decode_start,
            created=created,
            lookahead=lookahead,
        )
        for s in spans
    )
    return JobPlan(
        input=str(input),
        input_size=input.stat().st_size,
        input_sha256=sha256_file(input),
        source=str(source),
        source_sha256=sha256_file(source),
        frames=scan.frames,
        fps=scan.fps,
        warmup=warmup,
        lookahead=lookahead,
        align=align,
        settings=settings,
        chunks=spans,
        created=created,
        jobs=jobs,
    )
