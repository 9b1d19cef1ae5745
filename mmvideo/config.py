"""Typed configuration of ``mmvideo swap``: one dataclass slice per stage.

The merge order is: dataclass defaults ← ``presets/<name>.toml`` ← CLI flags. Every key is
unique across slices so that it can also be a CLI flag of the same name (``batch_size`` →
``--batch-size``); the flag wins. Each stage receives only its own slice.

Where the presets live: the top-level ``presets/`` folder of a source checkout (also the one
an editable install sees), then ``<sys.prefix>/share/mmvideo/presets`` where a regular install
puts them (``setup.cfg`` ``data_files``), then ``$MMVIDEO_PRESETS`` if set (checked first).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from magicmask.config import PRECISIONS
from magicmask.face.backends import BACKENDS, DETECTORS
from mmcore.config_keys import (
    ConfigKey,
    above,
    at_least,
    between,
    comma_list,
    dataclass_keys,
    flag,
    one_of,
)
from mmcore.errors import InvalidInput, MissingInput
from mmvideo.io.codecs import CRF_RANGE, VIDEO_CODECS, X264_PRESETS

PRESET_NAMES = ("fast", "balanced", "quality")
DEFAULT_PRESET = "balanced"
# Adaptive seam match (compose.SeamTracker): a track's strength is the mean need of its last
# SEAM_WINDOW frames, so it moves by at most 1/10 per frame; the full seam match moves the face in
# the ring by about a grey level on average (docs/benchmarks.md), far under one level per frame.
SEAM_WINDOW = 10
# what the face mask can be made of (``compose.mask``, a comma list): the landmark hull, the
# hands in front of the face cut out (magicmask.face.hands), the hull cut to the face a BiSeNet
# parser finds (magicmask.face.parsing: no hair, glasses, hats or occluders)
MASK_TYPES = ("hull", "hands", "parser")


@dataclass
class DetectConfig:
    # run the detector every N frames; landmarks only in between
    detect_interval: int = field(default=5, metadata=at_least(1))
    # the smallest face to find, box side in pixels of the original: the frame is resized for
    # detection so that such a face reaches the detector's own minimum (HOG ~80 px: a 60 px
    # face is detected on a 1.33× copy, whatever the frame size); 0: detect_max_side alone
    smallest_face: int = field(default=60, metadata=at_least(0))
    # cap on the detection copy's longest side (0: no cap); faces below what it allows are missed
    detect_max_side: int = field(default=0, metadata=at_least(0))
    # dlib HOG upsampling steps (finds smaller faces, slower: each step doubles the side)
    detect_upsample: int = field(default=0, metadata=between(0, 4))
    # faces smaller than this (box side, source pixels) are ignored
    min_face_size: int = field(default=24, metadata=at_least(0))
    # landmarker family (magicmask.face.analyzer): dlib 68-point, insightface 3-D, FAN or
    # MediaPipe Face Mesh
    face_backend: str = field(default="dlib", metadata=one_of(BACKENDS))
    # boxes; None = the backend's default (hog for dlib and fan, scrfd for insightface)
    detector: str | None = field(default=None, metadata=one_of(DETECTORS))
    # run around a live track's predicted box where the detector found no face for it (MMOD
    # finds turned and tilted heads that HOG misses); "none": no second detector
    second_detector: str = field(default="cnn", metadata=one_of(("none", *DETECTORS)))
    face_models: str | None = None  # folder of the insightface / FAN / Face Mesh model files
    # which face of a --source still with several, largest first (0 = largest); None = the
    # largest, with a warning that there were several
    source_face_index: int | None = field(default=None, metadata=at_least(0))


@dataclass
class TrackConfig:
    # cost = (iou_weight*(1-IoU) + identity_weight*(1-cos)/2) / (iou_weight + identity_weight)
    iou_weight: float = field(default=0.6, metadata=between(0, 1))
    identity_weight: float = field(default=0.4, metadata=between(0, 1))
    # pairs costlier than this are never linked (the cost is in [0, 1])
    max_match_cost: float = field(default=0.6, metadata=between(0, 1))
    # detection rounds a track may miss before it is lost
    track_patience: int = field(default=2, metadata=at_least(0))
    # frames a lost track may be re-identified after
    reid_max_gap: int = field(default=50, metadata=at_least(0))
    # gap filling: a live track that misses detection is followed by optical flow and the
    # landmarker for up to this long (seconds of the clip; 0: off, track_patience rounds
    # then), swapped where the landmarker confirms the face; then it is lost
    gap_seconds: float = field(default=1.0, metadata=at_least(0))
    # a filled frame is confirmed when the landmarker's inner points (brows to mouth) lie within
    # this mean distance of the flow-tracked ones, as a fraction of the inner face's size
    gap_max_residual: float = field(default=0.15, metadata=between(0, 1))
    # identity cosine needed to re-identify, on the scale from how alike different people of
    # the clip are (faces seen together in one frame) to 1 (``Tracker.reid_threshold``)
    reid_min_similarity: float = field(default=0.6, metadata=between(-1, 1))
    # histogram correlation below this is a cut
    shot_cut_threshold: float = field(default=0.5, metadata=between(-1, 1))
    target: Literal["all", "largest"] = "all"
    target_face: str | None = None  # reference image: swap the most similar track
    # swap only this track (ids from `mmvideo tracks`, from 1)
    track_id: int | None = field(default=None, metadata=at_least(1))
    # several actors in one pass: "TRACK=source.jpg" (a track id as `mmvideo tracks` shows it)
    # or "reference.jpg=source.jpg" (the track most like the reference photo); mmvideo.targets
    map: tuple[str, ...] = ()


@dataclass
class SmoothConfig:
    smoothing: Literal["none", "kalman", "rts"] = "kalman"
    # noise standard deviations as a fraction of the face size (box diagonal), per frame; a
    # Kalman filter needs them above 0
    process_noise: float = field(default=0.004, metadata=above(0))
    measurement_noise: float = field(default=0.01, metadata=above(0))
    depth_process_noise: float = field(default=0.004, metadata=above(0))
    depth_measurement_noise: float = field(default=0.02, metadata=above(0))


@dataclass
class GenerateConfig:
    batch_size: int = field(default=8, metadata=at_least(1))
    precision: str = field(default="fp32", metadata=one_of(PRECISIONS))
    # torch intra-op threads on CPU
    threads: int = field(default=2, metadata=at_least(1))


@dataclass
class ComposeConfig:
    # pixels (224 crop) the face mask is shrunk before feathering; half the crop erases it
    mask_erosion: int = field(default=4, metadata=between(0, 112))
    # Gaussian feather radius in crop pixels
    mask_feather: int = field(default=8, metadata=between(0, 112))
    # how far the pasted mask reaches above the brows, as a fraction of the brow-to-chin height.
    # 0: brows and below. The forehead carries little identity and is where a generator's
    # artifacts show first (the embedded model paints a band there); 0.3 is the trained mask.
    mask_forehead: float = field(default=0.0, metadata=between(0, 1))
    # lab: the face's LAB mean/std matched to the target's inside the mask; gradient: that, then
    # the target's low-frequency lighting across the face (a side light keeps its falloff)
    color_match: Literal["none", "lab", "gradient"] = "lab"
    # how the face meets the frame at the mask edge (mmvideo.compose): one feathered weight
    # (alpha), coarser bands through wider transitions (multiband), or the face's colour offset
    # from the frame at the edge filled across the face (poisson)
    blend: Literal["alpha", "multiband", "poisson"] = "alpha"
    # what the face mask is made of, a comma list of MASK_TYPES: the landmark hull, then types
    # that cut into it (hands: the hands in front of the face; parser: only the parsed face's
    # pixels, with the user's BiSeNet weights in --face-models)
    mask: str = field(default="hull", metadata=comma_list(MASK_TYPES, "hull"))
    # [ours] share (0-1) of the target frame's own detail finer than the generator can render at
    # this face's scale, added back inside the mask (mmvideo.compose.target_detail); nothing is
    # added to faces under about half the crop's scale, where the crop is finer than the frame
    detail_transfer: float = field(default=0.0, metadata=between(0, 1))
    # [ours] detail transfer's cutoff, a Gaussian sigma in crop pixels: the frame's band finer than
    # this is added. 1 is what the generator cannot render (its decoder works at 112); a wider
    # band carries more of the target's own skin and edges, so a same-person swap comes closer to
    # the original but a cross-person swap keeps more of the target's identity (docs/benchmarks.md)
    detail_sigma: float = field(default=1.0, metadata=between(0.5, 4))
    # [ours] how far (0-1) the face's chroma (CIELAB a, b) moves to the target frame's inside the
    # mask (mmvideo.compose.target_chroma): the generator's coloured blotches (blue over the
    # brows, red on a cheek) fade; its lightness, which carries the face's shape, stays
    chroma_from_target: float = field(default=0.0, metadata=between(0, 1))
    # [ours] share (0-1) of the frame's shading and texture the face takes in a ring along the mask
    # edge (the feather and 8 crop pixels inside it; mmvideo.compose.seam_ring): no color step
    # or smooth band at the edge, at some cost in identity (off in every preset)
    seam_match: float = field(default=0.0, metadata=between(0, 1))
    # [ours] 0: off. Above 0: the seam match is adaptive, applied only as strongly as it takes to
    # bring the face's seam ratio (magicmask.quality.seam_ratio, measured on the face as pasted
    # without it) within 1 ± this, per face and frame and changing slowly along a track
    # (mmvideo.compose.seam_strength, SeamTracker); seam_match is then its floor
    seam_tolerance: float = field(default=0.0, metadata=between(0, 0.5))

    def mask_types(self) -> tuple[str, ...]:
        """The types ``mask`` lists (``hull,hands`` → ``("hull", "hands")``)."""
        return tuple(self.mask.split(","))

    def seam_lookback(self) -> int:
        """Frames before the first written one that a render swaps (and does not write) so that
        its tracks' seam strengths (``compose.SeamTracker``) start as in a run that began
        earlier: the window's memory with the adaptive seam match on, else none."""
        return SEAM_WINDOW - 1 if self.seam_tolerance > 0 else 0


