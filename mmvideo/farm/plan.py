"""Chunk plans: where one clip is cut, with what warm-up, and the job manifest a node reads.

A plan is a JSON file (``job.json``) holding everything a farm node needs and nothing it must
look up elsewhere: absolute input/source paths with their SHA-256, the resolved swap config (so a
node's own ``presets/`` cannot change the result), the checkpoint with its SHA-256, and per chunk
the frame range it writes, where its warm-up starts (frames analysed but not written, so the
tracker and Kalman filters are settled at the chunk's first frame) and its output path; with RTS
smoothing each chunk also analyses ``lookahead`` frames past its end, as the backward pass of a
single run sees them. Chunk outputs and status files live in ``<job stem>.parts/`` beside the
plan.

A job file is input like any other: ``load_plan`` checks every key's type and every range, and
that every chunk output lies in the job's parts folder and is none of the files the job reads,
before anything is removed or written.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
import math
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mmcore.atomic import write_json_atomic
from mmcore.errors import InvalidInput, MissingInput, OutputError
from mmcore.hashing import file_sha256
from mmvideo.farm.scan import scan_video
from mmvideo.farm.swap import (
    SwapSettings,
    chunk_job,
    config_from_dict,
    decide_targets,
    lookahead_frames,
    settle_frames,
    sha256_json,
)
from mmvideo.farm.typed import load_dataclass
from mmvideo.targets import check_map_files, map_files, needs_decision, parse_map

# 2: the input's mtime and sampled SHA-256 (checked by every node), typed loading
# 3: targets (the faces to swap and their sources, decided once for every chunk); source optional
# 4: compose.chroma_from_target (a plan of 3 lacks it: re-plan rather than read it as damaged)
PLAN_VERSION = 4

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


def default_alignment(config: dict[str, Any]) -> int:
    """Cut on multiples of the codec's GOP and of the generator batch.

    The pipeline batches faces in blocks of ``batch_size`` frames counted from frame 0, so a chunk
    that starts and ends on a block boundary feeds the generator exactly the batches a single run
    does. Otherwise a chunk's last frames can form a smaller batch, and torch computes a batch of
    one with other kernels (1e-6 apart, which rounds to one level on a few pixels).
    """
    gop = codec_alignment(config["encode"]["codec"], config["encode"].get("gop"))
    return math.lcm(gop, max(1, int(config["generate"]["batch_size"])))


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
class PlannedTarget:
    """One face the job swaps, chosen once over the whole clip (``mmvideo.targets``)."""

    track: int  # its id in the whole clip's analysis, as `mmvideo tracks` shows it
    source: str  # absolute path of the image swapped into it
    source_sha256: str
    # (frame, x0, y0, x1, y1) of every face the analysis gave it: how a chunk finds it
    boxes: tuple[tuple[int, ...], ...]


@dataclass(frozen=True)
class JobPlan:
    input: str
    input_size: int
    # What every node checks quickly before it runs a chunk (see ``check_inputs``)
    input_mtime_ns: int
    input_sample_sha256: str
    input_sha256: str
    source: str | None  # None: only the targets' own sources (a --map without --source)
    source_sha256: str | None
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
    # The faces to swap and their sources when the config chooses (a map, target largest,
    # track_id, target_face); None: ``source`` into every face
    targets: tuple[PlannedTarget, ...] | None = None
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
                "targets": None if self.targets is None else [asdict(t) for t in self.targets],
            }
        )

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["chunks"] = [dict(asdict(c), job=j) for c, j in zip(self.chunks, self.jobs)]
        del data["jobs"]
        data["settings"]["config_sha256"] = self.settings.config_sha256
        return data

    @classmethod
    def from_json(cls, data: Any) -> JobPlan:
        """The plan in ``data`` with every key's type and every range checked.

        Raises ``InvalidInput`` naming the first bad key (``chunks[1].start: ...``). Each chunk's
        ``job`` must be exactly the ``SwapJob`` its span gives: it is what the pipeline runs.
        """
        if not isinstance(data, dict):
            raise InvalidInput("expected a JSON object")
        # What to_json adds beside the fields: config_sha256 (recomputed from the config when
        # needed) and each chunk's job (compared with the one its span gives, below)
        clean = dict(data)
        if isinstance(data.get("settings"), dict):
            clean["settings"] = dict(data["settings"])
            clean["settings"].pop("config_sha256", None)
        if isinstance(data.get("chunks"), list):
            clean["chunks"] = [
                {k: v for k, v in c.items() if k != "job"} if isinstance(c, dict) else c
                for c in data["chunks"]
            ]
        plan = load_dataclass(cls, clean, "", ignore=("jobs",))
        config_from_dict(plan.settings.config)  # every slice and key, typed
        _check_ranges(plan)
        jobs = _chunk_jobs(plan)
        for i, (chunk, job) in enumerate(zip(data["chunks"], jobs)):
            stored = chunk.get("job")
            if not isinstance(stored, dict):
                raise InvalidInput(f"chunks[{i}].job: expected an object")
            for key in sorted(set(stored) | set(job)):
                if stored.get(key) != job.get(key):
                    raise InvalidInput(
                        f"chunks[{i}].job.{key}: {stored.get(key)!r} does not match the "
                        f"plan's chunk ({job.get(key)!r})"
                    )
        return dataclasses.replace(plan, jobs=jobs)


def _check_ranges(plan: JobPlan) -> None:
    """The numbers of a plan, beyond their types: a range the pipeline could run."""
    for key in ("input_size", "input_mtime_ns", "warmup", "lookahead"):
        if getattr(plan, key) < 0:
            raise InvalidInput(f"{key}: must be >= 0, got {getattr(plan, key)}")
    if plan.frames < 1 or plan.align < 1 or not plan.fps > 0:
        key = "frames" if plan.frames < 1 else "align" if plan.align < 1 else "fps"
        raise InvalidInput(f"{key}: must be > 0, got {getattr(plan, key)}")
    for key in ("input_sha256", "input_sample_sha256"):
        _check_digest(getattr(plan, key), key)
    if (plan.source is None) != (plan.source_sha256 is None):
        raise InvalidInput("source_sha256: must be null exactly when source is")
    if plan.source is not None:
        _check_digest(plan.source_sha256, "source_sha256")
    elif plan.targets is None:
        raise InvalidInput("source: null while there are no targets: nothing to swap")
    for i, t in enumerate(plan.targets or ()):
        _check_digest(t.source_sha256, f"targets[{i}].source_sha256")
        if t.track < 1:
            raise InvalidInput(f"targets[{i}].track: must be >= 1, got {t.track}")
        for j, box in enumerate(t.boxes):
            if len(box) != 5 or not 0 <= box[0] < plan.frames:
                raise InvalidInput(
                    f"targets[{i}].boxes[{j}]: expected [frame, x0, y0, x1, y1] with a frame "
                    f"of the clip, got {list(box)}"
                )
    _check_digest(plan.settings.checkpoint_sha256, "settings.checkpoint_sha256")
    if not plan.chunks:
        raise InvalidInput("chunks: the plan has no chunks")
    end = 0
    for i, c in enumerate(plan.chunks):
        if c.index != i:
            raise InvalidInput(f"chunks[{i}].index: must be {i}, got {c.index}")
        if c.start != end:
            raise InvalidInput(
                f"chunks[{i}].start: must be {end} (where the chunk before ends), got {c.start}"
            )
        if not c.start < c.end <= plan.frames:
            raise InvalidInput(
                f"chunks[{i}].end: must be after start {c.start} and <= {plan.frames} frames, "
                f"got {c.end}"
            )
        if not 0 <= c.decode_start <= c.start:
            raise InvalidInput(
                f"chunks[{i}].decode_start: must be 0 to start {c.start}, got {c.decode_start}"
            )
        end = c.end
    if end != plan.frames:
        raise InvalidInput(
            f"chunks[{len(plan.chunks) - 1}].end: must be {plan.frames} (the clip's end), got {end}"
        )


def _check_digest(value: str, key: str) -> None:
    if len(value) != 64 or value.strip("0123456789abcdef"):
        raise InvalidInput(f"{key}: expected a SHA-256 (64 hex digits), got {value[:70]!r}")


def _chunk_jobs(plan: JobPlan) -> tuple[dict[str, Any], ...]:
    """The ``SwapJob`` JSON of every chunk, from the plan's own fields."""
    return tuple(
        chunk_job(
            plan.settings,
            input=plan.input,
            source=plan.source,
            output=s.output,
            start=s.start,
            stop=s.end,
            warmup=s.start - s.decode_start,
            created=plan.created,
            lookahead=plan.lookahead,
            targets=_chunk_targets(plan, s.decode_start, s.end + plan.lookahead),
        )
        for s in plan.chunks
    )


