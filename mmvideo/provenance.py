"""Provenance: every output says it contains synthetic faces, and may carry signed C2PA credentials.

Two layers, both written after the pixels are final:

* **The provenance tag** — a small JSON document (:class:`ProvenanceTag`) in every output: video
  container metadata (``comment``, which mp4/mov/mkv all keep, plus ``mmvideo_provenance``, kept
  where the muxer allows custom keys), and image headers (EXR and PNG attribute
  ``mmvideo:provenance``, DPX user data, TIFF ImageDescription; see ``mmvideo.io.sequence``).
  It names the tool, its version, the SHA-256 of the checkpoint that made the faces and the time.
* **C2PA content credentials** (``--sign CERT KEY``) through c2pa-python, on the formats the C2PA
  SDK embeds into (mp4, mov, png, tiff, jpeg, ...): an ``c2pa.edited`` action whose digital source
  type is *composite with trained algorithmic media*, described as a face replaced by mmvideo,
  plus the provenance tag as an ``org.mmvideo.provenance`` assertion. Signing writes a temporary
  file beside the output and renames it, so a failed signature leaves the unsigned output intact.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import click

from mmcore.errors import InvalidInput, MissingInput, OutputError
from mmvideo import __version__
from mmvideo.watermark import Detection, WatermarkConfig, detect

log = logging.getLogger(__name__)

SCHEMA = "mmvideo.provenance/1"
METADATA_KEY = "mmvideo_provenance"
C2PA_LABEL = "org.mmvideo.provenance"
# IPTC digital source type for real footage with generated parts composited in.
DIGITAL_SOURCE_TYPE = (
    "http://cv.iptc.org/newscodes/digitalsourcetype/compositeWithTrainedAlgorithmicMedia"
)
C2PA_SUFFIXES = {
    ".mp4",
    ".m4v",
    ".mov",
    ".png",
    ".tif",
    ".tiff",
    ".jpg",
    ".jpeg",
    ".webp",
}


@dataclass(frozen=True)
class ProvenanceTag:
    """The machine-readable statement every output carries."""

    created: str  # ISO 8601, UTC
    checkpoint_sha256: str | None
    tool: str = "mmvideo"
    version: str = __version__
    synthetic_faces: bool = True
    action: str = "face replaced"
    schema: str = SCHEMA

    def to_text(self) -> str:
        return json.dumps(asdict(self), sort_keys=True, separators=(",", ":"))


def make_tag(
    checkpoint_sha256: str | None,
    *,
    now: datetime | None = None,
    created: str | None = None,
) -> ProvenanceTag:
    """A tag for an output made now (or at ``now``, or at the ISO 8601 time ``created``).

    A render farm passes the plan's time as ``created`` so every chunk, and every rerun of one,
    carries the same tag and stays byte-identical.
    """
    if created is not None:
        try:
            # Python 3.10 reads no "Z" suffix
            now = datetime.fromisoformat(created.replace("Z", "+00:00"))  # noqa: FURB162
        except ValueError:
            raise InvalidInput(f"provenance time {created!r} is not ISO 8601") from None
        if now.tzinfo is None:
            now = now.replace(tzinfo=UTC)
    when = (now or datetime.now(UTC)).astimezone(UTC)
    return ProvenanceTag(
        created=when.replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        checkpoint_sha256=checkpoint_sha256,
    )


def parse_tag(text: str | bytes | None) -> ProvenanceTag | None:
    """The tag in ``text``, or None when ``text`` is not one of ours."""
    if not text:
        return None
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        return None
    known = {k: data[k] for k in ProvenanceTag.__dataclass_fields__ if k in data}
    try:
        return ProvenanceTag(**known)
    except TypeError:
        return None


def provenance_metadata(tag: ProvenanceTag, timecode: str | None = None) -> dict[str, str]:
    """Container metadata for a video output (what ``VideoWriter`` adds to its container tags).

    ``timecode`` (a label such as ``01:00:00:00``) makes the mov/mp4 muxer write a tmcd track.
    """
    text = tag.to_text()
    meta = {"comment": text, METADATA_KEY: text}
    if timecode:
        meta["timecode"] = str(timecode)
    return meta


def _video_tag(path: Path) -> ProvenanceTag | None:
    import av

    try:
        with av.open(str(path), metadata_errors="replace") as container:
            dicts = [dict(container.metadata)] + [dict(s.metadata) for s in container.streams]
    except av.error.FFmpegError as exc:
        raise InvalidInput(f"{path}: cannot read metadata ({exc.strerror or exc})") from None
    for meta in dicts:
        for key, value in meta.items():
            if key.lower() in ("comment", METADATA_KEY):
                tag = parse_tag(value)
                if tag is not None:
                    return tag
    return None


def read_provenance(path: str | os.PathLike) -> ProvenanceTag | None:
    """The provenance tag of a video, an image, or the first frame of an image sequence."""
    from mmvideo.io import sequence

    pattern = sequence.parse_pattern(path)
    if pattern is not None:
        return parse_tag(sequence.probe_sequence(pattern, fill_missing=True).provenance)
    p = Path(path)
    if not p.is_file():
        raise MissingInput(f"{p}: no such file")
    if p.suffix.lower() in sequence.SEQUENCE_KINDS:
        return parse_tag(sequence.read_image_provenance(p))
    return _video_tag(p)


# --------------------------------------------------------------------------- C2PA


@dataclass(frozen=True)
class C2paReport:
    """What a C2PA reader found in a file."""

    present: bool
    state: str | None = None  # "Trusted", "Valid" or "Invalid" (the SDK's validation state)
    actions: tuple[str, ...] = ()
    descriptions: tuple[str, ...] = ()
    tag: ProvenanceTag | None = None
    failures: tuple[str, ...] = field(default_factory=tuple)


def _manifest_definition(tag: ProvenanceTag, title: str) -> dict:
    return {
        "claim_generator_info": [{"name": tag.tool, "version": tag.version}],
        "title": title,
        "assertions": [
            {
                "label": "c2pa.actions",
                "data": {
                    "actions": [
                        {
                            "action": "c2pa.edited",
                            "digitalSourceType": DIGITAL_SOURCE_TYPE,
                            "description": f"face replaced by {tag.tool} {tag.version}",
                            "softwareAgent": {"name": tag.tool, "version": tag.version},
                        }
                    ]
                },
            },
            {"label": C2PA_LABEL, "data": json.loads(tag.to_text())},
        ],
    }


def _read_pem(path: str | os.PathLike, what: str) -> bytes:
    p = Path(path)
    if not p.is_file():
        raise MissingInput(f"{p}: {what} not found")
    data = p.read_bytes()
    if b"-----BEGIN" not in data:
        raise InvalidInput(f"{p}: {what} is not PEM")
    return data


def _signing_alg(key_pem: bytes, key_path: str | os.PathLike) -> str:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise InvalidInput(f"{key_path}: cannot load private key ({exc})") from None
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return {256: "es256", 384: "es384", 521: "es512"}[key.curve.key_size]
    if isinstance(key, rsa.RSAPrivateKey):
        return "ps256"
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return "ed25519"
    raise InvalidInput(f"{key_path}: unsupported key type for C2PA signing")


def can_sign(path: str | os.PathLike) -> bool:
    """Whether the C2PA SDK embeds manifests in this kind of file."""
    return Path(path).suffix.lower() in C2PA_SUFFIXES


def c2pa_module():
    """c2pa-python, or a one-line error naming the extra (``swap --sign`` calls this before
    loading models, so a missing extra is not found at the end of a render)."""
    try:
        import c2pa  # deferred: the wheel is in the ``post`` extra
    except ImportError:
        raise InvalidInput("--sign needs c2pa-python: pip install 'mmvideo[post]'") from None
    return c2pa


def sign_c2pa(
    path: str | os.PathLike,
    cert: str | os.PathLike,
    key: str | os.PathLike,
    tag: ProvenanceTag,
) -> None:
    """Embed a signed C2PA manifest into ``path`` in place (atomically).

    ``cert`` is a PEM chain, signing certificate first; ``key`` its PEM private key.
    """
    c2pa = c2pa_module()

    target = Path(path)
    if not can_sign(target):
        raise OutputError(f"{target}: C2PA cannot be embedded in {target.suffix} files")
    cert_pem = _read_pem(cert, "certificate")
    key_pem = _read_pem(key, "private key")
    alg = _signing_alg(key_pem, key)
    tmp = target.with_name(f".{target.stem}.c2pa-tmp{target.suffix}")
    try:
        signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, cert_pem, key_pem, None))
        with c2pa.Builder(json.dumps(_manifest_definition(tag, target.name))) as builder:
            builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
            builder.sign_file(str(target), str(tmp), signer)
        os.replace(tmp, target)
    except c2pa.C2paError as exc:
        tmp.unlink(missing_ok=True)
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInput(f"{target}: C2PA signing failed with {cert}: {reason}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    log.info("%s: signed C2PA manifest (%s)", target, alg)


def read_c2pa(path: str | os.PathLike, trust_anchors: bytes | None = None) -> C2paReport:
    """Read and validate the C2PA manifest of ``path``; ``trust_anchors`` (PEM) marks trust."""
    import c2pa

    p = Path(path)
    if not can_sign(p):
        return C2paReport(present=False)
    context = None
    if trust_anchors:
        settings = {
            "verify": {"verify_trust": True},
            "trust": {"user_anchors": trust_anchors.decode()},
        }
        context = c2pa.Context.from_dict(settings)
    try:
        reader = c2pa.Reader(str(p), context=context) if context else c2pa.Reader(str(p))
    except c2pa.C2paError as exc:
        if "ManifestNotFound" in type(exc).__name__ or "not found" in str(exc).lower():
            return C2paReport(present=False)
        raise InvalidInput(f"{p}: unreadable C2PA manifest ({str(exc).splitlines()[0]})") from None
    with reader:
        manifest = reader.get_active_manifest() or {}
        state = reader.get_validation_state()
        results = reader.get_validation_results() or {}
    actions, descriptions, tag = [], [], None
    for assertion in manifest.get("assertions", []):
        label = assertion.get("label", "")
        if label.startswith("c2pa.actions"):
            for action in assertion.get("data", {}).get("actions", []):
                actions.append(action.get("action", ""))
                if action.get("description"):
                    descriptions.append(action["description"])
        elif label == C2PA_LABEL:
            tag = parse_tag(json.dumps(assertion.get("data")))
    failures = tuple(
        f["code"] for f in results.get("activeManifest", {}).get("failure", []) if "code" in f
    )
    return C2paReport(True, state, tuple(actions), tuple(descriptions), tag, failures)


# --------------------------------------------------------------------------- verify


@dataclass(frozen=True)
class VerifyReport:
    """Everything ``mmvideo verify`` checks in one file."""

    path: str
    watermark: Detection
    tag: ProvenanceTag | None
    c2pa: C2paReport
    timecode: str | None

    def lines(self) -> list[str]:
        w = self.watermark
        found = "watermark detected" if w.marked else "no mmvideo watermark"
        out = [f"{self.path}: {found} ({w.matched}/{w.bits} payload bits over {w.frames} frame(s))"]
        if self.tag is None:
            out.append("  provenance tag: none")
        else:
            t = self.tag
            out.append(
                f"  provenance tag: synthetic faces={t.synthetic_faces}, {t.tool} {t.version}, "
                f"checkpoint sha256 {t.checkpoint_sha256 or 'unknown'}, created {t.created}"
            )
        if self.c2pa.present:
            c = self.c2pa
            what = "; ".join(c.descriptions) or ", ".join(c.actions)
            failed = f", failures: {', '.join(c.failures)}" if c.failures else ""
            out.append(f"  content credentials: {c.state} ({what}){failed}")
        else:
            out.append("  content credentials: none")
        out.append(f"  timecode: {self.timecode or 'none'}")
        return out

    def to_dict(self) -> dict:
        data = asdict(self)
        data["watermark"]["score"] = self.watermark.score
        return data


def _verify_frames(path: str | os.PathLike, max_frames: int):
    from mmvideo.io import sequence

    pattern = sequence.parse_pattern(path)
    if pattern is not None:
        reader = sequence.SequenceReader(pattern, fill_missing=True, stop=max_frames)
        return (f.image for f in reader), reader.info.timecode and str(reader.info.timecode)
    p = Path(path)
    if p.suffix.lower() in sequence.SEQUENCE_KINDS:
        return iter([sequence.read_display_image(p)]), None
    from mmvideo.io.decode import VideoReader
    from mmvideo.io.probe import probe
    from mmvideo.io.timecode import read_video_timecode

    info = probe(p)
    reader = VideoReader(p, stop=max_frames, info=info)
    return (f.image for f in reader), read_video_timecode(p)


def verify(
    path: str | os.PathLike,
    *,
    max_frames: int = 60,
    watermark: WatermarkConfig | None = None,
    trust_anchors: bytes | None = None,
) -> VerifyReport:
    """Look for the watermark (pooled over up to ``max_frames`` frames), tag and C2PA manifest."""
    from mmvideo.io.sequence import parse_pattern

    if parse_pattern(path) is None and not Path(path).exists():
        raise MissingInput(f"{path}: no such file")
    frames, timecode = _verify_frames(path, max_frames)
    detection = detect(frames, watermark)
    c2pa_report = read_c2pa(path, trust_anchors) if Path(path).is_file() else C2paReport(False)
    return VerifyReport(str(path), detection, read_provenance(path), c2pa_report, timecode)


@click.command("verify")
@click.argument("file", type=click.Path())
@click.option(
    "--frames",
    "max_frames",
    type=click.IntRange(1),
    default=60,
    show_default=True,
    help="Frames to pool for watermark detection.",
)
@click.option("--key", default=WatermarkConfig.key, show_default=True, help="Watermark key.")
@click.option(
    "--trust",
    type=click.Path(exists=True, dir_okay=False),
    help="PEM certificate(s) to trust as C2PA signing roots.",
)
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def verify_command(file: str, max_frames: int, key: str, trust: str | None, as_json: bool) -> None:
    """Check FILE (video, image or frame pattern) for the mmvideo watermark, tag and C2PA."""
    anchors = Path(trust).read_bytes() if trust else None
    report = verify(
        file,
        max_frames=max_frames,
        watermark=WatermarkConfig(key=key),
        trust_anchors=anchors,
    )
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2))
    else:
        click.echo("\n".join(report.lines()))


def post_summary(path: str | os.PathLike, info) -> dict:
    """What ``mmvideo probe`` adds for post: the start timecode and the provenance tag.

    ``info`` is the ``MediaInfo`` (``mmvideo.io.media.probe_media``) of ``path``.
    """
    from mmvideo.io.media import source_timecode

    timecode = source_timecode(info)
    tag = read_provenance(path)
    return {
        "timecode": str(timecode) if timecode else None,
        "provenance": asdict(tag) if tag else None,
    }


def post_lines(path: str | os.PathLike, info) -> list[str]:
    """``post_summary`` as the indented lines of ``mmvideo probe``."""
    summary = post_summary(path, info)
    lines = [f"  timecode: {summary['timecode'] or 'none'}"]
    tag = summary["provenance"]
    if tag is None:
        lines.append("  provenance: no mmvideo tag")
    else:
        lines.append(
            f"  provenance: synthetic faces, {tag['tool']} {tag['version']}, checkpoint sha256 "
            f"{tag['checkpoint_sha256'] or 'unknown'}, created {tag['created']}"
        )
    return lines
