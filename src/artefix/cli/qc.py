"""``artefix qc``: which scans of a dataset have which artefact, and how badly (tables and a dashboard)."""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Annotated

import typer

from artefix.cli.correct import HEADS, SnrScope
from artefix.errors import InputError, cli_words


def parse_thresholds(text: str | None) -> float | dict[str, float] | None:
    """Parse ``--threshold``: one number for every artefact, or ``HEAD=VALUE`` items (``0.4,motion=0.3`` both).

    Raises:
        InputError: A malformed item, an unknown or repeated artefact, or a value that is not a number.
    """
    if text is None:
        return None
    out: dict[str, float] = {}
    common: float | None = None
    for item in (t.strip() for t in text.split(",") if t.strip()):
        name, sep, value = item.rpartition("=")
        name = name.strip().lower()
        try:
            number = float(value)
        except ValueError:
            raise InputError(f"--threshold: {item!r} is not a number or HEAD=VALUE, e.g. 0.5 or motion=0.3") from None
        if not sep:
            if common is not None:
                raise InputError(f"--threshold: give one common value, got {text!r}")
            common = number
            continue
        if name not in HEADS:
            raise InputError(f"--threshold: unknown artefact {name!r}; choose from {', '.join(HEADS)}")
        if name in out:
            raise InputError(f"--threshold: {name} is listed twice in {text!r}")
        out[name] = number
    if common is None and not out:
        raise InputError("--threshold: give a number from 0 to 1, or HEAD=VALUE items")
    if common is not None and not out:
        return common
    return {**(dict.fromkeys(HEADS, common) if common is not None else {}), **out}


def qc_command(
    inputs: Annotated[
        list[str],
        typer.Argument(
            help="Scans to check: files (NIfTI, DICOM, .h5, .npy/.npz, .png), DICOM series folders or trees (one "
            "result per series), folders searched recursively, BIDS datasets (sub-*/anat, sub-*/ses-*/anat)."
        ),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output folder: qc.csv, qc.parquet (with pyarrow), slices.csv and index.html."
        ),
    ],
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Shipped model name (see 'artefix models') or a .safetensors path."),
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(
            help="Flag a scan when an artefact's score (0 to 1) reaches this: one number for all (default 0.5: "
            "'artefix correct' would apply at least half of that correction) or HEAD=VALUE items, e.g. "
            "'0.5,motion=0.3'."
        ),
    ] = None,
    derivatives: Annotated[
        bool, typer.Option(help="Also check the BIDS datasets in derivatives/ (left out by default).")
    ] = False,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, help="Worker processes (scans checked at once).")] = 1,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler address (tcp://HOST:8786) to check the scans on its workers instead (pip install "
            "'artefix\\[dask]'; the workers need artefix and the same paths)."
        ),
    ] = None,
    snr_scope: Annotated[
        SnrScope,
        typer.Option(help="SNR the noise score's gate sees, as in 'artefix correct': the scan's or each slice's."),
    ] = SnrScope.scan,
    axis: Annotated[
        int | None,
        typer.Option(help="Slice axis (default: the header's acquisition axis, as in 'artefix correct')."),
    ] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Slices per model call (default: automatic).")] = None,
    thumbnails: Annotated[int, typer.Option(min=0, max=8, help="Worst slices per scan drawn in index.html.")] = 3,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace the outputs of an earlier run in --out.")] = False,
    resume: Annotated[
        bool,
        typer.Option(
            help="Take the scans an earlier (or interrupted) run in --out already measured with the same model "
            "and options, measure only the others, and replace the outputs."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary table.")] = False,
) -> None:
    """Score every scan for bias field, subsampling, motion and noise, with its SNR and measured k-space.

    Writes one row per scan (qc.csv: path, the four scores, SNR, k-space, flags, worst slices; qc.parquet when
    pyarrow is installed), one row per slice (slices.csv) and a self-contained dashboard (index.html). A scan
    that cannot be read is a row with an error; the exit code is then 1 (2 for bad arguments).
    """
    from rich.console import Console

    from artefix.cli.progress import progress_bar
    from artefix.correction.spec import ModelSpec
    from artefix.qc.discover import discover
    from artefix.qc.measure import resolve_thresholds
    from artefix.qc.run import QCOptions, check_qc_outputs, run_qc

    limits = resolve_thresholds(parse_thresholds(threshold))
    if scheduler is not None and jobs != 1:
        raise InputError("--jobs and --scheduler exclude each other: the cluster's workers check the scans")
    check_qc_outputs(out, overwrite=overwrite or resume)
    refs = discover(inputs, derivatives=derivatives)
    if not refs:
        raise InputError(f"no scans found in {', '.join(inputs)}")
    progress, err_console = progress_bar("checking", "scans", quiet)
    with progress:
        task = progress.add_task("qc", total=len(refs))
        run = run_qc(
            refs,
            out,
            spec=ModelSpec(model, device),
            options=QCOptions(axis=axis, batch_size=batch_size, snr_scope=snr_scope.value, thumbnails=thumbnails),
            thresholds=limits,
            jobs=jobs,
            scheduler=scheduler,
            overwrite=overwrite,
            progress=lambda result: progress.advance(task),
            resume=resume,
        )
    if not quiet:
        _print_summary(run, Console())
    for result in run.failed:
        said = result.ref.given in (result.error or "") or str(result.ref.path) in (result.error or "")
        text = result.error if said else f"{result.ref.label}: {result.error}"
        err_console.print(f"failed: {cli_words(text)}", markup=False, highlight=False, soft_wrap=True)
    if run.failed:
        raise typer.Exit(1)


def _print_summary(run, console) -> None:  # noqa: ANN001 - QCRun, rich Console (lazy imports)
    from rich.table import Table

    checked = [r for r in run.rows if not r["error"]]
    table = Table(title=f"{len(run.rows)} scans, model {run.model_card.get('name')}")
    table.add_column("artefact")
    table.add_column("threshold", justify="right")
    table.add_column("flagged", justify="right")
    table.add_column("median score", justify="right")
    for head in HEADS:
        values = [r[head] for r in checked if r[head] is not None]
        median = f"{statistics.median(values):.2f}" if values else "-"
        flagged = sum(1 for r in checked if r[f"{head}_flag"])
        table.add_row(head, f"{run.thresholds[head]:g}", f"{flagged} of {len(checked)}", median)
    console.print(table)
    if checked and all(r[h] is None for r in checked for h in HEADS):
        console.print(f"{run.model_card.get('name')} has no artefact detector: only SNR and k-space were measured")
    flagged = sum(1 for r in checked if r["flagged"])
    console.print(
        f"{flagged} of {len(checked)} scans flagged, {len(run.failed)} failed, in {run.seconds:.1f} s", highlight=False
    )
    for path in run.outputs:
        console.print(f"{path.name}: {path}", markup=False, highlight=False)
