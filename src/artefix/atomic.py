"""Atomic file output: write to a temporary sibling, then rename over the target.

A crash or an exception while writing leaves neither a partial target nor the temporary.
Used by every writer of artefix (volumes, figures, reports, JSON).
"""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from artefix.errors import OutputError


def _suffixes(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix


def check_output_path(
    target: Path, *, overwrite: bool, inputs: tuple[Path | None, ...] = (), folder_ok: bool = False
) -> Path:
    """Refuse an output that exists (unless ``overwrite``), that is one of ``inputs``, or has no writable folder.

    Checked before any work starts, so a long run never ends on a folder it cannot write to.

    An existing folder at ``target`` is refused whatever ``overwrite`` says unless ``folder_ok`` (the output
    is itself a folder, e.g. a DICOM series): a file never replaces a folder.

    Returns:
        ``target`` as a Path.

    Raises:
        OutputError: With a one-line reason.
    """
    target = Path(target).expanduser()
    for source in inputs:
        if source is not None and same_path(target, Path(source)):
            raise OutputError(f"{target}: output is the input; choose another output path")
    if target.parent.exists() and not target.parent.is_dir():
        raise OutputError(f"{target}: {target.parent} is a file, not a folder")
    if not target.parent.is_dir():
        raise OutputError(f"{target}: output folder {target.parent} does not exist")
    check_writable(target, target.parent)
    if target.is_dir() and not folder_ok:
        raise OutputError(f"{target}: is a folder; give a file name (a folder is never replaced by a file)")
    if target.exists() and not overwrite:
        raise OutputError(f"{target}: output exists; pass `overwrite` to replace it")
    return target


def check_writable(target: Path, folder: Path) -> None:
    """Raise :class:`OutputError` for ``target`` unless this process may create files in ``folder``."""
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"{target}: output folder {folder} is not writable")


def check_outputs(
    paths: Sequence[Path],
    *,
    overwrite: bool,
    inputs: Sequence[Path] = (),
    folder_ok: Callable[[Path], bool] = lambda path: False,
) -> None:
    """:func:`check_output_path` for every output of one run, plus: no path twice, no folder holding an input.

    Args:
        paths: The run's outputs.
        overwrite: Existing outputs may be replaced.
        inputs: The run's inputs.
        folder_ok: Which outputs are folders themselves (a DICOM series), for :func:`check_output_path`.

    Raises:
        OutputError: With a one-line reason.
    """
    for i, path in enumerate(paths):
        if any(same_path(path, other) for other in paths[:i]):
            raise OutputError(f"{path}: the same path is used for two outputs")
        check_output_path(path, overwrite=overwrite, inputs=tuple(inputs), folder_ok=folder_ok(path))
        for source in inputs:
            if path.resolve() in Path(source).resolve().parents:
                raise OutputError(f"{path}: output folder holds the input {source}; choose another output path")


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (for CLI errors)."""
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def same_path(a: Path, b: Path) -> bool:
    """Whether two paths name the same file (follows links; works for paths that do not exist yet)."""
    try:
        if a.exists() and b.exists():
            return os.path.samefile(a, b)
    except OSError:
        pass
    return a.resolve() == b.resolve()


def _temp_sibling(path: Path, suffix: str, *, folder: bool) -> Path:
    """Create a hidden, uniquely named file or folder next to ``path``.

    Unlike :func:`tempfile.mkstemp` (mode 0600) it is created with the usual permissions (0666 or 0777
    less the umask), which the output keeps after the rename.
    """
    for _ in range(100):
        tmp = path.parent / f".{path.name}.{secrets.token_hex(6)}{suffix}"
        try:
            if folder:
                os.mkdir(tmp, 0o777)
            else:
                os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except FileExistsError:
            continue
        except OSError as exc:
            raise OutputError(f"{path}: cannot create a temporary in {path.parent} ({one_line(exc)})") from exc
        return tmp
    raise OutputError(f"{path}: cannot find a free temporary name in {path.parent}")


@contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary file next to ``path`` (same suffix); rename it over ``path`` on success."""
    tmp = _temp_sibling(path, f".tmp{_suffixes(path)}", folder=False)
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise OutputError(f"{path}: write failed ({one_line(exc)})") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_folder(path: Path) -> Iterator[Path]:
    """Yield a temporary folder next to ``path``; on success it replaces ``path``.

    An existing ``path`` (already vetted by the caller) is first renamed aside and removed
    only after the new folder is in place, so a failure never loses it.
    """
    tmp = _temp_sibling(path, ".tmp", folder=True)
    try:
        yield tmp
        if path.exists():
            aside = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".old", dir=path.parent))
            try:
                os.replace(path, aside / path.name)
            except OSError:
                shutil.rmtree(aside, ignore_errors=True)  # still empty: `path` was not moved
                raise
            try:
                os.replace(tmp, path)
            except OSError:
                os.replace(aside / path.name, path)
                shutil.rmtree(aside, ignore_errors=True)
                raise
            shutil.rmtree(aside, ignore_errors=True)
        else:
            os.replace(tmp, path)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise OutputError(f"{path}: write failed ({one_line(exc)})") from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        path.unlink(missing_ok=True)


@contextmanager
def output_transaction(targets: Iterable[Path]) -> Iterator[None]:
    """All or nothing for a run that writes several outputs: on failure none of ``targets`` changes.

    Each existing target (one the caller may overwrite) is first renamed aside, next to itself; should the
    block fail, whatever it wrote at the targets is removed and the previous files are put back, and on
    success the previous files are deleted. Renames in one folder are atomic and copy nothing.

    Args:
        targets: Every output path the block may write (files or folders), existing or not.

    Raises:
        OutputError: An existing target cannot be moved aside (nothing is written then).
    """
    paths = list(dict.fromkeys(Path(t) for t in targets))
    aside: list[tuple[Path, Path]] = []
    try:
        for path in paths:
            if path.exists() or path.is_symlink():
                backup = path.parent / f".{path.name}.{secrets.token_hex(6)}.old"
                try:
                    os.rename(path, backup)
                except OSError as exc:
                    raise OutputError(f"{path}: cannot move the existing output aside ({one_line(exc)})") from exc
                aside.append((path, backup))
    except BaseException:
        # Nothing was written yet: what is at a target now is a previous output not moved aside, kept as it is.
        for path, backup in reversed(aside):
            os.rename(backup, path)
        raise
    try:
        yield
    except BaseException:
        for path in paths:
            if path.exists() or path.is_symlink():
                _remove(path)
        for path, backup in reversed(aside):
            os.rename(backup, path)
        raise
    for _, backup in aside:
        _remove(backup)
