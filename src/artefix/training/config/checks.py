"""Validation helpers of the config sections: typed checks with one-line messages, and :class:`ConfigError`."""

from __future__ import annotations

import difflib
import math
from collections.abc import Iterable, Sequence
from typing import Any

from artefix.errors import ArtefixError


class ConfigError(ArtefixError, ValueError):
    """A training configuration that cannot be read or is invalid (the CLI prints one line, exit 2)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any, name: str, minimum: int | None = None) -> int:
    if not _is_int(value) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ValueError(f"{name} must be an integer{bound}, got {value!r}")
    return int(value)


def _float(value: Any, name: str, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value!r}")
    return float(value)


def _choice(value: Any, name: str, choices: Sequence[str]) -> str:
    text = str(value).lower() if isinstance(value, str) else value
    if text not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return text


def _names(value: Any, name: str, allowed: Sequence[str] | None = None, *, empty: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of names, got {value!r}")
    if not value and not empty:
        raise ValueError(f"{name} must not be empty")
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ValueError(f"{name} has unknown name(s) {bad}; choose from {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise ValueError(f"{name} lists a name twice: {list(value)}")
    return tuple(value)


def _limit(value: Any, name: str) -> int | float | None:
    """Lightning's ``limit_*_batches``: ``None`` (all), a batch count >= 1 or a fraction in (0, 1]."""
    if value is None:
        return None
    if _is_int(value) and value >= 1:
        return int(value)
    if isinstance(value, float) and 0.0 < value <= 1.0:
        return value
    raise ValueError(f"{name} must be null, an integer >= 1 or a fraction in (0, 1], got {value!r}")


def _unknown_keys(given: Iterable[str], allowed: Sequence[str], where: str) -> None:
    for key in given:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            suffix = f"; did you mean {hint[0]!r}?" if hint else f"; valid keys: {', '.join(allowed)}"
            raise ValueError(f"unknown key '{where}{key}'{suffix}")
