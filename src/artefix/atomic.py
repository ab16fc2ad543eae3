"""Atomic file output: write to a temporary sibling, then rename over the target.

A crash or an exception while writing leaves neither a partial target nor the temporary file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from artefix.errors import OutputError


def check_output_path(target: Path, *, overwrite: bool, inputs: tuple[Path, ...] = ()) -> Path:
    """Refuse an output that exists (unless ``overwrite``) or that is one of the ``inputs``.

    Returns:
        The resolved target path.

    Raises:
        OutputError: With a one-line reason.
    """
    target = Path(target).expanduser().resolve()
    for source in inputs:
        if source is not None and Path(source).expanduser().resolve() == target:
            raise OutputError(f"output {target} is the input file; choose another output path")
    if target.exists() and not overwrite:
        raise OutputError(f"output {target} exists; pass --overwrite to replace it")
    if not target.parent.is_dir():
        raise OutputError(f"output folder {target.parent} does not exist")
    return target


@contextmanager
def atomic_path(target: Path, *, directory: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success rename it to ``target``.

    Args:
        target: Final file (or folder with ``directory=True``) path.
        directory: Create a temporary folder instead of a file name.

    Yields:
        The temporary path to write to (keeps ``target``'s suffixes, so libraries that infer
        the format from the extension still work).
    """
    target = Path(target)
    suffix = "".join(target.suffixes)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=f".tmp{suffix}", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if directory and target.is_dir():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        raise