@dataclass
class EncodeConfig:
    codec: str = field(default="libx264", metadata=one_of(VIDEO_CODECS))
    # x264/x265 CRF, NVENC cq (ProRes and FFV1 have none)
    crf: int = field(default=18, metadata=between(*CRF_RANGE))
    encoder_preset: str = field(default="medium", metadata=one_of(X264_PRESETS))
    # beside the output: the blend matte of every written frame (mmvideo.matte)
    matte_out: str | None = field(
        default=None,
        metadata=flag("PNG (16-bit) or EXR frame pattern for the blend matte, e.g. matte.%06d.png"),
    )
    # beside the output: each frame's faces as blended, with their transforms (mmvideo.matte)
    crop_out: str | None = field(
        default=None,
        metadata=flag("Folder for the blended face crops (RGBA PNG) and a JSON sidecar per frame"),
    )


@dataclass
class SwapConfig:
    detect: DetectConfig = field(default_factory=DetectConfig)
    track: TrackConfig = field(default_factory=TrackConfig)
    smooth: SmoothConfig = field(default_factory=SmoothConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    compose: ComposeConfig = field(default_factory=ComposeConfig)
    encode: EncodeConfig = field(default_factory=EncodeConfig)


_SLICE_TYPES = {
    "detect": DetectConfig,
    "track": TrackConfig,
    "smooth": SmoothConfig,
    "generate": GenerateConfig,
    "compose": ComposeConfig,
    "encode": EncodeConfig,
}


def config_keys() -> list[ConfigKey]:
    """Every key of every slice, in declaration order (also the CLI flags)."""
    return [key for section, cls in _SLICE_TYPES.items() for key in dataclass_keys(section, cls)]


def preset_dirs() -> list[Path]:
    """Folders searched for ``<name>.toml``, first match wins."""
    dirs = []
    if os.environ.get("MMVIDEO_PRESETS"):
        dirs.append(Path(os.environ["MMVIDEO_PRESETS"]))
    dirs.append(Path(__file__).resolve().parent.parent / "presets")
    dirs.append(Path(sys.prefix) / "share" / "mmvideo" / "presets")
    return dirs


def preset_path(preset: str) -> Path:
    """The TOML file of a preset name, or the preset itself if it is a path to a .toml file."""
    if preset.endswith(".toml"):
        path = Path(preset)
        if not path.is_file():
            raise MissingInput(f"{preset}: preset file not found")
        return path
    for folder in preset_dirs():
        path = folder / f"{preset}.toml"
        if path.is_file():
            return path
    raise MissingInput(
        f"{preset}: unknown preset (looked in {', '.join(map(str, preset_dirs()))}; "
        f"built-in presets: {', '.join(PRESET_NAMES)})"
    )


def load_config(
    preset: str = DEFAULT_PRESET,
    overrides: dict[str, Any] | None = None,
    model: ModelSettings | None = None,
) -> SwapConfig:
    """Defaults ← preset TOML ← the checkpoint's own settings (``model``) ← ``overrides`` (flat
    key → value; ``None`` values are ignored).

    Every value is checked against its key's type and allowed values as it is read, so a bad
    preset or flag is refused with the allowed range before anything else runs.
    """
    path = preset_path(preset)
    try:
        data = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise InvalidInput(f"{path}: cannot read preset: {exc}") from exc
    cfg = SwapConfig()
    keys = {k.name: k for k in config_keys()}
    for section, values in data.items():
        if section not in _SLICE_TYPES or not isinstance(values, dict):
            raise InvalidInput(
                f"{path}: unknown section [{section}] (known: {', '.join(_SLICE_TYPES)})"
            )
        for name, value in values.items():
            key = keys.get(name)
            if key is None or key.section != section:
                raise InvalidInput(f"{path}: unknown key {name!r} in [{section}]")
            _set(cfg, key, value, f"{path}: [{section}] {name}")
    for name, value in (model.values if model else {}).items():
        if name not in keys:
            raise InvalidInput(f"{model.origin}: unknown swap setting {name!r}")
        _set(cfg, keys[name], value, f"{model.origin}: swap setting {name}")
    for name, value in (overrides or {}).items():
        if value is None or value == ():
            continue  # not given (a list flag given no times is an empty tuple)
        if name not in keys:
            raise InvalidInput(f"unknown config key {name!r}")
        _set(cfg, keys[name], value, keys[name].flag)
    return cfg


@dataclass(frozen=True)
class ModelSettings:
    """Swap settings a checkpoint carries (``meta["swap"]``): what its maker measured it at,
    e.g. a tuned model's paste mask. They replace the preset's values; a flag replaces them."""

    origin: str  # the checkpoint's path, for messages
    values: dict[str, Any]

    @classmethod
    def from_meta(cls, origin: str, meta: dict) -> ModelSettings | None:
        values = meta.get("swap")
        if not values:
            return None
        if not isinstance(values, dict):
            raise InvalidInput(f"{origin}: swap settings must be a table, not {values!r}")
        return cls(origin, dict(values))


def _set(cfg: SwapConfig, key: ConfigKey, value: Any, label: str) -> None:
    """Check ``value``'s type and range for ``key`` and set it; ``label`` names where it came
    from in the one-line refusal (``presets/x.toml: [encode] crf`` or ``--crf``)."""
    given = value
    if key.multiple:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            raise InvalidInput(f"{label} must be a list of strings, not {given!r}")
        setattr(getattr(cfg, key.section), key.name, tuple(value))
        return
    if key.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if (
        not isinstance(value, key.type)
        or (key.type is int and isinstance(value, bool))
        or (key.choices is not None and value not in key.choices)
        or (key.range is not None and value not in key.range)
    ):
        raise InvalidInput(f"{label} must be {key.allowed()}, not {given!r}")
    if key.items is not None and value not in key.items:
        raise InvalidInput(
            f"{label} must be {key.allowed()}, not {given!r}: {key.items.problem(value)}"
        )
    setattr(getattr(cfg, key.section), key.name, value)


def config_to_dict(cfg: SwapConfig) -> dict[str, dict[str, Any]]:
    """The merged config as nested plain values (what ``--print-config`` shows): lists for
    list keys, as JSON gives them back."""
    return {
        section: {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}
        for section, values in dataclasses.asdict(cfg).items()
    }


def config_to_toml(cfg: SwapConfig) -> str:
    """The merged config as TOML that ``load_config`` can read back (``None`` keys are omitted)."""
    lines = []
    for section, values in config_to_dict(cfg).items():
        lines.append(f"[{section}]")
        for name, value in values.items():
            if value is not None:
                lines.append(f"{name} = {json.dumps(value)}")
        lines.append("")
    return "\n".join(lines)


@dataclass
class SwapJob:
    """Everything one render node needs to run one swap (or one chunk of it); JSON-serialisable.

    ``start``/``stop`` select output frames ``[start, stop)`` (``stop=None``: to the end);
    ``warmup`` frames before ``start`` are analysed (tracker and filters settle) but not written,
    and so are ``lookahead`` frames from ``stop`` on (what RTS smoothing's backward pass needs
    to match a run that went on). The output carries the input's audio, subtitles and data of
    ``[start, stop)`` unless ``copy_streams`` is off (a farm chunk: the merge adds them once).

    ``source`` goes into every face the config's target selection picks; it may be None when
    the config maps sources to tracks (``map``). ``targets``, set by a farm plan, is that choice
    already made over the whole clip (``mmvideo.targets.anchor_targets``): the tracks of this
    run that follow those faces get those sources, and nothing else is swapped.
    """

    source: str | None
    input: str
    output: str
    preset: str = DEFAULT_PRESET
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    start: int = 0
    stop: int | None = None
    warmup: int = 25
    lookahead: int = 0
    copy_streams: bool = True
    device: str = "cpu"
    batch_size: int | None = None
    seed: int = 0
    # ISO 8601 time for the output's provenance tag (None: now); a farm pins it per plan
    created: str | None = None
    # post hand-offs (mmvideo.post.writer.PostOptions)
    timecode: str | None = None  # overrides the input's start timecode (HH:MM:SS:FF)
    fill_missing: bool = False  # repeat the previous frame over gaps in an input sequence
    watermark: bool = False
    sign_cert: str | None = None
    sign_key: str | None = None
    # [{"track": id in the whole clip, "source": path, "boxes": [[frame, x0, y0, x1, y1], ...]}]
    targets: list[dict[str, Any]] | None = None

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SwapJob:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise InvalidInput(f"swap job: unknown fields {', '.join(sorted(unknown))}")
        return cls(**data)
