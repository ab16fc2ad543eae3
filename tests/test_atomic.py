"""All-or-nothing output: :func:`artefix.atomic.output_transaction` and the output-path checks."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from artefix.atomic import check_output_path, output_transaction
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
