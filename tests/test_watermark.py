"""Invisible watermark: invisibility, detection on real frames, survival of one H.264 CRF 23
re-encode, no detection in the original, and the ``mmvideo verify`` command."""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import cv2
import numpy as np
import pytest
from media import decoded_frames, encode_images

from mmvideo.commands import main
from mmvideo.io.frame import Frame
from mmvideo.io.sequence_write import SequenceWriter, SequenceWriterOptions
from mmvideo.post.tag import make_tag, provenance_metadata
from mmvideo.post.verify import verify
from mmvideo.post.watermark import (
    LUMA,
    PAYLOAD_BITS,
    WatermarkConfig,
    WatermarkWriter,
    block_dc,
    detect,
    embed,
    payload_bits,
)

CLIP = "talking_head_turn_01.mp4"  # 224x224, 25 fps: small enough to encode in a test
FRAMES = 25


def psnr(a: np.ndarray, b: np.ndarray, peak: float) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(peak**2 / mse)


def encode_h264(images: list[np.ndarray], path: Path, metadata: dict | None = None) -> Path:
    """One libx264 encode at CRF 23, yuv420p: the re-encode the watermark must survive."""
    return encode_images(
        path, images, options={"crf": "23", "preset": "veryfast"}, metadata=metadata
    )


def test_carrier_is_the_dwt_dct_dc():
    """block_dc is the DC of each 4x4 DCT block of the Haar LL band, computed the long way."""
    import pywt
    from scipy.fft import dctn

    rng = np.random.default_rng(7)
    image = rng.integers(0, 256, (67, 93, 3)).astype(np.uint8)
    luma = image.astype(np.float64) @ LUMA
    ll, _ = pywt.dwt2(luma, "haar")
    by, bx = 67 // 8, 93 // 8
    blocks = ll[: by * 4, : bx * 4].reshape(by, 4, bx, 4)
    expected = dctn(blocks, axes=(1, 3), norm="ortho")[:, 0, :, 0]
    assert np.allclose(block_dc(image), expected)
    assert np.allclose(block_dc(image.astype(np.uint16) * 257), expected)


def test_payload_is_balanced_and_keyed():
    bits = payload_bits(WatermarkConfig())
    assert bits.shape == (PAYLOAD_BITS,) and bits.sum() == PAYLOAD_BITS // 2
    assert not np.array_equal(bits, payload_bits(WatermarkConfig(key="other")))


@pytest.mark.parametrize("name", ["id_obama_01.jpg", "multi_face_bbt_cast_01.jpg"])
def test_embed_is_invisible_and_detected_on_real_stills(data_dir, name):
    image = cv2.cvtColor(cv2.imread(str(data_dir / name)), cv2.COLOR_BGR2RGB)
    marked = embed(image)
    assert marked.shape == image.shape and marked.dtype == np.uint8
    assert psnr(marked, image, 255) > 45
    assert np.abs(marked.astype(int) - image).max() <= 2
    assert detect(marked).marked and detect(marked).matched == PAYLOAD_BITS
    assert not detect(image).marked
    assert not detect(marked, WatermarkConfig(key="someone else")).marked


def test_embed_handles_16bit_frames(data_dir):
    image = cv2.cvtColor(cv2.imread(str(data_dir / "id_biden_01.jpg")), cv2.COLOR_BGR2RGB)
    deep = image.astype(np.uint16) * 257
    marked = embed(deep)
    assert marked.dtype == np.uint16 and psnr(marked, deep, 65535) > 45
    assert detect(marked).marked and not detect(deep).marked
    # The mark lives at 8-bit scale, so it survives the trip down to 8 bits.
    assert detect(((marked.astype(np.uint32) + 128) // 257).astype(np.uint8)).marked


def test_image_too_small_is_left_alone():
    tiny = np.full((16, 16, 3), 100, np.uint8)
    assert np.array_equal(embed(tiny), tiny)
    assert not detect(tiny).marked


def test_survives_h264_crf23_and_is_absent_from_the_original(data_dir, tmp_path):
    original = decoded_frames(data_dir / CLIP, FRAMES)
    marked = [embed(f) for f in original]
    assert min(psnr(m, o, 255) for m, o in zip(marked, original)) > 45
    video = encode_h264(marked, tmp_path / "marked.mp4")
    plain = encode_h264(original, tmp_path / "plain.mp4")
    found = verify(video).watermark
    assert found.marked and found.frames == FRAMES, found
    assert not verify(data_dir / CLIP, max_frames=FRAMES).watermark.marked
    assert not verify(plain).watermark.marked


def test_watermark_writer_marks_a_sequence_and_verify_reads_it(data_dir, tmp_path):
    frames = decoded_frames(data_dir / CLIP, 3)
    options = SequenceWriterOptions(fps=Fraction(25), provenance=make_tag("00" * 32).to_text())
    with WatermarkWriter(SequenceWriter(str(tmp_path / "wm.%04d.png"), options=options)) as w:
        for i, image in enumerate(frames):
            w.write(Frame(10 + i, 10 + i, Fraction(1, 25), image))
    report = verify(tmp_path / "wm.%04d.png")
    assert report.watermark.marked and report.watermark.frames == 3
    assert report.tag is not None and report.tag.synthetic_faces
    single = verify(tmp_path / "wm.0011.png")
    assert single.watermark.marked and single.watermark.frames == 1


def test_verify_command_output(data_dir, tmp_path, capsys):
    marked = [embed(f) for f in decoded_frames(data_dir / CLIP, 10)]
    tag = make_tag("cd" * 32)
    video = encode_h264(marked, tmp_path / "out.mp4", provenance_metadata(tag, "01:00:00:00"))
    assert main(["verify", str(video)]) == 0
    text = capsys.readouterr().out
    assert "watermark detected" in text
    assert f"checkpoint sha256 {'cd' * 32}" in text
    assert "timecode: 01:00:00:00" in text
    assert main(["verify", "--json", str(data_dir / CLIP), "--frames", "10"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["watermark"]["marked"] is False and data["tag"] is None
    assert main(["verify", str(tmp_path / "missing.mp4")]) == 2
    assert "no such file" in capsys.readouterr().err
