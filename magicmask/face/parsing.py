"""Optional face parsing (BiSeNet, 19 CelebAMask-HQ classes) for hair- and occlusion-aware masks.

The network is written here in plain torch (no torchvision) with the module names of the common
face-parsing checkpoint (zllrunning/face-parsing.PyTorch, ``79999_iter.pth``: a ResNet-18 context
path, no spatial path), so that file loads as is. The user provides the file (``mmvideo swap
--mask hull,parser`` finds it by that name in ``--face-models``); nothing is fetched or shipped.

Over a clip, ``ParseTracker`` (one per face track) smooths the parsed face in time, in the
aligned crop's coordinates (the crop follows the smoothed landmarks, so a face pixel stays put
there): a pixel's face probability falls at once and rises gradually. Compose keeps the pixels
above 0.5, so what matters is how often a pixel crosses 0.5: an occluder coming in front of the
face is cut in its first frame, a one-frame misreading of hair or a hand as face is never pasted
over, and a jittering edge crosses about 45 % less often (a 1-2 px jitter, simulated) - as
often as under a plain average of the last frames, which would lag a frame or two behind
an occluder coming in.
"""

from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from magicmask.face.model_files import read_state_dict, user_file
from mmcore.errors import MissingInput, ModelError

log = logging.getLogger(__name__)

CLASSES = (
    "background", "skin", "l_brow", "r_brow", "l_eye", "r_eye", "eye_g", "l_ear", "r_ear", "ear_r",
    "nose", "mouth", "u_lip", "l_lip", "neck", "neck_l", "cloth", "hair", "hat",
)  # fmt: skip
# The face region a swap replaces: skin, brows, eyes, nose, mouth, lips. Glasses, hair, hats,
# ears and anything else in front of the face stay the target's.
FACE_CLASSES = (1, 2, 3, 4, 5, 10, 11, 12, 13)
# the file name of the public checkpoint, which ``--face-models`` is searched for
PARSER_MODEL = "79999_iter.pth"
_MEAN = (0.485, 0.456, 0.406)  # ImageNet statistics, as the checkpoint was trained
_STD = (0.229, 0.224, 0.225)


