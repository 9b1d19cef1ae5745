"""The training step, EMA, run-folder checkpoints and exact resume.

One step = the generator update on eq. 12 (both swap directions and both self-swaps, via
``magicmask.losses.generator_losses``) followed by the discriminator update. Under DDP both
networks are wrapped in ``DistributedDataParallel``; the generator is wrapped through a module
whose ``forward`` is ``forward_with_features`` because DDP only synchronises gradients of
parameters used through its own ``forward``.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from magicmask import checkpoint as ckpt
from magicmask import losses as L
from magicmask.config import MagicMaskConfig, create_config
from magicmask.face.identity import build_identity_encoder
from magicmask.model import create_discriminator
from magicmask.model.generator import MagicMaskGenerator
from mmcore.errors import InvalidInput, MMVideoError
from train.config import TrainConfig
from train.data import PairBatch

log = logging.getLogger(__name__)

TERMS = (
    "total",
    "identity",
    "reconstruction",
    "cycle",
    "adversarial",
    "weight_l1",
    "feature_match",
    "perceptual",
    "texture",
    "discriminator",
)


class TrainingDiverged(MMVideoError, FloatingPointError):
    """A loss term became NaN or infinite; the last good checkpoint is left as it was."""

    exit_code = 6


class _FeatureForward(nn.Module):
    """``forward`` = the generator's ``forward_with_features`` (what DDP can wrap)."""

    def __init__(self, generator: MagicMaskGenerator):
        super().__init__()
        self.generator = generator

    def forward(
        self, x_t: Tensor, e_s: Tensor, depth: Tensor, heatmaps: Tensor
    ) -> tuple[Tensor, list[Tensor]]:
        return self.generator.forward_with_features(x_t, e_s, depth, heatmaps)


class _GeneratorHandle:
    """What ``magicmask.losses`` calls: ``forward_with_features`` (through DDP when wrapped)
    and ``parameters`` (of the bare generator)."""

    def __init__(self, forward: nn.Module, generator: MagicMaskGenerator):
        self._forward, self._generator = forward, generator

    def forward_with_features(self, *args: Tensor) -> tuple[Tensor, list[Tensor]]:
        return self._forward(*args)

    def parameters(self) -> Iterator[nn.Parameter]:
        return self._generator.parameters()


@dataclass
class Models:
    """Everything a run trains or uses, with its optimisers."""

    cfg: MagicMaskConfig
    generator: MagicMaskGenerator
    discriminator: nn.Module
    ema: MagicMaskGenerator
    encoder: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler: torch.amp.GradScaler
    g_forward: nn.Module  # _FeatureForward, DDP-wrapped when distributed
    d_forward: nn.Module  # the discriminator, DDP-wrapped when distributed
    extra: L.DetailTerms = L.DetailTerms()  # [ours] terms beyond eq. 12 (off by default)


def model_config(tcfg: TrainConfig, identity_dim: int) -> MagicMaskConfig:
    """The run's model config: the named variant, its overrides, and the encoder's width."""
    return create_config(tcfg.model, **dict(tcfg.model_overrides), identity_dim=identity_dim)


def build_models(
    tcfg: TrainConfig,
    encoder: nn.Module,
    device: torch.device,
    distributed: bool = False,
) -> Models:
    """Seeded construction, so every DDP rank starts from identical weights."""
    torch.manual_seed(tcfg.seed)
    cfg = model_config(tcfg, encoder.dim)
    generator = MagicMaskGenerator(cfg).to(device)
    discriminator = create_discriminator(cfg).to(device)
    ema = copy.deepcopy(generator).requires_grad_(False).eval()
    opt_g = torch.optim.AdamW(
        generator.parameters(),
        tcfg.lr,
        betas=tcfg.betas,
        weight_decay=tcfg.weight_decay,
    )
    opt_d = torch.optim.AdamW(
        discriminator.parameters(),
        tcfg.lr,
        betas=tcfg.betas,
        weight_decay=tcfg.weight_decay,
    )
    scaler = torch.amp.GradScaler("cuda", enabled=_amp(tcfg, device))
    g_forward: nn.Module = _FeatureForward(generator)
    d_forward: nn.Module = discriminator
    if distributed:
        ids = [device.index] if device.type == "cuda" else None
        g_forward = nn.parallel.DistributedDataParallel(g_forward, device_ids=ids)
        d_forward = nn.parallel.DistributedDataParallel(discriminator, device_ids=ids)
    return Models(
        cfg,
        generator,
        discriminator,
        ema,
        encoder.to(device),
        opt_g,
        opt_d,
        scaler,
        g_forward,
        d_forward,
        detail_terms(tcfg, encoder, device),
    )


