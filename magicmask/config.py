"""Typed MagicMask configurations and their registry (timm-style).

A config is one flat, frozen dataclass covering the generator and the discriminators (the
architecture; the loss weights are a training setting, ``magicmask.losses.LossConfig``), so a
checkpoint can carry it as a plain dict and ``create_config(name, **overrides)`` can change any
field. Each registered variant only fills in sizes. Every choice the paper
leaves open (marked **[ours]** in ``docs/magicmask-spec.md``) is a field whose default is the
spec's choice.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

from mmcore.errors import ModelError

# generator precisions by name: autocast on CUDA (magicmask.inference), a preset/flag choice in mmvideo
PRECISIONS = ("fp32", "fp16", "bf16")

ADVERSARIAL_KINDS = ("afsa", "global")
COMPONENTS = ("eyes", "nose", "mouth", "jaw")
# Config fields of checkpoints written before the loss settings moved to the training config
LOSS_KEYS_OF_OLDER_CHECKPOINTS = (
    "lambda_id",
    "lambda_recon",
    "lambda_afsa",
    "lambda_weight_l1",
    "recon_stop_gradient",
    "gan_generator_loss",
)


@dataclass(frozen=True)
class MagicMaskConfig:
    """Every size and switch of the generator and discriminators."""

    name: str = "custom"
    # -- interface (docs/design.md) --
    image_size: int = 224
    # 512 for ArcFace / FaceNet, 128 for dlib's descriptor
    identity_dim: int = 512
    # [ours] landmark features are rendered component-group heat-maps
    landmark_channels: int = 8

    # -- visual module f_V --
    # the stem downsamples by stem_stride, then one stride-2 stage per further width
    encoder_channels: tuple[int, ...] = (64, 128, 256, 512)
    stem_stride: int = 2
    # the paper's latent width is 1024
    latent_channels: int = 1024
    arie_blocks: int = 4
    # "further conv layers" after the fusion of eq. 4
    arie_convs: int = 1
    # [ours] "uniform-one": softmax scaled so a uniform attention is 1; "none": plain softmax
    attention_scale: str = "uniform-one"

    # -- geometric module f_G --
    # Table 1 ablation: False builds f_V only (no geometric parameters at all)
    use_geometric: bool = True
    geo_channels: tuple[int, ...] = (32, 64, 128, 256)
    # token width d_g
    geo_dim: int = 256
    geo_layers: int = 2
    geo_heads: int = 4
    geo_mlp_ratio: float = 2.0
    # [ours] E_s: "broadcast+pos" = W e_s broadcast to the N tokens plus a learned position;
    # "broadcast" = no position (the identity term then averages V_g)
    geo_identity_tokens: str = "broadcast+pos"

    # -- decoder f_D --
    # one 2x upsample stage per width; the head upsamples the rest of the way
    decoder_channels: tuple[int, ...] = (512, 256, 128, 64)
    upsample_mode: str = "nearest"
    pad_mode: str = "reflect"
    # [ours] maps the output to the [0, 1] image range
    output_activation: str = "sigmoid"
    norm_layer: str = "instance"
    act_layer: str = "leaky_relu"
    # [ours] detail path: a shallow stride-2 encoder of x_t adds its features to every decoder
    # stage below the image size through zero-initialised 1x1 convs (a fine-tune from a model
    # without it starts identical). Not in the paper; off in every registered config.
    detail_path: bool = False

    # -- discriminators --
    # Table 1 ablation: "afsa" (eq. 11) or "global" (eq. 10)
    adversarial: str = "afsa"
    disc_channels: tuple[int, ...] = (64, 128, 256)
    # [ours] fraction of the box size added on each side; 0 because prepare_target's boxes
    # already carry a margin (6 px) around the landmarks
    afsa_margin: float = 0.0
    # (h, w) of the eyes, nose, mouth and jaw crops
    afsa_crop_sizes: tuple[tuple[int, int], ...] = (
        (48, 96),
        (64, 48),
        (48, 80),
        (96, 160),
    )

    @property
    def latent_size(self) -> int:
        """Side of the latent map z_t."""
        return self.image_size // self.total_stride

    @property
    def total_stride(self) -> int:
        """Downsampling from the 224 input to the latent map (the stem, then one 2x per stage)."""
        return self.stem_stride * 2 ** (len(self.encoder_channels) - 1)

    def to_dict(self) -> dict:
        """Plain types only (lists, not tuples) so ``torch.load(weights_only=True)`` reads it."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = [list(v) if isinstance(v, tuple) else v for v in value]
        return out

    @classmethod
    def from_dict(cls, data: dict) -> MagicMaskConfig:
        """Inverse of ``to_dict``; unknown keys are an error (a checkpoint from another version),
        except the loss settings that older checkpoints (the embedded one) carry: dropped."""
        valid = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - valid - set(LOSS_KEYS_OF_OLDER_CHECKPOINTS))
        if unknown:
            raise ModelError(f"config: unknown fields {unknown} (valid: {sorted(valid)})")
        values = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if isinstance(value, list):
                value = tuple(tuple(v) if isinstance(v, list) else v for v in value)
            values[f.name] = value
        return validate(cls(**values))


_CHOICES = {
    "attention_scale": ("uniform-one", "none"),
    "geo_identity_tokens": ("broadcast+pos", "broadcast"),
    "pad_mode": ("reflect", "zeros"),
    "upsample_mode": ("nearest", "bilinear"),
}


