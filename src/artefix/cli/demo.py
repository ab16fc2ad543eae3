"""``artefix demo``: the one-command demonstration on the built-in sample (nothing downloaded)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def demo_command(
    out: Annotated[Path, typer.Option("--out", help="Folder for the figures and the metrics JSON.")] = Path(
        "artefix-demo"
    ),
    model: Annotated[
        str | None,
        typer.Option("--model", "-m", help="Shipped model name (see 'artefix models') or a .safetensors path."),
    ] = None,
    sample: Annotated[str, typer.Option(help="Built-in sample: brain-t1, brain-t2, brain-flair, pelvis-t2.")] = (
        "brain-t1"
    ),
    seed: Annotated[int, typer.Option(help="Seed of the simulated artefacts.")] = 0,
    device: Annotated[str, typer.Option(help="cpu or cuda.")] = "cpu",
    overwrite: Annotated[bool, typer.Option(help="Replace existing demo files.")] = False,
) -> None:
    """Corrupt a real slice with each artefact and all four, correct it, plot it and print SSIM/VIF."""
    from rich.console import Console
    from rich.table import Table

    from artefix.demo import run_demo

    result = run_demo(out, model=model, sample=sample, seed=seed, device=device, overwrite=overwrite)
    table = Table(title=f"artefix demo on sample '{sample}' with model {result.model} (vs the clean slice)")
    for column in ("artefact", "SSIM corrupted", "SSIM corrected", "VIF corrupted", "VIF corrected", "what happened"):
        table.add_column(column, justify="left" if column in ("artefact", "what happened") else "right")
    for row in result.rows:
        table.add_row(
            row.case,
            f"{row.ssim_corrupted:.3f}",
            f"{row.ssim_corrected:.3f}",
            f"{row.vif_corrupted:.3f}",
            f"{row.vif_corrected:.3f}",
            row.note,
        )
    console = Console()
    console.print(table)
    console.print(f"figures: {result.figure}, {result.residual_figure}; table: {result.metrics}")
    console.print(f"done in {result.seconds:.1f} s")
