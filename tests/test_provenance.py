"""Provenance tag in every output kind, and C2PA signing with a certificate made in the test."""

from __future__ import annotations

import datetime
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from media import encode_images

from mmcore.errors import InvalidInput, MissingInput, OutputError
from mmvideo import __version__
from mmvideo.io.frame import Frame
from mmvideo.io.sequence_write import SequenceWriter, SequenceWriterOptions
from mmvideo.io.timecode import read_video_timecode
from mmvideo.post.credentials import read_c2pa, sign_c2pa
from mmvideo.post.read_tag import read_provenance
from mmvideo.post.tag import SCHEMA, make_tag, parse_tag, provenance_metadata

SHA = "ab" * 32
NOW = datetime.datetime(2026, 11, 26, 1, 2, 3, tzinfo=datetime.UTC)


def test_tag_text_round_trips_and_names_everything():
    tag = make_tag(SHA, now=NOW)
    assert tag.created == "2026-11-26T01:02:03Z"
    assert (tag.synthetic_faces, tag.tool, tag.version, tag.checkpoint_sha256) == (
        True,
        "mmvideo",
        __version__,
        SHA,
    )
    assert parse_tag(tag.to_text()) == tag
    assert make_tag(SHA, created="2026-11-26T01:02:03Z") == tag
    assert make_tag(SHA, created="2026-11-26T02:02:03+01:00") == tag
    with pytest.raises(InvalidInput, match="not ISO 8601"):
        make_tag(SHA, created="yesterday")
    assert f'"schema":"{SCHEMA}"' in tag.to_text()
    for other in (None, "", "plain comment", '{"schema": "someone-else"}', "[1, 2]"):
        assert parse_tag(other) is None


def write_video(path: Path, metadata: dict[str, str], frames: int = 3) -> None:
    images = [np.full((48, 64, 3), 30 * i, np.uint8) for i in range(frames)]
    encode_images(path, images, metadata=metadata)


@pytest.mark.parametrize("ext", ["mp4", "mov", "mkv"])
def test_video_container_carries_tag_and_timecode(tmp_path, ext):
    tag = make_tag(SHA, now=NOW)
    path = tmp_path / f"out.{ext}"
    write_video(path, provenance_metadata(tag, timecode="01:00:00:00"))
    assert read_provenance(path) == tag
    assert read_video_timecode(path) == "01:00:00:00"


def test_untagged_video_has_no_tag(data_dir):
    assert read_provenance(data_dir / "talking_head_turn_01.mp4") is None


@pytest.mark.parametrize("ext", ["exr", "dpx", "png", "tif"])
def test_every_image_kind_carries_the_tag(tmp_path, ext):
    tag = make_tag(SHA, now=NOW)
    options = SequenceWriterOptions(fps=Fraction(25), provenance=tag.to_text())
    image = np.random.default_rng(0).integers(0, 65535, (16, 24, 3)).astype(np.uint16)
    with SequenceWriter(str(tmp_path / f"o.%04d.{ext}"), options=options) as writer:
        writer.write(Frame(100, 100, Fraction(1, 25), image))
    assert read_provenance(tmp_path / f"o.%04d.{ext}") == tag
    assert read_provenance(tmp_path / f"o.0100.{ext}") == tag


def test_missing_file(tmp_path):
    with pytest.raises(MissingInput):
        read_provenance(tmp_path / "nope.mp4")


# --------------------------------------------------------------------------- C2PA


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "mmvideo tests"),
        ]
    )


def _usage(**on) -> x509.KeyUsage:
    names = [
        "digital_signature",
        "content_commitment",
        "key_encipherment",
        "data_encipherment",
        "key_agreement",
        "key_cert_sign",
        "crl_sign",
        "encipher_only",
        "decipher_only",
    ]
    return x509.KeyUsage(**{n: on.get(n, False) for n in names})


