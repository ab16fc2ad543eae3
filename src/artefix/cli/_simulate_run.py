"""Implementation of ``artefix simulate`` (heavy imports live here, not in the CLI module)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from artefix.atomic import atomic_file, check_outputs, output_transaction
from artefix.data.io import Volume, write_volume
from artefix.data.slices import resolve_axis
from artefix.errors import InputError
from artefix.simulation import simulate_with_params, validate_image

log = logging.getLogger(__name__)

SUPPORTED = (".nii", ".nii.gz", ".npy")


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _as_slices(volume: Volume, axis: int | None) -> tuple[np.ndarray, int | None]:
    """(B, H, W) view of a 2D slice or a 3D volume sliced along ``axis`` (None: as ``artefix correct`` does)."""
    array = volume.array
    if array.ndim not in (2, 3):
        raise InputError(f"expected a 2D slice or a 3D volume, got an array of shape {array.shape}")
    if array.ndim == 2:
        if axis is not None:
            raise InputError(f"`axis` {axis} does not apply to a 2D image (it is one slice)")
        return validate_image(array)[None], None
    try:
        chosen = resolve_axis(volume, axis)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    slices = np.moveaxis(array, chosen, 0)
    if min(slices.shape[1:]) < 2:
        raise InputError(f"slices must be at least 2x2, got {slices.shape[1]}x{slices.shape[2]} along axis {chosen}")
    return validate_image(slices), chosen


def run_simulate(
    volume: Volume,
    output: Path,
    artefact: str,
    severity: float | None,
    seed: int | None,
    axis: int | None,
    mask: str,
    image_output: str,
    preview: Path | None,
    params_out: Path | None,
    overwrite: bool,
) -> None:
    """Corrupt ``volume`` slice by slice and write OUTPUT (plus optional preview and parameters)."""
    if _suffix(output) not in SUPPORTED:
        raise InputError(f"unsupported output extension for {output.name}; use one of {', '.join(SUPPORTED)}")
    inputs = (volume.source,) if volume.source is not None else ()
    outputs = [path for path in (output, preview, params_out) if path is not None]
    check_outputs(outputs, overwrite=overwrite, inputs=inputs)
    slices, slice_axis = _as_slices(volume, axis)
    options: dict[str, Any] = {}
    if artefact == "subsampling" and severity is not None:
        options["mask"] = mask
    elif mask != "centred":
        raise InputError("--mask applies to --artefact subsampling with --severity")
    try:
        sim = simulate_with_params(slices, artefact, severity=severity, seed=seed, output=image_output, **options)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    corrupted = sim.image.astype(np.float32)
    result = corrupted[0] if slice_axis is None else np.moveaxis(corrupted, 0, slice_axis)
    with output_transaction(outputs):  # all of them or none
        write_volume(volume.with_array(result), output, overwrite=overwrite, like=volume)
        if params_out is not None:
            record = {"artefact": artefact, "severity": severity, "seed": seed, "slices": sim.to_records()}
            with atomic_file(params_out) as tmp:
                tmp.write_text(json.dumps(record, indent=1))
        if preview is not None:
            from artefix.viz import simulation_preview

            k = int(np.argmax(slices.reshape(len(slices), -1).std(axis=1)))
            simulation_preview(slices[k], corrupted[k], preview, title=f"{artefact} (slice {k})")
    log.info("wrote %s", output)
