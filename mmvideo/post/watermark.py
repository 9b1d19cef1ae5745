"""Invisible watermark: DWT-DCT with dithered quantisation-index modulation (QIM), on luma.

Why our own and not the ``invisible-watermark`` package: its wheel requires an unpinned ``torch``,
which must not enter this project's dependency set. The method is the same family (the package's
``dwtDct``): a one-level Haar DWT of the luma, 4×4 DCT blocks of the low-low band, block
coefficients moved onto one of two interleaved lattices to carry a bit.

Choices, each for robustness to lossy re-encoding (H.264 CRF 23 is the target):

* the carrier is the *difference* between the DCs of two horizontally neighbouring 4×4 DCT
  blocks of the LL band (each DC is 8 × the mean of an 8×8 pixel area, the quantity a block
  codec preserves best). A plain DC would be moved by the codec's color-conversion bias (about
  -1.25 levels through libx264/yuv420p here), which flips every QIM bit; the difference cancels
  it. Each block takes half of the move, so a pixel changes by at most ``step / 32`` levels,
  1.5 at the default (PSNR about 50 dB);
* every carrier is dithered by a keyed pseudo-random offset, so flat or clipped areas of an
  unmarked image decode as noise, not as a run of zeros;
* the 64-bit payload is repeated over all carriers in a keyed order and read back by summing soft
  decisions (``cos`` of the lattice phase) per bit, across carriers and, for video, across frames;
* a file is "marked" when at least ``threshold`` of the payload bits match. An unmarked image
  matches each bit with probability 1/2, so 58 of 64 happens by chance about once in 10^11.

The change is added equally to R, G and B, so hue is untouched.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace

import cv2
import numpy as np

from mmvideo.io.frame import Frame
from mmvideo.io.writer import AtomicWriter

PIXELS = 8  # a 4x4 DCT block of the half-resolution LL band covers 8x8 pixels
PAYLOAD_BITS = 64
LUMA = np.array([0.299, 0.587, 0.114])  # BT.601 weights, as the dwtDct method uses on Y


@dataclass(frozen=True)
class WatermarkConfig:
    """The watermark's key, message and strength; embed and detect must use the same."""

    key: str = "mmvideo"
    message: str = "synthetic face: mmvideo"
    step: float = 48.0  # QIM step on the DC difference of two neighbouring 4x4 DCT blocks
    threshold: float = 58 / 64  # fraction of payload bits that must match to report a mark


@dataclass(frozen=True)
class Detection:
    """What the detector read: matching payload bits and the decision."""

    matched: int
    bits: int
    marked: bool
    frames: int = 1

    @property
    def score(self) -> float:
        return self.matched / self.bits


