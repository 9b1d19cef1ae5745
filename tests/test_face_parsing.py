"""BiSeNet face parsing: checkpoint layout, loading, shapes and masks (random weights: no quality)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from media import decoded_frames, swap_cli

from magicmask.face.parsing import (
    CLASSES,
    FACE_CLASSES,
    PARSER_MODEL,
    BiSeNet,
    FaceParser,
    ParseTracker,
    parsed_mask,
)
from magicmask.face.prepare import PrepareConfig
from mmcore.errors import MissingInput, ModelError

# Names from the public face-parsing checkpoint (79999_iter.pth) that our modules must reproduce.
CHECKPOINT_KEYS = (
    "cp.resnet.conv1.weight",
    "cp.resnet.bn1.running_var",
    "cp.resnet.layer1.1.conv2.weight",
    "cp.resnet.layer2.0.downsample.0.weight",
    "cp.resnet.layer4.0.downsample.1.bias",
    "cp.arm16.conv.conv.weight",
    "cp.arm32.conv_atten.weight",
    "cp.arm32.bn_atten.running_mean",
    "cp.conv_head32.conv.weight",
    "cp.conv_head16.bn.weight",
    "cp.conv_avg.conv.weight",
    "ffm.convblk.conv.weight",
    "ffm.conv1.weight",
    "ffm.conv2.weight",
    "conv_out.conv.conv.weight",
    "conv_out.conv_out.weight",
    "conv_out16.conv_out.weight",
    "conv_out32.conv.bn.num_batches_tracked",
)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("parsing") / "79999_iter.pth"
    torch.save(BiSeNet().state_dict(), path)
    return path


@pytest.fixture(scope="module")
def random_parser(checkpoint):
    """A tracker needs its parser; the tracker tests feed ``update`` probabilities directly."""
    return FaceParser(checkpoint, input_size=64)


def test_module_names_and_shapes_match_the_public_checkpoint():
    state = BiSeNet().state_dict()
    for key in CHECKPOINT_KEYS:
        assert key in state, key
    assert state["cp.resnet.conv1.weight"].shape == (64, 3, 7, 7)
    assert state["conv_out.conv_out.weight"].shape == (19, 256, 1, 1)
    assert state["conv_out16.conv_out.weight"].shape == (19, 64, 1, 1)
    assert not any(k.startswith(("sp.", "fc.")) for k in state)  # no spatial path, no classifier
    assert len(CLASSES) == 19 and CLASSES[17] == "hair"


def test_parser_labels_and_masks_have_the_crop_shape(checkpoint):
    parser = FaceParser(checkpoint, input_size=256)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    labels = parser.labels(crops)
    assert labels.shape == (2, 224, 224) and labels.dtype == np.uint8 and labels.max() < 19
    assert parser.labels(crops[0]).shape == (224, 224)
    assert np.array_equal(
        parser.labels(crops[:1])[0], labels[0]
    )  # batch-independent, deterministic
    mask = parser.face_mask(crops)
    assert mask.shape == (2, 224, 224) and mask.dtype == np.float32
    assert 0.0 <= mask.min() and mask.max() <= 1.0


def test_dataparallel_prefix_and_extra_keys_load(tmp_path):
    state = {f"module.{k}": v for k, v in BiSeNet().state_dict().items()}
    state["module.sp.conv1.conv.weight"] = torch.zeros(64, 3, 7, 7)  # an old spatial path
    path = tmp_path / "wrapped.pth"
    torch.save(state, path)
    FaceParser(path, input_size=64)


def test_bad_checkpoints_are_clear_errors(tmp_path):
    with pytest.raises(MissingInput, match="nothere.pth"):
        FaceParser(tmp_path / "nothere.pth")
    state = BiSeNet().state_dict()
    state.pop("ffm.conv1.weight")
    torch.save(state, tmp_path / "partial.pth")
    with pytest.raises(ModelError, match="1 weights missing"):
        FaceParser(tmp_path / "partial.pth")
    state = BiSeNet(n_classes=11).state_dict()
    torch.save(state, tmp_path / "other.pth")
    with pytest.raises(ModelError, match="do not fit"):
        FaceParser(tmp_path / "other.pth")
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(ModelError, match="cannot read"):
        FaceParser(tmp_path / "junk.pth")


def test_parsed_mask_keeps_the_face_and_drops_hair_and_glasses():
    labels = np.zeros((2, 40, 40), np.uint8)
    labels[:, 10:30, 10:30] = CLASSES.index("skin")
    labels[:, :10, :] = CLASSES.index("hair")
    labels[:, 18:22, 12:28] = CLASSES.index("eye_g")
    hard = parsed_mask(labels, feather=0)
    assert hard[0, 15, 15] == 1 and hard[0, 5, 20] == 0 and hard[0, 20, 20] == 0
    assert set(np.unique(hard)) == {0.0, 1.0}
    with_glasses = parsed_mask(labels, FACE_CLASSES + (CLASSES.index("eye_g"),), feather=0)
    assert with_glasses[1, 20, 20] == 1
    soft = parsed_mask(labels, feather=2)
    assert soft.shape == labels.shape and 0 < soft[0, 10, 20] < 1


def test_prepare_target_cuts_the_hull_with_the_parsed_face(data_dir, checkpoint):
    from magicmask.face.analyzer import FaceAnalyzer
    from magicmask.face.image import load_image
    from magicmask.face.mask import face_mask
    from magicmask.face.prepare import PrepareConfig, prepare_target

    image = load_image(data_dir / "id_obama_01.jpg")
    (face,) = FaceAnalyzer().detect(image)
    plain = prepare_target(image, face.landmarks)

    class EverythingIsFace:  # a parser that calls every pixel face: the hull's reach is left
        def face_mask(self, crops, feather=0.0):
            return np.ones(crops.shape[:3], np.float32)

    cfg = PrepareConfig(parse_reach=10)
    reach = face_mask(plain.landmarks, 224, -10, cfg.mask_feather, cfg.mask_forehead)
    everything = prepare_target(image, face.landmarks, cfg=cfg, parser=EverythingIsFace())
    assert np.array_equal(everything.mask, reach)
    parsed = prepare_target(
        image, face.landmarks, cfg=cfg, parser=FaceParser(checkpoint, input_size=128)
    )
    assert parsed.mask.shape == (224, 224) and parsed.mask.dtype == np.float32
    assert (parsed.mask <= reach).all() and parsed.mask.min() >= 0
    assert np.array_equal(parsed.depth, plain.depth)  # only the mask changes


# -- the parser in the swap (issue 15): --mask hull,parser with weights from --face-models ------


def constant_parser(net: BiSeNet, name: str) -> BiSeNet:
    """``net`` made to parse every pixel as class ``name``: the head's features are held at 1
    (BatchNorm scale 0, shift 1) and only that class's logit weights are non-zero (the head has no
    bias), so its logit is 12.8 and every other class's 0: softmax ≈ 1 - 5e-5."""
    head = net.conv_out
    with torch.no_grad():
        head.conv.bn.weight.zero_()
        head.conv.bn.bias.fill_(1.0)
        head.conv_out.weight.zero_()
        head.conv_out.weight[CLASSES.index(name)] = 0.05
    return net


