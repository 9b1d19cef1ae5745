"""Training data: shards in memory, (target, source) pairs per step, batches as tensors.

Which pair a step trains on depends only on ``(seed, step, rank)``, never on loader state, so a
resumed run sees exactly the batches it would have seen without the interruption, and DDP ranks
draw disjoint pairs without a distributed sampler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch

from magicmask.face.mask import face_mask
from magicmask.face.prepare import PrepareConfig
from mmcore.errors import InvalidInput
from train.shards import (
    ARRAY_KEYS,
    ShardData,
    check_compatible,
    list_shards,
    read_header,
    read_shard,
)

log = logging.getLogger(__name__)

HeatmapFn = Callable[[np.ndarray], np.ndarray]  # (68, 2) crop pixels -> (G, S, S) float32 in [0, 1]


@dataclass
class FaceSet:
    """Every face of a data folder, concatenated, with identities merged by name across shards."""

    target: np.ndarray
    source: np.ndarray
    landmarks: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    boxes: np.ndarray
    pose: np.ndarray
    label: np.ndarray
    origin: np.ndarray
    identities: list[str]
    skipped: int

    def __len__(self) -> int:
        return int(self.target.shape[0])

    def by_identity(self) -> list[np.ndarray]:
        """Sample indices of each identity (index = label)."""
        order = np.argsort(self.label, kind="stable")
        bounds = np.searchsorted(self.label[order], np.arange(len(self.identities) + 1))
        return [order[bounds[i] : bounds[i + 1]] for i in range(len(self.identities))]


def redraw_masks(faces: FaceSet, forehead: float) -> None:
    """Replace every face's loss mask m_t by the landmark hull with ``forehead`` extension, drawn
    as ``prepare_target`` draws it (same erosion and feather), stored like the shards' (uint8)."""
    cfg = PrepareConfig()
    size = faces.mask.shape[-1]
    faces.mask = np.stack(
        [
            np.round(
                face_mask(pts, size, cfg.mask_erosion, cfg.mask_feather, forehead) * 255
            ).astype(np.uint8)
            for pts in faces.landmarks
        ]
    )


@dataclass
class FaceBatch:
    """One side of a pair, as model tensors: images in [0, 1], float32, [B, C, H, W]."""

    image: torch.Tensor  # [B,3,S,S] aligned 224 crop
    id_image: torch.Tensor  # [B,3,s,s] aligned 112 crop
    depth: torch.Tensor  # [B,1,S,S]
    heatmaps: torch.Tensor  # [B,G,S,S]
    mask: torch.Tensor  # [B,1,S,S]
    boxes: torch.Tensor  # [B,4,4] eyes, nose, mouth, jaw (x0, y0, x1, y1)
    label: torch.Tensor  # [B] int64

    def to(self, device: torch.device | str) -> FaceBatch:
        return FaceBatch(
            **{k: getattr(self, k).to(device, non_blocking=True) for k in self.__dataclass_fields__}
        )


@dataclass
class PairBatch:
    target: FaceBatch
    source: FaceBatch
    same: torch.Tensor  # [B] bool, True where source and target are the same identity

    def to(self, device: torch.device | str) -> PairBatch:
        return PairBatch(self.target.to(device), self.source.to(device), self.same.to(device))


def load_faces(
    folder: Path, image_size: int, id_size: int, exclude: set[str] = frozenset()
) -> FaceSet:
    """Read every shard of ``folder``; identities named in ``exclude`` are dropped (held out)."""
    paths = list_shards(folder)
    for p in paths:
        check_compatible(p, read_header(p), image_size, id_size)
    shards: list[ShardData] = [read_shard(p) for p in paths]
    names = sorted({n for s in shards for n in s.header.identities} - set(exclude))
    index = {n: i for i, n in enumerate(names)}
    # a FaceSet keeps every array of its shards but their frame numbers
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ARRAY_KEYS if k != "frame"}
    for s in shards:
        remap = np.array([index.get(n, -1) for n in s.header.identities] + [-1], np.int64)
        label = remap[s.label] if len(s) else s.label
        keep = label >= 0
        for k, acc in parts.items():
            acc.append(label[keep] if k == "label" else getattr(s, k)[keep])
    faces = FaceSet(
        **{k: np.concatenate(v) for k, v in parts.items()},
        identities=names,
        skipped=sum(len(s.header.skipped) for s in shards),
    )
    if len(faces) == 0:
        raise InvalidInput(
            f"{folder}: the shards hold no usable faces ({faces.skipped} skipped at preprocessing)"
        )
    log.info(
        "%s: %d faces of %d identities (%d skipped at preprocessing)",
        folder,
        len(faces),
        len(names),
        faces.skipped,
    )
    return faces