def validate(cfg: MagicMaskConfig) -> MagicMaskConfig:
    """Refuse combinations that cannot build a model, with one-line reasons."""
    down = cfg.total_stride
    if cfg.image_size % down:
        raise ModelError(
            f"config {cfg.name}: image_size {cfg.image_size} not divisible by total stride {down}"
        )
    head_scale = cfg.image_size / (cfg.latent_size * 2 ** len(cfg.decoder_channels))
    if head_scale not in (1, 2, 4):
        raise ModelError(
            f"config {cfg.name}: {len(cfg.decoder_channels)} decoder stages from the {cfg.latent_size}px "
            f"latent leave a head upsampling of {head_scale} to {cfg.image_size}px (must be 1, 2 or 4)"
        )
    if cfg.total_stride % 2 ** (len(cfg.geo_channels) - 1):
        raise ModelError(
            f"config {cfg.name}: {len(cfg.geo_channels)} geometric stages exceed the total stride {down}"
        )
    if cfg.geo_dim % cfg.geo_heads:
        raise ModelError(
            f"config {cfg.name}: geo_dim {cfg.geo_dim} not divisible by geo_heads {cfg.geo_heads}"
        )
    if cfg.adversarial not in ADVERSARIAL_KINDS:
        raise ModelError(
            f"config {cfg.name}: adversarial must be one of {ADVERSARIAL_KINDS}, not {cfg.adversarial!r}"
        )
    for field_name, allowed in _CHOICES.items():
        if getattr(cfg, field_name) not in allowed:
            raise ModelError(
                f"config {cfg.name}: {field_name} must be one of {allowed}, not {getattr(cfg, field_name)!r}"
            )
    if len(cfg.afsa_crop_sizes) != len(COMPONENTS):
        raise ModelError(
            f"config {cfg.name}: afsa_crop_sizes needs one (h, w) per component {COMPONENTS}"
        )
    return cfg


_REGISTRY: dict[str, Callable[[], MagicMaskConfig]] = {}


def register(fn: Callable[[], MagicMaskConfig]) -> Callable[[], MagicMaskConfig]:
    _REGISTRY[fn().name] = fn
    return fn


def list_configs() -> list[str]:
    """Names of every registered variant."""
    return sorted(_REGISTRY)


def create_config(name: str | MagicMaskConfig, **overrides) -> MagicMaskConfig:
    """The registered variant ``name`` (or a given config) with fields replaced by ``overrides``."""
    if isinstance(name, MagicMaskConfig):
        cfg = name
    elif name in _REGISTRY:
        cfg = _REGISTRY[name]()
    else:
        raise ModelError(f"unknown model config {name!r} (registered: {', '.join(list_configs())})")
    valid = sorted(f.name for f in dataclasses.fields(MagicMaskConfig))
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise TypeError(
            f"create_config({cfg.name!r}): unknown arguments {unknown}; valid: {', '.join(valid)}"
        )
    return validate(dataclasses.replace(cfg, **overrides))


@register
def tiny() -> MagicMaskConfig:
    """Embedded / CPU variant: early 4x stem, 14x14 latent, narrow widths (< 5 M parameters)."""
    return MagicMaskConfig(
        name="tiny",
        encoder_channels=(24, 48, 96),
        stem_stride=4,
        latent_channels=96,
        arie_blocks=2,
        geo_channels=(16, 32, 64),
        geo_dim=64,
        geo_layers=1,
        geo_heads=2,
        # three stages reach 112; the head upsamples to 224, so the only full-size layer is the
        # 3-channel output conv (the budget is ~10 ms per face on 2 CPU cores)
        decoder_channels=(48, 24, 12),
        # zero padding folds into the convs; reflect padding is a separate memory-bound pass
        pad_mode="zeros",
        disc_channels=(32, 64, 128),
        afsa_crop_sizes=((32, 64), (48, 32), (32, 64), (64, 96)),
    )


@register
def base() -> MagicMaskConfig:
    """Mid-size variant: 512-wide latent at 14x14."""
    return MagicMaskConfig(
        name="base",
        encoder_channels=(32, 64, 128, 256),
        stem_stride=2,
        latent_channels=512,
        arie_blocks=4,
        geo_channels=(32, 64, 128, 256),
        geo_dim=256,
        geo_layers=2,
        geo_heads=4,
        decoder_channels=(256, 128, 64, 32),
    )


@register
def paper() -> MagicMaskConfig:
    """The paper's 1024-wide latent; block counts and the other widths are ours (spec §7)."""
    return MagicMaskConfig(
        name="paper",
        encoder_channels=(64, 128, 256, 512),
        stem_stride=2,
        latent_channels=1024,
        arie_blocks=4,
        geo_channels=(32, 64, 128, 256),
        geo_dim=256,
        geo_layers=4,
        geo_heads=8,
        decoder_channels=(512, 256, 128, 64),
    )


def _ablation(geometric: bool, adversarial: str) -> Callable[[], MagicMaskConfig]:
    def make() -> MagicMaskConfig:
        tag = ("fvfg" if geometric else "fv") + "-" + adversarial
        return dataclasses.replace(
            paper(),
            name=f"paper-{tag}",
            use_geometric=geometric,
            adversarial=adversarial,
        )

    make.__doc__ = f"Table 1 ablation of ``paper``: geometric module {'on' if geometric else 'off'}, {adversarial} adversarial loss."
    return make


# The four cells of the paper's Table 1 (paper-fvfg-afsa equals "paper"); any other config gets the
# same switches with create_config(name, use_geometric=..., adversarial=...).
for _geometric in (False, True):
    for _adv in ("global", "afsa"):
        register(_ablation(_geometric, _adv))
