"""``mmvideo -v train-preprocess SRC... --out DIR``: faces in images and videos → training shards.

Inputs: folders of images (identity = the image's sub-folder name; images directly in SRC take
SRC's name) and video files (identity = the file's stem; every ``--stride``-th frame). Each face
goes through the same ``prepare_target`` the swap pipeline uses, so training and inference see
identical crops, depth, masks and boxes. Work is cut into chunks, each written as one shard
(``train/shards.py``) named by a digest of its inputs and settings; re-running the same command
skips every chunk whose shard exists, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import multiprocessing
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import av
import numpy as np
from tqdm import tqdm

from magicmask.face.align import align_identity
from magicmask.face.analyzer import FaceAnalyzer, FaceConfig
from magicmask.face.image import load_image
from magicmask.face.prepare import PrepareConfig, prepare_target
from mmcore.atomic import write_errors
from mmcore.errors import InvalidInput, MissingInput
from train.shards import ShardData, ShardHeader, empty_shard, write_shard

log = logging.getLogger(__name__)

IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff"}
VIDEO_EXTS = {".mp4", ".mov", ".mkv", ".avi", ".webm", ".m4v"}
ID_SIZE = 112


@dataclass(frozen=True)
class PreprocessConfig:
    """Settings that change what a shard contains (they are part of each shard's digest)."""

    image_size: int = 224
    detector: str = "hog"  # dlib "hog" (fast, frontal) or "cnn" (MMOD, finds turned faces)
    detect_upsample: int = 1
    stride: int = 5  # keep every stride-th video frame
    max_frames: int = 0  # per video, 0 = all
    min_face_size: int = 48  # smallest usable detection side, in image pixels


@dataclass(frozen=True)
class Item:
    """One unit of work: an image, or a whole video (frames are sampled inside the worker)."""

    root: str
    rel: str
    identity: str
    video: bool


@dataclass(frozen=True)
class Chunk:
    items: tuple[Item, ...]
    digest: str

    @property
    def name(self) -> str:
        return f"shard-{self.digest}.npz"


# -- planning ---------------------------------------------------------------------------------


def scan_sources(sources: list[Path]) -> list[Item]:
    """Every image and video under the sources, in a stable order."""
    items: list[Item] = []
    for src in sources:
        src = Path(src)
        if not src.exists():
            raise MissingInput(f"{src}: source does not exist")
        if src.is_file():
            if src.suffix.lower() not in VIDEO_EXTS:
                raise InvalidInput(
                    f"{src}: a file source must be a video ({', '.join(sorted(VIDEO_EXTS))})"
                )
            items.append(Item(str(src.parent), src.name, src.stem, True))
            continue
        for path in sorted(p for p in src.rglob("*") if p.is_file()):
            ext = path.suffix.lower()
            rel = str(path.relative_to(src))
            if ext in IMAGE_EXTS:
                identity = path.parent.name if path.parent != src else src.name
                items.append(Item(str(src), rel, identity, False))
            elif ext in VIDEO_EXTS:
                items.append(Item(str(src), rel, path.stem, True))
    if not items:
        raise InvalidInput(f"{', '.join(map(str, sources))}: no images or videos found")
    return items


def select_items(
    items: list[Item],
    min_per_identity: int,
    max_per_identity: int,
    limit: int,
    exclude: set[str],
) -> list[Item]:
    """Subset images by identity (videos always pass); ``limit`` keeps the first images in a
    pseudo-random but stable order (hash of the path), so a subset is not alphabetical."""
    videos = [i for i in items if i.video and i.identity not in exclude]
    by_id: dict[str, list[Item]] = {}
    for i in items:
        if not i.video and i.identity not in exclude:
            by_id.setdefault(i.identity, []).append(i)
    images = [
        i
        for group in by_id.values()
        if len(group) >= min_per_identity
        for i in group[: max_per_identity or None]
    ]
    if limit:
        images = sorted(images, key=lambda i: hashlib.sha1(i.rel.encode()).hexdigest())[:limit]
    return videos + images


_DIGEST_NAMES = {"detect_upsample": "upsample", "min_face_size": "min_face"}


def plan_chunks(items: list[Item], cfg: PreprocessConfig, chunk_size: int) -> list[Chunk]:
    """Videos one chunk each; images in chunks of ``chunk_size`` (stable, so resume finds them)."""
    groups = [[i] for i in items if i.video]
    images = [i for i in items if not i.video]
    groups += [images[k : k + chunk_size] for k in range(0, len(images), chunk_size)]
    # under the names the settings had when the first shards were made, so that renaming a
    # field does not orphan every shard already written
    settings = {_DIGEST_NAMES.get(k, k): v for k, v in asdict(cfg).items()}
    settings = json.dumps(settings, sort_keys=True)
    chunks = []
    for g in groups:
        key = settings + "\n" + "\n".join(f"{i.root}|{i.rel}|{i.identity}|{i.video}" for i in g)
        chunks.append(Chunk(tuple(g), hashlib.sha1(key.encode()).hexdigest()[:16]))
    return chunks


# -- per-face work (runs in worker processes) -------------------------------------------------


@functools.lru_cache(maxsize=2)
def _analyzer(detector: str, detect_upsample: int, min_face_size: int):
    """The face analyzer, built once per worker process (dlib models are not picklable)."""
    return FaceAnalyzer(
        FaceConfig(
            face_backend="dlib",
            detector=detector,
            detect_upsample=detect_upsample,
            min_face_size=min_face_size,
        )
    )


def pick_face(boxes: np.ndarray, shape: tuple[int, int], min_face_size: int) -> int | None:
    """Index of the face to keep: the largest usable one, penalised by distance from the center
    (LFW and the clips center their subject; bystanders are small and off-center)."""
    if not len(boxes):
        return None
    h, w = shape
    side = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    center = (boxes[:, :2] + boxes[:, 2:]) / 2.0
    off = np.linalg.norm((center - [w / 2.0, h / 2.0]) / [w, h], axis=1)
    score = np.where(side >= min_face_size, side * (1.0 - off), -1.0)
    best = int(np.argmax(score))
    return best if score[best] > 0 else None


def analyze(image: np.ndarray, cfg: PreprocessConfig) -> tuple[dict | None, str]:
    """All stored fields of the chosen face of ``image``, or (None, reason it was skipped)."""
    faces = _analyzer(cfg.detector, cfg.detect_upsample, cfg.min_face_size).detect(image)
    boxes = np.array([f.box for f in faces], np.float32).reshape(-1, 4)
    best = pick_face(boxes, image.shape[:2], cfg.min_face_size)
    if best is None:
        return None, "no face" if not len(boxes) else "face too small"
    return face_fields(image, faces[best].landmarks, faces[best].landmarks_3d, cfg.image_size), ""


def face_fields(
    image: np.ndarray, pts: np.ndarray, pts3d: np.ndarray | None, image_size: int = 224
) -> dict:
    """The stored fields of one face given its landmarks (also used by ``mmvideo tune`` on the
    swap's tracked faces)."""
    t = prepare_target(image, pts, pts3d, PrepareConfig(size=image_size))
    id_crop, _ = align_identity(image, pts)
    return {
        "target": t.crop,
        "source": id_crop,
        "landmarks": t.landmarks.astype(np.float32),
        "depth": np.round(np.clip(t.depth, 0, 1) * 255).astype(np.uint8),
        "mask": np.round(np.clip(t.mask, 0, 1) * 255).astype(np.uint8),
        "boxes": t.boxes.astype(np.float32),
        "pose": np.asarray(t.pose, np.float32),
    }


def _frames(path: Path, stride: int, max_frames: int) -> Iterator[tuple[int, np.ndarray]]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        kept = 0
        for k, frame in enumerate(container.decode(stream)):
            if k % stride:
                continue
            yield k, frame.to_ndarray(format="rgb24")
            kept += 1
            if max_frames and kept >= max_frames:
                return


def process_chunk(chunk: Chunk, cfg: PreprocessConfig) -> ShardData:
    """Analyse every image / sampled frame of a chunk; unusable ones are listed as skipped."""
    rows, skipped, identities = [], [], []
    for item in chunk.items:
        path = Path(item.root) / item.rel
        try:
            if item.video:
                frames = list(_frames(path, cfg.stride, cfg.max_frames))
            else:
                frames = [(-1, load_image(path, max_side=1024))]
        except Exception as exc:  # noqa: BLE001 - a broken file is skipped and counted, never fatal
            skipped.append((item.rel, f"unreadable: {exc}".splitlines()[0][:200]))
            continue
        for k, image in frames:
            tag = item.rel if k < 0 else f"{item.rel}#{k}"
            fields, reason = analyze(image, cfg)
            if fields is None:
                skipped.append((tag, reason))
                continue
            if item.identity not in identities:
                identities.append(item.identity)
            rows.append(
                {
                    **fields,
                    "label": identities.index(item.identity),
                    "frame": k,
                    "origin": item.rel,
                }
            )
    return rows_to_shard(rows, identities, skipped, cfg.image_size, f"dlib-{cfg.detector}+dlib68")


def rows_to_shard(
    rows: list[dict],
    identities: list[str],
    skipped: list[tuple[str, str]],
    image_size: int,
    backend: str,
) -> ShardData:
    """One shard from per-face rows (``face_fields`` plus label, frame and origin)."""
    if not rows:
        return empty_shard(image_size, ID_SIZE, skipped, backend)
    stack = {k: np.stack([r[k] for r in rows]) for k in rows[0] if k != "origin"}
    return ShardData(
        header=ShardHeader(image_size, ID_SIZE, identities, len(rows), skipped, backend),
        origin=np.array([r["origin"] for r in rows]),
        **stack,
    )


def _run_chunk(args: tuple[Chunk, PreprocessConfig, str]) -> tuple[int, int]:
    chunk, cfg, out = args
    shard = process_chunk(chunk, cfg)
    write_shard(Path(out) / chunk.name, shard)
    return len(shard), len(shard.header.skipped)


# -- driver -----------------------------------------------------------------------------------


@dataclass
class PreprocessReport:
    chunks_total: int
    chunks_done_before: int
    faces: int
    skipped: int


def preprocess(
    sources: list[Path],
    out: Path,
    cfg: PreprocessConfig,
    chunk_size: int = 200,
    workers: int = 1,
    **select,
) -> PreprocessReport:
    """Write the shards of every chunk not already in ``out``; returns counts of this run."""
    out = Path(out)
    with write_errors(out, "create output folder"):
        out.mkdir(parents=True, exist_ok=True)
    items = select_items(scan_sources(sources), **select) if select else scan_sources(sources)
    chunks = plan_chunks(items, cfg, chunk_size)
    todo = [c for c in chunks if not (out / c.name).exists()]
    log.info("%d chunks, %d already done", len(chunks), len(chunks) - len(todo))
    faces = skipped = 0
    jobs = [(c, cfg, str(out)) for c in todo]
    with tqdm(total=len(jobs), desc="preprocess", unit="chunk", disable=not jobs) as bar:
        if workers <= 1:
            results = map(_run_chunk, jobs)
            pool = None
        else:
            # spawn, not fork: dlib and torch state must not be shared with the parent.
            pool = multiprocessing.get_context("spawn").Pool(workers)
            results = pool.imap_unordered(_run_chunk, jobs)
        try:
            for n, s in results:
                faces, skipped = faces + n, skipped + s
                bar.update()
                bar.set_postfix(faces=faces, skipped=skipped)
        finally:
            if pool is not None:
                pool.terminate()
    return PreprocessReport(len(chunks), len(chunks) - len(todo), faces, skipped)
