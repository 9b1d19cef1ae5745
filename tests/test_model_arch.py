"""MagicMask generator and discriminators: equations re-computed directly, shapes and ranges of every
registered variant, gradients, ablation switches and the registry's refusals.

Weights are random: these tests check formulas, shapes, plumbing and determinism, never quality.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from magicmask.config import MagicMaskConfig, create_config, list_configs
from magicmask.losses import FaceBatch, discriminator_loss, generator_losses
from magicmask.model import create_discriminator, create_generator
from magicmask.model.arie import (
    ARIEBlock,
    channel_attention,
    identity_fusion,
    spatial_attention,
)
from magicmask.model.discriminators import boxes_from_landmarks
from magicmask.model.generator import count_parameters, example_inputs
from magicmask.model.geometric import IdentitySharedAttention, identity_shared_attention
from mmcore.errors import ModelError

torch.set_num_threads(2)

# Small widths that keep every variant's structure: gradient tests run through each of them quickly.
SHRINK = {
    "encoder_channels": (4, 8, 8, 8),
    "latent_channels": 16,
    "arie_blocks": 2,
    "geo_channels": (4, 8, 8, 8),
    "geo_dim": 16,
    "geo_heads": 2,
    "geo_layers": 1,
    "decoder_channels": (8, 8, 4, 4),
    "disc_channels": (4, 8),
    "identity_dim": 32,
}


def test_spatial_attention_matches_direct_computation():
    g = torch.Generator().manual_seed(0)
    u = torch.randn(2, 3, 4, 5, generator=g)
    phi = torch.randn(2, 3, generator=g)
    got = spatial_attention(u, phi)
    for b in range(2):
        s = [[sum(u[b, c, i, j].item() for c in range(3)) / 3 for j in range(5)] for i in range(4)]
        for c in range(3):
            logits = [s[i][j] * phi[b, c].item() for i in range(4) for j in range(5)]
            denom = sum(math.exp(v) for v in logits)
            expected = [math.exp(v) / denom * 20 for v in logits]  # scaled so uniform = 1
            assert got[b, c].flatten().tolist() == pytest.approx(expected, rel=1e-5)
    assert spatial_attention(u, phi, scale=False).sum(dim=(2, 3)) == pytest.approx(torch.ones(2, 3))
    # a zero identity projection gives a uniform attention of exactly 1
    assert torch.allclose(spatial_attention(u, torch.zeros(2, 3)), torch.ones(2, 3, 4, 5))


def test_channel_attention_matches_direct_computation():
    g = torch.Generator().manual_seed(1)
    u = torch.randn(2, 4, 3, 3, generator=g)
    phi = torch.randn(2, 4, generator=g)
    got = channel_attention(u, phi)
    assert got.shape == (2, 4, 1, 1)
    for b in range(2):
        gm = [u[b, c].mean().item() * phi[b, c].item() for c in range(4)]
        denom = sum(math.exp(v) for v in gm)
        assert got[b, :, 0, 0].tolist() == pytest.approx(
            [math.exp(v) / denom * 4 for v in gm], rel=1e-5
        )


def test_arie_block_is_eq_1_to_4_plus_residual():
    torch.manual_seed(0)
    block = ARIEBlock(6, 10, convs=1, act=nn.ReLU).eval()
    z, e = torch.randn(2, 6, 5, 5), torch.randn(2, 10)
    u = block.pre(z)
    a_s = spatial_attention(u, block.phi_s(e))
    a_c = channel_attention(u, block.phi_c(e))
    z_v = a_s * u + u * a_c + block.phi(e)[:, :, None, None]
    assert torch.allclose(identity_fusion(u, a_s, a_c, block.phi(e)), z_v)
    expected = z + block.post[1](torch.relu(z_v))
    assert torch.allclose(block(z, e), expected, atol=1e-6)


def test_identity_shared_attention_matches_direct_computation():
    torch.manual_seed(0)
    dim, heads, n = 8, 2, 5
    attn = IdentitySharedAttention(dim, heads)
    z_g, e_tok = torch.randn(1, n, dim), torch.randn(1, n, dim)
    got = attn(z_g, e_tok)
    d = dim // heads
    outs = []
    for h in range(heads):
        sl = slice(h * d, (h + 1) * d)

        def proj(x, layer, sl=sl):
            return x @ layer.weight[sl].T + layer.bias[sl]

        q_g, k_g, v_g = (
            proj(z_g[0], attn.w_q),
            proj(z_g[0], attn.w_k),
            proj(z_g[0], attn.w_v),
        )
        q_e, k_e = (
            proj(e_tok[0], attn.w_q),
            proj(e_tok[0], attn.w_k),
        )  # the same W_Q and W_K
        a_g = torch.softmax(q_g @ k_g.T / math.sqrt(d), dim=-1)
        a_e = torch.softmax(q_e @ k_e.T / math.sqrt(d), dim=-1)
        outs.append(a_g @ v_g + a_e @ v_g)
    expected = attn.proj(torch.cat(outs, dim=-1))[None]
    assert torch.allclose(got, expected, atol=1e-5)
    # the pure function on [B, h, N, d] agrees with the module's inner call
    q = torch.randn(1, 1, n, d)
    assert identity_shared_attention(q, q, q, q, q).shape == (1, 1, n, d)


FULL_SIZE = ("tiny", "base", pytest.param("paper", marks=pytest.mark.slow))


@pytest.mark.parametrize("name", list_configs())
def test_every_variant_output_shape_and_range(name):
    _check_output(create_config(name, **SHRINK))


@pytest.mark.parametrize("name", FULL_SIZE)
def test_full_size_output_shape_and_range(name):
    _check_output(create_config(name))


def _check_output(cfg: MagicMaskConfig) -> None:
    torch.manual_seed(0)
    gen = create_generator(cfg).eval()
    inputs = example_inputs(gen.cfg, batch=1)
    with torch.inference_mode():
        out, feats = gen.forward_with_features(*inputs)
    assert out.shape == (1, 3, 224, 224)
    assert out.dtype == torch.float32 and torch.isfinite(out).all()
    assert 0 <= out.min() and out.max() <= 1
    assert len(feats) == len(gen.cfg.decoder_channels)
    assert [f.shape[1] for f in feats] == list(gen.cfg.decoder_channels)


def test_batch_of_any_size_and_determinism():
    torch.manual_seed(0)
    gen = create_generator("tiny").eval()
    inputs = example_inputs(gen.cfg, batch=5)
    with torch.inference_mode():
        full = gen(*inputs)
        single = torch.cat([gen(*(t[i : i + 1] for t in inputs)) for i in range(5)])
        again = gen(*inputs)
    assert full.shape == (5, 3, 224, 224)
    assert torch.equal(full, again)
    assert torch.allclose(full, single, atol=1e-5)  # eval mode: no batch coupling


def test_tiny_parameter_budget():
    assert count_parameters(create_generator("tiny")) < 5_000_000
    assert create_config("paper").latent_channels == 1024


def _frozen_encoder(dim: int) -> nn.Module:
    """A stand-in for the real identity encoders: frozen, [B,3,112,112] → [B,dim] L2-normalised."""

    class Encoder(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(
                nn.Conv2d(3, 8, 4, 4), nn.ReLU(), nn.AdaptiveAvgPool2d(2), nn.Flatten()
            )
            self.fc = nn.Linear(32, dim)

        def forward(self, x):
            return nn.functional.normalize(self.fc(self.net(x)), dim=1)

    enc = Encoder().eval()
    for p in enc.parameters():
        p.requires_grad_(False)
    return enc


def _face_batch(cfg: MagicMaskConfig, seed: int, batch: int = 2) -> FaceBatch:
    x, e, depth, heat = example_inputs(cfg, batch, seed)
    g = torch.Generator().manual_seed(seed)
    landmarks = torch.rand(batch, 68, 2, generator=g) * 120 + 50
    mask = torch.zeros(batch, 1, 224, 224)
    mask[:, :, 60:170, 60:170] = 1
    return FaceBatch(x, e, depth, heat, mask, boxes_from_landmarks(landmarks))


@pytest.mark.parametrize("name", list_configs())
def test_gradients_reach_every_trainable_parameter(name):
    torch.manual_seed(0)
    cfg = create_config(name, **SHRINK)
    gen, disc, enc = (
        create_generator(cfg),
        create_discriminator(cfg),
        _frozen_encoder(cfg.identity_dim),
    )
    a, b = _face_batch(cfg, 0, batch=1), _face_batch(cfg, 1, batch=1)
    losses, out = generator_losses(cfg, gen, disc, enc, a, b)
    losses.total.backward()
    missing = [n for n, p in gen.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0]
    assert not missing, f"no gradient for {missing}"
    assert all(p.grad is None for p in enc.parameters())
    disc.zero_grad()
    discriminator_loss(cfg, disc, a, b, out).backward()
    missing = [
        n for n, p in disc.named_parameters() if p.grad is None or not p.grad.abs().sum() > 0
    ]
    assert not missing, f"no discriminator gradient for {missing}"


def test_fv_only_variant_has_no_geometric_parameters():
    full, fv = (
        create_generator("paper-fvfg-afsa", **SHRINK),
        create_generator("paper-fv-afsa", **SHRINK),
    )
    assert any(n.startswith("geometric.") for n, _ in full.named_parameters())
    assert not any(n.startswith("geometric.") for n, _ in fv.named_parameters())
    assert not any("geo" in n for n in fv.state_dict())
    # ... and its output ignores depth and heat-maps entirely
    x, e, depth, heat = example_inputs(fv.cfg, 1)
    fv.eval()
    with torch.inference_mode():
        assert torch.equal(fv(x, e, depth, heat), fv(x, e, depth * 0, heat * 0))


def test_ablation_cells_of_table_1():
    cells = {
        (create_config(n).use_geometric, create_config(n).adversarial)
        for n in list_configs()
        if n.startswith("paper-")
    }
    assert cells == {
        (False, "global"),
        (False, "afsa"),
        (True, "global"),
        (True, "afsa"),
    }
    assert (
        type(create_discriminator(create_config("paper-fv-global"))).__name__
        == "GlobalDiscriminator"
    )
    assert type(create_discriminator(create_config("paper"))).__name__ == "AFSADiscriminator"


def test_registry_refuses_unknown_names_and_arguments():
    with pytest.raises(TypeError, match="valid: .*latent_channels"):
        create_generator("tiny", latent_width=3)
    with pytest.raises(ModelError, match="registered: .*tiny"):
        create_config("huge")
    with pytest.raises(ModelError, match="decoder stages"):
        create_config("tiny", decoder_channels=(8,))
    cfg = create_config("base", identity_dim=128)
    assert cfg.identity_dim == 128 and create_generator(cfg).visual.blocks[0].phi.in_features == 128


def test_config_dict_round_trip():
    for name in list_configs():
        cfg = create_config(name)
        assert MagicMaskConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ModelError, match="unknown fields"):
        MagicMaskConfig.from_dict({**create_config("tiny").to_dict(), "bogus": 1})


def test_identity_token_option_and_choice_validation():
    with_pos = create_generator("tiny", **SHRINK)
    without = create_generator("tiny", geo_identity_tokens="broadcast", **SHRINK)
    assert "geometric.identity_pos" in dict(with_pos.named_parameters())
    assert "geometric.identity_pos" not in dict(without.named_parameters())
    assert "geometric.identity_pos" not in without.state_dict()
    with pytest.raises(ModelError, match="attention_scale must be one of"):
        create_config("tiny", attention_scale="sometimes")
    # unscaled attention is a different model, same shapes
    x = example_inputs(create_config("tiny", **SHRINK), 1)
    torch.manual_seed(0)
    a = create_generator("tiny", **SHRINK).eval()
    torch.manual_seed(0)
    b = create_generator("tiny", attention_scale="none", **SHRINK).eval()
    with torch.inference_mode():
        assert not torch.allclose(a(*x), b(*x))


def test_instance_norm_is_torch_instance_norm():
    from magicmask.model.layers import instance_norm

    x = torch.randn(3, 5, 7, 9)
    norm = instance_norm(5)
    nn.init.normal_(norm.weight)
    nn.init.normal_(norm.bias)
    ref = nn.functional.instance_norm(x, weight=norm.weight, bias=norm.bias, eps=1e-5)
    assert torch.allclose(norm(x), ref, atol=1e-5)
    assert set(norm.state_dict()) == set(nn.InstanceNorm2d(5, affine=True).state_dict())
