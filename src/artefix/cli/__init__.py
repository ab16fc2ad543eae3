"""The ``artefix`` command line.

Each subcommand lives in its own module and imports heavy libraries (torch, nibabel) inside the
command function, so ``artefix --help`` is instant. User errors (:class:`artefix.errors.ArtefixError`)
become a one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import NoReturn

import typer

from artefix.cli import correct as _correct
from artefix.cli import demo as _demo
from artefix.cli import evaluate as _evaluate
from artefix.cli import model_info as _model_info
from artefix.cli import models as _models
from artefix.cli import simulate as _simulate
from artefix.cli import train as _train
from artefix.cli import tune as _tune

app = typer.Typer(
    name="artefix",
    help="Multi-task MRI artefact simulation and correction (Simko et al., BMC Med Imaging 2023).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("simulate")(_simulate.simulate_command)
app.command("model-info")(_model_info.model_info_command)
app.command("correct")(_correct.correct_command)
app.command("models")(_models.models_command)
app.command("demo")(_demo.demo_command)
app.command("train")(_train.train_command)
app.command("tune")(_tune.tune_command)
app.command("evaluate")(_evaluate.evaluate_command)


@app.callback()
def _root() -> None:
    """Multi-task MRI artefact simulation and correction."""


class _Interruption:
    """The first SIGINT or SIGTERM that reached the running command (None: none yet)."""

    signum: int | None = None


def _interrupt(signum: int, frame: object) -> None:
    """SIGINT (Ctrl-C) and SIGTERM (``kill``, a batch system's time limit) unwind as ``KeyboardInterrupt``.

    Every output transaction then rolls back, so no partial output is left; :func:`main` exits with
    128 + the signal number (130, 143) and says so on one line.
    """
    if _Interruption.signum is None:
        _Interruption.signum = signum
    raise KeyboardInterrupt


def _install_interrupt_handlers() -> dict[int, object]:
    """Route SIGINT and SIGTERM to :func:`_interrupt` where they have their default action.

    A signal that is ignored (SIGINT in a background job) or already handled by someone else stays so.
    Returns the handlers replaced, to be put back.
    """
    if threading.current_thread() is not threading.main_thread():
        return {}
    defaults = {signal.SIGINT: signal.default_int_handler, signal.SIGTERM: signal.SIG_DFL}
    replaced = {}
    for signum, default in defaults.items():
        current = signal.getsignal(signum)
        if current is default:
            signal.signal(signum, _interrupt)
            replaced[signum] = current
    return replaced


def _exit_interrupted(signum: int) -> NoReturn:
    typer.echo(f"interrupted ({signal.Signals(signum).name})", err=True)
    sys.exit(128 + signum)


def main() -> None:
    """Entry point of the ``artefix`` script.

    Usage errors (unknown option, bad value type) are reported by typer with exit code 2; artefix's own
    errors (unreadable input, unsafe output, bad values found later) become ``error: ...`` on one line,
    also with exit code 2. SIGINT and SIGTERM unwind as ``KeyboardInterrupt``, so a killed run cleans up;
    it then prints ``interrupted (SIGINT)`` or ``interrupted (SIGTERM)`` and exits with 130 or 143.
    """
    from artefix.errors import ArtefixError

    _Interruption.signum = None
    replaced = _install_interrupt_handlers()
    try:
        app()
    except ArtefixError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:  # one that did not pass through typer (which turns it into exit code 130)
        _exit_interrupted(_Interruption.signum or signal.SIGINT)
    except SystemExit:
        if _Interruption.signum is not None:
            _exit_interrupted(_Interruption.signum)
        raise
    finally:
        for signum, handler in replaced.items():
            signal.signal(signum, handler)
