import runpy
import subprocess
import sys
from pathlib import Path

import pytest

from artefix.release.__main__ import main
from artefix.release.repository import Repository, locate

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ("model", "set-inference", "refresh-validation", "docs")


def test_help_lists_the_four_subcommands():
    done = subprocess.run([sys.executable, "-m", "artefix.release", "--help"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert all(f"\n    {command}" in done.stdout for command in COMMANDS), done.stdout


def test_an_unknown_subcommand_is_a_one_line_error(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["publish"])
    assert exited.value.code != 0
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error: argument COMMAND: invalid choice: 'publish'" in err


@pytest.mark.parametrize(
    ("script", "command"),
    [("release_model", "model"), ("set_inference", "set-inference"), ("refresh_validation", "refresh-validation")],
)
def test_the_old_scripts_run_their_subcommand(script, command, monkeypatch, capsys):
    monkeypatch.setattr("sys.argv", [f"{script}.py", "--help"])
    with pytest.raises(SystemExit) as exited:
        runpy.run_path(str(ROOT / "scripts" / f"{script}.py"), run_name="__main__")
    assert exited.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: python -m artefix.release {command} ")


def test_set_inference_names_a_missing_model_in_one_line(tmp_path):
    repo = Repository(ROOT, tmp_path / "weights", tmp_path / "docs")
    with pytest.raises(SystemExit, match="no shipped model 'absent'"):
        main(["set-inference", "absent", "ensemble=2"], repo=repo)


def test_the_repository_is_this_checkout_and_elsewhere_a_one_line_error(monkeypatch, tmp_path):
    assert locate(ROOT) == Repository.at(ROOT)
    monkeypatch.setattr("artefix.release.repository.WEIGHTS", Path("no", "such", "weights"))
    with pytest.raises(SystemExit, match="no repository checkout") as exited:
        locate(tmp_path)
    assert "\n" not in str(exited.value.code)