def detail_terms(tcfg: TrainConfig, encoder: nn.Module, device: torch.device) -> L.DetailTerms:
    """The run's [ours] extra loss terms; the perceptual network reuses the training encoder when
    that is dlib's ResNet (frozen either way)."""
    net = None
    if tcfg.lambda_perceptual or tcfg.lambda_texture:
        dlib = (
            encoder
            if encoder.name == "dlib-resnet"
            else build_identity_encoder("dlib-resnet", device=str(device))
        )
        net = L.DlibFeatures(dlib.to(device))
    return L.DetailTerms(
        tcfg.lambda_feature_match, tcfg.lambda_perceptual, tcfg.lambda_texture, net
    )


def _amp(tcfg: TrainConfig, device: torch.device) -> bool:
    return tcfg.amp and device.type == "cuda"


def _loss_batch(m: Models, side) -> L.FaceBatch:
    with torch.no_grad():
        identity = m.encoder(side.id_image)  # [B, D], frozen ε_ID
    return L.FaceBatch(side.image, identity, side.depth, side.heatmaps, side.mask, side.boxes)


@dataclass
class StepResult:
    losses: dict[str, float]
    swaps: L.SwapOutputs


def generator_backward(
    m: Models, tcfg: TrainConfig, a: L.FaceBatch, b: L.FaceBatch, step: int
) -> tuple[dict[str, Tensor], L.SwapOutputs]:
    """Eq. 12 for both swap directions, then its backward into the generator's ``.grad``
    (averaged over ranks under DDP). Raises ``TrainingDiverged`` before any backward."""
    device = a.image.device
    m.generator.train()
    # D's weights are frozen here so no gradient (and no DDP hook) reaches them.
    m.discriminator.requires_grad_(False)
    try:
        with torch.autocast(device.type, enabled=_amp(tcfg, device)):
            losses, swaps = L.generator_losses(
                m.cfg,
                _GeneratorHandle(m.g_forward, m.generator),
                m.discriminator,
                m.encoder,
                a,
                b,
                m.extra,
                tcfg.loss,
            )
    finally:
        m.discriminator.requires_grad_(True)
    terms = {t: getattr(losses, t) for t in TERMS[:-1]}
    _check_finite(step, terms)
    m.opt_g.zero_grad(set_to_none=True)
    m.scaler.scale(losses.total).backward()
    return terms, swaps


def discriminator_backward(
    m: Models, tcfg: TrainConfig, a: L.FaceBatch, b: L.FaceBatch, swaps: L.SwapOutputs, step: int
) -> Tensor:
    """The discriminator side of eq. 10/11 on this step's (detached) swaps, and its backward."""
    device = a.image.device
    m.discriminator.train()
    fakes = L.SwapOutputs(
        *(t.detach() for t in (swaps.swap_ab, swaps.swap_ba, swaps.self_a, swaps.self_b))
    )
    with torch.autocast(device.type, enabled=_amp(tcfg, device)):
        d_loss = L.discriminator_loss(m.cfg, m.d_forward, a, b, fakes)
    _check_finite(step, {"discriminator": d_loss})
    m.opt_d.zero_grad(set_to_none=True)
    m.scaler.scale(d_loss).backward()
    return d_loss


def loss_batches(m: Models, batch: PairBatch) -> tuple[L.FaceBatch, L.FaceBatch]:
    """The pair as ``magicmask.losses`` wants it, identity codes from the frozen encoder."""
    return _loss_batch(m, batch.target), _loss_batch(m, batch.source)


