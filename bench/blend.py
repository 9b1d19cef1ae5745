"""Blending side by side: alpha, multiband and Poisson (each with LAB or gradient color match)
pasting the same generated faces into real clips, frontal and three-quarter (docs/quality.md).

Per clip, frames 0, 2, 4, … of the first ``--max-frames``: faces found by the preset's detector
in each frame (no tracking), each prepared and generated once with the embedded checkpoint and
a source still of another person, then pasted by ``mmvideo.compose.paste`` once per mode. Per mode,
means over frames:

- **seam**: ``magicmask.quality.seam_ratio``, the output's gradient energy over the original's in
  the 6 px band along the blend mask's edge (goal: within 15 % of 1), and the share of frames
  within that;
- **chip SSIM**, **sharpness** and **band** ratio of the swapped face (``quality.realism``);
- **ms**: ``paste`` time per face.

Every mode runs with the preset's other compose keys (``detail_transfer``) and the seam match
off, except ``+ seam`` (``seam_match`` 1) and ``+ auto`` (the adaptive seam match,
``seam_tolerance`` = ``--seam-tolerance``; one ``SeamTracker`` per face of the clip, fed one
step per frame used: its 10-step window spans 20 frames of the clip here). **strength**: the seam
match's mean strength over faces (1 for ``+ seam``).

A contact sheet per clip under ``docs/quality/blend/``: for one frame, row 1 the whole face and
row 2 a 2× zoom on the mask edge along the visible jaw (blend mask's edge drawn on the original
only): original | one tile per mode.

    .venv/bin/python bench/blend.py                      # balanced preset, 6 clips, 20 frames
    .venv/bin/python bench/blend.py --preset quality --max-frames 20 --clips turn_02
    .venv/bin/python bench/blend.py --modes alpha+lab,alpha+lab+seam   # only these columns
    .venv/bin/python bench/blend.py --modes alpha+lab,alpha+lab+auto --seam-tolerance 0.12
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import cv2
import numpy as np
from quality import DATA, REPO, TILE, face_tile, read_frames, write_sheet

CASES = (  # clip, source still, view
    ("talking_head_obama_address_01.mp4", "id_biden_02.jpg", "frontal"),
    ("talking_head_obama_news_01.mp4", "id_biden_01.jpg", "frontal"),
    ("talking_head_glasses_02.mp4", "id_kit_harington_02.jpeg", "frontal"),
    ("talking_head_outdoor_01.mp4", "id_obama_01.jpg", "frontal, hard side light"),
    ("talking_head_turn_02.mp4", "id_rose_leslie_01.jpg", "three-quarter"),
    ("talking_head_turn_03.mp4", "id_kit_harington_01.jpeg", "three-quarter"),
)
MODES = (  # (blend, color_match[, "seam": seam_match 1 | "auto": seam_tolerance])
    ("alpha", "lab"),
    ("multiband", "lab"),
    ("poisson", "lab"),
    ("alpha", "gradient"),
    ("multiband", "gradient"),
    ("poisson", "gradient"),
    ("alpha", "lab", "seam"),
    ("alpha", "lab", "auto"),
)
SEAM_GOAL = 0.15


@dataclass
class Result:
    seam: list[float]
    ssim: list[float]
    sharp: list[float]
    band: list[float]
    ms: list[float]
    strength: list[float]


def compose_strength(mode: tuple[str, ...]) -> float:
    """The seam match's strength of a mode that does not choose it per face."""
    return 1.0 if mode[2:] == ("seam",) else 0.0


def recorded(tracker, index: int, strengths: list[float]):
    """``tracker.update`` at frame ``index`` that also appends the strength it applies."""

    def seam(needed: float) -> float:
        strengths.append(tracker.update(needed, index))
        return strengths[-1]

    return seam