def _chunk_targets(plan: JobPlan, first: int, stop: int) -> list[dict[str, Any]] | None:
    """The targets as one chunk needs them: the boxes in the frames it analyses, the targets
    it never sees left out."""
    if plan.targets is None:
        return None
    out = []
    for t in plan.targets:
        boxes = [list(b) for b in t.boxes if first <= b[0] < stop]
        if boxes:
            out.append({"track": t.track, "source": t.source, "boxes": boxes})
    return out


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


SAMPLE_BYTES = 1 << 20


def sample_sha256(path: str | Path) -> str:
    """SHA-256 of a file's size and its first, middle and last MiB (the whole of a small file).

    Reads 3 MiB of a clip of any length, so every node can afford it before every chunk.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        digest = hashlib.sha256(f"{size}\n".encode())
        if size <= 3 * SAMPLE_BYTES:
            digest.update(fh.read())
        else:
            for offset in (0, (size - SAMPLE_BYTES) // 2, size - SAMPLE_BYTES):
                fh.seek(offset)
                digest.update(fh.read(SAMPLE_BYTES))
    return digest.hexdigest()


def check_inputs(plan: JobPlan, *, full: bool = False) -> None:
    """Refuse, naming the file, when the clip or the source image is not what was planned.

    The source image is hashed whole every time (it is small). The clip, by default, gets the
    fast check every node makes before a chunk: its size, its sampled SHA-256, and its full SHA-256
    only when its mtime moved (so a copy that kept the bytes still passes, and an edit that kept
    the size is caught unless it also kept the mtime and missed the samples). ``full`` (merge)
    hashes the whole clip, so no edit gets into a merged file.
    """
    clip = Path(plan.input)
    if not clip.is_file():
        raise MissingInput(f"{clip}: input clip not found on this node")
    stat = clip.stat()
    changed = f"{clip}: input clip changed since the plan was made ({{}}); re-plan the job"
    if stat.st_size != plan.input_size:
        raise InvalidInput(changed.format("size differs"))
    if not full and sample_sha256(clip) != plan.input_sample_sha256:
        raise InvalidInput(changed.format("sampled SHA-256 differs"))
    if (full or stat.st_mtime_ns != plan.input_mtime_ns) and file_sha256(clip) != plan.input_sha256:
        raise InvalidInput(changed.format("SHA-256 differs"))
    sources = {} if plan.source is None else {plan.source: plan.source_sha256}
    sources.update((t.source, t.source_sha256) for t in plan.targets or ())
    for path, digest in sources.items():
        source = Path(path)
        if not source.is_file():
            raise MissingInput(f"{source}: source image not found on this node")
        if file_sha256(source) != digest:
            raise InvalidInput(
                f"{source}: source image changed since the plan was made (SHA-256 differs); "
                "re-plan the job"
            )


def same_file(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name one file: the same path once links are resolved, or one file
    under two names (a hard link)."""
    if Path(a).resolve() == Path(b).resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def read_files(
    input: str | Path,
    source: str | Path | None,
    checkpoint: str | Path | None,
    config: dict[str, Any] | None = None,
) -> dict[str, str]:
    """The files a job reads, by what they are: nothing the farm writes may be one of them."""
    files = {"the input clip": str(input)}
    if source is not None:
        files["the source image"] = str(source)
    if checkpoint is not None:
        files["the checkpoint"] = str(checkpoint)
    track = (config or {}).get("track", {})
    if track.get("target_face"):
        files["the target face image"] = str(track["target_face"])
    for path in map_files(track.get("map", ())):
        files[f"the --map image {path}"] = path
    return files