def train_step(m: Models, tcfg: TrainConfig, batch: PairBatch, step: int) -> StepResult:
    """One generator and one discriminator update; raises ``TrainingDiverged`` before any
    weight is touched if a loss term is not finite."""
    torch.manual_seed(tcfg.seed * 1_000_003 + step)  # any stochastic layer replays on resume
    a, b = loss_batches(m, batch)
    terms, swaps = generator_backward(m, tcfg, a, b, step)
    m.scaler.unscale_(m.opt_g)
    torch.nn.utils.clip_grad_norm_(m.generator.parameters(), tcfg.grad_clip)
    m.scaler.step(m.opt_g)
    d_loss = discriminator_backward(m, tcfg, a, b, swaps, step)
    m.scaler.unscale_(m.opt_d)
    torch.nn.utils.clip_grad_norm_(m.discriminator.parameters(), tcfg.grad_clip)
    m.scaler.step(m.opt_d)
    m.scaler.update()
    update_ema(m.ema, m.generator, ema_decay_at(tcfg.ema_decay, step))
    values = {t: float(v.detach()) for t, v in terms.items()}
    values["discriminator"] = float(d_loss.detach())
    return StepResult(values, swaps)


def _check_finite(step: int, terms: dict[str, Tensor]) -> None:
    values = {k: float(v.detach()) for k, v in terms.items()}
    if not all(math.isfinite(v) for v in values.values()):
        listed = ", ".join(f"{k}={v:.4g}" for k, v in values.items())
        raise TrainingDiverged(
            f"step {step}: non-finite loss ({listed}); the last good checkpoint is kept"
        )


def ema_decay_at(decay: float, step: int) -> float:
    """EMA decay with a warm-up, ``min(decay, (1 + step) / (10 + step))``: a plain 0.999 would keep
    ~50 % of the random initialisation in the average after 700 steps, which is all a CPU run gets."""
    return min(decay, (1.0 + step) / (10.0 + step))


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """Exponential moving average of weights; buffers (batch-norm statistics) are copied."""
    for e, p in zip(ema.parameters(), model.parameters()):
        e.lerp_(p.detach(), 1.0 - decay)
    for e, b in zip(ema.buffers(), model.buffers()):
        e.copy_(b)


# -- run-folder checkpoints -------------------------------------------------------------------

_STEP_RE = re.compile(r"step-(\d{8})\.pt$")


def checkpoint_path(run: Path, step: int) -> Path:
    return Path(run) / "checkpoints" / f"step-{step:08d}.pt"


def latest_checkpoint(run: Path) -> Path | None:
    paths = sorted(
        p for p in (Path(run) / "checkpoints").glob("step-*.pt") if _STEP_RE.search(p.name)
    )
    return paths[-1] if paths else None


