"""The checkpoint shipped in the package: present, small, verified, and usable as documented."""

from __future__ import annotations

import torch

from magicmask.checkpoint import default_checkpoint_path, load_checkpoint
from magicmask.face.identity import build_identity_encoder

MAX_BYTES = 20 * 1024 * 1024


def test_embedded_checkpoint_loads_and_runs_with_its_encoder():
    path = default_checkpoint_path()
    assert path.is_file() and path.stat().st_size <= MAX_BYTES
    ckpt = load_checkpoint(path)  # verifies the SHA-256 of the weights
    assert ckpt.config.name == "tiny" and ckpt.meta["steps"] > 0
    encoder = build_identity_encoder(ckpt.identity_encoder)
    assert encoder.dim == ckpt.config.identity_dim
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 224, 224, generator=g)
    e = encoder(torch.rand(2, 3, 112, 112, generator=g))
    with torch.no_grad():
        out = ckpt.generator(
            x, e, torch.rand(2, 1, 224, 224, generator=g), torch.rand(2, 8, 224, 224, generator=g)
        )
    assert (
        out.shape == (2, 3, 224, 224)
        and torch.isfinite(out).all()
        and 0 <= out.min()
        and out.max() <= 1
    )
