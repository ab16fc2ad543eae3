"""The command line's progress bar: one look for every long command, on stderr, off when not a terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress


def progress_bar(verb: str, unit: str, quiet: bool) -> tuple[Progress, Console]:
    """A transient ``VERB [bar] done/total UNIT eta`` bar on stderr, and that stderr console.

    Args:
        verb: What the command does, e.g. ``"correcting"``.
        unit: What it counts, e.g. ``"slices"``.
        quiet: Disable the bar (``-q``); it is also off when stderr is not a terminal.
    """
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console(stderr=True)
    bar = Progress(
        TextColumn(verb),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn(unit),
        TimeRemainingColumn(),
        console=console,
        transient=True,
        disable=quiet or not console.is_terminal,
    )
    return bar, console