def save_training_state(
    path: Path, m: Models, tcfg: TrainConfig, step: int, data_fingerprint: str
) -> None:
    """Everything needed to continue bit-exactly, written to a temp file and renamed."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    state = {
        "step": step,
        "train_config": tcfg.to_json(),
        "model_config": m.cfg.to_dict(),
        "identity_encoder": m.encoder.name,
        "data_fingerprint": data_fingerprint,
        "generator": m.generator.state_dict(),
        "discriminator": m.discriminator.state_dict(),
        "ema": m.ema.state_dict(),
        "opt_g": m.opt_g.state_dict(),
        "opt_d": m.opt_d.state_dict(),
        "scaler": m.scaler.state_dict(),
    }
    ckpt.save_training_state(path, state)


def prune_checkpoints(run: Path, keep: int) -> None:
    paths = sorted((Path(run) / "checkpoints").glob("step-*.pt"))
    for p in paths[: max(0, len(paths) - keep)]:
        p.unlink(missing_ok=True)


def _check_encoder(path: Path, state: dict, m: Models) -> None:
    if state["identity_encoder"] != m.encoder.name:
        raise InvalidInput(
            f"{path}: trained with identity encoder {state['identity_encoder']}, not {m.encoder.name}"
        )


def _load_networks(path: Path, state: dict, m: Models) -> None:
    """The generator, discriminator and EMA weights of a training state, after checking that it
    was trained against the same identity encoder."""
    _check_encoder(path, state, m)
    m.generator.load_state_dict(state["generator"])
    m.discriminator.load_state_dict(state["discriminator"])
    m.ema.load_state_dict(state["ema"])


# The config field a fine-tune may change: the detail path's modules start at zero
# (``_load_generator`` allows exactly those keys to be absent).
FINE_TUNE_FIELDS = ("detail_path",)


def architecture(cfg: dict) -> dict:
    """The fields that must match for weights to carry over (``init_weights_from``, and
    ``mmvideo tune``'s check of its base); read through ``from_dict``, which drops the loss
    weights older checkpoints carry in their config."""
    arch = MagicMaskConfig.from_dict(cfg).to_dict()
    return {k: v for k, v in arch.items() if k not in FINE_TUNE_FIELDS}


def _load_generator(path: Path, module: nn.Module, state: dict) -> None:
    """Strict, except that a detail path the checkpoint lacks keeps its zero initialisation."""
    result = module.load_state_dict(state, strict=False)
    missing = [k for k in result.missing_keys if not k.startswith("detail.")]
    if result.unexpected_keys and all(k.startswith("detail.") for k in result.unexpected_keys):
        raise InvalidInput(f"{path}: the model has the detail path: train it with --detail-path")
    if missing or result.unexpected_keys:
        raise InvalidInput(
            f"{path}: weights do not fit the model (missing {missing[:3]}, unexpected {result.unexpected_keys[:3]})"
        )


def _read_init_state(path: Path) -> dict:
    """A run's training state, or an exported model (``magicmask.checkpoint``) as one without
    discriminator: the shipped model has no training state behind it any more."""
    try:
        return ckpt.load_training_state(path)
    except MMVideoError as exc:
        try:
            exported = ckpt.load_checkpoint(path)
        except MMVideoError:
            raise exc from None
    weights = exported.generator.state_dict()
    return {
        "model_config": exported.config.to_dict(),
        "identity_encoder": exported.identity_encoder,
        "generator": weights,
        "ema": weights,
        "step": exported.meta.get("steps", 0),
    }


def init_weights_from(path: Path, m: Models) -> int:
    """Fine-tuning: the generator, discriminator and EMA weights of another run's checkpoint (its
    optimisers, step and data are not carried over), or the generator of an exported model for
    both generator and EMA, with the discriminators freshly initialised. Loss weights (a
    training setting) and the detail path (``FINE_TUNE_FIELDS``) may differ. Returns the steps
    the source had trained."""
    state = _read_init_state(path)
    if architecture(state["model_config"]) != architecture(m.cfg.to_dict()):
        raise InvalidInput(f"{path}: --init-from needs a checkpoint of the same model config")
    _check_encoder(path, state, m)
    _load_generator(path, m.generator, state["generator"])
    _load_generator(path, m.ema, state["ema"])
    if "discriminator" in state:
        m.discriminator.load_state_dict(state["discriminator"])
    else:
        log.info("%s: an exported model, no discriminator: the discriminators start fresh", path)
    return int(state["step"])


def load_training_state(path: Path, m: Models, tcfg: TrainConfig, data_fingerprint: str) -> int:
    """Restore a run's state into ``m``; refuses a checkpoint of a different run. Returns its step."""
    state = ckpt.load_training_state(path)
    saved = TrainConfig.from_json(state["train_config"])
    if saved.resume_key() != tcfg.resume_key():
        diff = sorted(k for k, v in tcfg.resume_key().items() if saved.resume_key().get(k) != v)
        raise InvalidInput(
            f"{path}: checkpoint is from a different run (differs in {', '.join(diff)})"
        )
    if state["data_fingerprint"] != data_fingerprint:
        raise InvalidInput(
            f"{path}: checkpoint was trained on other data (shard set differs from --data)"
        )
    _load_networks(path, state, m)
    m.opt_g.load_state_dict(state["opt_g"])
    m.opt_d.load_state_dict(state["opt_d"])
    m.scaler.load_state_dict(state["scaler"])
    return int(state["step"])
