"""Config helpers: build frozen dataclass configs from dicts or ``--set key=value`` strings, with clear errors."""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from recgen.errors import ConfigError

C = TypeVar("C")


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(value: Any, tp: Any, name: str) -> Any:
    """Convert a string (from the command line) or JSON value to the field's type."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None or (isinstance(value, str) and value.lower() in ("none", "null")):
            return None
        return _coerce(value, args[0], name)
    if origin is typing.Literal:
        allowed = typing.get_args(tp)
        if value not in allowed:
            raise ConfigError(f"{name} must be one of {list(allowed)}, got {value!r}")
        return value
    if origin in (tuple, list):
        if isinstance(value, str):
            value = [v for v in value.replace(",", " ").split() if v]
        inner = typing.get_args(tp)[0] if typing.get_args(tp) else str
        return tuple(_coerce(v, inner, name) for v in value)
    try:
        if tp is bool:
            if isinstance(value, str):
                low = value.lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError
            if isinstance(value, bool | int) and value in (0, 1):
                return bool(value)
            raise ValueError
        # a boolean is not a number (True would pass as 1.0): say so instead of coercing it
        if tp in (int, float) and isinstance(value, bool | str) and str(value).lower() in ("true", "false"):
            raise ValueError
        if tp is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if tp is float:
            return float(value)
        if tp is str:
            return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be {getattr(tp, '__name__', tp)}, got {value!r}") from None
    return value


def make_config(cls: type[C], overrides: Mapping[str, Any] | None = None, base: C | None = None) -> C:
    """Build ``cls`` from ``base`` (or defaults) with ``overrides`` applied, coerced and validated.

    Raises:
        ConfigError: an unknown field (the message lists the known ones) or a value of the wrong type/range.
    """
    overrides = dict(overrides or {})
    types_ = _field_types(cls)
    unknown = sorted(set(overrides) - set(types_))
    if unknown:
        raise ConfigError(f"unknown config field(s) {unknown} for {cls.__name__}; known fields: {sorted(types_)}")
    values = {k: _coerce(v, types_[k], k) for k, v in overrides.items()}
    cfg = dataclasses.replace(base, **values) if base is not None else cls(**values)
    validate = getattr(cfg, "validate", None)
    if callable(validate):
        validate()
    return cfg


def parse_sets(items: Iterable[str]) -> dict[str, str]:
    """Parse ``key=value`` strings (``--set``)."""
    out: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set takes key=value, got {item!r}")
        out[key.strip()] = value.strip()
    return out


def to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass."""
    return json.loads(json.dumps(dataclasses.asdict(cfg), default=str))


def check(cond: bool, message: str) -> None:
    """Raise ConfigError(message) unless ``cond`` (for ``validate`` methods)."""
    if not cond:
        raise ConfigError(message)
