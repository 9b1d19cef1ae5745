"""BiSeNet face parsing: checkpoint layout, loading, shapes and masks (random weights: no quality)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from magicmask.face.parsing import (
    CLASSES,
    FACE_CLASSES,
    BiSeNet,
    FaceParser,
    parsed_mask,
)
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
