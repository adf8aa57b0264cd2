"""One environment parser for every pipeline's settings, driven by the fields' types.

A pipeline's settings are a frozen dataclass deriving from :class:`EnvSettings`; each
field is one environment variable, ``env_prefix`` + the field's name in capitals. The
Lambda reads them once per container; the construct writes :meth:`EnvSettings.to_env`
at synth. The field's declared type, never its name, decides how its text parses, so a
new ``bool`` reads ``"false"`` as False without being listed anywhere.

Every error names the setting and its variable first, e.g.
``snapshot_windows (SNAPSHOT_WINDOWS): unknown window 'weekly'; choose from hourly, daily,
monthly``, so a bad value fails ``cdk synth`` with a message that says what to change.
Pure: the caller passes the environment mapping.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, ClassVar, NoReturn, Self, get_args, get_origin, get_type_hints

from .errors import ConfigError

_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off", ""})
_TABLE_NAME = re.compile(r"[A-Za-z0-9_.-]{3,255}")
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
CHOICES = "choices"
"""Field metadata key: the enum members a tuple field accepts, when not all of them."""


class EnvSettings:
    """Base of a settings dataclass: its environment names, parsing and shared checks."""

    env_prefix: ClassVar[str] = ""
    DOCUMENT_ENV_NAMES: ClassVar[Mapping[str, str]] = {}
    """A seed document's variable for a field, read when ours is absent."""

    def __init_subclass__(cls, *, env_prefix: str = "", **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.env_prefix = env_prefix

    @classmethod
    def env_names(cls) -> dict[str, str]:
        """Field name to environment variable, for every field the constructor takes."""
        return {f.name: cls.env_prefix + f.name.upper() for f in _fields(cls)}

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Self:
        """Build from environment variables; unset ones take the field's default.

        A field's :attr:`DOCUMENT_ENV_NAMES` variable stands in for ours when ours is unset.

        Raises:
            ConfigError: ours and the document's are both set and differ (names both).
        """
        env = _with_document_names(cls, env)
        kwargs: dict[str, object] = {}
        hints = _hints(cls)
        for f in _fields(cls):
            var = cls.env_prefix + f.name.upper()
            if var in env:
                kwargs[f.name] = _parse(cls, f, hints[f.name], env[var])
            elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                cls.invalid(f.name, "is required")
        built: Self = cls(**kwargs)
        return built

    def to_env(self) -> dict[str, str]:
        """The environment that makes :meth:`from_env` rebuild exactly this object."""
        return {self.env_prefix + f.name.upper(): _text(getattr(self, f.name))
                for f in _fields(type(self))}

    @classmethod
    def invalid(cls, name: str, problem: str) -> NoReturn:
        raise ConfigError(f"{name} ({cls.env_prefix}{name.upper()}): {problem}")

    def require_range(self, name: str, low: int, high: int) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.invalid(name, f"{value!r} must be a whole number from {low} to {high}")

    def require_table_name(self, name: str) -> None:
        value = getattr(self, name)
        if not isinstance(value, str) or not _TABLE_NAME.fullmatch(value):
            self.invalid(name, f"{value!r} is not a valid DynamoDB table name")

    def require_key_prefix(self, name: str) -> None:
        """An S3 key prefix that cannot produce an absolute key or an empty path segment."""
        value: str = getattr(self, name)
        if value.startswith("/") or "//" in value:
            self.invalid(name, f"{value!r} is not a clean S3 key prefix")

    def require_log_level(self) -> None:
        level: str = getattr(self, "log_level")  # noqa: B009 - declared by the subclass
        if level.upper() not in LOG_LEVELS:
            self.invalid("log_level", f"{level!r} is not DEBUG, INFO, WARNING or ERROR")


def _with_document_names(cls: type[EnvSettings], env: Mapping[str, str]) -> Mapping[str, str]:
    """``env`` with each document variable copied to ours; a name that is no field fails
    loudly, since its variable would otherwise be read by nothing."""
    names = cls.env_names()
    merged = dict(env)
    for name, document in cls.DOCUMENT_ENV_NAMES.items():
        if name not in names:
            raise TypeError(f"{cls.__name__}.DOCUMENT_ENV_NAMES: {name!r} is not a field")
        ours = names[name]
        if document not in env:
            continue
        if ours in env and env[ours] != env[document]:
            raise ConfigError(f"{name} ({ours}): {ours}={env[ours]!r} and {document}="
                              f"{env[document]!r} disagree; set one of them")
        merged[ours] = env[document]
    return merged


_HINTS: dict[type[EnvSettings], dict[str, Any]] = {}


def _hints(cls: type[EnvSettings]) -> dict[str, Any]:
    """The fields' declared types, resolved once per class (``get_type_hints`` compiles
    each postponed annotation: about 1 ms per field on a busy machine)."""
    if cls not in _HINTS:
        _HINTS[cls] = get_type_hints(cls)
    return _HINTS[cls]


def _fields(cls: type[EnvSettings]) -> tuple[dataclasses.Field[Any], ...]:
    return tuple(f for f in dataclasses.fields(cls) if f.init)  # type: ignore[arg-type]


def _parse(cls: type[EnvSettings], f: dataclasses.Field[Any], kind: Any, raw: str) -> object:
    text = raw.strip()
    if kind is bool:
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        cls.invalid(f.name, f"{raw!r} is not a boolean (true/false)")
    if kind is int:
        try:
            return int(text)
        except ValueError:
            cls.invalid(f.name, f"{raw!r} is not a whole number")
    if kind is float:
        try:
            return float(text)
        except ValueError:
            cls.invalid(f.name, f"{raw!r} is not a number")
    if kind is str:
        return raw
    if get_origin(kind) is tuple:
        (item, _) = get_args(kind)
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if item is str:
            return tuple(parts)
        if isinstance(item, type) and issubclass(item, Enum):
            return _members(cls, f, item, parts)
    raise TypeError(f"{cls.__name__}.{f.name}: no parser for {kind!r}")


def _members(cls: type[EnvSettings], f: dataclasses.Field[Any], enum: type[Enum],
             parts: list[str]) -> tuple[Enum, ...]:
    """Members by value, case-insensitively; an unknown one lists what the field takes."""
    by_value = {str(member.value): member for member in enum}
    for part in parts:
        if part.lower() not in by_value:
            choices = f.metadata.get(CHOICES, tuple(enum))
            cls.invalid(f.name, f"unknown {enum.__name__.lower()} {part.lower()!r}; choose "
                        f"from {', '.join(str(c.value) for c in choices)}")
    return tuple(by_value[part.lower()] for part in parts)


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple):
        return ",".join(_text(v) for v in value)
    if isinstance(value, Enum):
        return str(value.value)
    return str(value)
