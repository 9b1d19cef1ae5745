"""train.evaluate on a tiny held-out set, and the metric functions it is built from.

The generator here is untrained, so only columns, ranges and the reference rows (whose values
follow from their definition) are asserted, never the model's quality.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from media import held_out_set

from mmcore.errors import InvalidInput
from train import metrics
from train.evaluate import COLUMNS, METHODS, read_pairs, run_evaluation

STILLS = {
    "id_obama_01.jpg": "obama",
    "id_obama_02.jpg": "obama",
    "id_biden_02.jpg": "biden",
    "id_biden_01.jpg": "biden",
    "id_kit_harington_01.jpeg": "kit_harington",
    "id_kit_harington_02.jpeg": "kit_harington",
}
PAIRS = [("id_obama_01.jpg", "id_biden_02.jpg"), ("id_biden_02.jpg", "id_kit_harington_01.jpeg")]


@pytest.fixture(scope="module")
def evaluated(data_dir: Path, tmp_path_factory, tiny_checkpoint):
    root = tmp_path_factory.mktemp("eval")
    images = held_out_set(root / "images", data_dir, STILLS, PAIRS, root / "pairs.csv")
    clip = data_dir / "talking_head_turn_01.mp4"
    rows = run_evaluation(
        tiny_checkpoint, root / "pairs.csv", images, root / "out", "facenet-vggface2", 0, [clip], 3
    )
    return rows, root / "out"


@pytest.mark.slow
def test_evaluation_writes_the_paper_columns_and_reference_rows(evaluated):
    rows, out = evaluated
    result = json.loads((out / "eval.json").read_text())
    assert [r["method"] for r in result["rows"]] == list(METHODS)
    assert set(COLUMNS) <= set(result["rows"][0]) and result["pairs"] == len(PAIRS)
    assert (result["train_encoder"], result["judge_encoder"]) == ("dlib-resnet", "facenet-vggface2")
    table = (out / "eval.md").read_text()
    for head in (
        "ID retr.",
        "CSIM facenet-vggface2",
        "CSIM dlib-resnet",
        "pose err.",
        "expr. (landmark proxy)",
        "FD facenet-vggface2 (not FID)",
        "chip SSIM vs target",
        "sharpness ratio",
        "band ratio",
        "colour band ratio",
        "jitter",
        "ms/face",
    ):
        assert head in table
    unchanged, pasted, self_swap, model = rows
    # Reference rows: the unchanged target has zero pose/expression error by definition, and the
    # source's own crop is judged far closer to the source than another person is.
    assert unchanged.pose_err == 0 and unchanged.expr_err < 1e-9 and unchanged.jitter == 0
    assert abs(unchanged.fd_judge) < 1e-4 and pasted.fd_judge > 0.01 and model.fd_judge > 0
    assert pasted.csim_judge > unchanged.csim_judge + 0.3 and pasted.id_retrieval == 100.0
    assert unchanged.id_retrieval == 0.0
    for r in rows:
        assert -1 <= r.csim_judge <= 1 and -1 <= r.csim_train <= 1 and 0 <= r.id_retrieval <= 100
        assert r.pose_err >= 0 and r.expr_err >= 0
    assert pasted.pose_err > 1.0  # a different head, a different pose
    # realism against the target crop: 1 for the target itself, below 1 for another face and
    # for an untrained generator's output
    assert (
        unchanged.chip_ssim,
        unchanged.sharpness,
        unchanged.band,
        unchanged.color_band,
    ) == pytest.approx((1.0, 1.0, 1.0, 1.0))
    assert pasted.chip_ssim < 0.9 and self_swap.chip_ssim < 0.9 and model.chip_ssim < 0.9
    assert all(r.sharpness > 0 and r.band > 0 and r.color_band > 0 for r in rows)
    assert model.jitter is not None and np.isfinite(model.jitter) and pasted.jitter is None
    assert model.ms > 0 and unchanged.ms is None and self_swap.jitter is None
    # the paired identity gain is computed from the per-pair values of the two rows
    gain = result["identity_gain"]["facenet-vggface2"]
    per_pair = np.subtract(model.csim_judge_per_pair, unchanged.csim_judge_per_pair)
    assert len(per_pair) == len(PAIRS) and np.isclose(gain["mean"], per_pair.mean())
    assert gain["ci95_lo"] <= gain["mean"] <= gain["ci95_hi"] and "% of pairs improve" in table


def test_pairs_file_formats(tmp_path):
    (tmp_path / "a.csv").write_text("file_a,file_b,same\nx,y,1\nx,z,0\n")
    assert read_pairs(tmp_path / "a.csv") == [("x", "z")]
    (tmp_path / "b.csv").write_text("foo,bar\n1,2\n")
    with pytest.raises(InvalidInput, match="expected columns"):
        read_pairs(tmp_path / "b.csv")


def test_cosine_and_retrieval():
    a = np.array([[1.0, 0.0], [0.0, 2.0]])
    assert np.allclose(metrics.cosine(a, np.array([[2.0, 0.0], [1.0, 0.0]])), [1.0, 0.0])
    gallery, labels = np.array([[1.0, 0.1], [0.1, 1.0]]), np.array(["p", "q"])
    assert metrics.retrieval_top1(a, np.array(["p", "q"]), gallery, labels) == 100.0
    assert metrics.retrieval_top1(a, np.array(["q", "q"]), gallery, labels) == 50.0


def test_paired_gain():
    before = np.zeros(200)
    up = metrics.paired_gain(before + np.linspace(0.5, 1.5, 200), before)
    assert (
        np.isclose(up["mean"], 1.0)
        and 0.9 < up["ci95_lo"] < 1.0 < up["ci95_hi"] < 1.1
        and up["improved"] == 1.0
    )
    noise = metrics.paired_gain(np.random.default_rng(1).normal(0, 1, 200), before)
    assert noise["ci95_lo"] < 0 < noise["ci95_hi"] and 0.3 < noise["improved"] < 0.7


def test_frechet_distance_of_gaussians():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(4000, 3))
    assert abs(metrics.frechet_distance(a, a)) < 1e-9
    # shifted mean: |shift|^2; doubled spread per axis: (2 - 1)^2 = 1 per axis
    assert abs(metrics.frechet_distance(a, a + [3.0, 0.0, 0.0]) - 9.0) < 1e-6
    assert abs(metrics.frechet_distance(a, 2.0 * a) - 3.0) < 0.1


def test_expression_error_ignores_pose_in_the_image_plane_but_not_expression():
    rng = np.random.default_rng(0)
    pts = rng.uniform(50, 170, (68, 2))
    theta = np.deg2rad(20)
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    moved = pts @ rot.T * 1.3 + [7.0, -4.0]
    assert metrics.expression_error(moved[None], pts[None])[0] < 1e-6
    opened = pts.copy()
    opened[57, 1] += 15.0  # lower lip down: an expression change
    assert metrics.expression_error(opened[None], pts[None])[0] > 1.0


def test_pose_error_and_jitter():
    assert np.allclose(
        metrics.pose_error(np.array([[10.0, 0, 0]]), np.array([[7.0, 4.0, 0]])), [5.0]
    )
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 255, (4, 8, 8, 3), dtype=np.uint8)
    masks = np.ones((4, 8, 8))
    assert metrics.temporal_jitter(frames, frames, masks) == 0.0
    still = np.repeat(frames[:1], 4, axis=0)
    assert (
        metrics.temporal_jitter(frames, still, masks)
        > 0
        > metrics.temporal_jitter(still, frames, masks)
    )
