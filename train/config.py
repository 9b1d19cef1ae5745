"""Typed training configuration; the model's own sizes live in ``magicmask.config``."""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from magicmask.config import ADVERSARIAL_KINDS, LOSS_KEYS_OF_OLDER_CHECKPOINTS
from magicmask.losses import LossConfig
from mmcore.config_keys import NO_FLAG, flag, one_of


@dataclass(frozen=True)
class ModelSwitches:
    """The model config fields ``train-fit`` sets by flag (None: the registered config's)."""

    use_geometric: bool | None = field(
        default=None,
        metadata=flag(
            "Table 1 ablation: with or without f_G (default: the config's).", "--geometric"
        ),
    )
    adversarial: str | None = field(
        default=None,
        metadata={
            **one_of(ADVERSARIAL_KINDS),
            **flag("Table 1 ablation (default: the config's)."),
        },
    )
    detail_path: bool | None = field(
        default=None,
        metadata=flag(
            "[ours] Target detail path into the decoder (zero-initialized; default: the config's, off)."
        ),
    )

    def overrides(self) -> tuple[tuple[str, object], ...]:
        """As ``TrainConfig.model_overrides``: the switches that are set."""
        return tuple((k, v) for k, v in dataclasses.asdict(self).items() if v is not None)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides what a run computes (saved in the run folder, checked on resume).

    Every field but the ``NO_FLAG`` ones is a ``train-fit`` flag
    (``mmvideo.commands.train.fit_command``), with the field's default and help."""

    # registered MagicMask config
    model: str = field(
        default="tiny",
        metadata=flag("Model config: tiny | base | paper | paper-fv-global ...", "--config"),
    )
    # (field, value) replacing config fields; ``ModelSwitches`` are the ones with flags
    model_overrides: tuple[tuple[str, object], ...] = field(default=(), metadata=NO_FLAG)
    # frozen ε_ID used by L_IS (the judge must differ)
    identity_encoder: str = field(
        default="dlib-resnet",
        metadata=flag(
            "dlib-resnet | facenet-vggface2 | arcface-onnx (with --identity-weights FILE.onnx)."
        ),
    )
    identity_weights: str = field(
        default="",
        metadata=flag("Weights file of the identity encoder (default: the packaged one)."),
    )
    batch_size: int = field(default=4, metadata=flag("Pairs per step per process."))
    steps: int = 10_000
    # AdamW, both networks (sibling code of the paper)
    lr: float = 1e-4
    # [ours] the usual GAN momentum
    betas: tuple[float, float] = field(default=(0.5, 0.999), metadata=NO_FLAG)
    weight_decay: float = field(default=1e-4, metadata=NO_FLAG)
    grad_clip: float = 1.0  # max global L2 norm per network
    ema_decay: float = 0.999
    same_identity_prob: float = 0.2
    seed: int = 0
    amp: bool = field(default=True, metadata=flag("Disable mixed precision on CUDA.", "--no-amp"))
    checkpoint_every: int = 500
    keep_checkpoints: int = field(default=3, metadata=NO_FLAG)
    log_every: int = 20
    image_every: int = 250
    exclude_identities: tuple[str, ...] = field(
        default=(), metadata=flag("Identity held out of training; repeatable.", "--exclude")
    )
    # m_t of eq. 8 redrawn from the landmarks with this forehead extension (None = the shard's
    # mask, prepare_target's 0.3). 0 keeps the forehead under L_Recon: with it outside, the
    # identity loss paints a colored band there that no discriminator patch covers.
    mask_forehead: float | None = field(
        default=None,
        metadata=flag(
            "Redraw the eq. 8 face mask with this forehead extension (default: the shard's, 0.3); "
            "0 keeps the forehead under the reconstruction loss."
        ),
    )
    # checkpoint of another run (or an exported model) whose weights start this one
    init_from: str = field(
        default="",
        metadata={
            **flag(
                "Fine-tune: start from the weights of another run's checkpoints/step-*.pt, or of "
                "an exported model (fresh discriminators); new data, loss weights and "
                "--detail-path allowed."
            ),
            "path": {"exists": True, "dir_okay": False},
        },
    )
    # the weights of eq. 12: how the model is trained, not part of its architecture (flags of
    # their own: ``LossConfig``'s fields)
    loss: LossConfig = field(default_factory=LossConfig, metadata=NO_FLAG)
    # [ours] training terms beyond eq. 12 on the self-swaps (magicmask.losses.DetailTerms);
    # 0 = off, the paper's loss. L1 on the discriminators' intermediate features:
    lambda_feature_match: float = field(
        default=0.0,
        metadata=flag(
            "[ours] Feature matching on the discriminators' features of the self-swap (0 = off, "
            "the paper).",
        ),
    )
    # L1 on early dlib-ResNet features (never FaceNet: the judge)
    lambda_perceptual: float = field(
        default=0.0,
        metadata=flag(
            "[ours] Perceptual L1 on early dlib-ResNet features of the self-swap (0 = off, the "
            "paper)."
        ),
    )
    # L1 between Gram matrices of early dlib-ResNet features of the cross swap and its target
    lambda_texture: float = field(
        default=0.0,
        metadata=flag(
            "[ours] Texture loss: the cross swap's skin statistics (Gram matrices of early "
            "dlib-ResNet features in the face mask) against its target's (0 = off, the paper)."
        ),
    )

    def __post_init__(self) -> None:
        # Loss weights were model config fields, set as model overrides: run folders written
        # then (and callers) still give them that way, and they mean the same loss
        moved = {k: v for k, v in self.model_overrides if k in LOSS_KEYS_OF_OLDER_CHECKPOINTS}
        if moved:
            kept = tuple((k, v) for k, v in self.model_overrides if k not in moved)
            object.__setattr__(self, "model_overrides", kept)
            object.__setattr__(self, "loss", dataclasses.replace(self.loss, **moved))

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, default=list)

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        raw = json.loads(text)
        raw["betas"] = tuple(raw["betas"])
        raw["model_overrides"] = tuple(tuple(x) for x in raw["model_overrides"])
        raw["exclude_identities"] = tuple(raw["exclude_identities"])
        raw["loss"] = LossConfig(**raw.get("loss", {}))
        return cls(**raw)

    def resume_key(self) -> dict:
        """Fields that must match for a resume to be the same run (steps and logging may change)."""
        keep = ("model", "model_overrides", "identity_encoder", "batch_size", "lr", "betas", "weight_decay",
                "grad_clip", "ema_decay", "same_identity_prob", "seed", "exclude_identities", "mask_forehead",
                "loss", "lambda_feature_match", "lambda_perceptual", "lambda_texture")  # fmt: skip
        return {k: v for k, v in json.loads(self.to_json()).items() if k in keep}


# The keyword of ``build_identity_encoder`` that names each encoder's weights file.
ENCODER_WEIGHTS_ARG = {
    "dlib-resnet": "dlib_path",
    "facenet-vggface2": "graph_path",
    "arcface-onnx": "onnx_path",
}


def encoder_paths(name: str, weights: str | Path | None) -> dict[str, str]:
    """``build_identity_encoder`` keyword arguments for a weights file (none if not given)."""
    return {ENCODER_WEIGHTS_ARG.get(name, "path"): str(weights)} if weights else {}


def load_train_config(path: Path) -> TrainConfig:
    return TrainConfig.from_json(Path(path).read_text())
