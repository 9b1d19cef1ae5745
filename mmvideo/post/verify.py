"""``mmvideo verify``'s check: the watermark, the provenance tag and the C2PA manifest of a file."""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

from mmcore.errors import MissingInput
from mmvideo.io import sequence
from mmvideo.io.decode import VideoReader
from mmvideo.io.probe import probe
from mmvideo.io.timecode import read_video_timecode
from mmvideo.post.credentials import C2paReport, read_c2pa
from mmvideo.post.read_tag import read_provenance
from mmvideo.post.tag import ProvenanceTag
from mmvideo.post.watermark import Detection, WatermarkConfig, detect


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
    pattern = sequence.parse_pattern(path)
    if pattern is not None:
        reader = sequence.SequenceReader(pattern, fill_missing=True, stop=max_frames)
        return (f.image for f in reader), reader.info.timecode and str(reader.info.timecode)
    p = Path(path)
    if p.suffix.lower() in sequence.SEQUENCE_KINDS:
        return iter([sequence.read_display_image(p)]), None
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
    if sequence.parse_pattern(path) is None and not Path(path).exists():
        raise MissingInput(f"{path}: no such file")
    frames, timecode = _verify_frames(path, max_frames)
    detection = detect(frames, watermark)
    c2pa_report = read_c2pa(path, trust_anchors) if Path(path).is_file() else C2paReport(False)
    return VerifyReport(str(path), detection, read_provenance(path), c2pa_report, timecode)
