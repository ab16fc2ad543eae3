"""All-or-nothing output: :func:`artefix.atomic.output_transaction` and the output-path checks."""

from __future__ import annotations

import errno
import itertools
import os
import re
import secrets
import signal
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from artefix.atomic import (
    atomic_file,
    atomic_folder,
    check_output_path,
    check_outputs,
    output_transaction,
    same_path,
)
from artefix.errors import OutputError

# Writes 10 MB of a new file through atomic_file, says so in a flag file, then blocks (stdin never closes).
KILLED_WRITER = """
import sys
from pathlib import Path
from artefix.atomic import atomic_file

target, flag = Path(sys.argv[1]), Path(sys.argv[2])
with atomic_file(target) as tmp, open(tmp, "wb") as f:
    f.write(bytes(range(256)) * 40_000)
    f.flush()
    flag.touch()
    sys.stdin.read()
"""


def test_a_failed_transaction_restores_what_it_replaced_and_removes_what_it_made(tmp_path):
    old, new, folder = tmp_path / "old.txt", tmp_path / "new.txt", tmp_path / "made"
    old.write_text("previous")
    with pytest.raises(RuntimeError, match="disk full"), output_transaction([old, new, folder]):
        assert not old.exists()  # moved aside while the run writes
        old.write_text("replacement")
        new.write_text("fresh")
        folder.mkdir()
        (folder / "inside.npy").write_bytes(b"x")
        raise RuntimeError("disk full")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]
    assert old.read_text() == "previous"


def test_a_successful_transaction_keeps_the_new_outputs_only(tmp_path):
    old = tmp_path / "old.txt"
    old.write_text("previous")
    with output_transaction([old, tmp_path / "unwritten.txt"]):
        old.write_text("replacement")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old.txt"]  # no backup, nothing made up
    assert old.read_text() == "replacement"


def test_a_file_output_never_replaces_a_folder(tmp_path):
    (tmp_path / "out.json").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_output_path(tmp_path / "out.json", overwrite=True)
    (tmp_path / "series").mkdir()
    assert check_output_path(tmp_path / "series", overwrite=True, folder_ok=True) == tmp_path / "series"


def test_a_write_killed_before_its_rename_leaves_the_previous_file_as_it_was(tmp_path, wait_for):
    """``kill -9`` mid-write cannot be cleaned up after, yet the target keeps its previous bytes.

    The data goes to a hidden temporary next to the target, renamed over it only once complete; all the killed
    write leaves is that temporary (the README promises nothing more for ``kill -9``).
    """
    folder = tmp_path / "out"
    folder.mkdir()
    target, flag = folder / "scan.nii.gz", tmp_path / "half-written"
    previous = b"the previous volume\n" * 1000
    target.write_bytes(previous)
    command = [sys.executable, "-c", KILLED_WRITER, str(target), str(flag)]
    proc = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(flag.exists, proc, "10 MB written")
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.communicate()
    assert target.read_bytes() == previous
    others = [p.name for p in folder.iterdir() if p != target]
    assert len(others) == 1 and re.fullmatch(r"\.scan\.nii\.gz\.[0-9a-f]{12}\.tmp\.nii\.gz", others[0]), others
    assert (folder / others[0]).stat().st_size == 256 * 40_000


def test_atomic_folder_replaces_an_existing_folder_whole_and_leaves_nothing_beside_it(tmp_path):
    from artefix.atomic import atomic_folder

    target = tmp_path / "series"
    target.mkdir()
    (target / "old.dcm").write_text("old")
    with atomic_folder(target) as tmp:
        assert tmp.parent == tmp_path and tmp != target
        (tmp / "new.dcm").write_text("new")
        assert (target / "old.dcm").read_text() == "old"  # untouched until the new folder is complete
    assert sorted(p.name for p in target.iterdir()) == ["new.dcm"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series"]


def test_a_failed_atomic_folder_keeps_the_previous_folder(tmp_path, monkeypatch):
    import os

    from artefix.atomic import atomic_folder

    target = tmp_path / "series"
    target.mkdir()
    (target / "old.dcm").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "new.dcm").write_text("half")
        raise RuntimeError("interrupted")
    real_replace = os.replace

    def refuse_the_new_folder(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refuse_the_new_folder)
    with pytest.raises(OutputError, match="write failed"), atomic_folder(target) as tmp:
        (tmp / "new.dcm").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["old.dcm"] and (target / "old.dcm").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["series"]


