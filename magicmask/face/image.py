"""Still-image loading for source faces: any common file → upright RGB uint8."""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from mmcore.errors import InvalidInput, MissingInput

log = logging.getLogger(__name__)

# Pillow refuses more than 2× this many pixels as a "decompression bomb"; a real photo above
# ~180 MP is far beyond what a face needs, so we stop there too, with our own message.
MAX_PIXELS = 178_956_970


def load_image(path: str | Path, max_side: int | None = 4096) -> np.ndarray:
    """Read an image file as upright H×W×3 RGB uint8.

    EXIF orientation is applied; grayscale, palette, alpha, CMYK and 16-bit files are converted;
    images longer than ``max_side`` pixels are shrunk (JPEG decodes at reduced size directly).
    """
    path = Path(path)
    if not path.is_file():
        raise MissingInput(f"{path}: image not found")
    try:
        with Image.open(path) as img:
            if img.width * img.height > MAX_PIXELS:
                raise InvalidInput(
                    f"{path}: image too large ({img.width}x{img.height}); use a smaller copy"
                )
            if max_side and max(img.size) > max_side and img.format == "JPEG":
                # Decode at 1/2, 1/4 or 1/8 scale straight away: much faster and smaller.
                img.draft("RGB", (max_side, max_side))
            img = ImageOps.exif_transpose(img)
            rgb = _to_rgb8(img)
    except Image.DecompressionBombError as exc:
        raise InvalidInput(f"{path}: image too large; use a smaller copy") from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"{path}: cannot read image ({exc})") from exc
    if max_side and max(rgb.shape[:2]) > max_side:
        scale = max_side / max(rgb.shape[:2])
        size = (
            max(1, round(rgb.shape[1] * scale)),
            max(1, round(rgb.shape[0] * scale)),
        )
        log.info("%s: resized from %dx%d to %dx%d", path, rgb.shape[1], rgb.shape[0], *size)
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    return rgb


def _to_rgb8(img: Image.Image) -> np.ndarray:
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit (or 32-bit integer) grayscale: Pillow's convert("RGB") would clip, not rescale.
        a = np.asarray(img).astype(np.float64)
        top = 65535.0 if img.mode.startswith("I;16") or a.max() > 255 else 255.0
        gray = np.clip(a * (255.0 / top) + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if img.mode == "F":
        gray = np.clip(np.asarray(img) * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[..., None], 3, axis=2))
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Transparent pixels become white, not whatever color they happen to store.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.ascontiguousarray(np.asarray(img.convert("RGB"), dtype=np.uint8))


def as_rgb8(image: np.ndarray) -> np.ndarray:
    """An in-memory image (H×W, H×W×1, H×W×3 or H×W×4; uint8 or uint16) as contiguous RGB uint8."""
    a = np.asarray(image)
    if a.dtype == np.uint16:
        a = ((a.astype(np.uint32) + 128) // 257).astype(np.uint8)
    elif a.dtype != np.uint8:
        raise InvalidInput(f"image array: unsupported dtype {a.dtype} (expected uint8 or uint16)")
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[2] not in (1, 3, 4) or min(a.shape[:2]) < 1:
        raise InvalidInput(f"image array: unsupported shape {a.shape} (expected H×W×3 RGB)")
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[..., :3]
    return np.ascontiguousarray(a)
