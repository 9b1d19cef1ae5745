"""``--matte-out``: the blend matte of every written frame, equal bit for bit (16-bit PNG) to the
weight ``compose.paste`` blended with, numbered like the output's frames, refused early when
its folder is missing; ``--crop-out``: the faces as blended and their transforms redo the comp."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from media import decoded_frames, read_image, swap_cli, write_image

import mmvideo.generate
from mmcore.errors import OutputError
from mmvideo.compose import paste
from mmvideo.config import ComposeConfig
from mmvideo.io.sequence import display_to_linear
from mmvideo.matte import MatteWriter, crop_folder, to_png16

CLIP = "talking_head_turn_01.mp4"
RGBA = ("R", "G", "B", "A")


def face_paste(frame: np.ndarray):
    """A face-sized ellipse mask on the face of the real frame (the crop sees it 1.6x larger)."""
    m = cv2.getRotationMatrix2D((0, 0), 8, 1.6)
    h, w = frame.shape[:2]
    m[:, 2] = (-(w / 2 - 70) * 1.6, -(h / 3 - 75) * 1.6)
    mask = np.zeros((224, 224), np.float32)
    cv2.ellipse(mask, (112, 120), (70, 90), 0, 0, 360, 1.0, -1)
    return m, mask, cv2.warpAffine(frame, m, (224, 224))


@pytest.mark.parametrize("blend", ["alpha", "multiband", "poisson"])
def test_matte_is_the_compose_alpha_bit_exact_through_png16(data_dir, tmp_path, blend):
    frame = decoded_frames(data_dir / CLIP, 1, "rgb48le")[0]
    matrix, mask, crop = face_paste(frame)
    cfg = ComposeConfig(color_match="lab", blend=blend, mask_erosion=4, mask_feather=8)
    rng = np.random.default_rng(0)
    matte = np.zeros(frame.shape[:2], np.float32)
    paste(frame.copy(), rng.random((224, 224, 3), np.float32), crop, matrix, mask, cfg, matte)
    written = MatteWriter(str(tmp_path / "matte.%04d.png")).write(7, matte)
    assert written.name == "matte.0007.png"
    png = cv2.imread(str(written), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16 and png.shape == frame.shape[:2]
    # a white face over a black frame, plain alpha blend: the output is 65535·alpha itself
    black = np.zeros_like(frame)
    plain = ComposeConfig(color_match="none", blend="alpha", mask_erosion=4, mask_feather=8)
    white = np.ones((224, 224, 3), np.float32)
    paste(black, white, crop, matrix, mask, plain)
    np.testing.assert_array_equal(png, black[..., 0])
    assert 0 < (png > 0).mean() < 0.5 and png.max() == 65535


def test_two_faces_combine_as_over():
    frame = np.zeros((240, 400, 3), np.uint8)
    mask = np.zeros((224, 224), np.float32)
    cv2.ellipse(mask, (112, 112), (80, 100), 0, 0, 360, 1.0, -1)
    cfg = ComposeConfig(color_match="none", mask_erosion=2, mask_feather=12)
    gen = np.zeros((224, 224, 3), np.float32)
    alone = []
    both = np.zeros(frame.shape[:2], np.float32)
    for tx in (0.0, -120.0):  # two faces whose feathered edges overlap
        matrix = np.array([[1, 0, tx], [0, 1, 0]], np.float64)
        alone.append(np.zeros_like(both))
        paste(frame, gen, gen, matrix, mask, cfg, alone[-1])
        paste(frame, gen, gen, matrix, mask, cfg, both)
    a, b = alone
    assert ((a > 0) & (a < 1) & (b > 0) & (b < 1)).any()
    np.testing.assert_allclose(both, a + b * (1 - a), atol=1e-6)


def test_swap_writes_a_matte_and_crops_per_output_frame(tiny_checkpoint, data_dir, tmp_path):
    out = tmp_path / "swap.%03d.png"
    matte = tmp_path / "m" / "matte.%06d.png"
    crops = tmp_path / "c"
    matte.parent.mkdir()
    crops.mkdir()
    args = ["--preset", "fast", "--warmup", "2", "--frames", "3-5", "--matte-out", str(matte)]
    args += ["--crop-out", str(crops)]
    assert swap_cli(data_dir, data_dir / CLIP, out, tiny_checkpoint, *args) == 0
    assert sorted(p.name for p in matte.parent.iterdir()) == [
        f"matte.{n:06d}.png" for n in (3, 4, 5)
    ]
    originals = decoded_frames(data_dir / CLIP, 6)
    for n in (3, 4, 5):
        m = cv2.imread(str(matte.parent / f"matte.{n:06d}.png"), cv2.IMREAD_UNCHANGED)
        image = cv2.imread(str(tmp_path / f"swap.{n:03d}.png"))[..., ::-1]
        assert m.dtype == np.uint16 and m.shape == image.shape[:2]
        changed = np.any(image != originals[n], axis=-1)
        assert changed.any() and not changed[m == 0].any()  # the matte covers every change
        # the comp redone from the crops and their transforms, as a compositor would
        sidecar = json.loads((crops / f"crop.{n:06d}.json").read_text())
        assert sidecar["frame"] == n and len(sidecar["faces"]) == 1
        face = sidecar["faces"][0]
        assert face["size"] == [224, 224] and face["image"] == f"crop.{n:06d}.t{face['track']}.png"
        rgba = cv2.imread(str(crops / face["image"]), cv2.IMREAD_UNCHANGED)
        assert rgba.dtype == np.uint16 and rgba.shape == (224, 224, 4)
        rgba = rgba[..., [2, 1, 0, 3]].astype(np.float32) / 65535
        size = image.shape[1::-1]
        to_frame = np.array(face["crop_to_frame"])
        rgb = cv2.warpAffine(rgba[..., :3], to_frame, size, borderMode=cv2.BORDER_REPLICATE)
        alpha = cv2.warpAffine(rgba[..., 3], to_frame, size)[..., None]
        redone = originals[n] * (1 - alpha) + rgb * 255 * alpha
        assert np.abs(redone - image).max() <= 2
        np.testing.assert_allclose(alpha[..., 0], m / 65535, atol=2e-4)
    # -n: existing matte frames and crops are refused
    assert swap_cli(data_dir, data_dir / CLIP, out, tiny_checkpoint, "-y", *args, "-n") != 0


def test_exr_matte_holds_the_float_coverage(tmp_path):
    import OpenImageIO as oiio

    writer = MatteWriter(str(tmp_path / "matte.%04d.exr"), first=1001)
    coverage = np.random.default_rng(1).random((5, 7)).astype(np.float32)
    path = writer.write(2, coverage)
    image = oiio.ImageInput.open(str(path))
    assert path.name == "matte.1003.exr" and image.spec().channelnames == ("A",)
    np.testing.assert_array_equal(image.read_image("float")[..., 0], coverage)
    image.close()
    assert to_png16(np.array([0.0, 0.5, 1.0])).tolist() == [0, 32768, 65535]


def test_a_matte_folder_missing_is_refused_before_models_load(
    tiny_checkpoint, data_dir, tmp_path, monkeypatch, capsys
):
    def refuse(*args, **kwargs):
        raise AssertionError("models loaded before the matte pattern was checked")

    monkeypatch.setattr(mmvideo.generate, "load_models", refuse)
    missing = tmp_path / "nowhere" / "matte.%04d.png"
    args = ["--matte-out", str(missing)]
    code = swap_cli(data_dir, data_dir / CLIP, tmp_path / "o.mp4", tiny_checkpoint, *args)
    err = capsys.readouterr().err.strip()
    assert code != 0 and "does not exist" in err and len(err.splitlines()) == 1
    args = ["--matte-out", str(tmp_path / "matte.mov")]
    assert swap_cli(data_dir, data_dir / CLIP, tmp_path / "o.mp4", tiny_checkpoint, *args) != 0
    assert "PNG or EXR frame pattern" in capsys.readouterr().err


def test_crop_folder_must_exist_and_is_not_overwritten_without_y(tmp_path):
    with pytest.raises(OutputError, match="does not exist"):
        crop_folder(str(tmp_path / "nowhere"))
    (tmp_path / "crop.000003.json").write_text("{}")
    with pytest.raises(OutputError, match="overwrite"):
        crop_folder(str(tmp_path), overwrite=None)
    assert crop_folder(str(tmp_path), overwrite=True) == tmp_path


@pytest.mark.parametrize("plate", [False, True])
def test_an_exr_output_holds_the_matte_as_a_channel(tiny_checkpoint, data_dir, tmp_path, plate):
    """From a video, and from an EXR plate with an alpha (kept bit for bit beside the matte)."""
    import OpenImageIO as oiio

    clip = data_dir / CLIP
    if plate:
        for n, image in enumerate(decoded_frames(clip, 3, "rgb48le")):
            rgba = np.concatenate(
                [display_to_linear(image), np.full((*image.shape[:2], 1), 0.5)], -1
            )
            write_image(tmp_path / f"plate.{n + 11:04d}.exr", rgba, "half", channels=RGBA)
        clip = tmp_path / "plate.%04d.exr"
    out, matte = tmp_path / "o" / "swap.%04d.exr", tmp_path / "m" / "matte.%04d.exr"
    out.parent.mkdir()
    matte.parent.mkdir()
    args = ["--preset", "fast", "--warmup", "0", "--matte-out", str(matte)]
    assert swap_cli(data_dir, clip, out, tiny_checkpoint, *args) == 0
    first = 11 if plate else 0
    for n in range(first, first + 3):
        image = oiio.ImageInput.open(str(out.parent / f"swap.{n:04d}.exr"))
        names = image.spec().channelnames
        assert names == ((*RGBA, "matte.A") if plate else ("R", "G", "B", "matte.A"))
        pixels = image.read_image("float")
        image.close()
        coverage = read_image(matte.parent / f"matte.{n:04d}.exr")[..., 0]
        assert coverage.max() > 0.9
        # the output's pixel type (half) holds the float matte
        np.testing.assert_array_equal(pixels[..., -1], coverage.astype(np.float16))
        if plate:
            assert (pixels[..., 3] == 0.5).all()
