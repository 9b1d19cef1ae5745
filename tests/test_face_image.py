"""load_image: every common still-image oddity becomes upright RGB uint8, or a one-line error."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from magicmask.face.analyzer import FaceAnalyzer
from magicmask.face.image import MAX_PIXELS, as_rgb8, load_image
from mmcore.errors import InvalidInput, MissingInput


@pytest.fixture(scope="module")
def portrait(data_dir):
    return load_image(data_dir / "id_obama_01.jpg")


def test_real_jpeg_loads_as_rgb8(portrait):
    assert portrait.dtype == np.uint8 and portrait.shape == (1137, 910, 3)
    assert portrait.flags["C_CONTIGUOUS"]


def test_grayscale_png_becomes_three_equal_channels(data_dir):
    image = load_image(data_dir / "id_bbt_amy_01.png")
    assert image.shape == (150, 150, 3)
    assert np.array_equal(image[..., 0], image[..., 2])


def test_cmyk_jpeg_converts(tmp_path, portrait):
    path = tmp_path / "cmyk.jpg"
    Image.fromarray(portrait).convert("CMYK").save(path, quality=95)
    image = load_image(path)
    assert image.shape == portrait.shape
    assert np.abs(image.astype(int) - portrait).mean() < 12


def test_16_bit_grayscale_png_is_rescaled_not_clipped(tmp_path):
    ramp = (np.linspace(0, 65535, 256, dtype=np.uint32)[None, :].repeat(16, 0)).astype(np.uint16)
    path = tmp_path / "deep.png"
    Image.fromarray(ramp).save(path)
    image = load_image(path)
    assert image.dtype == np.uint8 and image.shape == (16, 256, 3)
    assert image[0, 0, 0] == 0 and image[0, -1, 0] == 255 and 120 < image[0, 128, 0] < 136


def test_exif_rotation_is_applied(tmp_path, portrait):
    path = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": the stored pixels lie on their side
    Image.fromarray(np.rot90(portrait, 1).copy()).save(path, exif=exif, quality=95)
    image = load_image(path)
    assert image.shape == portrait.shape
    assert len(FaceAnalyzer().detect(image)) == 1


def test_alpha_is_composited_on_white(tmp_path):
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255  # red, fully transparent in the left half
    rgba[:, 4:, 3] = 255
    path = tmp_path / "alpha.png"
    Image.fromarray(rgba).save(path)
    image = load_image(path)
    assert (image[:, :4] == 255).all() and (image[:, 4:] == [255, 0, 0]).all()


def test_large_images_are_shrunk_to_max_side(tmp_path, portrait):
    path = tmp_path / "big.jpg"
    Image.fromarray(portrait).resize((3640, 4548)).save(path, quality=80)
    image = load_image(path, max_side=2000)
    assert max(image.shape[:2]) == 2000
    assert abs(image.shape[1] / image.shape[0] - 3640 / 4548) < 0.01


def test_missing_corrupt_and_oversized_files_are_one_line_errors(tmp_path):
    with pytest.raises(MissingInput, match="nothere.jpg: image not found"):
        load_image(tmp_path / "nothere.jpg")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    with pytest.raises(InvalidInput, match="bad.jpg: cannot read image") as err:
        load_image(bad)
    assert "\n" not in str(err.value)
    # A PNG header announcing more pixels than we accept: refused before decoding anything.
    huge = tmp_path / "huge.png"
    side = int(np.sqrt(MAX_PIXELS)) + 100
    Image.new("1", (side, side)).save(huge)
    with pytest.raises(InvalidInput, match="too large"):
        load_image(huge)


def test_as_rgb8_shapes():
    assert as_rgb8(np.zeros((4, 5), np.uint8)).shape == (4, 5, 3)
    assert as_rgb8(np.zeros((4, 5, 4), np.uint8)).shape == (4, 5, 3)
    assert as_rgb8(np.full((2, 2, 3), 65535, np.uint16)).max() == 255
    with pytest.raises(InvalidInput):
        as_rgb8(np.zeros((4, 5, 2), np.uint8))
