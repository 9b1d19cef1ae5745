"""A DDP step with 2 gloo processes gives the single-process gradient of the same batch.

Each rank trains on its own half of the batch (its pairs come from ``PairSampler.pairs(step,
rank)``); DDP averages the halves' gradients. Batch norm normalises each half by its own
statistics on its rank, so the single-process reference is the mean of the two halves'
gradients computed one after the other.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from media import identity_folders

from train.config import TrainConfig
from train.data import PairSampler, StepDataset, load_faces, reproducible_opencv
from train.preprocess import PreprocessConfig, preprocess
from train.trainer import (
    build_models,
    discriminator_backward,
    generator_backward,
    loss_batches,
)

STILLS = {
    "obama": ["id_obama_01.jpg", "id_obama_02.jpg"],
    "biden": ["id_biden_01.jpg", "id_biden_02.jpg"],
}
CFG = TrainConfig(model="tiny", batch_size=2, seed=11)
STEP = 5


def _grads(data: Path, rank: int, distributed: bool) -> dict[str, torch.Tensor]:
    """Generator and discriminator gradients of one step on ``rank``'s half of the batch."""
    from magicmask.face.heatmaps import landmark_heatmaps
    from magicmask.face.identity import build_identity_encoder

    torch.set_num_threads(1)
    reproducible_opencv()
    m = build_models(
        CFG, build_identity_encoder(CFG.identity_encoder), torch.device("cpu"), distributed
    )
    faces = load_faces(data, 224, 112)
    batch = StepDataset(
        PairSampler(faces, CFG.batch_size, CFG.seed), landmark_heatmaps, STEP, 1, rank
    )[0]
    a, b = loss_batches(m, batch)
    _, swaps = generator_backward(m, CFG, a, b, STEP)
    out = {f"g.{n}": p.grad.clone() for n, p in m.generator.named_parameters()}
    discriminator_backward(m, CFG, a, b, swaps, STEP)
    out.update({f"d.{n}": p.grad.clone() for n, p in m.discriminator.named_parameters()})
    return out


def _worker(rank: int, world: int, port: int, data: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    try:
        grads = _grads(Path(data), rank, distributed=True)
        torch.save(grads, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def data(data_dir: Path, tmp_path_factory) -> Path:
    root = identity_folders(tmp_path_factory.mktemp("faces"), data_dir, STILLS)
    out = tmp_path_factory.mktemp("shards")
    preprocess([root], out, PreprocessConfig(), workers=1)
    return out


@pytest.mark.slow
def test_ddp_two_gloo_processes_match_single_process_gradient(data, tmp_path):
    mp.start_processes(
        _worker, args=(2, _free_port(), str(data), str(tmp_path)), nprocs=2, start_method="spawn"
    )
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    halves = [_grads(data, r, distributed=False) for r in range(2)]
    assert ranks[0].keys() == halves[0].keys() and any(k.startswith("d.") for k in ranks[0])
    for name in ranks[0]:
        expected = (halves[0][name] + halves[1][name]) / 2
        assert torch.equal(ranks[0][name], ranks[1][name]), (
            f"{name}: ranks disagree after all-reduce"
        )
        assert torch.allclose(ranks[0][name], expected, rtol=1e-4, atol=1e-7), name
        # The halves really differ, so agreeing with their mean is not a coincidence.
    assert any(not torch.allclose(halves[0][k], halves[1][k]) for k in halves[0])