class ConvBNReLU(nn.Module):
    def __init__(self, cin: int, cout: int, ks: int = 3, stride: int = 1, padding: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, ks, stride, padding, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = (
            nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
            if cin != cout or stride != 1
            else nn.Identity()
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.bn2(self.conv2(F.relu(self.bn1(self.conv1(x)))))
        return F.relu(self.downsample(x) + residual)


def _stage(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1))


class ResNet18(nn.Module):
    """ResNet-18 trunk returning the 1/8, 1/16 and 1/32 feature maps."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = _stage(64, 64, 1)
        self.layer2 = _stage(64, 128, 2)
        self.layer3 = _stage(128, 256, 2)
        self.layer4 = _stage(256, 512, 2)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = self.layer1(self.maxpool(F.relu(self.bn1(self.conv1(x)))))  # 1/4
        feat8 = self.layer2(x)  # 128 × 1/8
        feat16 = self.layer3(feat8)  # 256 × 1/16
        feat32 = self.layer4(feat16)  # 512 × 1/32
        return feat8, feat16, feat32


class AttentionRefinement(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, cout)
        self.conv_atten = nn.Conv2d(cout, cout, 1, bias=False)
        self.bn_atten = nn.BatchNorm2d(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.conv(x)
        attention = torch.sigmoid(self.bn_atten(self.conv_atten(feat.mean((2, 3), keepdim=True))))
        return feat * attention


class ContextPath(nn.Module):
    def __init__(self):
        super().__init__()
        self.resnet = ResNet18()
        self.arm16 = AttentionRefinement(256, 128)
        self.arm32 = AttentionRefinement(512, 128)
        self.conv_head32 = ConvBNReLU(128, 128)
        self.conv_head16 = ConvBNReLU(128, 128)
        self.conv_avg = ConvBNReLU(512, 128, ks=1, padding=0)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        feat8, feat16, feat32 = self.resnet(x)
        context = self.conv_avg(feat32.mean((2, 3), keepdim=True))  # 128 × 1 × 1, global context
        up32 = self.arm32(feat32) + context
        up32 = self.conv_head32(F.interpolate(up32, feat16.shape[2:], mode="nearest"))  # 1/16
        up16 = self.arm16(feat16) + up32
        up16 = self.conv_head16(F.interpolate(up16, feat8.shape[2:], mode="nearest"))  # 1/8
        return feat8, up16, up32


class FeatureFusion(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.convblk = ConvBNReLU(cin, cout, ks=1, padding=0)
        self.conv1 = nn.Conv2d(cout, cout // 4, 1, bias=False)
        self.conv2 = nn.Conv2d(cout // 4, cout, 1, bias=False)

    def forward(self, spatial: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        feat = self.convblk(torch.cat([spatial, context], 1))
        attention = torch.sigmoid(self.conv2(F.relu(self.conv1(feat.mean((2, 3), keepdim=True)))))
        return feat + feat * attention


class Head(nn.Module):
    def __init__(self, cin: int, mid: int, n_classes: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, mid)
        self.conv_out = nn.Conv2d(mid, n_classes, 1, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv_out(self.conv(x))


class BiSeNet(nn.Module):
    """BiSeNet for face parsing; the 1/8 ResNet features stand in for the spatial path.

    ``forward`` returns class logits at the input size; the auxiliary heads (``conv_out16``,
    ``conv_out32``) exist so the training checkpoint loads, and are not run.
    """

    def __init__(self, n_classes: int = len(CLASSES)):
        super().__init__()
        self.cp = ContextPath()
        self.ffm = FeatureFusion(256, 256)
        self.conv_out = Head(256, 256, n_classes)
        self.conv_out16 = Head(128, 64, n_classes)
        self.conv_out32 = Head(128, 64, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat8, context8, _ = self.cp(x)
        logits = self.conv_out(self.ffm(feat8, context8))  # n_classes × 1/8
        return F.interpolate(logits, x.shape[2:], mode="bilinear", align_corners=True)


class FaceParser:
    """Per-pixel classes and face masks of aligned face crops, from a user's BiSeNet checkpoint."""

    def __init__(self, checkpoint: str | Path, device: str = "cpu", input_size: int = 512):
        path = Path(checkpoint)
        if not path.is_file():
            raise MissingInput(
                f"{path}: face-parsing checkpoint not found (a BiSeNet {PARSER_MODEL})"
            )
        state = read_state_dict(path, "face-parsing checkpoint", device)
        self.net = BiSeNet()
        try:
            missing, unexpected = self.net.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shapes are checked even when not strict
            raise ModelError(
                f"{path}: weights do not fit BiSeNet ({str(exc).splitlines()[-1].strip()})"
            ) from exc
        if missing:
            raise ModelError(
                f"{path}: not a BiSeNet face-parsing checkpoint ({len(missing)} weights missing, e.g. {missing[0]})"
            )
        if unexpected:
            log.info(
                "%s: ignoring %d weights BiSeNet does not use (e.g. %s)",
                path,
                len(unexpected),
                unexpected[0],
            )
        self.net.to(device).eval()
        self.device = device
        self.input_size = input_size

    @torch.no_grad()
    def _logits(self, crops: np.ndarray) -> torch.Tensor:
        """(B, 19, H, W) class logits of (B, H, W, 3) uint8 RGB crops, at the crops' size."""
        h, w = crops.shape[1:3]
        x = torch.from_numpy(np.ascontiguousarray(crops)).to(self.device)
        x = x.permute(0, 3, 1, 2).float() / 255.0  # (B, 3, H, W) in [0, 1]
        size = (self.input_size, self.input_size)
        x = F.interpolate(x, size, mode="bilinear", align_corners=False)
        mean = torch.tensor(_MEAN, device=self.device).view(1, 3, 1, 1)
        std = torch.tensor(_STD, device=self.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        logits = self.net(x)
        return F.interpolate(logits, (h, w), mode="bilinear", align_corners=False)

    def labels(self, crops: np.ndarray) -> np.ndarray:
        """(B, H, W) uint8 class indices (``CLASSES``) of (B, H, W, 3) uint8 RGB crops."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            return self.labels(crops[None])[0]
        return self._logits(crops).argmax(1).to(torch.uint8).cpu().numpy()

    def face_probability(
        self, crops: np.ndarray, classes: tuple[int, ...] = FACE_CLASSES
    ) -> np.ndarray:
        """(B, H, W) float32: each pixel's probability of being one of ``classes`` (default: the
        face, no hair), the softmax summed over them; (H, W) for one (H, W, 3) crop."""
        crops = np.asarray(crops)
        if crops.ndim == 3:
            return self.face_probability(crops[None], classes)[0]
        probability = self._logits(crops).softmax(1)[:, list(classes)].sum(1)
        return probability.clamp(0.0, 1.0).float().cpu().numpy()

    def face_mask(
        self,
        crops: np.ndarray,
        classes: tuple[int, ...] = FACE_CLASSES,
        feather: float = 2.0,
    ) -> np.ndarray:
        """Soft (B, H, W) float32 masks of the ``classes`` pixels (default: the face, no hair)."""
        return parsed_mask(self.labels(crops), classes, feather)


def parsed_mask(
    labels: np.ndarray, classes: tuple[int, ...] = FACE_CLASSES, feather: float = 2.0
) -> np.ndarray:
    """Soft float32 mask of the pixels whose class is in ``classes``; same leading shape as ``labels``."""
    hard = np.isin(labels, classes).astype(np.float32)
    if feather <= 0:
        return hard
    flat = hard.reshape(-1, *hard.shape[-2:])
    return np.stack([cv2.GaussianBlur(m, (0, 0), feather) for m in flat]).reshape(hard.shape)


def parser_model(face_models: Path | None) -> Path:
    """The user's ``79999_iter.pth`` in the ``--face-models`` folder (we ship none)."""
    return user_file(
        face_models, PARSER_MODEL, "face parser (your BiSeNet weights)", "--face-models"
    )


class ParseTracker:
    """One face track's parsed face, frame after frame: ``tracker(crop, index)`` → (H, W)
    float32, the probability that each pixel of the aligned ``crop`` (uint8 RGB) of frame
    ``index`` is face (``FACE_CLASSES``), smoothed in time.

    Falls at once, rises by ``rise`` of the way per frame: at 0.4 a pixel the parser calls face
    for one frame only stays below 0.5 (0 → 0.4 → back), and one it gives back to the face is
    pasted again from the second frame (0 → 0.4 → 0.64). The caller owns one per face track and
    gives it the track's frames in order; after a gap in ``index`` (and in a new tracker: a farm
    chunk, a preview frame) it starts cold from the frame's own probability.
    """

    def __init__(self, parser: FaceParser, rise: float = 0.4):
        self.parser, self.rise = parser, rise
        self._index: int | None = None
        self._state: np.ndarray | None = None

    def __call__(self, crop: np.ndarray, index: int) -> np.ndarray:
        return self.update(self.parser.face_probability(crop), index)

    def update(self, probability: np.ndarray, index: int) -> np.ndarray:
        """The smoothed map after frame ``index``'s raw ``probability`` (``__call__`` parses it)."""
        prev = self._state
        if prev is None or index != self._index + 1 or prev.shape != probability.shape:
            state = probability
        else:
            state = np.minimum(probability, prev + self.rise * (probability - prev))
        self._index, self._state = index, np.asarray(state, np.float32)
        return self._state
