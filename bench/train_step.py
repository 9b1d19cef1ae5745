"""Training steps per second for the ``tiny`` and ``base`` configs on this machine's CPU.

Data loading is timed apart from the step itself, twice: batches built in the training process
(the baseline: ``--workers 0``) and by one prefetching loader worker (``--workers 1``), where
only the time the step loop waits for a batch is counted. A loader that cannot keep up shows as
a wait close to its build time. Faces come from a few real stills of ``shared/data``,
preprocessed once into a temporary folder.

    .venv/bin/python bench/train_step.py [--steps 5] [--batch-size 4] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

from magicmask.face.heatmaps import landmark_heatmaps
from magicmask.face.identity import build_identity_encoder
from magicmask.model.generator import count_parameters
from train.config import TrainConfig
from train.data import PairSampler, StepDataset, load_faces, step_loader
from train.preprocess import PreprocessConfig, preprocess
from train.trainer import build_models, train_step

STILLS = ["id_obama_01.jpg", "id_obama_02.jpg", "id_biden_01.jpg", "id_biden_02.jpg",
          "id_kit_harington_01.jpeg", "id_kit_harington_02.jpeg", "id_rose_leslie_01.jpg", "id_rose_leslie_02.jpg"]  # fmt: skip


def make_data(data_dir: Path, tmp: Path) -> Path:
    root = tmp / "faces"
    for f in STILLS:
        identity = f[3:].rsplit("_", 1)[0]
        (root / identity).mkdir(parents=True, exist_ok=True)
        (root / identity / f).symlink_to(data_dir / f)
    preprocess([root], tmp / "shards", PreprocessConfig(), workers=1)
    return tmp / "shards"


def bench(model: str, data: Path, steps: int, batch: int, workers: int, encoder) -> dict:
    tcfg = TrainConfig(model=model, batch_size=batch, seed=0)
    m = build_models(tcfg, encoder, torch.device("cpu"))
    faces = load_faces(data, m.cfg.image_size, 112)
    dataset = StepDataset(PairSampler(faces, batch, 0), landmark_heatmaps, 0, steps + 1)
    loader = iter(step_loader(dataset, workers))
    train_step(m, tcfg, next(loader), 0)  # warm-up: first-call allocations
    wait = compute = 0.0
    for step in range(1, steps + 1):
        t0 = time.perf_counter()
        batch_ = next(loader)
        t1 = time.perf_counter()
        train_step(m, tcfg, batch_, step)
        t2 = time.perf_counter()
        wait, compute = wait + t1 - t0, compute + t2 - t1
    return {"params": count_parameters(m.generator), "wait": wait / steps, "step": compute / steps}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--configs", default="tiny,base")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    data_dir = Path(
        os.environ.get("MMVIDEO_TEST_DATA", Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    encoder = build_identity_encoder("dlib-resnet")
    print(
        f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch_size} pairs, {args.steps} steps"
    )
    print("config | G params | loader | data s/step | step s/step | steps/s | data share")
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(data_dir, Path(tmp))
        for model in args.configs.split(","):
            for workers in (0, 1):
                r = bench(model, data, args.steps, args.batch_size, workers, encoder)
                total = r["wait"] + r["step"]
                label = "in-process (baseline)" if workers == 0 else "1 worker, prefetch"
                print(
                    f"{model} | {r['params'] / 1e6:.2f} M | {label} | {r['wait']:.3f} | {r['step']:.2f} | "
                    f"{1 / total:.3f} | {r['wait'] / total:.0%}"
                )
    sys.stdout.flush()


if __name__ == "__main__":
    main()