def save_constant_parser(folder, name: str):
    """A ``79999_iter.pth`` in ``folder`` (a made-up BiSeNet, seed 0) that parses all as ``name``."""
    torch.manual_seed(0)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(constant_parser(BiSeNet(), name).state_dict(), folder / PARSER_MODEL)
    return folder


def test_face_probability_keeps_the_face_classes_and_drops_the_rest(checkpoint):
    parser = FaceParser(checkpoint, input_size=64)
    crops = np.random.default_rng(1).integers(0, 256, (2, 48, 40, 3), dtype=np.uint8)
    kept = set()
    for name in CLASSES:
        constant_parser(parser.net, name)
        p = parser.face_probability(crops)
        assert p.shape == (2, 48, 40) and p.dtype == np.float32
        assert p.min() > 0.999 or p.max() < 1e-3, name
        # one crop is a batch of one (torch's CPU kernels may round a batch of one differently)
        np.testing.assert_allclose(parser.face_probability(crops[1]), p[1], rtol=1e-4, atol=1e-6)
        if p.min() > 0.999:
            kept.add(name)
    assert kept == {"skin", "l_brow", "r_brow", "l_eye", "r_eye", "nose", "mouth", "u_lip", "l_lip"}
    # dropped: hair, glasses, hats, ears and earrings, neck, cloth and the background (a hand or
    # a microphone in front of the face parses as one of these, never as face)
    assert {"hair", "eye_g", "hat", "neck", "cloth", "background", "l_ear"}.isdisjoint(kept)