def refuse_overwrite(out: str | Path, files: dict[str, str], label: str) -> None:
    """Refuse with one line when ``out`` is one of ``files`` (see ``read_files``)."""
    for what, path in files.items():
        if same_file(out, path):
            raise OutputError(f"{out}: {label} would overwrite {what} ({path})")


# Files of a parts folder that are not chunk videos (and the temp files of any of them)
_RESERVED = ("merged.json", "concat.txt")


def check_plan_paths(plan: JobPlan, job_path: str | Path) -> None:
    """Refuse a plan whose chunk outputs could make a node remove or write a file it must not.

    A chunk's output (with the temp files beside it that a restart removes) must lie directly in
    the job's parts folder (links resolved: no ``..``, no symbolic link out of it), be no other
    chunk's output, no status or merge file, and none of the files the job reads.
    """
    parts = Path(os.path.realpath(parts_dir(job_path)))
    protected = read_files(plan.input, plan.source, plan.settings.checkpoint, plan.settings.config)
    # Every node must find the same files, whatever its working folder
    paths = {"input": plan.input, "source": plan.source}
    paths.update((f"targets[{i}].source", t.source) for i, t in enumerate(plan.targets or ()))
    for key, path in paths.items():
        if path is not None and not Path(path).is_absolute():
            raise InvalidInput(f"{job_path}: {key}: {path!r} is not absolute")
    for i, t in enumerate(plan.targets or ()):
        protected[f"the source image of targets[{i}]"] = t.source
    if plan.settings.checkpoint and not Path(plan.settings.checkpoint).is_absolute():
        raise InvalidInput(
            f"{job_path}: settings.checkpoint: {plan.settings.checkpoint!r} is not absolute"
        )
    protected["the job file"] = str(job_path)
    seen: set[Path] = set()
    for span in plan.chunks:
        key = f"{job_path}: chunks[{span.index}].output"
        out = Path(span.output)
        real = Path(os.path.realpath(out))
        if not out.is_absolute() or ".." in out.parts or real.parent != parts:
            raise InvalidInput(
                f"{key}: {out} is not a file in the job's parts folder {parts}; nothing was run"
            )
        name = real.name
        if name.startswith(".") or name in _RESERVED or name.endswith(".status.json"):
            raise InvalidInput(f"{key}: {name} is reserved for the job's own files")
        if real in seen:
            raise InvalidInput(f"{key}: {out} is also another chunk's output")
        seen.add(real)
        for what, path in protected.items():
            if same_file(out, path):
                raise InvalidInput(f"{key}: {out} is {what}; nothing was run")


