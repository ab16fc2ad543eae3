"""The ``artefix`` command line.

Each subcommand lives in its own module and imports heavy libraries (torch, nibabel) inside the
command function, so ``artefix --help`` is instant. User errors (:class:`artefix.errors.ArtefixError`)
become a one-line message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys

import typer

from artefix.cli import simulate as _simulate

app = typer.Typer(
    name="artefix",
    help="Multi-task MRI artefact simulation and correction (Simko et al., BMC Med Imaging 2023).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

app.command("simulate")(_simulate.simulate_command)


@app.callback()
def _root() -> None:
    """Multi-task MRI artefact simulation and correction."""


def main() -> None:
    """Entry point of the ``artefix`` script."""
    from artefix.errors import ArtefixError

    try:
        app(standalone_mode=False)
    except ArtefixError as exc:
        typer.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except (typer.Exit, SystemExit) as exc:
        code = exc.exit_code if isinstance(exc, typer.Exit) else exc.code
        sys.exit(code)
    except typer.Abort:
        typer.echo("aborted", err=True)
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(2)
        raise
