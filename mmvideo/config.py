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
import hashlib
import json
import os
import sys
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from mmvideo.errors import InvalidInput, MissingInput

PRESET_NAMES = ("fast", "balanced", "quality")
DEFAULT_PRESET = "balanced"


@dataclass
class DetectConfig:
    # run the detector every N frames; landmarks only in between
    detect_interval: int = 5
    # the frame is downscaled to this longest side for detection
    detect_max_side: int = 360
    detect_upsample: int = 0  # dlib HOG upsampling steps (finds smaller faces, slower)
    # faces smaller than this (box side, source pixels) are ignored
    min_face_size: int = 24
    # landmarker family (magicmask.face.analyzer): dlib 68-point, insightface 3-D, or FAN
    face_backend: Literal["dlib", "insightface", "fan", "mediapipe"] = "dlib"
    # boxes; None = the backend's default (hog for dlib and fan, scrfd for insightface)
    detector: Literal["hog", "cnn", "mtcnn", "scrfd"] | None = None
    face_models: str | None = None  # folder of the insightface / FAN / Face Mesh model files
    # which face of a --source still with several, largest first (0 = largest); None = the
    # largest, with a warning that there were several
    source_face_index: int | None = None


@dataclass
class TrackConfig:
    iou_weight: float = 0.6  # cost = iou_weight*(1-IoU) + identity_weight*(1-cos)/2
    identity_weight: float = 0.4
    max_match_cost: float = 0.6  # pairs costlier than this are never linked
    track_patience: int = 2  # detection rounds a track may miss before it is lost
    reid_max_gap: int = 50  # frames a lost track may be re-identified after
    reid_min_similarity: float = 0.6  # identity cosine needed to re-identify
    shot_cut_threshold: float = 0.5  # histogram correlation below this is a cut
    target: Literal["all", "largest"] = "all"
    target_face: str | None = None  # reference image: swap the most similar track
    track_id: int | None = None  # swap only this track (ids from `mmvideo tracks`)


@dataclass
class SmoothConfig:
    smoothing: Literal["none", "kalman", "rts"] = "kalman"
    # noise standard deviations as a fraction of the face size (box diagonal), per frame
    process_noise: float = 0.004
    measurement_noise: float = 0.01
    depth_process_noise: float = 0.004
    depth_measurement_noise: float = 0.02


@dataclass
class GenerateConfig:
    batch_size: int = 8
    precision: Literal["fp32", "fp16"] = "fp32"
    threads: int = 2  # torch intra-op threads on CPU


@dataclass
class ComposeConfig:
    mask_erosion: int = 4  # pixels (224 crop) the face mask is shrunk before feathering
    mask_feather: int = 8  # Gaussian feather radius in crop pixels
    # how far the pasted mask reaches above the brows, as a fraction of the brow-to-chin height.
    # 0: brows and below. The forehead carries little identity and is where a generator's
    # artifacts show first (the embedded model paints a band there); 0.3 is the trained mask.
    mask_forehead: float = 0.0
    color_match: Literal["none", "lab"] = "lab"


@dataclass
class EncodeConfig:
    codec: str = "libx264"
    crf: int = 18
    encoder_preset: str = "medium"


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


@dataclass(frozen=True)
class ConfigKey:
    """One configurable key: its slice, name, Python type and allowed values (for Literals)."""

    section: str
    name: str
    type: type
    choices: tuple[str, ...] | None
    optional: bool

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


def config_keys() -> list[ConfigKey]:
    """Every key of every slice, in declaration order (also the CLI flags)."""
    keys = []
    for section, cls in _SLICE_TYPES.items():
        hints = typing.get_type_hints(cls)
        for f in fields(cls):
            keys.append(_describe(section, f.name, hints[f.name]))
    return keys


def _describe(section: str, name: str, hint: Any) -> ConfigKey:
    args = typing.get_args(hint)
    optional = type(None) in args
    if optional:
        hint = next(a for a in args if a is not type(None))
    if typing.get_origin(hint) is Literal:
        return ConfigKey(section, name, str, tuple(typing.get_args(hint)), optional)
    return ConfigKey(section, name, hint, None, optional)


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
    preset: str = DEFAULT_PRESET, overrides: dict[str, Any] | None = None
) -> SwapConfig:
    """Defaults ← preset TOML ← ``overrides`` (flat key → value; ``None`` values are ignored)."""
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
            _set(cfg, key, value, str(path))
    for name, value in (overrides or {}).items():
        if value is None:
            continue
        if name not in keys:
            raise InvalidInput(f"unknown config key {name!r}")
        _set(cfg, keys[name], value, "command line")
    return cfg


def _set(cfg: SwapConfig, key: ConfigKey, value: Any, origin: str) -> None:
    if key.choices is not None and value not in key.choices:
        raise InvalidInput(
            f"{origin}: {key.name} must be one of {', '.join(key.choices)}, not {value!r}"
        )
    if key.type is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    if not isinstance(value, key.type) or (key.type is int and isinstance(value, bool)):
        raise InvalidInput(
            f"{origin}: {key.name} must be {key.type.__name__}, not {value!r}"
        )
    setattr(getattr(cfg, key.section), key.name, value)


def config_to_dict(cfg: SwapConfig) -> dict[str, dict[str, Any]]:
    """The merged config as nested plain values (what ``--print-config`` shows)."""
    return dataclasses.asdict(cfg)


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
    to match a run that went on).
    """

    source: str
    input: str
    output: str
    preset: str = DEFAULT_PRESET
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    start: int = 0
    stop: int | None = None
    warmup: int = 25
    lookahead: int = 0
    device: str = "cpu"
    batch_size: int | None = None
    seed: int = 0
    # ISO 8601 time for the output's provenance tag (None: now); a farm pins it per plan
    created: str | None = None
    # post hand-offs (mmvideo.io.media.PostOptions)
    timecode: str | None = None  # overrides the input's start timecode (HH:MM:SS:FF)
    fill_missing: bool = False  # repeat the previous frame over gaps in an input sequence
    watermark: bool = False
    sign_cert: str | None = None
    sign_key: str | None = None

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


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file, read in blocks (checkpoints can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
