"""Typed loading of the farm's JSON files: a dataclass from a dict, every key checked.

A job file is edited by people and written by other machines, so a wrong type must come back
as one line naming the key (``chunks[1].start: expected an integer, got 'abc'``), never as a
traceback from deep inside the pipeline.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Literal

from mmcore.errors import InvalidInput

_KINDS = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}


def load_dataclass(cls: type, data: Any, key: str, ignore: tuple[str, ...] = ()) -> Any:
    """``cls(**data)`` with every field checked against its annotation.

    ``key`` names ``data`` in messages; keys in ``ignore`` may be present and are dropped; any
    other missing or unknown key is refused, defaults included: what the farm reads is what a
    plan wrote, all of it, so a missing key means a damaged file.
    """
    if not isinstance(data, dict):
        raise InvalidInput(f"{key}: expected an object, got {_shown(data)}")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - names - set(ignore))
    if unknown:
        raise InvalidInput(f"{_join(key, unknown[0])}: unknown key")
    values = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name in ignore:
            continue
        if f.name not in data:
            raise InvalidInput(f"{_join(key, f.name)}: missing")
        value = typed(hints[f.name], data[f.name], _join(key, f.name))
        # the allowed values a field declares (mmvideo.config: a Range, choices or a CommaList)
        allowed = f.metadata.get("range") or f.metadata.get("choices") or f.metadata.get("items")
        if value is not None and allowed is not None and value not in allowed:
            what = f"one of {', '.join(allowed)}" if isinstance(allowed, tuple) else allowed
            raise InvalidInput(f"{_join(key, f.name)}: expected {what}, got {_shown(value)}")
        values[f.name] = value
    return cls(**values)


def typed(hint: Any, value: Any, key: str) -> Any:
    """``value`` checked against the annotation ``hint`` (JSON lists become tuples)."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        (arm,) = [a for a in args if a is not type(None)]
        return typed(arm, value, key)
    if origin is Literal:
        if value not in args:
            raise InvalidInput(
                f"{key}: expected one of {', '.join(map(str, args))}, got {_shown(value)}"
            )
        return value
    if dataclasses.is_dataclass(hint):
        return load_dataclass(hint, value, key)
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise InvalidInput(f"{key}: expected an object, got {_shown(value)}")
        return value
    if origin is tuple:
        if not isinstance(value, list):
            raise InvalidInput(f"{key}: expected a list, got {_shown(value)}")
        return tuple(typed(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        value = float(value)
    ok = isinstance(value, hint) and (hint is bool or not isinstance(value, bool))
    if hint is float and ok and not math.isfinite(value):
        ok = False
    if not ok:
        raise InvalidInput(f"{key}: expected {_KINDS[hint]}, got {_shown(value)}")
    return value


def _join(key: str, name: str) -> str:
    return f"{key}.{name}" if key else name


def _shown(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
