"""``artefix simulate``: corrupt a NIfTI/NumPy slice or volume with one of the paper's artefacts."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer


class ArtefactChoice(str, Enum):
    """Artefacts selectable on the command line."""

    bias = "bias"
    subsampling = "subsampling"
    motion = "motion"
    periodic_motion = "periodic-motion"
    noise = "noise"
    random = "random"


class MaskChoice(str, Enum):
    """Subsampling mask families."""

    centred = "centred"
    random = "random"
    equispaced = "equispaced"


class OutputChoice(str, Enum):
    """Image representation after the inverse FFT."""

    magnitude = "magnitude"
    real = "real"


def simulate_command(
    input: Annotated[
        str, typer.Argument(help="NIfTI (.nii, .nii.gz) or .npy slice/volume, or sample:NAME (built-in sample).")
    ],
    output: Annotated[Path, typer.Argument(help="Output file, .nii/.nii.gz or .npy.")],
    artefact: Annotated[ArtefactChoice, typer.Option("--artefact", "-a", help="Artefact to simulate.")],
    severity: Annotated[
        float | None,
        typer.Option(
            help="Paper evaluation level: bias 0.05/0.1/0.2 (max deviation of the field from 1); subsampling "
            "R=2/3/4/8; motion 0.25/0.125/0.05 (uncorrupted centre fraction); periodic-motion Delta px; "
            "noise SNR dB 5/0/-5. Omit to draw from the training distribution."
        ),
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed; the same seed gives the same output.")] = None,
    axis: Annotated[
        int | None,
        typer.Option(
            help="Slice axis of a 3D volume (default: as artefix correct: a single slice's length-1 axis, else the "
            "header's acquisition axis, else the axis of clearly the thickest voxels, else the last)."
        ),
    ] = None,
    mask: Annotated[
        MaskChoice, typer.Option(help="Subsampling mask with --severity: centred, or fastMRI random/equispaced.")
    ] = MaskChoice.centred,
    image_output: Annotated[
        OutputChoice, typer.Option("--image", help="magnitude (what scanners deliver) or real (the paper's code).")
    ] = OutputChoice.magnitude,
    preview: Annotated[
        Path | None, typer.Option(help="Write a PNG: clean, corrupted, difference and log|k| of both.")
    ] = None,
    params_out: Annotated[
        Path | None, typer.Option("--params", help="Write the exact corruption parameters as JSON.")
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace OUTPUT if it exists.")] = False,
) -> None:
    """Simulate an MRI artefact on a slice or, slice by slice, on a volume."""
    from artefix.cli._simulate_run import run_simulate
    from artefix.data.io import read_input

    run_simulate(
        volume=read_input(input),
        output=output,
        artefact=artefact.value,
        severity=severity,
        seed=seed,
        axis=axis,
        mask=mask.value,
        image_output=image_output.value,
        preview=preview,
        params_out=params_out,
        overwrite=overwrite,
    )
