"""Bulk ``artefix correct INPUT... --out-dir DIR``: many scans into a mirrored tree, resumably, in parallel."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from artefix.errors import InputError, cli_words

if TYPE_CHECKING:
    from artefix.correction.options import InferenceOptions


def bulk_correct(
    inputs: Sequence[str],
    out_dir: Path,
    *,
    model: str | None,
    inference: InferenceOptions,
    axis: int | None,
    batch_size: int | None,
    device: str,
    overwrite: bool,
    jobs: int,
    scheduler: str | None,
    only_flagged: Path | None,
    derivatives: bool,
    quiet: bool,
) -> None:
    """Run :func:`artefix.correction.bulk.run_bulk` with a progress bar over scans and a summary table.

    ``inference`` is what every scan is corrected with (the single-scan path takes the same value).

    Raises:
        InputError: No scans found, or an error of :func:`~artefix.correction.bulk.run_bulk` (exit 2).
        typer.Exit: With code 1 when any scan failed.
    """
    from rich.console import Console

    from artefix.cli.progress import progress_bar
    from artefix.correction.bulk import CorrectionOptions, run_bulk
    from artefix.correction.spec import ModelSpec
    from artefix.qc.discover import discover
    from artefix.qc.table import read_flagged

    if scheduler is not None and jobs != 1:
        raise InputError("--jobs and --scheduler exclude each other: the cluster's workers correct the scans")
    flagged = read_flagged(only_flagged) if only_flagged is not None else None
    refs = discover(inputs, derivatives=derivatives)
    if not refs:
        raise InputError(f"no scans found in {', '.join(inputs)}")
    progress, err_console = progress_bar("correcting", "scans", quiet)
    with progress:
        task = progress.add_task("correct", total=None)
        run = run_bulk(
            refs,
            out_dir,
            spec=ModelSpec.of(model, device, inference),
            options=CorrectionOptions.of(inference, axis=axis, batch_size=batch_size),
            jobs=jobs,
            scheduler=scheduler,
            overwrite=overwrite,
            flagged=flagged,
            derivatives=derivatives,
            progress=lambda result: progress.advance(task),
            planned=lambda n: progress.update(task, total=n),
        )
    if not quiet:
        _print_summary(run, Console())
    for result in run.failed:
        said = result.ref.given in result.error or str(result.ref.path) in result.error
        text = result.error if said else f"{result.ref.label}: {result.error}"
        err_console.print(f"failed: {cli_words(text)}", markup=False, highlight=False, soft_wrap=True)
    if run.failed:
        raise typer.Exit(1)


def _print_summary(run, console) -> None:  # noqa: ANN001 - BulkRun, rich Console (lazy imports)
    from rich.table import Table

    from artefix.correction.bulk import STATUSES

    table = Table(title=f"{len(run.results)} scans -> {run.out_dir}")
    table.add_column("status")
    table.add_column("scans", justify="right")
    for status in STATUSES:
        if run.count(status):
            table.add_row(status, str(run.count(status)))
    console.print(table)
    if run.count("done before, other settings"):
        console.print(
            "some scans were corrected earlier with other settings and kept: --overwrite corrects them again",
            highlight=False,
        )
    if run.summary is not None:
        console.print(f"summary: {run.summary}", markup=False, highlight=False)
    elif not run.failed:
        console.print("nothing to do: every scan was corrected before", highlight=False)