def save_plan(plan: JobPlan, job_path: str | Path) -> None:
    write_json_atomic(job_path, plan.to_json())


def load_plan(job_path: str | Path) -> JobPlan:
    job_path = Path(job_path)
    try:
        data = json.loads(job_path.read_text())
    except FileNotFoundError as exc:
        raise MissingInput(f"{job_path}: no such job file (create it with `mmvideo plan`)") from exc
    except (OSError, json.JSONDecodeError) as exc:
        raise InvalidInput(f"{job_path}: not a readable job file: {exc}") from exc
    if not isinstance(data, dict) or data.get("version") != PLAN_VERSION:
        raise InvalidInput(
            f"{job_path}: not an mmvideo job plan of version {PLAN_VERSION}"
            " (re-plan it with this mmvideo)"
        )
    try:
        plan = JobPlan.from_json(data)
    except InvalidInput as exc:
        raise InvalidInput(f"{job_path}: {exc}") from exc
    check_plan_paths(plan, job_path)
    return plan


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
    source: str | Path | None,
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
    filters need to forget their start (see ``swap.settle_frames``). When the config chooses
    which faces to swap (a ``map``, ``target = "largest"``, ``track_id``, ``target_face``), the
    whole clip is analysed here, once, and the choice goes into the plan (``targets``): every
    chunk then swaps the faces a single run of the clip swaps, with the same sources.
    """
    input = Path(input).resolve()
    source = None if source is None else Path(source).resolve()
    refuse_overwrite(
        job_path,
        read_files(input, source, settings.checkpoint, settings.config),
        "the job plan",
    )
    if source is not None and not source.is_file():
        raise MissingInput(f"{source}: source image not found")
    track = settings.config["track"]
    check_map_files(parse_map(track["map"]))
    if source is None and not track["map"]:
        raise InvalidInput("give --source, --map or both")
    if warmup_seconds is not None and warmup_seconds < 0:
        raise InvalidInput(f"warm-up must be >= 0 seconds, got {warmup_seconds}")
    scan = scan_video(input)
    if align is None:
        align = default_alignment(settings.config)
    chunk_frames = None
    if chunk_seconds is not None:
        if chunk_seconds <= 0:
            raise InvalidInput(f"--chunk-seconds must be > 0, got {chunk_seconds}")
        chunk_frames = max(1, round(chunk_seconds * scan.fps))
    ranges = split_frames(scan.frames, chunks=chunks, chunk_frames=chunk_frames, align=align)
    if created is None:
        created = datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")
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
    targets = None
    if needs_decision(config_from_dict(settings.config).track):
        targets = tuple(
            PlannedTarget(
                track=t["track"],
                source=str(Path(t["source"]).resolve()),
                source_sha256=file_sha256(t["source"]),
                boxes=tuple(tuple(b) for b in t["boxes"]),
            )
            for t in decide_targets(settings, str(input), None if source is None else str(source))
        )
    stat = input.stat()
    plan = JobPlan(
        input=str(input),
        input_size=stat.st_size,
        input_mtime_ns=stat.st_mtime_ns,
        input_sample_sha256=sample_sha256(input),
        input_sha256=file_sha256(input),
        source=None if source is None else str(source),
        source_sha256=None if source is None else file_sha256(source),
        frames=scan.frames,
        fps=scan.fps,
        warmup=warmup,
        lookahead=lookahead,
        align=align,
        settings=settings,
        chunks=spans,
        created=created,
        targets=targets,
    )
    plan = dataclasses.replace(plan, jobs=_chunk_jobs(plan))
    check_plan_paths(plan, job_path)
    return plan
