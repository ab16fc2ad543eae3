"""The ``artefix`` command line (also ``python -m artefix``).

Each subcommand lives in its own module and imports heavy libraries (torch, nibabel) inside the
command function, so ``artefix --help`` is instant. User errors (:class:`artefix.errors.ArtefixError`)
and usage errors (an unknown option, a bad value) become a one-line ``error: ...`` on stderr and exit
code 2, never a traceback.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import ModuleType
from typing import Annotated, Any, NoReturn

import typer

from artefix.cli import correct as _correct
from artefix.cli import demo as _demo
from artefix.cli import evaluate as _evaluate
from artefix.cli import export as _export
from artefix.cli import model_info as _model_info
from artefix.cli import models as _models
from artefix.cli import qc as _qc
from artefix.cli import simulate as _simulate
from artefix.cli import train as _train
from artefix.cli import tune as _tune

app = typer.Typer(
    name="artefix",
    help="Multi-task MRI artefact simulation and correction (Simko et al., BMC Med Imaging 2023).",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

app.command("simulate")(_simulate.simulate_command)
app.command("model-info")(_model_info.model_info_command)
app.command("correct")(_correct.correct_command)
app.command("qc")(_qc.qc_command)
app.command("models")(_models.models_command)
app.command("demo")(_demo.demo_command)
app.command("train")(_train.train_command)
app.command("tune")(_tune.tune_command)
app.command("evaluate")(_evaluate.evaluate_command)
app.command("export")(_export.export_command)


def package_version() -> str:
    """The installed artefix version (package metadata; ``artefix.__version__`` when not installed)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("artefix")
    except PackageNotFoundError:
        from artefix import __version__

        return __version__


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"artefix {package_version()}")
        raise typer.Exit()


LOG_LEVELS = {-1: logging.ERROR, 0: logging.WARNING, 1: logging.INFO, 2: logging.DEBUG}
"""``-q`` -> errors only; default warnings; ``-v`` info; ``-vv`` (or more) debug."""


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to whatever ``sys.stderr`` is when a record comes (not when it was made)."""

    @property  # type: ignore[override]
    def stream(self) -> Any:  # noqa: D102
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def configure_logging(verbosity: int) -> None:
    """Show artefix's log records at ``verbosity`` (:data:`LOG_LEVELS`) on stderr, one message a line.

    The library only logs (``logging.getLogger(__name__)``); the command line decides what a user sees.
    """
    logger = logging.getLogger("artefix")
    logger.setLevel(LOG_LEVELS[max(-1, min(2, verbosity))])
    if not any(isinstance(h, _StderrHandler) for h in logger.handlers):
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_print_version, is_eager=True, help="Print the version and exit."),
    ] = False,
    verbose: Annotated[
        int, typer.Option("--verbose", "-v", count=True, help="More messages on stderr: -v progress notes, -vv debug.")
    ] = 0,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Only errors on stderr (no warnings).")] = False,
) -> None:
    """Multi-task MRI artefact simulation and correction."""
    if verbose and quiet:
        raise typer.BadParameter("-v and -q contradict each other; give one", param_hint="'--verbose' / '--quiet'")
    configure_logging(-1 if quiet else verbose)


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


def _click_exceptions() -> ModuleType:
    """Click's exception classes as typer raises them (newer typer vendors click as ``typer._click``)."""
    return sys.modules[typer.BadParameter.__module__]


def _exit_usage_error(exc: Exception) -> NoReturn:
    """Report a usage error (unknown option, bad value, missing argument) as ``error: ...`` on one line."""
    errors = _click_exceptions()
    no_args = getattr(errors, "NoArgsIsHelpError", None)
    code = int(getattr(exc, "exit_code", 2))
    if no_args is not None and isinstance(exc, no_args):  # plain ``artefix``: the help (rich has printed it)
        if exc.format_message():
            exc.show()
        sys.exit(code)
    message = " ".join(exc.format_message().split()).rstrip(".")
    ctx = getattr(exc, "ctx", None)
    hint = f"; try '{ctx.command_path} --help'" if isinstance(exc, errors.UsageError) and ctx is not None else ""
    typer.echo(f"error: {message}{hint}", err=True)
    sys.exit(code)


def main() -> None:
    """Entry point of the ``artefix`` script.

    Usage errors (unknown option, bad value type) and artefix's own errors (unreadable input, unsafe
    output, bad values found later) become ``error: ...`` on one line, with exit code 2. SIGINT and
    SIGTERM unwind as ``KeyboardInterrupt``, so a killed run cleans up; it then prints
    ``interrupted (SIGINT)`` or ``interrupted (SIGTERM)`` and exits with 130 or 143.
    """
    from artefix.errors import ArtefixError

    _Interruption.signum = None
    replaced = _install_interrupt_handlers()
    usage_error = _click_exceptions().ClickException
    try:
        code = app(standalone_mode=False)  # the code of a ``typer.Exit`` (``--help``, ``--version``: 0)
        sys.exit(code if isinstance(code, int) else 0)
    except usage_error as exc:
        _exit_usage_error(exc)
    except typer.Abort:  # end of input at a prompt
        typer.echo("error: aborted", err=True)
        sys.exit(1)
    except ArtefixError as exc:
        typer.echo(f"error: {exc.cli_message()}", err=True)
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
