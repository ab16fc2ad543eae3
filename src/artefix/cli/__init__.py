"""The ``artefix`` command line.

Each subcommand lives in its own module and imports heavy libraries (torch, nibabel) inside the
command function, so ``artefix --help`` is instant. User errors (:class:`artefix.errors.ArtefixError`)
become a one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import signal
import sys

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


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (``kill``, a batch system's time limit) unwinds like Ctrl-C, so no partial output is left."""
    raise KeyboardInterrupt


def main() -> None:
    """Entry point of the ``artefix`` script.

    Usage errors (unknown option, bad value type) are reported by typer with exit code 2; artefix's own
    errors (unreadable input, unsafe output, bad values found later) become ``error: ...`` on one line,
    also with exit code 2. SIGTERM is turned into ``KeyboardInterrupt``, so a killed run cleans up as an
    interrupted one does.
    """
    from artefix.errors import ArtefixError

    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _terminate)
    try:
        app()
    except ArtefixError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