@pytest.fixture(scope="module")
def credentials(tmp_path_factory) -> dict[str, Path | bytes]:
    """A throw-away CA and an end-entity signing certificate (C2PA refuses self-signed leaves)."""
    folder = tmp_path_factory.mktemp("cred")
    now = datetime.datetime.now(datetime.UTC)
    valid = (now - datetime.timedelta(days=1), now + datetime.timedelta(days=30))
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("mmvideo test CA"))
        .issuer_name(_name("mmvideo test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(_usage(key_cert_sign=True, crl_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(_name("mmvideo test signer"))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(valid[0])
        .not_valid_after(valid[1])
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    cert_path, key_path = folder / "chain.pem", folder / "key.pem"
    cert_path.write_bytes(leaf.public_bytes(pem) + ca.public_bytes(pem))
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return {"cert": cert_path, "key": key_path, "anchor": ca.public_bytes(pem)}


def _png(path: Path) -> Path:
    import cv2

    image = np.random.default_rng(4).integers(0, 256, (48, 64, 3)).astype(np.uint8)
    assert cv2.imwrite(str(path), image)
    return path


def test_signed_png_and_mp4_verify_with_face_replaced_action(tmp_path, credentials):
    tag = make_tag(SHA, now=NOW)
    video = tmp_path / "swap.mp4"
    write_video(video, provenance_metadata(tag))
    for path in (_png(tmp_path / "frame.png"), video):
        assert read_c2pa(path).present is False
        sign_c2pa(path, credentials["cert"], credentials["key"], tag)
        report = read_c2pa(path, trust_anchors=credentials["anchor"])
        assert report.present and report.state == "Trusted", report.failures
        assert "c2pa.edited" in report.actions
        assert any(d.startswith("face replaced by mmvideo") for d in report.descriptions)
        assert report.tag == tag
        # Without our CA as an anchor the signature still checks out, but is not trusted.
        assert read_c2pa(path).state == "Valid"
        assert not list(tmp_path.glob(".*c2pa-tmp*"))
    assert read_provenance(video) == tag  # signing kept the container tag


def test_tampered_file_fails_validation(tmp_path, credentials):
    path = _png(tmp_path / "frame.png")
    sign_c2pa(path, credentials["cert"], credentials["key"], make_tag(SHA, now=NOW))
    data = bytearray(path.read_bytes())
    import cv2

    image = cv2.imread(str(path))
    image[10:20, 10:20] = 255 - image[10:20, 10:20]
    # Re-encode only the pixels but keep the manifest chunk: the hard binding must break.
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    start = data.find(b"caBX") - 4
    length = int.from_bytes(data[start : start + 4], "big") + 12
    manifest_chunk = bytes(data[start : start + length])
    tampered = bytearray(encoded.tobytes())
    ihdr_end = 8 + 25
    tampered[ihdr_end:ihdr_end] = manifest_chunk
    path.write_bytes(bytes(tampered))
    report = read_c2pa(path, trust_anchors=credentials["anchor"])
    assert report.present and report.state == "Invalid" and report.failures


def test_signing_refuses_what_it_cannot_sign(tmp_path, credentials):
    tag = make_tag(SHA, now=NOW)
    exr = tmp_path / "o.exr"
    exr.write_bytes(b"x")
    with pytest.raises(OutputError, match="C2PA cannot be embedded in .exr"):
        sign_c2pa(exr, credentials["cert"], credentials["key"], tag)
    png = _png(tmp_path / "a.png")
    before = png.read_bytes()
    with pytest.raises(InvalidInput, match="not PEM"):
        sign_c2pa(png, png, credentials["key"], tag)
    with pytest.raises(MissingInput, match="certificate not found"):
        sign_c2pa(png, tmp_path / "none.pem", credentials["key"], tag)
    # A key that does not match the certificate: the SDK refuses; the file is untouched.
    other = tmp_path / "other.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    with pytest.raises(InvalidInput, match="C2PA signing failed"):
        sign_c2pa(png, credentials["cert"], other, tag)
    assert png.read_bytes() == before


def test_open_writer_signs_each_output_it_can(tmp_path, credentials, data_dir, caplog):
    from mmvideo.io.codecs import EncodeOptions
    from mmvideo.io.media import open_reader, probe_media
    from mmvideo.post.writer import PostOptions, open_writer

    clip = data_dir / "talking_head_turn_01.mp4"
    info = probe_media(clip)
    tag = make_tag(SHA, now=NOW)
    post = PostOptions(provenance=tag.to_text(), sign=(credentials["cert"], credentials["key"]))
    for out in (tmp_path / "s.mp4", tmp_path / "s.%03d.png", tmp_path / "s.%03d.exr"):
        with open_writer(out, info, EncodeOptions(), start=0, post=post, copy_streams=False) as w:
            for frame in open_reader(clip, info, stop=3):
                w.write(frame)
    video = read_c2pa(tmp_path / "s.mp4", trust_anchors=credentials["anchor"])
    assert video.state == "Trusted" and video.tag == tag
    for n in range(3):
        frame = read_c2pa(tmp_path / f"s.{n:03d}.png", trust_anchors=credentials["anchor"])
        assert frame.state == "Trusted" and "c2pa.edited" in frame.actions
    assert read_provenance(tmp_path / "s.%03d.exr") == tag
    assert "C2PA cannot be embedded in this format; not signed" in caplog.text
