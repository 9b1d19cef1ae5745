"""The checkpoint gate: a model replaces the embedded one only if it is not worse on realism or
identity (issue 13, docs/quality.md).

Both checkpoints go through ``train.evaluate.evaluate_pairs`` on the same held-out stills and
pairs; the gate compares, with a small tolerance for ties:

- realism: chip SSIM of the self-swap (the same-person fidelity test; higher is better) and the
  sharpness, band-energy and colour band-energy ratios of the self-swap and of the swap (closer
  to 1 is better, on a log scale: 0.5 and 2 are equally far),
- pose error of the swap (degrees; lower is better),
- identity: the per-pair cosine gain (swap minus unchanged target) with dlib's descriptor.

FaceNet is the judge and never selects a checkpoint (docs/quality.md), so it is not used here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from magicmask.checkpoint import load_checkpoint
from magicmask.face.identity import build_identity_encoder
from mmcore.errors import InvalidInput, MissingInput, ModelError, NoFaceFound
from train.evaluate import analyze_still, evaluate_pairs, held_out

GATE_ENCODER = "dlib-resnet"


@dataclass(frozen=True)
class Measure:
    name: str  # how the refusal names it
    row: str  # train.evaluate method row
    field: str  # EvalRow field, or "gain" for the identity gain over the unchanged target
    better: str  # "higher" | "lower" | "one" (a ratio that wants 1)
    tolerance: float  # a candidate this much worse (|log| for ratios) still ties


MEASURES = (
    Measure("self-swap chip SSIM", "model self-swap", "chip_ssim", "higher", 0.005),
    Measure("self-swap sharpness ratio", "model self-swap", "sharpness", "one", 0.03),
    Measure("self-swap band ratio", "model self-swap", "band", "one", 0.03),
    Measure("self-swap colour band ratio", "model self-swap", "color_band", "one", 0.03),
    Measure("swap sharpness ratio", "model", "sharpness", "one", 0.03),
    Measure("swap band ratio", "model", "band", "one", 0.03),
    Measure("swap colour band ratio", "model", "color_band", "one", 0.03),
    Measure("swap pose error", "model", "pose_err", "lower", 0.5),
    Measure(f"identity gain ({GATE_ENCODER} cosine)", "model", "gain", "higher", 0.005),
)


class CheckpointRejected(ModelError):
    """A checkpoint measured worse than the one it would replace."""


def scores(rows) -> dict[str, float]:
    """The gated measures of one checkpoint's ``evaluate_pairs`` rows (judge = ``GATE_ENCODER``)."""
    by = {r.method: r for r in rows}
    out = {}
    for m in MEASURES:
        if m.field == "gain":
            out[m.name] = by[m.row].csim_judge - by["target unchanged"].csim_judge
        else:
            out[m.name] = float(getattr(by[m.row], m.field))
    return out


def _badness(m: Measure, value: float) -> float:
    if m.better == "one":
        return abs(math.log(max(value, 1e-6)))
    return -value if m.better == "higher" else value


def failures(candidate: dict[str, float], baseline: dict[str, float]) -> list[str]:
    """One line per measure on which ``candidate`` is worse than ``baseline`` beyond tolerance."""
    out = []
    for m in MEASURES:
        c, b = candidate[m.name], baseline[m.name]
        if not np.isfinite(c) or _badness(m, c) > _badness(m, b) + m.tolerance:
            out.append(f"{m.name} {c:.3f} vs {b:.3f}")
    return out


def measure_checkpoints(
    paths: list[Path], data: Path, max_pairs: int = 24
) -> list[dict[str, float]]:
    """Gated measures of each checkpoint on ``data``'s pairs.csv (analysed once for all)."""
    pairs, identities, analyzer = held_out(Path(data) / "pairs.csv", data, max_pairs)
    stills = {}
    for name in sorted({n for p in pairs for n in p}):
        try:
            stills[name] = analyze_still(
                Path(data) / name, identities.get(name, Path(name).stem), analyzer
            )
        except (NoFaceFound, MissingInput):
            continue  # a pair without a face is left out of every checkpoint's measure alike
    usable = [(s, t) for s, t in pairs if s in stills and t in stills]
    if not usable:
        raise InvalidInput(f"{data}/pairs.csv: no pair with a face found in both images")
    judge = build_identity_encoder(GATE_ENCODER)
    out = []
    for path in paths:
        loaded = load_checkpoint(path)
        train_enc = (
            judge
            if loaded.identity_encoder == GATE_ENCODER
            else build_identity_encoder(loaded.identity_encoder)
        )
        out.append(
            scores(evaluate_pairs(loaded.generator, train_enc, judge, stills, usable, analyzer))
        )
    return out


def check(
    candidate: Path, baseline: Path, data: Path, max_pairs: int = 24
) -> dict[str, tuple[float, float]]:
    """Raise ``CheckpointRejected`` naming every measure on which ``candidate`` is worse than
    ``baseline``; otherwise return {measure: (candidate, baseline)}."""
    cand, base = measure_checkpoints([candidate, baseline], data, max_pairs)
    bad = failures(cand, base)
    if bad:
        raise CheckpointRejected(f"{candidate}: worse than {baseline} on " + "; ".join(bad))
    return {k: (cand[k], base[k]) for k in cand}
