"""Exceptions that carry a one-line, user-facing message (the CLI prints them and exits with 2)."""

from __future__ import annotations


class ArtefixError(Exception):
    """Base class of all errors that artefix reports to users without a traceback."""


class InputError(ArtefixError, ValueError):
    """An input file or array is missing, unreadable or unusable (wrong shape, NaN, ...)."""


class OutputError(ArtefixError):
    """An output cannot be written safely (exists without overwrite, equals the input, ...)."""