def test_an_output_whose_folder_is_a_file_or_unwritable_is_refused_before_any_work(tmp_path, monkeypatch):
    import os

    afile = tmp_path / "afile"
    afile.write_text("x")
    with pytest.raises(OutputError, match=r"afile is a file, not a folder$"):
        check_output_path(afile / "out.nii.gz", overwrite=False)
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    with pytest.raises(OutputError, match=r"output folder .*locked is not writable$"):
        check_output_path(locked / "out.nii.gz", overwrite=True)
    assert check_output_path(tmp_path / "out.nii.gz", overwrite=False) == tmp_path / "out.nii.gz"


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_a_read_only_output_folder_is_refused(tmp_path):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(OutputError, match="is not writable"):
            check_output_path(folder / "out.nii.gz", overwrite=False)
    finally:
        folder.chmod(0o755)


def _refuse_to_delete(monkeypatch, function: str, refused) -> None:
    """``os.unlink`` or ``os.rmdir`` (as ``shutil.rmtree`` and ``Path.unlink`` call them) fail for names ``refused``.

    Stands for a file that cannot be deleted (held open, on a read-only mount, in a folder this user may not
    change), which root cannot otherwise be shown.
    """
    real = getattr(os, function)

    def refusing(path, *args, **kwargs):
        if refused(os.path.basename(os.fsdecode(path))):
            raise PermissionError(errno.EACCES, "Permission denied", os.fsdecode(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(os, function, refusing)


def _temporary_names(monkeypatch, names) -> None:
    """The random part of each temporary's name is taken from ``names`` (to stage name collisions)."""
    names = iter(names)
    monkeypatch.setattr(secrets, "token_hex", lambda nbytes=None: next(names))


def _access_as_owner(monkeypatch, folder: Path, mode: int) -> None:
    """``os.access`` answers for ``folder`` as for its owner, not root, were its permission bits ``mode``."""
    real_access = os.access
    granted = (mode >> 6) & 0o7  # the owner's rwx bits are os.R_OK | os.W_OK | os.X_OK

    def access(path, wanted, **kwargs):
        if Path(path) == folder:
            return wanted & ~granted == 0
        return real_access(path, wanted, **kwargs)

    monkeypatch.setattr(os, "access", access)


def test_an_output_that_is_one_of_the_inputs_is_refused_and_none_inputs_are_skipped(tmp_path):
    scan, other = tmp_path / "scan.nii.gz", tmp_path / "other.nii.gz"
    scan.write_bytes(b"scan")
    other.write_bytes(b"other")
    with pytest.raises(OutputError, match="output is the input"):
        check_output_path(scan, overwrite=True, inputs=(other, scan))
    os.link(scan, tmp_path / "alias.nii.gz")  # the same file under another name
    with pytest.raises(OutputError, match="output is the input"):
        check_output_path(tmp_path / "alias.nii.gz", overwrite=True, inputs=(scan,))
    assert check_output_path(scan, overwrite=True, inputs=(None, other)) == scan  # None: an input with no file


def test_same_path_of_paths_that_do_not_exist_or_cannot_be_examined(tmp_path):
    assert same_path(tmp_path / "new.npy", tmp_path / "sub" / ".." / "new.npy")
    assert not same_path(tmp_path / "a.npy", tmp_path / "b.npy")
    assert not same_path(tmp_path / "b.npy", tmp_path / "a.npy")
    too_long = tmp_path / ("x" * 300)  # stat fails with ENAMETOOLONG rather than "no such file"
    assert same_path(too_long, tmp_path / ("x" * 300))
    assert not same_path(too_long, tmp_path / "a.npy")


def test_check_outputs_refuses_a_path_twice_a_folder_and_a_folder_that_holds_an_input(tmp_path):
    scan = tmp_path / "in" / "scan.nii.gz"
    scan.parent.mkdir()
    scan.write_bytes(b"scan")
    out, report = tmp_path / "out.nii.gz", tmp_path / "report.html"
    check_outputs([out, report], overwrite=False, inputs=[scan])
    with pytest.raises(OutputError, match="the same path is used for two outputs"):
        check_outputs([out, report, tmp_path / "." / "out.nii.gz"], overwrite=False)
    with pytest.raises(OutputError, match="output folder holds the input"):
        check_outputs([out, tmp_path / "in"], overwrite=True, inputs=[scan], folder_ok=lambda path: True)
    (tmp_path / "series").mkdir()
    with pytest.raises(OutputError, match="is a folder"):
        check_outputs([tmp_path / "series"], overwrite=True)
    check_outputs([tmp_path / "series"], overwrite=True, inputs=[scan], folder_ok=lambda path: path.name == "series")
    with pytest.raises(OutputError, match="output is the input"):
        check_outputs([out, scan], overwrite=True, inputs=[scan])


def test_overwrite_is_a_keyword_only_flag(tmp_path):
    with pytest.raises(TypeError):
        check_output_path(tmp_path / "out.npy", True)
    with pytest.raises(TypeError):
        check_outputs([tmp_path / "out.npy"], True)


@pytest.mark.parametrize(("mode", "writable"), [(0o700, True), (0o300, True), (0o500, False), (0o600, False)])
def test_an_output_folder_must_be_writable_and_searchable(tmp_path, monkeypatch, mode, writable):
    """Creating a file needs both write (w) and search (x) permission on its folder; read (r) is not needed.

    ``os.access`` is answered as for the folder's owner with those permission bits, so the test holds as root.
    """
    folder = tmp_path / "out"
    folder.mkdir()
    _access_as_owner(monkeypatch, folder, mode)
    if writable:
        assert check_output_path(folder / "a.npy", overwrite=False) == folder / "a.npy"
    else:
        with pytest.raises(OutputError, match="is not writable"):
            check_output_path(folder / "a.npy", overwrite=False)


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root may write in any folder")
@pytest.mark.parametrize("mode", [0o500, 0o600])
def test_a_folder_without_write_or_search_permission_is_refused(tmp_path, mode):
    folder = tmp_path / "out"
    folder.mkdir()
    folder.chmod(mode)
    try:
        with pytest.raises(OutputError, match="is not writable"):
            check_output_path(folder / "a.npy", overwrite=False)
    finally:
        folder.chmod(0o755)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_new_outputs_get_0666_or_0777_less_the_umask(tmp_path, umask):
    """Not mkstemp's 0600: a written file or folder gets the permissions any new file or folder would."""
    previous = os.umask(umask)
    try:
        with atomic_file(tmp_path / "a.npy") as tmp:
            tmp.write_bytes(b"x")
        with atomic_folder(tmp_path / "series") as tmp:
            (tmp / "1.dcm").write_bytes(b"x")
    finally:
        os.umask(previous)
    assert stat.S_IMODE((tmp_path / "a.npy").stat().st_mode) == 0o666 & ~umask
    assert stat.S_IMODE((tmp_path / "series").stat().st_mode) == 0o777 & ~umask


@pytest.mark.parametrize("folder", [False, True])
def test_a_temporary_name_already_in_use_is_left_alone_and_another_is_drawn(tmp_path, monkeypatch, folder):
    taken = tmp_path / (".out.aaaaaaaaaaaa.tmp" if folder else ".out.npy.aaaaaaaaaaaa.tmp.npy")
    if folder:
        taken.mkdir()
        (taken / "theirs").write_text("another writer's")
    else:
        taken.write_text("another writer's")
    _temporary_names(monkeypatch, ["aaaaaaaaaaaa", "bbbbbbbbbbbb"])
    target = tmp_path / ("out" if folder else "out.npy")
    with (atomic_folder if folder else atomic_file)(target) as tmp:
        assert tmp.name == taken.name.replace("aaaaaaaaaaaa", "bbbbbbbbbbbb")
        (tmp / "mine" if folder else tmp).write_text("mine")
    assert (target / "mine" if folder else target).read_text() == "mine"
    assert (taken / "theirs" if folder else taken).read_text() == "another writer's"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([taken.name, target.name])


@pytest.mark.parametrize(("taken", "written"), [(99, True), (100, False)])
def test_a_write_tries_100_temporary_names_then_gives_up(tmp_path, monkeypatch, taken, written):
    (tmp_path / ".out.npy.aaaaaaaaaaaa.tmp.npy").write_text("another writer's")
    _temporary_names(monkeypatch, itertools.chain(["aaaaaaaaaaaa"] * taken, ["bbbbbbbbbbbb"]))
    target = tmp_path / "out.npy"
    if written:
        with atomic_file(target) as tmp:
            tmp.write_text("mine")
        assert target.read_text() == "mine"
    else:
        with pytest.raises(OutputError, match="cannot find a free temporary name"), atomic_file(target):
            pytest.fail("no temporary was found, yet the block ran")
        assert not target.exists()


def test_a_temporary_that_cannot_be_created_is_an_output_error(tmp_path):
    gone = tmp_path / "removed since the check"
    for write in (atomic_file, atomic_folder):
        with pytest.raises(OutputError, match="cannot create a temporary"), write(gone / "out.npy"):
            pytest.fail("no temporary was made, yet the block ran")
    assert list(tmp_path.iterdir()) == []


def test_atomic_file_survives_a_writer_that_removed_its_temporary(tmp_path):
    target = tmp_path / "out.npy"
    target.write_text("previous")
    with pytest.raises(OutputError, match="write failed"), atomic_file(target) as tmp:
        tmp.unlink()  # e.g. a writer that wrote under a name of its own
    with pytest.raises(KeyboardInterrupt), atomic_file(target) as tmp:
        tmp.unlink()
        raise KeyboardInterrupt
    assert target.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == ["out.npy"]


def test_atomic_folder_whose_previous_copy_cannot_be_deleted_is_still_written(tmp_path, monkeypatch):
    """The new folder is in place: an error now would claim a failure that did not happen."""
    target = tmp_path / "series"
    target.mkdir()
    (target / "stuck.dcm").write_text("old")
    _refuse_to_delete(monkeypatch, "unlink", lambda name: name == "stuck.dcm")
    with atomic_folder(target) as tmp:
        (tmp / "new.dcm").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["new.dcm"]


def test_a_failed_atomic_folder_reports_its_own_failure_not_a_failed_cleanup(tmp_path, monkeypatch):
    target = tmp_path / "series"
    _refuse_to_delete(monkeypatch, "unlink", lambda name: name == "stuck.dcm")
    with pytest.raises(OutputError, match=r"write failed \(disk full\)"), atomic_folder(target) as tmp:
        (tmp / "stuck.dcm").write_text("half")
        raise OSError("disk full")
    with pytest.raises(KeyboardInterrupt), atomic_folder(target) as tmp:  # Ctrl-C stays a Ctrl-C
        (tmp / "stuck.dcm").write_text("half")
        raise KeyboardInterrupt
    assert not target.exists()

    target.mkdir()
    (target / "old.dcm").write_text("old")
    real_replace = os.replace

    def refuse_the_new_folder(src, dst):
        if str(src).endswith(".tmp"):
            raise OSError("disk full")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", refuse_the_new_folder)
    _refuse_to_delete(monkeypatch, "rmdir", lambda name: name.endswith(".old"))
    with pytest.raises(OutputError, match=r"write failed \(disk full\)"), atomic_folder(target) as tmp:
        (tmp / "new.dcm").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["old.dcm"] and (target / "old.dcm").read_text() == "old"


def test_an_interrupted_transaction_restores_its_targets_even_when_an_output_cannot_be_removed(tmp_path, monkeypatch):
    old, made = tmp_path / "old.txt", tmp_path / "made"
    old.write_text("previous")
    _refuse_to_delete(monkeypatch, "unlink", lambda name: name == "stuck.npy")
    with pytest.raises(KeyboardInterrupt), output_transaction([made, old]):
        made.mkdir()
        (made / "stuck.npy").write_bytes(b"x")
        old.write_text("replacement")
        raise KeyboardInterrupt
    assert old.read_text() == "previous"


@pytest.mark.parametrize("fails", [False, True])
def test_a_transaction_over_a_folder_and_a_file_inside_it(tmp_path, fails):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "index.html").write_text("previous index")
    (folder / "a.png").write_text("previous a")

    def run():
        with output_transaction([folder / "index.html", folder]):
            folder.mkdir()
            (folder / "index.html").write_text("new index")
            if fails:
                raise RuntimeError("interrupted")

    if fails:
        with pytest.raises(RuntimeError, match="interrupted"):
            run()
        assert {p.name: p.read_text() for p in folder.iterdir()} == {
            "index.html": "previous index",
            "a.png": "previous a",
        }
    else:
        run()
        assert {p.name: p.read_text() for p in folder.iterdir()} == {"index.html": "new index"}
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_while_a_transaction_runs_each_previous_output_waits_beside_itself_under_a_hidden_name(tmp_path):
    """What a ``kill -9`` mid-run leaves: the previous file next to its target, as ``.NAME.<12 hex>.old``."""
    old = tmp_path / "old.txt"
    old.write_text("previous")
    with output_transaction([old]):
        (backup,) = tmp_path.iterdir()
        assert re.fullmatch(r"\.old\.txt\.[0-9a-f]{12}\.old", backup.name), backup.name
        assert backup.read_text() == "previous"
    assert [p.name for p in tmp_path.iterdir()] == []


def test_a_target_that_cannot_be_moved_aside_fails_the_transaction_and_every_target_is_kept(tmp_path):
    """A name near the file system's limit leaves no room for the backup's longer name: nothing is written.

    The targets moved aside before it are put back, and it and the targets after it (never moved) are kept.
    """
    first, last = tmp_path / "first.txt", tmp_path / "last.txt"
    long = tmp_path / ("x" * (os.pathconf(tmp_path, "PC_NAME_MAX") - 4))
    for path in (first, long, last):
        path.write_text(f"previous {path.name[:5]}")
    with (
        pytest.raises(OutputError, match="cannot move the existing output aside"),
        output_transaction([first, long, last]),
    ):
        pytest.fail("the block ran although a target could not be moved aside")
    assert [path.read_text() for path in (first, long, last)] == ["previous first", "previous xxxxx", "previous last."]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([first.name, long.name, last.name])


def test_an_existing_folder_that_cannot_be_moved_aside_is_kept_and_nothing_is_left_beside_it(tmp_path, monkeypatch):
    target = tmp_path / "series"
    target.mkdir()
    (target / "old.dcm").write_text("old")
    real_replace = os.replace

    def busy(src, dst):
        if Path(src) == target:
            raise OSError(errno.EBUSY, "Device or resource busy")  # e.g. a mount point
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", busy)
    with pytest.raises(OutputError, match="busy"), atomic_folder(target) as tmp:
        (tmp / "new.dcm").write_text("new")
    assert [p.name for p in tmp_path.iterdir()] == ["series"]
    _refuse_to_delete(monkeypatch, "rmdir", lambda name: name.endswith(".old"))
    with pytest.raises(OutputError, match="busy"), atomic_folder(target) as tmp:  # the cause, not the cleanup's
        (tmp / "new.dcm").write_text("new")
    assert [p.name for p in target.iterdir()] == ["old.dcm"] and (target / "old.dcm").read_text() == "old"