def test_parse_tracker_falls_at_once_rises_gradually_and_restarts_after_a_gap(random_parser):
    tracker = ParseTracker(random_parser)
    one, zero = np.ones((2, 2), np.float32), np.zeros((2, 2), np.float32)
    assert np.array_equal(tracker.update(one, 10), one)
    assert np.array_equal(tracker.update(zero, 11), zero)  # an occluder: cut in its first frame
    assert np.allclose(tracker.update(one, 12), 0.4)  # back to face: 0.4 of the way per frame
    assert np.allclose(tracker.update(one, 13), 0.64)
    assert np.allclose(tracker.update(zero, 14), 0)
    assert tracker.update(one, 15).max() < 0.5  # one frame misread as face: never pasted
    assert np.array_equal(tracker.update(zero, 20), zero)
    assert np.array_equal(tracker.update(one, 30), one)  # after a gap: the frame's own
    assert tracker.update(one, 31).dtype == np.float32


def _edge(position: float, width: int = 200) -> np.ndarray:
    """One row of a parsed face: face left of ``position``, a 1 px soft edge (as BiSeNet's)."""
    return (1.0 / (1.0 + np.exp(np.arange(width) - position))).astype(np.float32)[None]


def flips(masks: list[np.ndarray]) -> float:
    """Mean pixels per frame that cross compose's 0.5 threshold."""
    hard = [m > 0.5 for m in masks]
    return float(np.mean([(a ^ b).sum() for a, b in zip(hard, hard[1:])]))


def test_parse_tracker_steadies_a_jittering_edge_without_lagging_an_occluder(random_parser):
    rng = np.random.default_rng(0)
    # an edge the parser places within about a pixel from frame to frame
    raw = [_edge(100 + rng.normal(0, 1.0)) for _ in range(300)]
    tracker = ParseTracker(random_parser)
    smooth = [tracker.update(p, i) for i, p in enumerate(raw)]
    assert flips(raw) > 0.9 and flips(smooth) < 0.65 * flips(raw)  # measured: 1.18 and 0.64
    # an occluder sliding in from the right, 5 px a frame: no covered pixel is ever kept
    tracker = ParseTracker(random_parser)
    for t in range(20):
        covering = _edge(150 - 5 * t)
        kept = tracker.update(covering, t) > 0.5
        assert not (kept & (covering <= 0.5)).any()


