"""MagicMask losses (eq. 7–12): each term's defining property, the total's weights and reverse swap,
and a few optimisation steps on two real aligned faces that lower the total loss."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch
from torch import nn

from magicmask.config import create_config
from magicmask.losses import (
    DetailTerms,
    DlibFeatures,
    FaceBatch,
    LossConfig,
    afsa_loss,
    cycle_loss,
    discriminator_loss,
    feature_matching_loss,
    generator_losses,
    global_adversarial_loss,
    identity_loss,
    identity_view,
    perceptual_loss,
    reconstruction_loss,
    run_generator,
    texture_loss,
    to_identity_frame,
    weight_l1_penalty,
)
from magicmask.model import create_discriminator, create_generator
from magicmask.model.discriminators import boxes_from_landmarks
from magicmask.model.generator import example_inputs
from mmcore.errors import ModelError

torch.set_num_threads(2)


class StandInEncoder(nn.Module):
    """Frozen stand-in for the real identity encoders: [B,3,112,112] in [0,1] → [B,dim] unit vectors."""

    def __init__(self, dim: int = 32, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(
            nn.Conv2d(3, 16, 8, 8),
            nn.ReLU(),
            nn.Conv2d(16, 32, 3, 2, 1),
            nn.ReLU(),
            nn.AdaptiveAvgPool2d(2),
            nn.Flatten(),
        )
        self.fc = nn.Linear(128, dim)
        self.eval()
        for p in self.parameters():
            p.requires_grad_(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.normalize(self.fc(self.net(x)), dim=1)


def test_identity_frame_is_the_fixed_similarity():
    # p112 = (p224 + 16) * 112/256: the 224 point (48, 80) lands on the 112 point (28, 42)
    yy, xx = torch.meshgrid(torch.arange(224.0), torch.arange(224.0), indexing="ij")
    blob = torch.exp(-((xx - 48) ** 2 + (yy - 80) ** 2) / (2 * 3.0**2))
    x = blob.expand(1, 3, 224, 224).clone().requires_grad_(True)
    y = to_identity_frame(x)
    assert y.shape == (1, 3, 112, 112)
    idx = int(y[0, 0].argmax())
    assert (idx % 112, idx // 112) == (28, 42)
    # the 112 frame reaches 16 px beyond each side of the 224 crop: its border reads as zero
    assert to_identity_frame(torch.ones(1, 3, 224, 224))[0, 0, 0, 0] == 0
    assert to_identity_frame(torch.ones(1, 3, 224, 224))[0, 0, 56, 56] == pytest.approx(1)
    y.sum().backward()
    assert x.grad.abs().sum() > 0


def test_identity_loss_is_one_minus_cosine_and_keeps_the_encoder_frozen():
    enc = StandInEncoder()
    swapped = torch.rand(2, 3, 224, 224, requires_grad=True)
    e_same = enc(to_identity_frame(swapped)).detach()
    assert identity_loss(enc, swapped, e_same).item() == pytest.approx(0, abs=1e-6)
    assert identity_loss(enc, swapped, -e_same).item() == pytest.approx(2, abs=1e-6)
    e_other = nn.functional.normalize(torch.randn(2, 32), dim=1)
    loss = identity_loss(enc, swapped, e_other)
    expected = 1 - (e_same * e_other).sum(dim=1)
    assert loss.item() == pytest.approx(expected.mean().item(), abs=1e-5)
    loss.backward()
    assert swapped.grad.abs().sum() > 0
    assert all(p.grad is None for p in enc.parameters())
    enc.fc.weight.requires_grad_(True)
    with pytest.raises(ModelError, match="trainable parameters"):
        identity_loss(enc, swapped, e_other)


def test_identity_view_keeps_shape_and_tone_and_breaks_pixel_patterns():
    g = torch.Generator().manual_seed(0)
    yy, xx = torch.meshgrid(torch.arange(224.0), torch.arange(224.0), indexing="ij")
    smooth = (0.5 + 0.3 * torch.sin(xx / 40) * torch.cos(yy / 50)).expand(4, 3, 224, 224)
    checker = ((xx + yy) % 2).expand(4, 3, 224, 224) - 0.5  # a one-pixel pattern
    assert identity_view(smooth, 0.0) is smooth
    torch.manual_seed(1)
    view = identity_view(smooth + 0.05 * checker, 1.0)
    torch.manual_seed(1)
    assert torch.equal(view, identity_view(smooth + 0.05 * checker, 1.0))  # seeded: replays
    assert view.shape == smooth.shape and not torch.equal(view, smooth + 0.05 * checker)
    # the smooth face-scale content survives the view, the pixel pattern does not
    assert (view - smooth).abs().mean() < 0.03
    pattern_left = ((view - smooth) * checker).mean() / (0.05 * (checker * checker).mean())
    assert abs(pattern_left) < 0.05
    x = torch.rand(2, 3, 224, 224, generator=g, requires_grad=True)
    identity_view(x, 1.0).sum().backward()
    assert x.grad.abs().sum() > 0


def test_identity_loss_reads_the_view_when_augmented():
    enc = StandInEncoder()
    swapped = torch.rand(2, 3, 224, 224)
    e_same = enc(to_identity_frame(swapped)).detach()
    torch.manual_seed(3)
    view = identity_view(swapped, 1.0)
    e_view = enc(to_identity_frame(view)).detach()
    torch.manual_seed(3)
    loss = identity_loss(enc, swapped, e_same, augment=1.0)
    assert loss.item() > 1e-4
    assert loss.item() == pytest.approx((1 - (e_view * e_same).sum(dim=1)).mean().item(), abs=1e-6)


@pytest.mark.parametrize("amount", [-0.1, 2.5, float("nan")])
def test_identity_augment_is_validated(amount):
    with pytest.raises(ModelError, match="identity_augment"):
        LossConfig(identity_augment=amount)


def test_reconstruction_loss_only_sees_the_background():
    g = torch.Generator().manual_seed(0)
    target = torch.rand(1, 3, 224, 224, generator=g)
    mask = torch.zeros(1, 1, 224, 224)
    mask[..., 56:168, 56:168] = 1
    feats = [torch.rand(1, 4, s, s, generator=g) for s in (28, 56, 112)]
    assert reconstruction_loss(target, target, mask, feats, feats).item() == 0
    # changes inside the face mask (image and every feature layer, mask resized per layer) cost nothing
    swapped = target.clone()
    swapped[..., 56:168, 56:168] = 0
    feats_swap = [f.clone() for f in feats]
    for f in feats_swap:
        s = f.shape[-1]
        f[..., s // 4 : 3 * s // 4, s // 4 : 3 * s // 4] += 1
    assert reconstruction_loss(swapped, target, mask, feats_swap, feats).item() == pytest.approx(
        0, abs=1e-7
    )
    # a background change costs its L1 mean; a feature change its squared mean
    swapped[..., :8, :] += 0.5
    img_term = 0.5 * 8 * 224 * 3 / (3 * 224 * 224)
    assert reconstruction_loss(swapped, target, mask, feats, feats).item() == pytest.approx(
        img_term, rel=1e-5
    )
    feats_off = [f + 0.1 for f in feats]
    background = 1 - (112 * 112) / (224 * 224)
    expected = img_term + 3 * 0.01 * background
    assert reconstruction_loss(swapped, target, mask, feats_off, feats).item() == pytest.approx(
        expected, rel=1e-4
    )


def test_reconstruction_stop_gradient_on_self_swap_features():
    target, mask = torch.rand(1, 3, 224, 224), torch.zeros(1, 1, 224, 224)
    z_swap, z_self = (
        torch.rand(1, 2, 28, 28, requires_grad=True),
        torch.rand(1, 2, 28, 28, requires_grad=True),
    )
    reconstruction_loss(target, target, mask, [z_swap], [z_self]).backward()
    assert z_swap.grad is not None and z_self.grad is None
    reconstruction_loss(target, target, mask, [z_swap], [z_self], stop_gradient=False).backward()
    assert z_self.grad is not None


def test_cycle_loss_is_mean_squared_error():
    a, b = torch.zeros(1, 3, 4, 4), torch.full((1, 3, 4, 4), 0.5)
    assert cycle_loss(a, b).item() == pytest.approx(0.25)


class ConstantD(nn.Module):
    """Logit ``value`` everywhere, plus a parameter so gradient routing can be checked."""

    def __init__(self, value: float, parts: int = 1):
        super().__init__()
        self.value = value
        self.parts = parts
        self.scale = nn.Parameter(torch.ones(()))

    def forward(self, image, boxes=None):
        logit = image.mean(dim=(1, 2, 3), keepdim=True) * 0 + self.value * self.scale
        return [logit] * self.parts


def test_adversarial_losses_eq_10_and_11():
    real = torch.rand(2, 3, 224, 224)
    fake = torch.rand(2, 3, 224, 224, requires_grad=True)
    boxes = torch.tensor(
        [
            [
                [60, 60, 160, 90],
                [90, 90, 130, 140],
                [80, 150, 150, 180],
                [30, 30, 190, 210],
            ]
        ]
    ).float()
    ln2 = math.log(2)
    d = ConstantD(0.0)
    assert global_adversarial_loss(d, real, fake, "d").item() == pytest.approx(2 * ln2)
    assert global_adversarial_loss(d, real, fake, "g").item() == pytest.approx(ln2)
    assert global_adversarial_loss(d, real, fake, "g", mode="minimax").item() == pytest.approx(-ln2)
    # a confident, correct discriminator has a small loss and leaves the generator a large one
    d_good = ConstantD(5.0)
    assert afsa_loss(
        ConstantD(0.0, parts=4), real, fake, boxes.expand(2, 4, 4), "d"
    ).item() == pytest.approx(2 * ln2)
    g_loss = global_adversarial_loss(d_good, real, fake, "g")
    assert g_loss.item() == pytest.approx(math.log1p(math.exp(-5)), rel=1e-4)
    # the discriminator side never sends gradient into the fake image
    loss = global_adversarial_loss(d, real, fake, "d")
    loss.backward()
    assert fake.grad is None and d.scale.grad is not None


def _batch(cfg, seed: int, enc: nn.Module) -> FaceBatch:
    x, _, depth, heat = example_inputs(cfg, 1, seed)
    g = torch.Generator().manual_seed(seed)
    mask = torch.zeros(1, 1, 224, 224)
    mask[..., 50:180, 60:170] = 1
    landmarks = torch.rand(1, 68, 2, generator=g) * 110 + 55
    with torch.no_grad():
        e = enc(to_identity_frame(x))
    return FaceBatch(x, e, depth, heat, mask, boxes_from_landmarks(landmarks))


def test_total_loss_weights_and_reverse_swap():
    torch.manual_seed(0)
    cfg = create_config("tiny", identity_dim=32)
    weights = LossConfig(lambda_weight_l1=1e-6)
    gen, disc, enc = (
        create_generator(cfg).eval(),
        create_discriminator(cfg),
        StandInEncoder(),
    )
    a, b = _batch(cfg, 0, enc), _batch(cfg, 1, enc)
    losses, out = generator_losses(cfg, gen, disc, enc, a, b, loss=weights)
    assert (weights.lambda_id, weights.lambda_recon, weights.lambda_afsa) == (5.0, 2.0, 1.0)
    expected = (
        5 * losses.identity
        + 2 * (losses.reconstruction + losses.cycle)
        + losses.adversarial
        + 1e-6 * losses.weight_l1
    )
    assert losses.total.item() == pytest.approx(expected.item(), rel=1e-6)
    assert losses.weight_l1.item() == pytest.approx(weight_l1_penalty(gen).item(), rel=1e-6)
    with torch.no_grad():
        # the reverse swap is b's frame with a's identity; the self-swaps use the frame's own identity
        direct_ba = gen(b.image, a.identity, b.depth, b.heatmaps)
        direct_aa = gen(a.image, a.identity, a.depth, a.heatmaps)
    assert torch.allclose(out.swap_ba, direct_ba, atol=1e-5)
    assert torch.allclose(out.self_a, direct_aa, atol=1e-5)
    e_ba = enc(to_identity_frame(out.swap_ba))
    e_ab = enc(to_identity_frame(out.swap_ab))
    id_both = ((1 - (e_ba * a.identity).sum()) + (1 - (e_ab * b.identity).sum())) / 2
    assert losses.identity.item() == pytest.approx(id_both.item(), abs=1e-6)
    assert discriminator_loss(cfg, disc, a, b, out).item() > 0


def _blur(x: torch.Tensor) -> torch.Tensor:
    return nn.functional.avg_pool2d(x, 5, 1, 2, count_include_pad=False)


@pytest.mark.parametrize("adversarial", ["afsa", "global"])
def test_feature_matching_compares_discriminator_features_of_real_and_fake(adversarial):
    torch.manual_seed(0)
    cfg = create_config("tiny", identity_dim=32, adversarial=adversarial)
    disc = create_discriminator(cfg)
    real, _, _, _ = example_inputs(cfg, 2, 0)
    boxes = boxes_from_landmarks(torch.rand(2, 68, 2) * 110 + 55)
    # AFSA: 4 components x 3 conv stages of tiny's (32, 64, 128) discriminator; global: 3
    assert len(disc.features(real, boxes)) == (12 if adversarial == "afsa" else 3)
    assert feature_matching_loss(disc, real, real.clone(), boxes).item() == 0
    fake = _blur(real).requires_grad_(True)
    loss = feature_matching_loss(disc, real, fake, boxes)
    loss.backward()
    assert loss.item() > 0 and fake.grad.abs().sum() > 0


def test_perceptual_loss_on_early_dlib_features_sees_blur_and_refuses_other_encoders():
    from magicmask.face.identity import build_identity_encoder

    net = DlibFeatures(build_identity_encoder("dlib-resnet"))
    x = torch.rand(1, 3, 224, 224, generator=torch.Generator().manual_seed(0))
    feats = net(x)
    # the stem (35 px, 32 ch) and blocks 2 (35 px, 32 ch) and 6 (17 px, 64 ch)
    assert [tuple(f.shape[1:]) for f in feats] == [(32, 35, 35), (32, 35, 35), (64, 17, 17)]
    first = net(x, 2)  # the texture loss's: the network run only as deep as block 2
    assert len(first) == 2 and all(torch.equal(f, g) for f, g in zip(first, feats))
    assert perceptual_loss(net, x.clone(), feats).item() == 0
    fake = _blur(x).requires_grad_(True)
    loss = perceptual_loss(net, fake, feats)
    loss.backward()
    assert loss.item() > 0 and fake.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in net.parameters())  # frozen, never trained
    with pytest.raises(ModelError, match="needs the dlib-resnet encoder"):
        DlibFeatures(StandInEncoder())


def test_texture_loss_sees_speckles_on_the_skin_not_a_shift_nor_the_background(data_dir):
    from magicmask.face.identity import build_identity_encoder

    net = DlibFeatures(build_identity_encoder("dlib-resnet"))
    targets, _ = _real_faces(data_dir)
    face = torch.tensor(targets[0].crop).permute(2, 0, 1)[None].float() / 255
    mask = torch.tensor(targets[0].mask)[None, None]
    g = torch.Generator().manual_seed(0)
    dots = (torch.rand(1, 1, 224, 224, generator=g) < 0.02).float()
    speckled = face * (1 - 0.3 * nn.functional.max_pool2d(dots, 3, 1, 1) * (mask > 0.5))
    shifted = torch.roll(face, 4, dims=3)  # the features moved, the skin the same
    far = 1 - nn.functional.max_pool2d((mask > 0).float(), 41, 1, 20)  # 20 px clear of the face
    background = face * (1 - far) + torch.rand(1, 3, 224, 224, generator=g) * far
    with torch.no_grad():
        face_f = net(face)
    assert texture_loss(net, face.clone(), face_f, mask).item() == 0
    assert texture_loss(net, background, face_f, mask).item() < 1e-6
    speckles = texture_loss(net, speckled, face_f, mask).item()
    assert speckles > 5 * texture_loss(net, shifted, face_f, mask).item()
    swapped = speckled.clone().requires_grad_(True)
    texture_loss(net, swapped, face_f, mask).backward()
    assert swapped.grad.abs().sum() > 0
    assert not any(p.requires_grad for p in net.parameters())


class _PixelFeatures(nn.Module):
    """A stand-in perceptual network: frozen pixels at two scales, on the crop itself."""

    def chip(self, x):
        return x

    def forward(self, x, layers=None):
        return [x, nn.functional.avg_pool2d(x, 4)][:layers]


def test_detail_terms_are_off_by_default_and_weighted_into_the_total():
    torch.manual_seed(0)
    cfg = create_config("tiny", identity_dim=32)
    gen, disc, enc = create_generator(cfg).eval(), create_discriminator(cfg), StandInEncoder()
    a, b = _batch(cfg, 0, enc), _batch(cfg, 1, enc)
    plain, _ = generator_losses(cfg, gen, disc, enc, a, b)
    assert plain.feature_match.item() == 0 and plain.perceptual.item() == 0
    assert plain.texture.item() == 0

    features = _PixelFeatures()
    extra = DetailTerms(feature_match=3.0, perceptual=2.0, texture=4.0, perceptual_net=features)
    more, out = generator_losses(cfg, gen, disc, enc, a, b, extra)
    assert more.feature_match.item() > 0 and more.perceptual.item() > 0 and more.texture.item() > 0
    expected = plain.total + 3 * more.feature_match + 2 * more.perceptual + 4 * more.texture
    assert more.total.item() == pytest.approx(expected.item(), rel=1e-5)
    # feature matching compares the self-swaps with their own targets, never the cross swaps
    fm = (
        feature_matching_loss(disc, a.image, out.self_a, a.boxes)
        + feature_matching_loss(disc, b.image, out.self_b, b.boxes)
    ) / 2
    assert more.feature_match.item() == pytest.approx(fm.item(), rel=1e-5)
    # the texture loss compares each cross swap with the frame it was painted into
    tex = (
        texture_loss(features, out.swap_ab, features(a.image), a.mask)
        + texture_loss(features, out.swap_ba, features(b.image), b.mask)
    ) / 2
    assert more.texture.item() == pytest.approx(tex.item(), rel=1e-5)
    for weights in ({"perceptual": 1.0}, {"texture": 1.0}):
        with pytest.raises(ModelError, match="no perceptual network"):
            generator_losses(cfg, gen, disc, enc, a, b, DetailTerms(**weights))


def test_global_adversarial_variant_in_total():
    cfg = create_config("tiny", identity_dim=32, adversarial="global")
    enc = StandInEncoder()
    a, b = _batch(cfg, 0, enc), _batch(cfg, 1, enc)
    losses, _out = generator_losses(
        cfg, create_generator(cfg), create_discriminator(cfg), enc, a, b
    )
    assert torch.isfinite(losses.total)
    assert run_generator(create_generator(cfg), a, b)[0].swap_ab.shape == (
        1,
        3,
        224,
        224,
    )


def _real_faces(data_dir) -> tuple[list[np.ndarray], list]:
    from magicmask.face.analyzer import FaceAnalyzer
    from magicmask.face.image import load_image
    from magicmask.face.prepare import prepare_target

    analyzer = FaceAnalyzer()
    targets, crops112 = [], []
    from magicmask.face.align import align_identity

    for name in ("id_obama_01.jpg", "id_biden_01.jpg"):
        image = load_image(data_dir / name)
        face = analyzer.detect(image)[0]
        targets.append(prepare_target(image, face.landmarks))
        crops112.append(align_identity(image, face.landmarks)[0])
    return targets, crops112


@pytest.mark.slow
def test_a_few_steps_on_two_real_faces_lower_the_total_loss(data_dir):
    targets, crops112 = _real_faces(data_dir)
    torch.manual_seed(0)
    cfg = dataclasses.replace(create_config("tiny"), identity_dim=32)
    gen, disc, enc = create_generator(cfg), create_discriminator(cfg), StandInEncoder()

    def side(t, c112) -> FaceBatch:
        img = torch.from_numpy(t.crop).permute(2, 0, 1)[None].float() / 255
        x112 = torch.from_numpy(c112).permute(2, 0, 1)[None].float() / 255
        return FaceBatch(
            img,
            enc(x112),
            torch.from_numpy(t.depth)[None, None],
            torch.from_numpy(t.heatmaps)[None],
            torch.from_numpy(t.mask)[None, None],
            torch.from_numpy(t.boxes)[None],
        )

    a, b = side(targets[0], crops112[0]), side(targets[1], crops112[1])
    assert float((a.identity * b.identity).sum()) < 0.999  # two different faces
    opt = torch.optim.Adam(gen.parameters(), lr=1e-3)
    totals = []
    for _ in range(5):
        losses, _ = generator_losses(cfg, gen, disc, enc, a, b)
        opt.zero_grad()
        losses.total.backward()
        opt.step()
        totals.append(losses.total.item())
    final = generator_losses(cfg, gen, disc, enc, a, b)[0].total.item()
    assert all(math.isfinite(t) for t in totals)
    assert final < totals[0]
