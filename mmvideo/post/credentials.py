"""C2PA content credentials (``--sign CERT KEY``) through c2pa-python.

On the formats the C2PA SDK embeds into (mp4, mov, png, tiff, jpeg, ...): an ``c2pa.edited``
action whose digital source type is *composite with trained algorithmic media*, described as a
face replaced by mmvideo, plus the provenance tag as an ``org.mmvideo.provenance`` assertion.
Signing writes a temporary file beside the output and renames it, so a failed signature leaves
the unsigned output intact.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from mmcore.atomic import atomic_output
from mmcore.errors import InvalidInput, MissingInput, OutputError
from mmvideo.post.tag import ProvenanceTag, parse_tag

log = logging.getLogger(__name__)

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
    # deferred like c2pa itself: cryptography comes with the ``post`` extra
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
    try:
        # the SDK picks the format by extension, so the temp file keeps the target's
        with atomic_output(target, suffix=target.suffix) as tmp:
            signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, cert_pem, key_pem, None))
            with c2pa.Builder(json.dumps(_manifest_definition(tag, target.name))) as builder:
                builder.set_intent(c2pa.C2paBuilderIntent.EDIT)
                builder.sign_file(str(target), str(tmp), signer)
    except c2pa.C2paError as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InvalidInput(f"{target}: C2PA signing failed with {cert}: {reason}") from None
    log.info("%s: signed C2PA manifest (%s)", target, alg)


def read_c2pa(path: str | os.PathLike, trust_anchors: bytes | None = None) -> C2paReport:
    """Read and validate the C2PA manifest of ``path``; ``trust_anchors`` (PEM) marks trust."""
    p = Path(path)
    if not can_sign(p):
        return C2paReport(present=False)
    import c2pa  # deferred: the wheel is in the ``post`` extra

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