def test_prepare_face_is_the_hull_cut_to_the_parsed_face_minus_the_hands(data_dir):
    from magicmask.face.align import invert_affine, transform_points
    from magicmask.face.analyzer import FaceAnalyzer
    from magicmask.face.hands import Hand, hand_mask, without_hands
    from magicmask.face.image import load_image
    from magicmask.face.prepare import prepare_target
    from mmvideo.pipeline import TrackMasks, prepare_face

    image = load_image(data_dir / "id_obama_01.jpg")
    (face,) = FaceAnalyzer().detect(image)
    hull = prepare_target(image, face.landmarks)
    parsed = np.zeros((224, 224), np.float32)
    parsed[:, :112] = 1.0  # the left half of the crop is face, the right half hair
    # a hand (palm and fingers, 21 points) over the lower face, drawn in crop pixels
    xy = [(0, 40), (-12, 32), (-20, 22), (-26, 14), (-30, 6)]
    for x in (-10, 0, 9, 17):
        xy += [(x, 0), (x, -12), (x, -20), (x, -27)]
    crop_points = np.array(xy, float) + (100.0, 150.0)
    frame_points = transform_points(crop_points, invert_affine(hull.matrix))
    hand = Hand(np.column_stack([frame_points, np.zeros(21)]).astype(np.float32), 0.99, 0.9)
    calls = []

    def parse(crop, index):
        calls.append(index)
        assert np.array_equal(crop, hull.crop)  # parsed in the aligned crop
        return parsed

    masks = TrackMasks(hands=lambda img, box, index, face: [hand], parsed=parse)
    ti = prepare_face(image, face, PrepareConfig(), masks, index=7)
    hands = hand_mask([hand], (224, 224), hull.matrix)
    expected = without_hands(np.minimum(hull.mask, parsed), hands)
    assert calls == [7] and np.array_equal(ti.mask, expected)
    assert ti.mask[:, 112:].max() == 0  # hair: out
    assert (hull.mask[:, :112] > 0.5).sum() > 5000  # the face's left half ...
    assert (ti.mask[:, :112] > 0.5).sum() < (
        hull.mask[:, :112] > 0.5
    ).sum() - 300  # ... less the hand
    assert np.array_equal(prepare_face(image, face, PrepareConfig(), TrackMasks()).mask, hull.mask)


CLIP = "talking_head_turn_01.mp4"
FRAMES = ["--preset", "fast", "--warmup", "2", "--frames", "3-5"]


def _swap(data_dir, tiny_checkpoint, out, *extra) -> list[np.ndarray]:
    """``mmvideo swap`` of frames 3-5 into a PNG sequence and a 16-bit matte; the frames and
    mattes written."""
    matte = out.parent / "matte.%03d.png"
    args = [*FRAMES, "--matte-out", str(matte), *extra]
    assert swap_cli(data_dir, data_dir / CLIP, out, tiny_checkpoint, *args) == 0
    images = [cv2.imread(str(out.parent / f"swap.{n:03d}.png"))[..., ::-1] for n in (3, 4, 5)]
    mattes = [cv2.imread(str(out.parent / f"matte.{n:03d}.png"), -1) for n in (3, 4, 5)]
    return images, mattes


def test_swap_with_the_parser_mask_cuts_the_hull_to_the_parsed_face(
    data_dir, tiny_checkpoint, tmp_path
):
    """``swap --mask hull,parser --face-models DIR`` on a real clip, with made-up weights that
    parse everything as skin (the hull is kept whole: the same frames as ``--mask hull``) or
    as hair (nothing is pasted: the frames as decoded)."""
    runs = {}
    for name, extra in {
        "hull": ["--mask", "hull"],
        "skin": ["--mask", "hull,parser", "--face-models", str(tmp_path / "skin")],
        "hair": ["--mask", "hull,parser", "--face-models", str(tmp_path / "hair")],
    }.items():
        if name != "hull":
            save_constant_parser(tmp_path / name, name)
        (tmp_path / name / "out").mkdir(parents=True)
        runs[name] = _swap(
            data_dir, tiny_checkpoint, tmp_path / name / "out" / "swap.%03d.png", *extra
        )
    originals = decoded_frames(data_dir / CLIP, 6)[3:]
    (hull, hull_mattes), (skin, skin_mattes), (hair, hair_mattes) = runs.values()
    for k in range(3):
        assert (hull_mattes[k] > 0).mean() > 0.02  # the hull pastes a face
        assert np.array_equal(skin_mattes[k], hull_mattes[k])
        assert np.array_equal(skin[k], hull[k])
        assert not hair_mattes[k].any()  # all hair: not a pixel of the face is pasted
        assert np.array_equal(hair[k], originals[k])