def edge_zoom(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """A TILE×TILE 2× zoom on the visible jaw (the side farther from the nose tip, where a
    three-quarter face shows its edge), centered on the lower cheek."""
    left, right = landmarks[4], landmarks[12]
    nose = landmarks[30]
    side = left if np.linalg.norm(left - nose) > np.linalg.norm(right - nose) else right
    center = 0.7 * side + 0.3 * nose  # inside the jaw, where the eroded mask edge runs
    m = np.float64([[2, 0, TILE / 2 - 2 * center[0]], [0, 2, TILE / 2 - 2 * center[1]]])
    return cv2.warpAffine(
        image, m, (TILE, TILE), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE
    )


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--preset", default="balanced")
    p.add_argument("--max-frames", type=int, default=40, help="First N frames (every 2nd used).")
    p.add_argument("--clips", default="", help="Comma list of clip name parts (default: all).")
    p.add_argument(
        "--modes",
        default="",
        help="Comma list of blend+color[+seam|+auto] (e.g. alpha+lab+seam; default: all).",
    )
    p.add_argument(
        "--seam-tolerance",
        type=float,
        default=0.15,
        help="seam_tolerance of the +auto modes (default 0.15, the seam goal).",
    )
    p.add_argument(
        "--sheets", type=Path, default=REPO / "docs" / "quality" / "blend", help="'' = none."
    )
    args = p.parse_args(argv)

    import torch

    from magicmask import quality
    from magicmask.face.analyzer import FaceAnalyzer
    from mmvideo import pipeline
    from mmvideo.compose import SeamTracker, feather_mask, invert_affine, paste
    from mmvideo.config import load_config
    from mmvideo.generate import generate_faces, load_models

    torch.set_num_threads(2)
    cfg = load_config(args.preset)
    models = load_models(None)
    analyzer = FaceAnalyzer(pipeline.face_config(cfg.detect))
    stills = FaceAnalyzer(pipeline.source_face_config("cpu", cfg.detect))
    inputs = pipeline.target_inputs_config(cfg.compose)
    cases = [c for c in CASES if not args.clips or any(k in c[0] for k in args.clips.split(","))]
    modes = [tuple(m.split("+")) for m in args.modes.split(",")] if args.modes else list(MODES)
    unknown = [m for m in modes if m not in MODES]
    if unknown:
        p.error(f"unknown --modes {unknown}; choose from " + ", ".join(map("+".join, MODES)))
    composes = [
        replace(
            cfg.compose,
            blend=m[0],
            color_match=m[1],
            seam_match=1.0 if m[2:] == ("seam",) else 0.0,
            seam_tolerance=args.seam_tolerance if m[2:] == ("auto",) else 0.0,
        )
        for m in modes
    ]
    rows = []
    t0 = time.perf_counter()
    for clip, source, view in cases:
        e_s = pipeline.source_identity(str(DATA / source), stills, models)
        frames = read_frames(DATA / clip, args.max_frames)[::2]
        results = [Result([], [], [], [], [], []) for _ in modes]
        trackers: list[dict[int, SeamTracker]] = [{} for _ in modes]
        sheet_frame = len(frames) // 2
        tiles: list[list[np.ndarray]] = [[], []]
        for k, image in enumerate(frames):
            faces = analyzer.detect(image)
            if not faces:
                continue
            items = [pipeline.prepare_face(image, f, inputs, None) for f in faces]
            generated = generate_faces(models, e_s, items, cfg.generate)
            h, w = image.shape[:2]
            matte = np.zeros((h, w), np.float32)
            for ti in items:
                a = cv2.warpAffine(
                    feather_mask(ti.mask, cfg.compose), invert_affine(ti.matrix), (w, h)
                )
                matte = np.maximum(matte, a)
            lm = faces[0].landmarks
            take = not tiles[0] and k >= sheet_frame  # the sheet's frame (or the next with a face)
            for r, compose, seams in zip(results, composes, trackers):
                out = image.copy()
                t = time.perf_counter()
                for n, (g, ti) in enumerate(zip(generated, items)):
                    seam = recorded(seams.setdefault(n, SeamTracker()), k, r.strength)
                    paste(out, g, ti.crop, ti.matrix, ti.mask, compose, seam=seam)
                r.ms.append((time.perf_counter() - t) * 1000 / len(items))
                r.seam.append(quality.seam_ratio(image, out, matte))
                real = quality.realism(image, out, lm)
                r.ssim.append(real.chip_ssim)
                r.sharp.append(real.sharpness_ratio)
                r.band.append(real.band_ratio)
                if take:
                    tiles[0].append(face_tile(out, lm))
                    tiles[1].append(edge_zoom(out, lm))
            if take:
                edge = image.copy()
                contours, _ = cv2.findContours(
                    (matte > 0.5).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE
                )
                cv2.drawContours(edge, contours, -1, (255, 255, 0), 1)
                tiles[0].insert(0, face_tile(image, lm))
                tiles[1].insert(0, edge_zoom(edge, lm))
        name = Path(clip).stem.replace("talking_head_", "")
        for mode, r in zip(modes, results):
            seam = np.array(r.seam)
            rows.append(
                (
                    name,
                    view,
                    " + ".join(mode),
                    len(seam),
                    float(np.nanmean(seam)),
                    float(np.mean(np.abs(seam - 1) <= SEAM_GOAL)),
                    float(np.mean(r.ssim)),
                    float(np.nanmean(r.sharp)),
                    float(np.nanmean(r.band)),
                    float(np.median(r.ms)),
                    float(np.mean(r.strength)) if r.strength else compose_strength(mode),
                )
            )
        if str(args.sheets) not in ("", ".") and len(tiles[0]) == len(modes) + 1:
            args.sheets.mkdir(parents=True, exist_ok=True)
            sheet = np.concatenate([np.concatenate(t, axis=1) for t in tiles], axis=0)
            write_sheet(args.sheets / f"{name}.png", [sheet])
        print(f"{name}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    print(
        f"\n{platform.node()} ({os.cpu_count()} cores), {time.strftime('%Y-%m-%d')}, preset "
        f"{args.preset}, frames 0, 2, … < {args.max_frames}, "
        f"{(time.perf_counter() - t0) / 60:.1f} min; contact sheets: original | "
        + " | ".join(" + ".join(m) for m in modes)
    )
    heads = ["clip", "view", "blend + color", "frames", "seam", "within 15 %"]
    heads += ["chip SSIM", "sharpness", "band", "ms / face", "strength"]
    print("| " + " | ".join(heads) + " |\n|" + "---|" * len(heads))
    for name, view, mode, n, seam, share, ssim, sharp, band, ms, strength in rows:
        print(
            f"| {name} | {view} | {mode} | {n} | {seam:.2f} | {share:.0%} | {ssim:.3f} | "
            f"{sharp:.2f} | {band:.2f} | {ms:.1f} | {strength:.2f} |"
        )
    print(
        "\nseam: gradient energy of the output over the original's in the 6 px band along the"
        " blend mask's edge (magicmask.quality.seam_ratio; goal 0.85-1.15). chip SSIM, sharpness"
        " and band: the swapped face's chip against the original's (docs/quality.md)."
    )


if __name__ == "__main__":
    main()