def _seed(cfg: WatermarkConfig, what: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{cfg.key}/{what}".encode()).digest()[:8], "little")


def payload_bits(cfg: WatermarkConfig) -> np.ndarray:
    """The 64 bits carried: a keyed hash of the message, forced to 32 ones and 32 zeros."""
    rng = np.random.default_rng(_seed(cfg, "payload:" + cfg.message))
    bits = np.zeros(PAYLOAD_BITS, np.int8)
    bits[rng.permutation(PAYLOAD_BITS)[: PAYLOAD_BITS // 2]] = 1
    return bits


def _layout(cfg: WatermarkConfig, shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Per-carrier bit index and dither for ``shape`` carriers (block pairs)."""
    n = shape[0] * shape[1]
    rng = np.random.default_rng(_seed(cfg, f"layout:{shape}"))
    index = rng.permutation(n) % PAYLOAD_BITS
    dither = rng.uniform(0, cfg.step, n)
    return index.reshape(shape), dither.reshape(shape)


def block_dc(image: np.ndarray) -> np.ndarray:
    """The carrier plane: DC of each 4×4 DCT block of the Haar LL band of the luma (8-bit scale).

    For the Haar wavelet and the orthonormal DCT that DC is exactly 8 × the mean luma of the
    8×8 pixel block it covers (``tests/test_watermark.py`` checks this against PyWavelets and
    SciPy), so it is computed directly from block sums: a 1080p frame in milliseconds, not the
    two full transforms and their inverses.
    """
    scale = 257.0 if image.dtype == np.uint16 else 1.0
    by, bx = image.shape[0] // PIXELS, image.shape[1] // PIXELS
    region = image[: by * PIXELS, : bx * PIXELS].astype(np.float32)
    # INTER_AREA at an integer factor is the exact block mean (in float32), and fast.
    means = cv2.resize(region, (bx, by), interpolation=cv2.INTER_AREA).reshape(by, bx, 3)
    return (8.0 / scale) * (means.astype(np.float64) @ LUMA)


def _pairs(dc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    width = 2 * (dc.shape[1] // 2)
    return dc[:, 0:width:2], dc[:, 1:width:2]


def embed(image: np.ndarray, cfg: WatermarkConfig | None = None) -> np.ndarray:
    """Return ``image`` (RGB uint8/uint16) with the watermark embedded; same shape and dtype."""
    cfg = cfg or WatermarkConfig()
    dc = block_dc(image)
    left, right = _pairs(dc)
    if left.size < PAYLOAD_BITS:
        return image.copy()  # too small to carry the payload: leave it alone
    index, dither = _layout(cfg, left.shape)
    # Dithered QIM on the difference of two neighbouring blocks: bit b puts it on the lattice
    # step*Z + b*step/2 + dither; each block takes half of the move.
    offset = dither + payload_bits(cfg)[index] * (cfg.step / 2)
    diff = left - right
    move = np.round((diff - offset) / cfg.step) * cfg.step + offset - diff
    change = np.zeros_like(dc)
    change[:, 0 : 2 * left.shape[1] : 2] = move / 2
    change[:, 1 : 2 * left.shape[1] : 2] = -move / 2
    # A DC change of c moves every pixel of the 8x8 block by c/8 (the inverse of block_dc),
    # equally in R, G and B so that luma moves by the same amount and hue not at all.
    scale = 257.0 if image.dtype == np.uint16 else 1.0
    levels = np.rint(change * (scale / 8.0))
    by, bx = dc.shape
    out = image.copy()
    region = out[: by * PIXELS, : bx * PIXELS]
    # Saturating adds (OpenCV) of the positive and negative parts, block-expanded to pixels.
    for sign, part in ((1, np.maximum(levels, 0)), (-1, np.maximum(-levels, 0))):
        block = cv2.resize(
            part.astype(image.dtype),
            (bx * PIXELS, by * PIXELS),
            interpolation=cv2.INTER_NEAREST,
        )
        block = cv2.merge([block, block, block])
        op = cv2.add if sign > 0 else cv2.subtract
        region[:] = op(region, block)
    return out


def soft_bits(image: np.ndarray, cfg: WatermarkConfig | None = None) -> np.ndarray:
    """Per-payload-bit evidence summed over the carriers of one image (> 0 reads as 0)."""
    cfg = cfg or WatermarkConfig()
    left, right = _pairs(block_dc(image))
    if left.size < PAYLOAD_BITS:
        return np.zeros(PAYLOAD_BITS)
    index, dither = _layout(cfg, left.shape)
    phase = 2 * np.pi * ((left - right) - dither) / cfg.step
    return np.bincount(index.ravel(), weights=np.cos(phase).ravel(), minlength=PAYLOAD_BITS)


def decide(evidence: np.ndarray, cfg: WatermarkConfig | None = None, frames: int = 1) -> Detection:
    """Compare the bits read from summed evidence with the payload."""
    cfg = cfg or WatermarkConfig()
    read = (evidence < 0).astype(np.int8)
    matched = int(np.sum(read == payload_bits(cfg)))
    return Detection(matched, PAYLOAD_BITS, matched >= cfg.threshold * PAYLOAD_BITS, frames)


def detect(images, cfg: WatermarkConfig | None = None) -> Detection:
    """Detect the watermark in one image or an iterable of frames (evidence is pooled)."""
    cfg = cfg or WatermarkConfig()
    if isinstance(images, np.ndarray):
        images = [images]
    evidence = np.zeros(PAYLOAD_BITS)
    count = 0
    for image in images:
        evidence += soft_bits(image, cfg)
        count += 1
    return decide(evidence, cfg, count)


class WatermarkWriter(AtomicWriter):
    """Wraps any frame writer (video or sequence) and watermarks each frame on its way in."""

    def __init__(self, inner, cfg: WatermarkConfig | None = None):
        self.inner = inner
        self.cfg = cfg or WatermarkConfig()

    def write(self, frame: Frame) -> None:
        self.inner.write(replace(frame, image=embed(frame.image, self.cfg)))

    def close(self):
        return self.inner.close()

    def abort(self) -> None:
        self.inner.abort()

    def __getattr__(self, name: str):
        return getattr(self.inner, name)
