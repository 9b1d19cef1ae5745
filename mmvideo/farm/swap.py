"""The farm's only link to the swap pipeline, its config and the checkpoint API.

Everything the farm knows about how a frame is made goes through here: resolving a preset into
a config the plan can carry, building the ``SwapJob`` of one chunk, and running it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from mmcore.errors import MissingInput, ModelError
from mmcore.hashing import file_sha256
from mmvideo.config import SwapConfig, SwapJob, config_to_dict, load_config
from mmvideo.farm.typed import load_dataclass
from mmvideo.smooth import smooth_series


@dataclass(frozen=True)
class SwapSettings:
    """What the pipeline needs besides the frames: resolved config, model, output codec."""

    preset: str
    config: dict[str, Any]
    checkpoint: str | None
    checkpoint_sha256: str  # of the file: what a node checks before it runs a chunk
    weights_sha256: str  # checkpoint API digest, as SwapJob and provenance carry it
    device: str = "cpu"

    @property
    def codec(self) -> str:
        return self.config["encode"]["codec"]

    @property
    def config_sha256(self) -> str:
        return sha256_json(self.config)

    @property
    def cadence(self) -> int:
        """Frames the pipeline's periodic work (full detection) repeats on."""
        return max(1, int(self.config["detect"]["detect_interval"]))


def sha256_json(value: Any) -> str:
    """SHA-256 of a value's canonical JSON (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def resolve_settings(
    preset: str,
    checkpoint: str | Path | None,
    overrides: dict[str, Any] | None = None,
    device: str = "cpu",
) -> SwapSettings:
    """Merge a preset, the checkpoint's own swap settings and overrides, and pin the checkpoint
    by its SHA-256."""
    path = Path(checkpoint) if checkpoint is not None else _default_checkpoint()
    if not path.is_file():
        raise MissingInput(f"{path}: checkpoint not found")
    # Loading also refuses a broken or tampered checkpoint at plan time, not on every node
    # (imported late: torch, which planning never needs otherwise).
    from magicmask.checkpoint import load_checkpoint
    from mmvideo.generate import model_settings

    loaded = load_checkpoint(path, map_location="cpu")
    cfg = load_config(preset, overrides, model_settings(path, loaded.meta))
    return SwapSettings(
        preset=preset,
        config=config_to_dict(cfg),
        checkpoint=str(path.resolve()),
        checkpoint_sha256=file_sha256(path),
        weights_sha256=loaded.sha256,
        device=device,
    )


def _default_checkpoint() -> Path:
    # Imported late: the checkpoint module pulls torch, which planning never needs otherwise.
    from magicmask.checkpoint import default_checkpoint_path

    return Path(default_checkpoint_path())


def config_from_dict(data: dict[str, Any]) -> SwapConfig:
    """Rebuild the typed config a plan carries as plain JSON; ``InvalidInput`` names a bad key."""
    return load_dataclass(SwapConfig, data, "settings.config")


def chunk_job(
    settings: SwapSettings,
    *,
    input: str,
    source: str | None,
    output: str,
    start: int,
    stop: int,
    warmup: int,
    created: str,
    lookahead: int = 0,
    targets: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The ``SwapJob`` JSON of one chunk: write ``[start, stop)``, analyse ``warmup`` frames
    before and ``lookahead`` frames after; ``targets``: the plan's choice of faces and sources
    (``SwapJob.targets``), None to swap ``source`` into every face."""
    job = SwapJob(
        source=source,
        input=input,
        output=output,
        preset=settings.preset,
        checkpoint=settings.checkpoint,
        checkpoint_sha256=settings.weights_sha256,
        start=start,
        stop=stop,
        warmup=warmup,
        lookahead=lookahead,
        copy_streams=False,  # the merge adds the source's audio and subtitles once
        device=settings.device,
        batch_size=settings.config["generate"]["batch_size"],
        created=created,
        targets=targets,
    )
    return json.loads(job.to_json())


def decide_targets(settings: SwapSettings, input: str, source: str | None) -> list[dict[str, Any]]:
    """The tracks a single run of the whole clip would swap, with their sources and boxes
    (``mmvideo.targets.anchor_targets``): what ``plan`` decides once for every chunk.

    Analysed on the CPU wherever the nodes run: chunks find the chosen faces by their boxes,
    which do not depend on the device's last bits.
    """
    # Imported late so planning a job that swaps every face never imports torch and the models.
    from mmvideo.generate import load_models
    from mmvideo.pipeline import plan_targets

    return plan_targets(
        input, source, config_from_dict(settings.config), load_models(settings.checkpoint, "cpu")
    )


