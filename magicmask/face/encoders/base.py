"""The frozen, differentiable identity-encoder interface shared by every backend.

Callers hand an encoder 112×112 crops aligned to ``ARCFACE_112``; each encoder warps them to the
crop geometry its network was trained on with one fixed affine (``affine_grid``/``grid_sample``,
so gradients reach the input), runs its network and L2-normalises the result.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IDENTITY_SIZE = 112


def _pixel_to_normalized(size: int) -> np.ndarray:
    """3×3 map from pixel coordinates (centers at integers) to grid_sample's [-1, 1]
    (align_corners=False)."""
    return np.array(
        [
            [2.0 / size, 0.0, 1.0 / size - 1.0],
            [0.0, 2.0 / size, 1.0 / size - 1.0],
            [0.0, 0.0, 1.0],
        ]
    )


def sampling_theta(matrix: np.ndarray, src_size: int, dst_size: int) -> torch.Tensor:
    """``affine_grid`` theta (1×2×3) that warps a src_size crop into a dst_size crop, given the
    2×3 pixel matrix mapping src → dst (``cv2.warpAffine`` convention)."""
    forward = np.vstack([np.asarray(matrix, dtype=np.float64), [0.0, 0.0, 1.0]])
    # grid_sample asks, for every output pixel, where to read in the input: dst → src.
    theta = (
        _pixel_to_normalized(src_size)
        @ np.linalg.inv(forward)
        @ np.linalg.inv(_pixel_to_normalized(dst_size))
    )
    return torch.tensor(theta[:2], dtype=torch.float32).unsqueeze(0)


class IdentityEncoder(nn.Module):
    """A frozen face-recognition network: ``forward(x112 [B,3,112,112] RGB in [0,1]) -> [B,dim]``.

    ``native_from_112`` is the fixed 2×3 matrix mapping ARCFACE_112 crop pixels to the network's
    native chip pixels. ``embed_native`` runs the network on native chips directly (the path the
    parity tests use). Parameters never require grad and the module stays in eval mode even when a
    parent calls ``.train()``, so batch-norm statistics can never drift.
    """

    def __init__(
        self,
        name: str,
        dim: int,
        native_size: int,
        native_from_112: np.ndarray,
        network: nn.Module,
        outside: str = "zeros",
    ):
        super().__init__()
        self.name, self.dim, self.native_size = name, dim, native_size
        self.network, self.outside = network, outside
        # An encoder whose native crop is the 112 crop itself skips the resampling.
        self.warps = native_size != IDENTITY_SIZE or not np.allclose(native_from_112, np.eye(2, 3))
        self.register_buffer(
            "theta",
            sampling_theta(native_from_112, IDENTITY_SIZE, native_size),
            persistent=False,
        )
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> IdentityEncoder:
        return super().train(False)

    def to_native(self, x112: torch.Tensor) -> torch.Tensor:
        """Warp ARCFACE_112 crops ``[B,3,112,112]`` to native chips ``[B,3,S,S]``, differentiably.

        Where the native chip reaches beyond the 112 crop the pixels are ``self.outside``:
        "zeros" (black, like a face at a frame edge in the network's own training crops) or
        "border" (repeat the crop's edge).
        """
        if not self.warps:
            return x112
        theta = self.theta.to(x112.dtype).expand(x112.shape[0], 2, 3)
        grid = F.affine_grid(
            theta,
            [x112.shape[0], 3, self.native_size, self.native_size],
            align_corners=False,
        )
        return F.grid_sample(
            x112, grid, mode="bilinear", padding_mode=self.outside, align_corners=False
        )

    def embed_native(self, chips: torch.Tensor) -> torch.Tensor:
        """Embeddings ``[B,dim]`` (L2-normalised) of native chips ``[B,3,S,S]`` RGB in [0, 1]."""
        return F.normalize(self.network(chips), dim=1)

    def forward(self, x112: torch.Tensor) -> torch.Tensor:
        if x112.dim() != 4 or x112.shape[1:] != (3, IDENTITY_SIZE, IDENTITY_SIZE):
            raise ValueError(f"{self.name}: expected [B,3,112,112] input, got {list(x112.shape)}")
        return self.embed_native(self.to_native(x112))  # [B,dim]
