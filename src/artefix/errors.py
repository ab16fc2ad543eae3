"""Exceptions that carry a one-line, user-facing message (the CLI prints them and exits with 2).

The library words its messages in its own terms: a parameter is named as the Python API names it, in
backticks (`` `only` ``, `` `snr_scope` ``, `` `overwrite` ``); the command line names it as its flag
(:meth:`ArtefixError.cli_message`: ``--only``, ``--snr-scope``, ``--overwrite``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

_PARAMETER = re.compile(r"`([a-z][a-z0-9_]*)`")


class ArtefixError(Exception):
    """Base class of all errors that artefix reports to users without a traceback.

    Args:
        message: One line in the library's words.
        flags: The command line's flag of a parameter named in backticks where it is not ``--`` and the
            name with hyphens (``{"out_dir": "--out"}``).
    """

    def __init__(self, message: str, *, flags: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.flags: dict[str, str] = dict(flags or {})

    def cli_message(self) -> str:
        """The message with each `` `parameter` `` written as the command line's flag."""
        return cli_words(str(self), self.flags)


def cli_words(text: str, flags: Mapping[str, str] | None = None) -> str:
    """``text`` (a library message, e.g. a scan's recorded error) with `` `parameter` `` written as ``--parameter``."""
    flags = flags or {}
    return _PARAMETER.sub(lambda m: flags.get(m[1], "--" + m[1].replace("_", "-")), text)


class InputError(ArtefixError, ValueError):
    """An input file or array is missing, unreadable or unusable (wrong shape, NaN, ...)."""


class OutputError(ArtefixError):
    """An output cannot be written safely (exists without overwrite, equals the input, ...)."""