@dataclass
class PairSampler:
    """Draws (target, source) index pairs for a step; ``same_identity_prob`` of them share an identity.

    A same-identity pair uses another image of the person when there is one, so the model learns
    that a swap toward the target's own identity must give the target back (eq. 9's self-swap is
    computed for every target regardless).
    """

    faces: FaceSet
    batch_size: int
    seed: int
    same_identity_prob: float = 0.2

    def __post_init__(self) -> None:
        self._groups = self.faces.by_identity()
        if len(self._groups) < 2:
            raise InvalidInput(
                f"training needs faces of at least 2 identities, got {len(self._groups)}"
            )

    def pairs(self, step: int, rank: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        rng = np.random.default_rng([self.seed, step, rank])
        n = len(self.faces)
        t = rng.integers(0, n, self.batch_size)
        same = rng.random(self.batch_size) < self.same_identity_prob
        s = np.empty_like(t)
        for i, ti in enumerate(t):
            own = self.faces.label[ti]
            if same[i]:
                group = self._groups[own]
                others = group[group != ti]
                s[i] = rng.choice(others) if len(others) else ti
            else:
                other = (own + rng.integers(1, len(self._groups))) % len(self._groups)
                s[i] = rng.choice(self._groups[other])
        return t, s, same


class StepDataset(torch.utils.data.Dataset):
    """Item ``k`` is the whole batch of step ``start + k`` for one rank (for a DataLoader's workers)."""

    def __init__(
        self,
        sampler: PairSampler,
        heatmap_fn: HeatmapFn,
        start: int,
        steps: int,
        rank: int = 0,
    ):
        self.sampler, self.heatmap_fn, self.start, self.steps, self.rank = (
            sampler,
            heatmap_fn,
            start,
            steps,
            rank,
        )

    def __len__(self) -> int:
        return self.steps

    def __getitem__(self, k: int) -> PairBatch:
        t, s, same = self.sampler.pairs(self.start + k, self.rank)
        faces = self.sampler.faces
        return PairBatch(
            make_face_batch(faces, t, self.heatmap_fn),
            make_face_batch(faces, s, self.heatmap_fn),
            torch.from_numpy(same),
        )


def reproducible_opencv(_worker: int = 0) -> None:
    """Turn off OpenCV's IPP kernels in this process: with them ``cv2.exp`` (used by the landmark
    heat-maps) gives results that differ in the last bit with the memory alignment of its input,
    which would make a resumed run drift from an uninterrupted one."""
    cv2.ipp.setUseIPP(False)


def step_loader(dataset: StepDataset, workers: int = 0) -> torch.utils.data.DataLoader:
    """Batches come pre-made, so the loader only moves them to worker processes and back."""
    reproducible_opencv()
    return torch.utils.data.DataLoader(
        dataset,
        batch_size=None,
        num_workers=workers,
        worker_init_fn=reproducible_opencv,
        persistent_workers=workers > 0,
        prefetch_factor=2 if workers > 0 else None,
    )


def make_face_batch(faces: FaceSet, idx: np.ndarray, heatmap_fn: HeatmapFn) -> FaceBatch:
    def img(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2))).float().div_(255.0)

    def plane(a: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(a[:, None]).float().div_(255.0)

    heat = np.stack([heatmap_fn(faces.landmarks[i]) for i in idx]).astype(np.float32)
    return FaceBatch(
        image=img(faces.target[idx]),
        id_image=img(faces.source[idx]),
        depth=plane(faces.depth[idx]),
        heatmaps=torch.from_numpy(heat),
        mask=plane(faces.mask[idx]),
        boxes=torch.from_numpy(faces.boxes[idx].astype(np.float32)),
        label=torch.from_numpy(faces.label[idx].astype(np.int64)),
    )
