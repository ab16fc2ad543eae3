"""``artefix evaluate``: the paper's evaluation protocol (Tables 3-7) on any dataset, in one command."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from artefix.errors import InputError


def split_list(text: str | None, option: str) -> list[str] | None:
    """Parse a comma-separated option value; None stays None, ``none`` or ``""`` gives an empty list.

    Raises:
        InputError: A name listed twice.
    """
    if text is None:
        return None
    names = [t.strip() for t in text.split(",") if t.strip()]
    if [n.lower() for n in names] == ["none"]:
        return []
    if len(set(names)) != len(names):
        raise InputError(f"{option}: a name is listed twice in {text!r}")
    return names


def evaluate_command(
    data: Annotated[
        list[str],
        typer.Argument(
            help="Scan files or folders (NIfTI, DICOM series, fastMRI .h5, .npy/.npz); searched recursively."
        ),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Output folder (report.md, summary.json/.csv, ...).")],
    experiments: Annotated[
        str,
        typer.Option(help="Comma-separated: bias, subsampling, motion, noise, multi (both multi-artefact scenarios)."),
    ] = "bias,subsampling,motion,noise,multi",
    models: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated shipped model names or .safetensors paths (named by file stem, or LABEL=PATH to "
            "name it); 'none' for no model. Default: the installed brain models (mt-brain, mt-lc-brain, "
            "bias-brain, ...)."
        ),
    ] = None,
    methods: Annotated[
        str | None,
        typer.Option(help="Only these classical methods, comma-separated (default: all installed)."),
    ] = None,
    skip_methods: Annotated[
        str | None, typer.Option(help="Leave out these classical methods, e.g. bm3d,bm3d-paper (slow).")
    ] = None,
    max_slices: Annotated[
        int | None, typer.Option(min=1, help="Evaluate at most N slices (spread over the data).")
    ] = None,
    matrix: Annotated[
        int | None, typer.Option(min=41, help="Fourier-resize every slice to NxN (paper: 320). Default: native size.")
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of every corruption (same seed, same numbers).")] = 0,
    jobs: Annotated[int, typer.Option(min=1, help="Worker processes (results do not depend on it).")] = 1,
    threads: Annotated[int, typer.Option(min=1, help="CPU threads per process for torch and SimpleITK.")] = 1,
    tune_slices: Annotated[int, typer.Option(min=1, help="Slices on which the 'tv' weight is tuned.")] = 3,
    device: Annotated[str, typer.Option(help="Device of the models: cpu or cuda.")] = "cpu",
    ensemble: Annotated[
        int | None,
        typer.Option(
            help="Self-ensemble of every model: 1, 2, 4 or 8 flips/transposes averaged (default: each model's)."
        ),
    ] = None,
    overwrite: Annotated[
        bool,
        typer.Option(
            help="Write into an output folder that holds an earlier evaluation or other files, replacing them."
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary.")] = False,
) -> None:
    """Evaluate artefact corrections with the paper's protocol and write the tables.

    Slices are corrupted at the paper's severities, corrected by classical methods and models, and scored.
    """
    from rich.console import Console

    from artefix.atomic import one_line
    from artefix.cli.progress import progress_bar
    from artefix.errors import ArtefixError
    from artefix.evaluation.baselines import BASELINES
    from artefix.evaluation.experiments import evaluate
    from artefix.evaluation.report import check_output_folder, write_outputs

    exps = split_list(experiments, "--experiments") or []
    model_names = split_list(models, "--models")
    chosen = split_list(methods, "--methods")
    skipped = split_list(skip_methods, "--skip-methods") or []
    for option, names in (("--methods", chosen or []), ("--skip-methods", skipped)):
        unknown = [n for n in names if n not in BASELINES]
        if unknown:
            raise InputError(f"{option}: unknown method(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    baselines = [b for b in (BASELINES if chosen is None else chosen) if b not in skipped]
    check_output_folder(out, overwrite=overwrite)  # before the work, not after it

    progress, err_console = progress_bar("evaluating", "method runs", quiet)
    with progress:
        task = progress.add_task("evaluate", total=None)

        def update(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total)

        try:
            result = evaluate(
                data,
                experiments=exps,
                models=model_names,
                baselines=baselines,
                max_slices=max_slices,
                matrix=matrix,
                seed=seed,
                jobs=jobs,
                threads=threads,
                tune_slices=tune_slices,
                device=device,
                ensemble=ensemble,
                progress=update,
            )
        except ArtefixError:
            raise
        except ValueError as exc:
            raise InputError(one_line(exc)) from exc
    write_outputs(result, out, overwrite=overwrite)
    if not quiet:
        console = Console()
        run = result.settings
        console.print(
            f"{run['n_slices']} slice(s), {len(result.methods)} experiment(s), {len(result.summary)} table cells "
            f"in {run['seconds']:.1f} s -> {out / 'report.md'}"
        )
        for note in result.notes:
            if note.startswith("Skipped") or note.startswith("Model"):
                console.print(f"note: {note}")
