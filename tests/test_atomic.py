"""All-or-nothing output: :func:`artefix.atomic.output_transaction` and the output-path checks."""

from __future__ import annotations

import pytest

from artefix.atomic import check_output_path, output_transaction
from artefix.errors import OutputError


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
