"""Ctrl-C (SIGINT) and ``kill`` (SIGTERM) in the middle of ``artefix correct`` and ``artefix simulate``.

The README promises that an interrupted run leaves nothing behind and that an ``--overwrite`` run puts back the
files it was replacing. Each test runs the real command line in a subprocess whose ``numpy.save`` hangs once
it has written the temporary of one chosen output. When that temporary holds data, the run is inside its output
transaction: the outputs it replaces are moved aside and the ones written before are already in place. Then the
test sends the signal, as a terminal or a batch system would.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from artefix.models import build_model
from artefix.models.checkpoint import save_model

pytestmark = pytest.mark.slow

# `python -c HANGING_CLI NAME ARGS...` runs `artefix ARGS...`; the write of the output named NAME hangs in
# the temporary, fully written but not renamed, until a signal unwinds the run.
HANGING_CLI = """
import os
import signal
import sys
import threading

import numpy

from artefix.cli import main

# A non-interactive shell starts background jobs with SIGINT ignored and children inherit it (a CI runner may
# run the suite so): give this run the disposition Python gives an interactive one, where Ctrl-C arrives.
signal.signal(signal.SIGINT, signal.default_int_handler)

hang_on = sys.argv.pop(1)
real_save = numpy.save


def save(file, array, *args, **kwargs):
    real_save(file, array, *args, **kwargs)
    if os.path.basename(getattr(file, "name", str(file))).startswith(f".{hang_on}."):
        file.flush()
        threading.Event().wait()


numpy.save = save
sys.argv[0] = "artefix"
main()
"""

SIGNALS = [pytest.param(signal.SIGINT, 130, id="SIGINT"), pytest.param(signal.SIGTERM, 143, id="SIGTERM")]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    path = tmp_path_factory.mktemp("model") / "tiny.safetensors"
    save_model(build_model("tiny", seed=5), path)
    return path


def _files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder``, hidden ones included, by relative path."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _written(folder: Path, name: str) -> bool:
    """Whether the hidden temporary of output ``name`` (``.NAME.<hex>.tmp.npy``) holds data."""
    try:
        return any(p.stat().st_size > 0 for p in folder.glob(f".{name}.*.tmp.npy"))
    except OSError:  # renamed or removed between the listing and the stat
        return False


def _aside(folder: Path, name: str) -> list[Path]:
    """The previous file of output ``name`` while the run holds it aside (``.NAME.<hex>.old``)."""
    return list(folder.glob(f".{name}.*.old"))


def _interrupt(args, hang_on: Path, signum: int, tmp_path: Path, wait_for, while_hung) -> tuple[int, str]:
    """Run ``artefix ARGS`` until the temporary of ``hang_on`` holds data, check ``while_hung()``, send ``signum``.

    The run's temporary files (``TMPDIR``) go to ``tmp_path/scratch``, which must be empty again afterwards.

    Returns:
        The exit code and stderr.
    """
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    command = [sys.executable, "-c", HANGING_CLI, hang_on.name, *map(str, args)]
    env = {**os.environ, "TMPDIR": str(scratch)}
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_for(lambda: _written(hang_on.parent, hang_on.name), proc, f"temporary of {hang_on.name}")
        while_hung()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert list(scratch.iterdir()) == []  # the run's scratch went too
    return proc.returncode, err


@pytest.mark.parametrize(("signum", "code"), SIGNALS)
def test_an_interrupted_correct_exits_128_plus_the_signal_and_puts_back_what_it_replaced(
    model, tmp_path, wait_for, signum, code
):
    work = tmp_path / "work"
    (work / "res").mkdir(parents=True)
    np.save(work / "scan.npy", np.random.default_rng(0).random((40, 36, 6)).astype(np.float32))
    (work / "out.npy").write_bytes(b"previous corrected volume")
    for head in ("bias", "subsampling", "motion", "noise"):
        (work / "res" / f"{head}.npy").write_bytes(f"previous {head} residual".encode())
    before = _files(work)

    def half_done():
        # the output and the first three residuals are new, the last residual is being written
        assert (work / "out.npy").read_bytes() != before["out.npy"] and _aside(work, "out.npy")
        assert (work / "res" / "bias.npy").read_bytes() != before["res/bias.npy"]
        assert not (work / "res" / "noise.npy").exists() and _aside(work / "res", "noise.npy")

    args = ["correct", work / "scan.npy", work / "out.npy", "--model", model, "--residuals", work / "res"]
    args += ["--overwrite", "--quiet"]
    returncode, err = _interrupt(args, work / "res" / "noise.npy", signum, tmp_path, wait_for, half_done)
    assert (returncode, err) == (code, f"interrupted ({signal.Signals(signum).name})\n")
    assert _files(work) == before  # byte for byte, and no temporary or .NAME.<hex>.old left


@pytest.mark.parametrize(("signum", "code"), SIGNALS)
def test_an_interrupted_simulate_exits_128_plus_the_signal_and_puts_back_what_it_replaced(
    tmp_path, wait_for, signum, code
):
    work = tmp_path / "work"
    work.mkdir()
    np.save(work / "clean.npy", np.random.default_rng(1).random((32, 32, 3)).astype(np.float32))
    (work / "noisy.npy").write_bytes(b"previous corrupted volume")
    (work / "params.json").write_text('{"previous": "parameters"}')
    before = _files(work)

    def half_done():
        # both previous outputs are held aside while the new volume is being written
        assert not (work / "noisy.npy").exists() and _aside(work, "noisy.npy") and _aside(work, "params.json")

    args = ["simulate", work / "clean.npy", work / "noisy.npy", "-a", "noise", "--seed", "3"]
    args += ["--params", work / "params.json", "--overwrite"]
    returncode, err = _interrupt(args, work / "noisy.npy", signum, tmp_path, wait_for, half_done)
    assert (returncode, err) == (code, f"interrupted ({signal.Signals(signum).name})\n")
    assert _files(work) == before