@pytest.mark.parametrize("case", ["no folder", "no file", "junk", "other weights"])
def test_a_parser_without_its_weights_is_one_line_before_any_work(
    data_dir, tiny_checkpoint, tmp_path, monkeypatch, capsys, case
):
    import mmvideo.generate

    def refuse(*args, **kwargs):
        raise AssertionError("the generator loaded before the parser weights were checked")

    monkeypatch.setattr(mmvideo.generate, "load_models", refuse)
    folder = tmp_path / "models"
    folder.mkdir()
    if case == "junk":
        (folder / PARSER_MODEL).write_bytes(b"not a checkpoint")
    if case == "other weights":  # a torch state_dict, but of another network
        torch.save(BiSeNet(n_classes=11).state_dict(), folder / PARSER_MODEL)
    extra = ["--mask", "hull,parser"]
    if case != "no folder":
        extra += ["--face-models", str(folder)]
    out = tmp_path / "out.mp4"
    code = swap_cli(data_dir, data_dir / CLIP, out, tiny_checkpoint, *extra)
    err = capsys.readouterr().err.strip()
    expected = {
        "no folder": f"{PARSER_MODEL}: face parser (your BiSeNet weights) needs a model folder; "
        f"pass --face-models DIR containing {PARSER_MODEL}",
        "no file": f"{folder / PARSER_MODEL}: face parser (your BiSeNet weights) model file not found",
        "junk": f"{folder / PARSER_MODEL}: cannot read face-parsing checkpoint",
        "other weights": f"{folder / PARSER_MODEL}: weights do not fit BiSeNet",
    }[case]
    assert code == 5 and err.startswith(f"mmvideo: error: {expected}"), err
    assert err.endswith("; or leave parser out of --mask") and len(err.splitlines()) == 1
    assert not out.exists() and list(tmp_path.iterdir()) == [folder]


def test_farm_plans_carry_the_parser_mask_and_check_its_weights(
    data_dir, tiny_checkpoint, tmp_path, monkeypatch, capsys
):
    import mmvideo.generate
    from mmvideo.commands import main
    from mmvideo.farm.plan import load_plan

    models = save_constant_parser(tmp_path / "models", "skin")
    job = tmp_path / "job.json"
    args = ["plan", "--in", str(data_dir / CLIP), "--source", str(data_dir / "id_obama_01.jpg"),
            "--out", str(job), "--chunks", "2", "--checkpoint", str(tiny_checkpoint),
            "--mask", "hull,parser"]  # fmt: skip
    assert main([*args, "--face-models", str(tmp_path / "nowhere")]) != 0
    assert "nowhere: face model folder not found" in capsys.readouterr().err
    assert main([*args, "--face-models", str(tmp_path)]) == 5  # no weights there
    err = capsys.readouterr().err.strip()
    assert f"put {PARSER_MODEL} in {tmp_path}" in err and len(err.splitlines()) == 1
    assert not job.exists()
    assert main([*args, "--face-models", str(models)]) == 0
    config = load_plan(job).settings.config
    assert config["compose"]["mask"] == "hull,parser"
    assert config["detect"]["face_models"] == str(models)
    # a node without the weights stops before its generator loads or a frame is decoded

    def refuse(*args, **kwargs):
        raise AssertionError("the generator loaded before the parser weights were checked")

    monkeypatch.setattr(mmvideo.generate, "load_models", refuse)
    (models / PARSER_MODEL).unlink()
    capsys.readouterr()
    assert main(["run-chunk", str(job), "--index", "0"]) == 5
    err = capsys.readouterr().err.strip()
    assert "model file not found" in err and len(err.splitlines()) == 1
