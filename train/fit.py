"""``mmvideo -v train-fit --config tiny --data DIR --out RUN`` (or under ``torchrun``): train MagicMask.

The run folder holds ``train-config.json``, ``checkpoints/step-*.pt`` (full state, for
``--resume``), ``tb/`` (TensorBoard: every loss term, data vs compute time, image grids of
target | source | swap | self-swap) and, at the end, ``magicmask-<config>.pt``: the EMA
generator as a ``magicmask.checkpoint`` file that ``mmvideo swap --checkpoint`` loads.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist

from magicmask.checkpoint import default_checkpoint_path, save_checkpoint
from magicmask.checkpoint import load_training_state as read_state
from magicmask.config import MagicMaskConfig
from magicmask.face.heatmaps import landmark_heatmaps
from magicmask.face.identity import build_identity_encoder
from magicmask.model.generator import MagicMaskGenerator
from mmcore.atomic import check_output, write_errors
from mmcore.config_keys import NO_FLAG, flag, one_of
from mmcore.errors import InvalidInput, OutputError
from train import gate
from train.config import TrainConfig, encoder_paths, load_train_config
from train.data import PairSampler, StepDataset, load_faces, redraw_masks, step_loader
from train.shards import list_shards
from train.trainer import (
    TERMS,
    Models,
    build_models,
    checkpoint_path,
    init_weights_from,
    latest_checkpoint,
    load_training_state,
    prune_checkpoints,
    save_training_state,
    train_step,
)

log = logging.getLogger(__name__)


@dataclass
class FitReport:
    start_step: int
    end_step: int
    seconds: float
    data_seconds: float
    last_losses: dict[str, float]
    exported: Path | None


EXPORT_DTYPES = ("float16", "float32")


@dataclass(frozen=True)
class Runtime:
    """Where and how a process runs (not part of what the run computes)."""

    # train-fit's --device defaults to cuda where there is one, so it is not generated
    device: str = field(default="cpu", metadata=NO_FLAG)
    threads: int = field(default=1, metadata=flag("torch CPU threads per process."))
    workers: int = field(default=0, metadata=flag("Data-loader worker processes."))
    export_dtype: str = field(default="float16", metadata=one_of(EXPORT_DTYPES))


def data_fingerprint(data: Path, exclude: tuple[str, ...]) -> str:
    """Shard names carry a digest of their inputs and settings, so their list identifies the data."""
    names = [p.name for p in list_shards(data)]
    return hashlib.sha1("\n".join(names + sorted(exclude)).encode()).hexdigest()[:16]


def _dist_setup(rt: Runtime) -> tuple[int, int, torch.device]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1 and not dist.is_initialized():
        dist.init_process_group("nccl" if rt.device.startswith("cuda") else "gloo")
    rank = dist.get_rank() if dist.is_initialized() else 0
    device = torch.device(rt.device)
    if device.type == "cuda" and world > 1:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return rank, world, device


def _prepare_run(run: Path, tcfg: TrainConfig, resume: bool) -> Path | None:
    """Create or check the run folder; returns the checkpoint to resume from, if any."""
    existing = latest_checkpoint(run)
    cfg_file = run / "train-config.json"
    if resume:
        if existing is None:
            raise InvalidInput(f"{run}: nothing to resume (no checkpoints/step-*.pt)")
        saved = load_train_config(cfg_file)
        if saved.resume_key() != tcfg.resume_key():
            diff = sorted(k for k, v in tcfg.resume_key().items() if saved.resume_key().get(k) != v)
            raise InvalidInput(
                f"{run}: --resume with settings that differ from the run's ({', '.join(diff)})"
            )
        return existing
    if existing is not None:
        raise OutputError(
            f"{run}: already holds checkpoints (pass --resume, or choose another --out)"
        )
    with write_errors(run, "create run folder"):
        run.mkdir(parents=True, exist_ok=True)
    cfg_file.write_text(tcfg.to_json())
    return None


def _image_grid(batch, result, rows: int = 4) -> torch.Tensor:
    """[3, H, W] grid: one row per pair, columns target | source | swap | self-swap."""
    n = min(rows, batch.target.image.shape[0])
    cols = [
        batch.target.image[:n],
        batch.source.image[:n],
        result.swaps.swap_ab[:n],
        result.swaps.self_a[:n],
    ]
    grid = torch.cat(
        [torch.cat(list(c.float().cpu()), dim=1) for c in cols], dim=2
    )  # [3, n*S, 4*S]
    return grid.clamp(0, 1)


def fit(
    tcfg: TrainConfig,
    data: Path,
    run: Path,
    resume: bool = False,
    rt: Runtime = Runtime(),
) -> FitReport:
    """Train (or continue) a run; returns timing and the last losses of this process."""
    run = Path(run)
    torch.set_num_threads(rt.threads)
    rank, world, device = _dist_setup(rt)
    encoder = build_identity_encoder(
        tcfg.identity_encoder,
        device=str(device),
        **encoder_paths(tcfg.identity_encoder, tcfg.identity_weights),
    )
    models = build_models(tcfg, encoder, device, distributed=world > 1)
    faces = load_faces(data, models.cfg.image_size, 112, set(tcfg.exclude_identities))
    if tcfg.mask_forehead is not None:
        redraw_masks(faces, tcfg.mask_forehead)
    fingerprint = data_fingerprint(data, tcfg.exclude_identities)
    resume_from = (
        _prepare_run(run, tcfg, resume)
        if rank == 0
        else (latest_checkpoint(run) if resume else None)
    )
    if world > 1:
        dist.barrier()
    start = load_training_state(resume_from, models, tcfg, fingerprint) if resume_from else 0
    if resume_from:
        log.info("resumed %s at step %d", resume_from, start)
    elif tcfg.init_from:
        parent_steps = init_weights_from(Path(tcfg.init_from), models)
        log.info(
            "weights from %s (%d steps); optimizers and step count start afresh",
            tcfg.init_from,
            parent_steps,
        )
    sampler = PairSampler(faces, tcfg.batch_size, tcfg.seed, tcfg.same_identity_prob)
    heat = functools.partial(landmark_heatmaps, size=models.cfg.image_size)
    loader = step_loader(
        StepDataset(sampler, heat, start, max(0, tcfg.steps - start), rank), rt.workers
    )
    writer = _writer(run) if rank == 0 else None

    t0 = time.perf_counter()
    data_s, losses, step = 0.0, {}, start
    t_wait = time.perf_counter()
    try:
        for step, batch in enumerate(loader, start + 1):
            batch = batch.to(device)
            waited = time.perf_counter() - t_wait
            data_s += waited
            t_step = time.perf_counter()
            result = train_step(models, tcfg, batch, step)
            losses = result.losses
            if writer is not None and (step % tcfg.log_every == 0 or step == tcfg.steps):
                for k in TERMS:
                    writer.add_scalar(f"loss/{k}", losses[k], step)
                writer.add_scalar("time/data_s", waited, step)
                writer.add_scalar("time/step_s", time.perf_counter() - t_step, step)
                log.info("step %d %s", step, " ".join(f"{k}={losses[k]:.4f}" for k in TERMS))
            if writer is not None and step % tcfg.image_every == 0:
                writer.add_image("target|source|swap|self-swap", _image_grid(batch, result), step)
            if step % tcfg.checkpoint_every == 0 or step == tcfg.steps:
                _checkpoint(models, tcfg, run, step, fingerprint, rank, world)
            t_wait = time.perf_counter()
    finally:
        if writer is not None:
            writer.close()
    exported = None
    if rank == 0 and step > start:
        exported = export_generator(
            run / f"magicmask-{tcfg.model}.pt",
            models,
            tcfg,
            step,
            faces,
            rt.export_dtype,
        )
    if world > 1:
        dist.barrier()
    return FitReport(start, step, time.perf_counter() - t0, data_s, losses, exported)


def _checkpoint(
    m: Models,
    tcfg: TrainConfig,
    run: Path,
    step: int,
    fingerprint: str,
    rank: int,
    world: int,
) -> None:
    if rank == 0:
        save_training_state(checkpoint_path(run, step), m, tcfg, step, fingerprint)
        prune_checkpoints(run, tcfg.keep_checkpoints)
    if world > 1:
        dist.barrier()


def _writer(run: Path):
    from torch.utils.tensorboard import SummaryWriter  # deferred: tensorboard is the train extra

    return SummaryWriter(str(run / "tb"))


def export_generator(
    path: Path, m: Models, tcfg: TrainConfig, step: int, faces, dtype: str
) -> Path:
    """The EMA generator as a shippable ``magicmask.checkpoint`` file."""
    meta = {
        "steps": step,
        "batch_size": tcfg.batch_size,
        "train_config": tcfg.to_json(),
        "train_faces": len(faces),
        "train_identities": len(faces.identities),
        "weights": "ema",
    }
    save_checkpoint(
        path,
        m.ema,
        m.cfg,
        m.encoder.name,
        meta,
        dtype=getattr(torch, dtype) if dtype != "float32" else None,
    )
    return path


def export_training_state(
    state_path: Path, out: Path, dtype: str = "float16", weights: str = "ema"
) -> Path:
    """The EMA (or the raw, ``weights="generator"``) generator of a run-folder checkpoint, e.g. of
    a run that is still going, as a shippable ``magicmask.checkpoint`` file."""
    state = read_state(state_path)
    cfg = MagicMaskConfig.from_dict(state["model_config"])
    generator = MagicMaskGenerator(cfg)
    generator.load_state_dict(state[weights])
    tcfg = TrainConfig.from_json(state["train_config"])
    meta = {
        "steps": state["step"],
        "batch_size": tcfg.batch_size,
        "train_config": state["train_config"],
        "weights": weights,
    }
    save_checkpoint(
        out,
        generator,
        cfg,
        state["identity_encoder"],
        meta,
        dtype=getattr(torch, dtype) if dtype != "float32" else None,
    )
    return Path(out)


def export_checkpoint(
    state: Path,
    out: Path,
    export_dtype: str,
    weights: str,
    gate_data: Path | None,
    overwrite: bool | None,
) -> dict[str, tuple[float, float]]:
    """``export_training_state`` to ``out`` after the output checks; with ``gate_data``, only a
    model that passes ``train.gate`` against the embedded one replaces ``out``. Returns the gate's
    measures, ``{name: (new, embedded)}`` (empty without ``gate_data``)."""
    embedded = default_checkpoint_path()
    if gate_data is None and out.resolve() == embedded.resolve():
        raise InvalidInput(
            f"{out}: replacing the embedded checkpoint needs --gate-data DIR (held-out pairs)"
        )
    check_output(out, state, overwrite=overwrite)  # before the training state loads
    target = out if gate_data is None else out.with_name(f".{out.name}.gate")
    export_training_state(state, target, export_dtype, weights)
    if gate_data is not None:
        try:
            measured = gate.check(target, embedded, gate_data)
        except BaseException:
            target.unlink(missing_ok=True)
            raise
        target.replace(out)
        return measured
    return {}