# A unit disturbance at a filter's first frame must have shrunk below this before the chunk's first
# written frame; at 1e-9 the smoothed landmarks (float32) come out bit-identical to a run that
# started long before (checked against the presets' noise settings in the tests).
SETTLE_TOLERANCE = 1e-9
SETTLE_LIMIT = 1000  # frames; filters with almost no process noise are cut off here


def settle_frames(config: dict[str, Any]) -> int:
    """Frames the temporal filters need before their output no longer depends on where they began.

    Found numerically from the config's own noise settings: the response of the pipeline's
    Kalman filter to a unit impulse at its first frame, for landmarks and for depth; at least
    the adaptive seam match's look-back (``ComposeConfig.seam_lookback``), which the render
    swaps from the warm-up.
    """
    smooth = config["smooth"]
    seam = config_from_dict(config).compose.seam_lookback()
    if smooth["smoothing"] == "none":
        return seam
    return max(
        seam,
        _settle(smooth["process_noise"], smooth["measurement_noise"]),
        _settle(smooth["depth_process_noise"], smooth["depth_measurement_noise"]),
    )


def lookahead_frames(config: dict[str, Any]) -> int:
    """Frames after a chunk's end that RTS smoothing needs so its output up to the end no longer
    depends on where the analysis stopped (0 for causal smoothing).

    The backward pass carries the last analysed frame's correction back through the track; found
    numerically like the warm-up: how far back a unit impulse at the last frame stays above
    ``SETTLE_TOLERANCE``.
    """
    smooth = config["smooth"]
    if smooth["smoothing"] != "rts":
        return 0
    return max(
        _reach_back(smooth["process_noise"], smooth["measurement_noise"]),
        _reach_back(smooth["depth_process_noise"], smooth["depth_measurement_noise"]),
    )


def _reach_back(process: float, measurement: float) -> int:
    impulse = np.zeros((SETTLE_LIMIT, 1))
    impulse[-1] = 1.0
    response = smooth_series(impulse, np.ones(SETTLE_LIMIT, bool), process, measurement, "rts")
    above = np.nonzero(np.abs(response[:, 0]) >= SETTLE_TOLERANCE)[0]
    return SETTLE_LIMIT - int(above[0]) if len(above) else 0


def _settle(process: float, measurement: float) -> int:
    impulse = np.zeros((SETTLE_LIMIT, 1))
    impulse[0] = 1.0
    response = smooth_series(impulse, np.ones(SETTLE_LIMIT, bool), process, measurement, "kalman")
    above = np.nonzero(np.abs(response[:, 0]) >= SETTLE_TOLERANCE)[0]
    return int(above[-1]) + 1 if len(above) else 0


def check_checkpoint(settings: SwapSettings) -> None:
    """Refuse to run a chunk with a checkpoint file that is not the one the plan pinned."""
    if settings.checkpoint is None:
        return
    path = Path(settings.checkpoint)
    if not path.is_file():
        raise MissingInput(f"{path}: checkpoint not found on this node")
    actual = file_sha256(path)
    if actual != settings.checkpoint_sha256:
        raise ModelError(
            f"{path}: checkpoint SHA-256 {actual[:12]}… differs from the plan's "
            f"{settings.checkpoint_sha256[:12]}… (re-plan, or restore the planned file)"
        )


def run_job(job: dict[str, Any], config: dict[str, Any]) -> dict[int, list[dict]]:
    """Run one chunk's swap; the pipeline writes ``job['output']`` atomically. Returns the
    written frames of swapped tracks left unswapped (``SwapSummary.missed``)."""
    # Imported late so planning and merging never import torch and the models.
    from mmvideo.generate import load_models
    from mmvideo.pipeline import mask_models, run_swap

    swap_job = SwapJob(**job)
    cfg = config_from_dict(config)
    # a node without the mask's model files fails before the generator loads
    masks = mask_models(cfg, swap_job.device)
    # run_swap pins BLAS to one thread, so a chunk's bytes are the same whichever node (local
    # pool, Ray worker, farm blade) runs it, and the same as a single `mmvideo swap`.
    summary = run_swap(
        swap_job, cfg, load_models(swap_job.checkpoint, swap_job.device), masks=masks
    )
    return summary.missed()
