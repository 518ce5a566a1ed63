"""TOML into frozen dataclasses, shared by boshcm's and the quiz bot's configuration.

Unknown keys and values of the wrong type are refused with the dotted key named, never dropped or coerced
(integers are accepted for floats). A dataclass may have `validate(section)` for rules beyond types.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import types
from pathlib import Path
from typing import Any, TypeVar, Union, get_args, get_origin, get_type_hints

T = TypeVar("T")


class ConfigError(ValueError):
    """An invalid option; str() is the one line shown at start-up."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


def parse_host_port(text: str, key: str) -> tuple[str, int]:
    host, sep, port_text = text.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise ConfigError(key, f"expected HOST:PORT, got {text!r}")
    return host.strip("[]"), int(port_text)


def load_toml(schema: type[T], path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> T:
    """Read `path` (if any), apply dotted-key `overrides` (`section.key` or `section.sub.key`), validate."""
    return build_table(schema, read_toml(path, overrides), "")


def read_toml(path: Path | str | None = None, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The raw tables of `path` (if any) with dotted-key `overrides` applied; nothing checked yet."""
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            with open(path, "rb") as handle:
                raw = tomllib.load(handle)
        except OSError as exc:
            raise ConfigError("--config", f"cannot read {path}: {exc.strerror}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError("--config", f"{path} is not valid TOML: {exc}") from exc
    for dotted, value in (overrides or {}).items():
        *sections, key = dotted.split(".")
        table = raw
        for section in sections:
            table = table.setdefault(section, {})
        table[key] = value
    return raw


def build_table(schema: type[T], raw: Any, prefix: str) -> T:
    """`raw` as an instance of the dataclass `schema`; errors name `prefix` + the key (e.g. `quizbot.`)."""
    built: T = _build(schema, raw, prefix)
    return built


def _build(cls: type[Any], raw: Any, prefix: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(prefix.rstrip(".") or "config", "must be a table")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    for key in raw:
        if key not in names:
            raise ConfigError(f"{prefix}{key}", "unknown option")
    values: dict[str, Any] = {}
    for name in names & raw.keys():
        expected = hints[name]
        if isinstance(expected, type) and dataclasses.is_dataclass(expected):
            values[name] = _build(expected, raw[name], f"{prefix}{name}.")
        else:
            values[name] = _check_type(f"{prefix}{name}", raw[name], expected)
    instance = cls(**values)
    if hasattr(instance, "validate"):
        instance.validate(prefix.rstrip("."))
    return instance


def _check_type(key: str, value: Any, expected: Any) -> Any:
    origin = get_origin(expected)
    if origin in (Union, types.UnionType):
        for option in get_args(expected):
            try:
                return _check_type(key, value, option)
            except ConfigError:
                continue
        raise ConfigError(key, f"has the wrong type ({type(value).__name__})")
    if origin is list:
        (item_type,) = get_args(expected)
        if not isinstance(value, list):
            raise ConfigError(key, f"must be a list; got {value!r}")
        return [_check_type(f"{key}[{index}]", item, item_type) for index, item in enumerate(value)]
    if expected is type(None):
        if value is not None:
            raise ConfigError(key, "must be empty")
        return None
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if expected is float and isinstance(value, float) and not math.isfinite(value):
        # TOML has nan and inf; no option means either, and every "must be positive" check lets nan through.
        raise ConfigError(key, f"must be a finite number; got {value!r}")
    if expected is bool and not isinstance(value, bool):
        raise ConfigError(key, f"must be true or false; got {value!r}")
    if expected is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ConfigError(key, f"must be an integer; got {value!r}")
    if not isinstance(value, expected):
        raise ConfigError(key, f"must be a {expected.__name__}; got {value!r}")
    return value
