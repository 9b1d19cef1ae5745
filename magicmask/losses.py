"""MagicMask losses, eq. 7–12 of the paper (spec §4), one function each.

A training step draws two faces ``a`` and ``b``; the generator is trained on both directions
(``a`` with ``b``'s identity and the reverse swap) plus both self-swaps, which eq. 8 and 9 need.
All four passes run as one concatenated batch.

Beyond eq. 12, three **[ours]** training terms against soft, blotchy output are available, all off
by default (the paper's loss): feature matching on the discriminators' features and a perceptual
loss on early layers of a frozen face network, each on the self-swap, and a texture loss on the
cross swap (``DetailTerms``); and an **[ours]** option of eq. 7, the identity encoder reading a
randomly jittered, resampled view of the swap (``LossConfig.identity_augment``, off by default).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from magicmask.config import MagicMaskConfig
from magicmask.face.encoders.dlib_resnet import DLIB_INPUT_SCALE
from mmcore.errors import ModelError


@dataclass
class FaceBatch:
    """One side of a training pair, every tensor batched and on the model's device."""

    image: Tensor  # [B,3,224,224] aligned crop in [0,1]
    identity: Tensor  # [B,D] L2-normalised identity code of this face
    depth: Tensor  # [B,1,224,224]
    heatmaps: Tensor  # [B,G,224,224]
    mask: Tensor  # [B,1,224,224] face mask in [0,1] (1 = face)
    boxes: Tensor  # [B,4,4] eyes, nose, mouth, jaw (x0,y0,x1,y1) in crop pixels


@dataclass
class SwapOutputs:
    """The four generator outputs of a step."""

    swap_ab: Tensor  # x_{a→b}: a's frame with b's identity
    swap_ba: Tensor  # the reverse swap x_{b→a}
    self_a: Tensor  # x_{a→a}
    self_b: Tensor  # x_{b→b}


@dataclass
class GeneratorLosses:
    """Eq. 12 and its weighted-in terms (each averaged over both swap directions)."""

    total: Tensor
    identity: Tensor
    reconstruction: Tensor
    cycle: Tensor
    adversarial: Tensor
    weight_l1: Tensor
    feature_match: Tensor  # [ours] DetailTerms, 0 when off
    perceptual: Tensor  # [ours] DetailTerms, 0 when off
    texture: Tensor  # [ours] DetailTerms, 0 when off


GAN_GENERATOR_LOSSES = ("non-saturating", "minimax")
# at 2 the view's resampling already reaches down to the 16 px floor; beyond it, its size factor
# would turn negative
IDENTITY_AUGMENT_MAX = 2.0


