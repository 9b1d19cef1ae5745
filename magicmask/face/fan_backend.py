"""FAN backend: Bulat's Face Alignment Network (``face-alignment``), 2-D or 3-D 68 points.

The networks, crop, heat-map decoding and flip averaging are face-alignment's own
(``face_alignment.models``/``utils``); only weight loading is ours, because its loader fetches a
missing file from the web. Weights are read from the folder the user names
(``--face-models DIR``) or else from face-alignment's own cache, ``torch.hub.get_dir()/checkpoints``,
under face-alignment's file names. A missing file is a ``ModelError`` saying where to put it.
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlparse

import numpy as np
import torch

from magicmask.face.model_files import read_state_dict
from magicmask.face.types import Landmarks
from mmcore.errors import InvalidInput, ModelError

# face-alignment's reference box scale for detectors with tight boxes (SCRFD, RetinaFace); the
# others (its SFD, dlib, MTCNN-like) use its default REFERENCE_SCALE.
_TIGHT_BOX_SCALE = 165.0


def weight_name(key: str) -> str:
    """face-alignment's file name for one of its networks ('2DFAN-4', '3DFAN-4', 'depth')."""
    from face_alignment.api import models_urls

    return os.path.basename(urlparse(models_urls[key]).path)


def weight_path(key: str, face_models: Path | None) -> Path:
    """Where the weights of ``key`` are read from; never downloads."""
    name = weight_name(key)
    folder = (
        Path(face_models) if face_models is not None else Path(torch.hub.get_dir()) / "checkpoints"
    )
    path = folder / name
    if not path.is_file():
        where = (
            "--face-models DIR"
            if face_models is not None
            else "face-alignment's cache (or pass --face-models DIR)"
        )
        raise ModelError(f"{path}: FAN weights not found; put {name} in {folder} ({where})")
    return path


def _load(net: torch.nn.Module, path: Path, device: str) -> torch.nn.Module:
    try:
        net.load_state_dict(read_state_dict(path, "FAN weights", device))
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise ModelError(f"{path}: weights do not fit the network ({first})") from exc
    return net.to(device).eval()


class FanLandmarker:
    """68 points from FAN (``kind`` '2d' or '3d'; 3-D adds face-alignment's depth network)."""

    def __init__(
        self,
        kind: str = "2d",
        face_models: Path | None = None,
        device: str = "cpu",
        flip: bool = True,
        tight_boxes: bool = False,
    ):
        from face_alignment.models import FAN, ResNetDepth
        from face_alignment.utils import REFERENCE_SCALE

        if kind not in ("2d", "3d"):
            raise InvalidInput(f"FAN landmarks {kind!r}: unknown (choose 2d or 3d)")
        self.has_3d = kind == "3d"
        self._device = device
        self._flip = flip
        self._reference_scale = _TIGHT_BOX_SCALE if tight_boxes else float(REFERENCE_SCALE)
        key = "3DFAN-4" if self.has_3d else "2DFAN-4"
        self._fan = _load(FAN(4), weight_path(key, face_models), device)
        self._depth = (
            _load(ResNetDepth(), weight_path("depth", face_models), device) if self.has_3d else None
        )

    @torch.no_grad()
    def __call__(self, image: np.ndarray, boxes: np.ndarray) -> list[Landmarks]:
        from face_alignment.utils import (
            CENTER_Y_OFFSET,
            CROP_RESOLUTION,
            SCALE_FACTOR,
            crop,
            draw_gaussian,
            flip,
            get_preds_fromhm,
        )

        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
        if not len(boxes):
            return []
        # Same framing as face_alignment.FaceAlignment.get_landmarks_from_image.
        centers, scales, crops = [], [], []
        for x0, y0, x1, y1 in boxes:
            center = np.array([(x0 + x1) / 2.0, (y0 + y1) / 2.0 - (y1 - y0) * CENTER_Y_OFFSET])
            scale = (x1 - x0 + y1 - y0) / self._reference_scale
            centers.append(center)
            scales.append(scale)
            crops.append(crop(image, center, scale).transpose(2, 0, 1).astype(np.float32) / 255.0)
        inp = torch.from_numpy(np.stack(crops)).to(self._device)  # (B, 3, 256, 256)
        heat = self._fan(inp)[-1]  # (B, 68, 64, 64)
        if self._flip:
            heat = heat + flip(self._fan(flip(inp))[-1], is_label=True)
        heat = heat.float().cpu().numpy()
        out = []
        for i, (center, scale) in enumerate(zip(centers, scales)):
            pts, pts_img, _ = get_preds_fromhm(heat[i : i + 1], center, scale)
            pts_img = pts_img.reshape(68, 2).astype(np.float32)
            if self._depth is None:
                out.append(Landmarks(pts_img))
                continue
            maps = np.zeros((68, CROP_RESOLUTION, CROP_RESOLUTION), dtype=np.float32)
            pts_crop = pts.reshape(68, 2) * 4
            for j in range(68):
                if pts_crop[j, 0] > 0 and pts_crop[j, 1] > 0:
                    maps[j] = draw_gaussian(maps[j], pts_crop[j], 2)
            depth_in = torch.cat([inp[i : i + 1], torch.from_numpy(maps)[None].to(self._device)], 1)
            z = self._depth(depth_in).float().cpu().numpy().reshape(68)
            z = z * (
                SCALE_FACTOR * scale / CROP_RESOLUTION
            )  # crop units → image pixels, as face-alignment
            # FAN's 3-D labels follow 300W-LP / AFLW2000-3D: z toward the camera.
            out.append(
                Landmarks(pts_img, np.concatenate([pts_img, z[:, None].astype(np.float32)], 1))
            )
        return out
