"""Click options several commands share: ``-y/-n`` for every command that writes a file, one flag
per config key (``mmcore.config_keys``), and the swap's config flags merged onto the preset."""

from __future__ import annotations

import click

from mmcore.config_keys import ConfigKey
from mmvideo.config import ModelSettings, SwapConfig, config_keys, load_config


def overwrite_options(fn):
    """``-y/--overwrite`` and ``-n/--no-overwrite`` (ffmpeg's letters) as one ``overwrite``
    parameter: True, False, or None when neither was given (commands treat None as -n); the
    commands pass it to ``mmcore.atomic.check_output`` before any model loads."""
    return click.option(
        "--overwrite/--no-overwrite",
        "-y/-n",
        "overwrite",
        default=None,
        help="Replace existing output files (-y), or refuse to (-n, the default).",
    )(fn)


def key_options(keys: list[ConfigKey], preset: bool = False):
    """A decorator adding one ``--key`` option per key. ``preset``: every option defaults to
    None, "the preset's value", which the config merges them onto; otherwise the key's own
    default, which ``--help`` shows."""

    def add(fn):
        for key in reversed(keys):
            decls, kind = [key.flag, key.name], key.type
            if key.choices:
                kind = click.Choice(key.choices)
            elif key.path is not None:
                kind = click.Path(resolve_path=True, **key.path)
            extra: dict = {}
            if key.type is bool and key.flag.startswith("--no-"):
                # a switch that turns a default off: given or not, nothing to show
                extra = {"is_flag": True, "flag_value": False, "show_default": False}
            elif key.type is bool:
                decls[0] = f"{key.flag}/--no-{key.flag[2:]}"
            if preset:
                text = f"[{key.section}] {key.allowed()}; overrides the preset's {key.name}."
                default = None
            else:
                # an empty default is "not given" (a path flag would check it as a file)
                text, default = key.help, key.default if key.default not in ("", ()) else None
                extra.setdefault("show_default", default is not None)
            fn = click.option(
                *decls, type=kind, default=default, multiple=key.multiple, help=text, **extra
            )(fn)
        return fn

    return add


def given_keys(keys: list[ConfigKey], params: dict) -> dict:
    """The values of ``keys`` that the command line set (None: not given), popped from
    ``params``."""
    values = {k.name: params.pop(k.name) for k in keys}
    return {name: v for name, v in values.items() if v is not None and v != ()}


# The sections that find, track and smooth the faces of a clip (``pipeline.analyze``,
# ``plan_faces``): what every command that looks at a clip's faces uses.
FACE_SECTIONS = ("detect", "track", "smooth")
# Keys of those sections that choose the source still's face, and which faces are swapped.
SOURCE_KEYS = ("source_face_index",)
TARGET_KEYS = ("target", "target_face", "track_id", "map")


def config_options(sections: tuple[str, ...] | None = None, without: tuple[str, ...] = ()):
    """A decorator adding one ``--key`` option per config key of ``sections`` (None: every
    section), less the keys named in ``without``; all default to None = "the preset's value".
    A command offers only the keys it uses, so a flag it would ignore is click's "No such
    option" instead of silently doing nothing."""
    keys = [
        k
        for k in config_keys()
        if (sections is None or k.section in sections) and k.name not in without
    ]
    return key_options(keys, preset=True)


def checkpoint_settings(checkpoint: str | None) -> ModelSettings | None:
    """The swap settings the ``--checkpoint`` file carries (none without one)."""
    if checkpoint is None:
        return None
    from mmvideo.generate import model_settings  # deferred: torch reads the file

    return model_settings(checkpoint)


def merged_config(preset: str, params: dict, model: ModelSettings | None = None) -> SwapConfig:
    """The preset, then a model's swap settings (``checkpoint_settings``: a tuned model's paste
    mask), then the config flags the command offers (``config_options``) and the command line
    gave, popped from ``params``."""
    overrides = {k.name: params.pop(k.name) for k in config_keys() if k.name in params}
    return load_config(preset, overrides, model)