@dataclass(frozen=True)
class LossConfig:
    """The weights and switches of eq. 12. They decide how a model is trained, not what it is:
    a training setting (``train.config.TrainConfig.loss``), so a fine-tune may change them and a
    checkpoint does not carry them."""

    # metadata: the --help text and choices of train-fit's flags (mmvideo.config.dataclass_keys)
    lambda_id: float = field(default=5.0, metadata={"help": "λ_IS (paper: 5)."})
    lambda_recon: float = field(default=2.0, metadata={"help": "λ_Recon (paper: 2)."})
    lambda_afsa: float = field(default=1.0, metadata={"help": "λ_AFSA (paper: 1)."})
    lambda_weight_l1: float = field(
        default=0.0, metadata={"help": "Optional L1 penalty on the generator's weights."}
    )
    recon_stop_gradient: bool = field(
        default=True,
        metadata={"help": "[ours] Stop-gradient on the self-swap features z_t^i of eq. 8."},
    )
    identity_augment: float = field(
        default=0.0,
        metadata={
            "help": "[ours] Eq. 7 on a random view of the swap: 1 = scale ±5 %, rotation ±5°, "
            "shift ±3 %, resampled at 50-100 % size (0: the paper's loss)."
        },
    )
    gan_generator_loss: str = field(
        default="non-saturating",
        metadata={
            "choices": GAN_GENERATOR_LOSSES,
            "help": "[ours] non-saturating: -log D(fake) for G; minimax: eq. 10's "
            "log(1 - D(fake)).",
        },
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.identity_augment <= IDENTITY_AUGMENT_MAX:
            raise ModelError(
                f"identity_augment must be in [0, {IDENTITY_AUGMENT_MAX:g}], not {self.identity_augment!r}"
            )
        if self.gan_generator_loss not in GAN_GENERATOR_LOSSES:
            raise ModelError(
                f"gan_generator_loss must be one of {GAN_GENERATOR_LOSSES}, "
                f"not {self.gan_generator_loss!r}"
            )


@dataclass(frozen=True)
class DetailTerms:
    """[ours] Training terms beyond eq. 12. Feature matching and the perceptual loss compare the
    self-swaps with their targets (where the target is the right answer, so they cannot pull a
    cross swap back toward the target's identity); the texture loss compares the cross swaps' skin
    statistics only, not where anything lies. Weight 0 = off."""

    feature_match: float = 0.0  # λ of ``feature_matching_loss``
    perceptual: float = 0.0  # λ of ``perceptual_loss``
    texture: float = 0.0  # λ of ``texture_loss``
    # frozen image → feature maps, e.g. ``DlibFeatures``; the texture loss also carries the face
    # mask to its features with its ``chip``
    perceptual_net: nn.Module | None = None


def to_identity_frame(x224: Tensor, out_size: int = 112) -> Tensor:
    """Map the 224 target crop to the 112 ArcFace frame, differentiably (docs/design.md).

    The fixed similarity is ``p112 = (p224 + 16) * 112/256``; ``affine_grid`` wants, for every
    output pixel, where to sample in the input, in normalised coordinates with pixel centers at
    ``(2p + 1)/size - 1`` (align_corners=False). Pixels outside the 224 crop read as zero.
    """
    size_in = x224.shape[-1]
    s = 256 / 112  # p224 = p112 * s - 16
    # normalised out u → p112 = ((u + 1) * out - 1) / 2 → p224 → normalised in
    a = s * out_size / size_in
    b = (2 * (s * (out_size - 1) / 2 - 16) + 1) / size_in - 1
    theta = x224.new_tensor([[a, 0.0, b], [0.0, a, b]]).expand(x224.shape[0], 2, 3)
    grid = F.affine_grid(theta, [x224.shape[0], 3, out_size, out_size], align_corners=False)
    return F.grid_sample(x224, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def identity_view(x224: Tensor, amount: float) -> Tensor:
    """[ours] A random view of a batch of 224 crops for the identity encoder: per image a
    similarity jitter (scale ±5 %, rotation ±5°, shift ±3 % at ``amount`` 1) and, per batch, a
    down- and up-sampling to 50-100 % of the size. Differentiable; the global torch RNG draws it
    (the trainer seeds it per step, so a resumed run replays the same views).

    Why: a frozen encoder reads pixel-exact patterns as identity, and a generator trained against
    it alone learns to paint them (blotches that move dlib's code without making the face look
    like the source). A pattern must survive every view to pay, which leaves shape and tone."""
    if amount == 0:
        return x224
    n = x224.shape[0]

    def uniform() -> Tensor:
        return (torch.rand(n, device=x224.device) * 2 - 1) * amount

    scale, angle = 1 + 0.05 * uniform(), math.radians(5) * uniform()
    tx, ty = 0.03 * uniform(), 0.03 * uniform()
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)
    grid = F.affine_grid(theta.to(x224.dtype), list(x224.shape), align_corners=False)
    view = F.grid_sample(x224, grid, mode="bilinear", padding_mode="border", align_corners=False)
    size = x224.shape[-1]
    low = max(16, round(size * (1 - 0.5 * amount * float(torch.rand(())))))
    if low < size:
        view = F.interpolate(view, size=(low, low), mode="bilinear", antialias=True)
        view = F.interpolate(view, size=(size, size), mode="bilinear", align_corners=False)
    return view


def identity_loss(
    encoder: nn.Module, swapped: Tensor, e_source: Tensor, augment: float = 0.0
) -> Tensor:
    """Eq. 7: ``L_IS = 1 − cos(ε_ID(x_s), ε_ID(x_{t→s}))`` with the frozen encoder ε_ID; with
    ``augment`` > 0 the encoder reads ``identity_view(x_{t→s}, augment)`` [ours].

    ``e_source`` is ε_ID(x_s), precomputed. The encoder must be frozen: a trainable one would
    silently learn to agree with the generator.
    """
    if any(p.requires_grad for p in encoder.parameters()):
        raise ModelError(
            f"identity loss: encoder {type(encoder).__name__} has trainable parameters (freeze it)"
        )
    e_swap = encoder(to_identity_frame(identity_view(swapped, augment)))  # [B, D]
    return (1 - F.cosine_similarity(e_swap, e_source, dim=1)).mean()  # eq. 7


def reconstruction_loss(
    swapped: Tensor,
    target: Tensor,
    mask: Tensor,
    features_swap: list[Tensor],
    features_self: list[Tensor],
    stop_gradient: bool = True,
) -> Tensor:
    """Eq. 8: ``‖(x_{t→s} − x_t) ⊙ (1 − m_t)‖₁ + Σ_i ‖(z^i_{t→s} − z^i_t) ⊙ (1 − m̄^i_t)‖²₂``.

    ``features_self`` are the decoder features of the self-swap x_{t→t}; [ours] stop-gradient
    on them. The mask is resized (area average) to each layer. Norms are means per element.
    """
    background = 1 - mask
    loss = ((swapped - target).abs() * background).mean()
    for z_swap, z_self in zip(features_swap, features_self):
        z_self = z_self.detach() if stop_gradient else z_self
        m = F.interpolate(background, size=z_swap.shape[-2:], mode="area")
        loss = loss + ((z_swap - z_self) ** 2 * m).mean()
    return loss


def cycle_loss(self_swap: Tensor, target: Tensor) -> Tensor:
    """Eq. 9: ``L_Cycle = ‖x_{t→t} − x_t‖²₂`` (mean squared error of the self-swap)."""
    return F.mse_loss(self_swap, target)


def _d_side(real_logits: list[Tensor], fake_logits: list[Tensor]) -> Tensor:
    """−[log D(real) + log(1 − D(fake))], averaged over patches and over the list."""
    terms = [F.softplus(-r).mean() + F.softplus(f).mean() for r, f in zip(real_logits, fake_logits)]
    return torch.stack(terms).mean()


def _g_side(fake_logits: list[Tensor], mode: str) -> Tensor:
    """[ours] non-saturating −log D(fake) by default; "minimax" is eq. 10's log(1 − D(fake))."""
    if mode == "minimax":
        terms = [-F.softplus(f).mean() for f in fake_logits]
    else:
        terms = [F.softplus(-f).mean() for f in fake_logits]
    return torch.stack(terms).mean()


def global_adversarial_loss(
    discriminator: nn.Module,
    real: Tensor,
    fake: Tensor,
    side: str,
    mode: str = "non-saturating",
) -> Tensor:
    """Eq. 10: ``E[log(1 − D(x_{t→s}))] + E[log D(x_t)]`` on the whole crop.

    ``side="d"``: the discriminator's loss (the fake is detached); ``side="g"``: the generator's.
    """
    if side == "d":
        return _d_side(discriminator(real), discriminator(fake.detach()))
    return _g_side(discriminator(fake), mode)


def afsa_loss(
    discriminator: nn.Module,
    real: Tensor,
    fake: Tensor,
    boxes: Tensor,
    side: str,
    mode: str = "non-saturating",
) -> Tensor:
    """Eq. 11: eq. 10's objective on the eyes, nose, mouth and jaw crops, averaged over N = 4.

    ``boxes`` [B,4,4] come from the target's landmarks and crop real and fake alike.
    """
    if side == "d":
        return _d_side(discriminator(real, boxes), discriminator(fake.detach(), boxes))
    return _g_side(discriminator(fake, boxes), mode)


def adversarial_loss(
    cfg: MagicMaskConfig,
    discriminator: nn.Module,
    real: Tensor,
    fake: Tensor,
    boxes: Tensor,
    side: str,
    mode: str = "non-saturating",
) -> Tensor:
    """The config's adversarial term: AFSA (eq. 11) or the global baseline (eq. 10), Table 1;
    ``mode`` is the generator side's form (``LossConfig.gan_generator_loss``)."""
    if cfg.adversarial == "afsa":
        return afsa_loss(discriminator, real, fake, boxes, side, mode)
    return global_adversarial_loss(discriminator, real, fake, side, mode)


def feature_matching_loss(
    discriminator: nn.Module, real: Tensor, fake: Tensor, boxes: Tensor
) -> Tensor:
    """[ours, after SimSwap's weak feature matching] L1 between the discriminator's intermediate
    features of the real target and of a generated image of it, mean over layers.

    The discriminator has learned which local structure tells real faces from ours, so matching
    its features asks for that structure (edges, skin texture) rather than the pixel average
    an L1/L2 loss settles on. The real side carries no gradient."""
    with torch.no_grad():
        real_f = discriminator.features(real, boxes)
    fake_f = discriminator.features(fake, boxes)
    return torch.stack([(f - r).abs().mean() for f, r in zip(fake_f, real_f)]).mean()


class DlibFeatures(nn.Module):
    """[ours] The perceptual network: early layers of dlib's face ResNet (the frozen torch port of
    the ``dlib-resnet`` identity encoder), on the encoder's face chip of a 224 crop. Offline, and
    not FaceNet, which is the judge and never a loss. ``taps`` are residual block indices whose
    outputs are returned after the stem's (block 2: 35 px, 32 channels; block 6: 17 px, 64)."""

    def __init__(self, encoder: nn.Module, taps: tuple[int, ...] = (2, 6)):
        super().__init__()
        if getattr(encoder, "name", None) != "dlib-resnet":
            raise ModelError(
                f"perceptual loss: needs the dlib-resnet encoder, not {getattr(encoder, 'name', encoder)!r}"
            )
        self.encoder, self.taps = encoder, taps

    def chip(self, x224: Tensor) -> Tensor:
        """The encoder's face chip of 224 crops (any channel count, e.g. a mask)."""
        return self.encoder.to_native(to_identity_frame(x224))

    def forward(self, x224: Tensor, layers: int | None = None) -> list[Tensor]:
        """The stem's and the taps' feature maps; only the first ``layers`` of them (all by
        default), the network run no deeper than they need."""
        taps = self.taps if layers is None else self.taps[: max(0, layers - 1)]
        net = self.encoder.network
        chip = self.chip(x224)  # [B,3,150,150]
        h = net.stem((chip - net.mean) * (255.0 / DLIB_INPUT_SCALE))  # dlib's input scaling
        out = [h]
        for i, block in enumerate(net.blocks[: max(taps, default=-1) + 1]):
            h = block(h)
            if i in taps:
                out.append(h)
        return out


def perceptual_loss(net: nn.Module, fake: Tensor, real_f: list[Tensor]) -> Tensor:
    """[ours] L1 between a frozen network's feature maps of ``fake`` and ``real_f``, the maps of
    the real images (taken once without gradient: the texture loss reads the same), mean over
    layers."""
    return torch.stack([(f - r).abs().mean() for f, r in zip(net(fake), real_f)]).mean()


def gram_matrix(features: Tensor, weight: Tensor) -> Tensor:
    """Channel co-activations of ``features`` [B,C,H,W] weighted by ``weight`` [B,1,H,W] (the
    face region), over its area: [B,C,C]. A texture statistic without the layout (Gatys et al.)."""
    f = (features * weight).flatten(2)
    area = weight.flatten(1).sum(1).clamp_min(1.0)
    return f @ f.transpose(1, 2) / area[:, None, None]


TEXTURE_LAYERS = 2  # the stem and residual block 2 of ``DlibFeatures``: its finest maps


def texture_loss(
    net: nn.Module,
    swapped: Tensor,
    target_f: list[Tensor],
    mask: Tensor,
    layers: int = TEXTURE_LAYERS,
) -> Tensor:
    """[ours] L1 between the Gram matrices of the cross swap x_{t→s} and of its target frame x_t,
    on the perceptual network's first ``layers`` feature maps (``DlibFeatures``: the stem and
    residual block 2, the finest), inside the face mask m_t. Mean over layers. ``target_f``: the
    network's maps of x_t (at least ``layers`` of them, taken without gradient).

    Why: nothing in eq. 12 asks the cross swap's skin to look like skin. The identity loss pays
    for fine patterns that move the encoder's code, and the shot's discriminators, kept weak so
    they do not pull the identity back, let them through: speckles, streaks and the decoder's grid
    on the tuned faces. A Gram matrix keeps which fine structures occur and drops where, so the
    swap may move brows, lids and lips (identity) but not paint a texture the target's skin lacks.
    """
    with torch.no_grad():
        weight = net.chip(mask)
    terms = []
    for fake, real in zip(net(swapped, layers), target_f[:layers]):
        w = F.interpolate(weight, size=fake.shape[-2:], mode="area")
        terms.append((gram_matrix(fake, w) - gram_matrix(real, w)).abs().mean())
    return torch.stack(terms).mean()


def weight_l1_penalty(module: nn.Module) -> Tensor:
    """The optional L1 penalty on weights of eq. 12: Σ|w| over trainable parameters."""
    return torch.stack([p.abs().sum() for p in module.parameters() if p.requires_grad]).sum()


def run_generator(
    generator: nn.Module, a: FaceBatch, b: FaceBatch
) -> tuple[SwapOutputs, list[list[Tensor]]]:
    """The four passes of a step (a←b, b←a, a←a, b←b) as one batch; features split per pass."""
    x = torch.cat([a.image, b.image, a.image, b.image])
    e = torch.cat([b.identity, a.identity, a.identity, b.identity])
    depth = torch.cat([a.depth, b.depth, a.depth, b.depth])
    heat = torch.cat([a.heatmaps, b.heatmaps, a.heatmaps, b.heatmaps])
    out, features = generator.forward_with_features(x, e, depth, heat)
    sizes = [len(a.image), len(b.image)] * 2
    # per_pass[k][i]: decoder feature i of pass k
    per_pass = [list(parts) for parts in zip(*(f.split(sizes) for f in features))]
    outs = out.split(sizes)
    return SwapOutputs(*outs), per_pass


def generator_losses(
    cfg: MagicMaskConfig,
    generator: nn.Module,
    discriminator: nn.Module,
    identity_encoder: nn.Module,
    a: FaceBatch,
    b: FaceBatch,
    extra: DetailTerms = DetailTerms(),
    loss: LossConfig = LossConfig(),
) -> tuple[GeneratorLosses, SwapOutputs]:
    """Eq. 12: ``λ_IS·L_IS + λ_Recon·(L_Recon + L_Cycle) + λ_AFSA·L_AFSA (+ λ_L1·Σ|w|)`` with the
    weights of ``loss``, plus the ``extra`` terms (none by default).

    Every term is the mean of the forward (a with b's identity) and the reverse swap (the extra
    terms: of both self-swaps).
    """
    out, feats = run_generator(generator, a, b)
    f_ab, f_ba, f_aa, f_bb = feats
    l_id = (
        identity_loss(identity_encoder, out.swap_ab, b.identity, loss.identity_augment)
        + identity_loss(identity_encoder, out.swap_ba, a.identity, loss.identity_augment)
    ) / 2
    l_rec = (
        reconstruction_loss(out.swap_ab, a.image, a.mask, f_ab, f_aa, loss.recon_stop_gradient)
        + reconstruction_loss(out.swap_ba, b.image, b.mask, f_ba, f_bb, loss.recon_stop_gradient)
    ) / 2
    l_cyc = (cycle_loss(out.self_a, a.image) + cycle_loss(out.self_b, b.image)) / 2
    mode = loss.gan_generator_loss
    l_adv = (
        adversarial_loss(cfg, discriminator, a.image, out.swap_ab, a.boxes, "g", mode)
        + adversarial_loss(cfg, discriminator, b.image, out.swap_ba, b.boxes, "g", mode)
    ) / 2
    l_l1 = weight_l1_penalty(generator) if loss.lambda_weight_l1 else l_id.new_zeros(())
    l_fm = l_id.new_zeros(())
    if extra.feature_match:
        l_fm = (
            feature_matching_loss(discriminator, a.image, out.self_a, a.boxes)
            + feature_matching_loss(discriminator, b.image, out.self_b, b.boxes)
        ) / 2
    if (extra.perceptual or extra.texture) and extra.perceptual_net is None:
        raise ModelError("perceptual or texture loss: weight set but no perceptual network given")
    l_per, l_tex = l_id.new_zeros(()), l_id.new_zeros(())
    if extra.perceptual or extra.texture:
        net = extra.perceptual_net
        with torch.no_grad():  # the targets' maps once for both terms, as deep as they read
            target_f = net(
                torch.cat([a.image, b.image]), None if extra.perceptual else TEXTURE_LAYERS
            )
        if extra.perceptual:
            l_per = perceptual_loss(net, torch.cat([out.self_a, out.self_b]), target_f)
        if extra.texture:
            l_tex = texture_loss(
                net,
                torch.cat([out.swap_ab, out.swap_ba]),
                target_f,
                torch.cat([a.mask, b.mask]),
            )
    total = (
        loss.lambda_id * l_id
        + loss.lambda_recon * (l_rec + l_cyc)
        + loss.lambda_afsa * l_adv
        + loss.lambda_weight_l1 * l_l1
        + extra.feature_match * l_fm
        + extra.perceptual * l_per
        + extra.texture * l_tex
    )
    return GeneratorLosses(total, l_id, l_rec, l_cyc, l_adv, l_l1, l_fm, l_per, l_tex), out


def discriminator_loss(
    cfg: MagicMaskConfig,
    discriminator: nn.Module,
    a: FaceBatch,
    b: FaceBatch,
    out: SwapOutputs,
) -> Tensor:
    """The discriminator side of eq. 10/11 for both swap directions (fakes detached)."""
    return (
        adversarial_loss(cfg, discriminator, a.image, out.swap_ab, a.boxes, "d")
        + adversarial_loss(cfg, discriminator, b.image, out.swap_ba, b.boxes, "d")
    ) / 2
