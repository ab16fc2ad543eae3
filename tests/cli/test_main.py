"""The ``artefix`` entry point itself: ``python -m artefix``, ``--version`` and how usage errors read."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from importlib.metadata import version

import pytest

from artefix.cli import main


def run(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["artefix", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


def test_python_dash_m_artefix_runs_the_command_line():
    result = subprocess.run([sys.executable, "-m", "artefix", "--version"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"artefix {version('artefix')}\n"
    result = subprocess.run([sys.executable, "-m", "artefix", "models", "--help"], capture_output=True, text=True)
    assert result.returncode == 0 and "Usage: python -m artefix models" in " ".join(result.stdout.split())


def test_version_prints_the_installed_version(monkeypatch, capsys):
    code, out, err = run(["--version"], monkeypatch, capsys)
    assert code == 0 and out == f"artefix {version('artefix')}\n" and err == ""


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["correct", "a.nii", "b.nii", "--xyzzy"], "No such option: --xyzzy"),
        (["corect"], "No such command 'corect'"),
        (["simulate", "a.npy"], "Missing argument 'output'"),
        (["correct", "a.nii", "b.nii", "--batch-size", "0"], "Invalid value for '--batch-size'"),
        (["simulate", "a.npy", "b.npy", "--artefact", "blur"], "Invalid value for '--artefact'"),
    ],
)
def test_usage_errors_read_like_every_other_error(monkeypatch, capsys, args, message):
    """One line starting ``error: `` and exit code 2, as artefix's own errors (no "Error" panel)."""
    code, out, err = run(args, monkeypatch, capsys)
    assert code == 2 and out == ""
    assert err.startswith("error: ") and err.count("\n") == 1 and message in err, err
    assert "Error" not in err and err.rstrip().endswith(f"{args[0] if len(args) > 1 else 'artefix'} --help'"), err


def test_no_arguments_prints_the_help(monkeypatch, capsys):
    code, out, err = run([], monkeypatch, capsys)
    assert code == 2 and "correct" in out and "simulate" in out and "error" not in err


def test_verbosity_flags_decide_which_log_messages_reach_stderr(tmp_path, monkeypatch, capsys):
    out = tmp_path / "b.nii.gz"
    simulate = ["simulate", "sample:brain-t1", out, "--artefact", "bias", "--seed", "0"]
    code, _, err = run(simulate, monkeypatch, capsys)
    assert code == 0 and "wrote" not in err  # default: warnings only
    code, _, err = run(["-v", *simulate, "--overwrite"], monkeypatch, capsys)
    assert code == 0 and f"wrote {out}" in err
    log = logging.getLogger("artefix.qc.discover")
    code, _, _ = run(["-q", "models"], monkeypatch, capsys)
    log.warning("a warning")
    assert code == 0 and "a warning" not in capsys.readouterr().err  # -q: errors only
    run(["models"], monkeypatch, capsys)
    log.warning("a warning")
    assert "a warning" in capsys.readouterr().err
    code, _, err = run(["-v", "-q", "models"], monkeypatch, capsys)
    assert code == 2 and err.startswith("error: ") and "contradict" in err and len(err.strip().splitlines()) == 1


def test_shell_completion_completes_commands_and_options():
    env = {**os.environ, "_ARTEFIX_COMPLETE": "complete_bash", "COMP_WORDS": "artefix co", "COMP_CWORD": "1"}
    result = subprocess.run(["artefix"], env=env, capture_output=True, text=True)
    assert result.stdout.split() == ["correct"]
    env.update(COMP_WORDS="artefix correct --ru", COMP_CWORD="2")
    assert subprocess.run(["artefix"], env=env, capture_output=True, text=True).stdout.split() == ["--runtime"]
    shown = subprocess.run(["artefix", "--show-completion", "bash"], capture_output=True, text=True)
    assert shown.returncode == 0 and "_ARTEFIX_COMPLETE" in shown.stdout
