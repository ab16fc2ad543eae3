"""Evaluation cases: the clean slices of the scans, and each slice's seeded corruption for an experiment."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artefix.artefacts.base import stable_entropy, to_output
from artefix.errors import InputError
from artefix.evaluation.methods import Case
from artefix.evaluation.protocol import SCENARIOS, TUNE_SLICES

__all__ = [
    "EvalSlice",
    "corruption_rng",
    "load_slices",
    "make_case",
    "select_positions",
]


# -------------------------------------------------------------------------------------------- slices


@dataclass(frozen=True, eq=False)
class EvalSlice:
    """One clean evaluation slice.

    Attributes:
        file: The scan (as discovered).
        key: ``"folder/file"`` (more parent folders where two scans share it,
            :func:`artefix.data.slices.seed_keys`): the location-independent name used in the seeds.
        index: Slice index along the slice axis of the volume.
        image: float32 ``(H, W)``, non-negative magnitudes scaled by the volume's 99th percentile.
        spacing: In-plane pixel size ``(dy, dx)`` in mm.
    """

    file: str
    key: str
    index: int
    image: np.ndarray = field(repr=False)
    spacing: tuple[float, float] = (1.0, 1.0)


def select_positions(total: int, n: int | None) -> list[int]:
    """The centres of ``n`` equal bins of ``range(total)``: ``floor((i + 1/2) total / n)``; all if ``n`` is None.

    Args:
        total: Number of candidates.
        n: How many to keep (>= 1), or None for all.

    Returns:
        Sorted, distinct positions.
    """
    if n is None or n >= total:
        return list(range(total))
    if n < 1:
        raise ValueError(f"the number of slices must be >= 1, got {n}")
    return sorted({int((i + 0.5) * total / n) for i in range(n)})


def _in_plane(volume: Any, axis: int) -> tuple[tuple[int, int], tuple[float, float]]:
    shape = volume.array.shape
    spacing = tuple(volume.spacing) if len(volume.spacing) == len(shape) else (1.0,) * len(shape)
    if len(shape) == 2:
        return (int(shape[0]), int(shape[1])), (float(spacing[0]), float(spacing[1]))
    dims = [i for i in range(len(shape)) if i != axis]
    return (int(shape[dims[0]]), int(shape[dims[1]])), (float(spacing[dims[0]]), float(spacing[dims[1]]))


def load_slices(
    files: Sequence[Path],
    max_slices: int | None = None,
    matrix: int | None = None,
    tune_slices: int = TUNE_SLICES,
) -> tuple[list[EvalSlice], list[EvalSlice], str]:
    """Read the scans once to find their foreground slices, then prepare the chosen ones.

    Args:
        files: Scans (:func:`artefix.data.splits.discover_scans`).
        max_slices: Evaluate at most this many slices (the centres of equal bins), or None for all.
        matrix: ``N`` to Fourier-resize every slice to ``N x N`` (square field of view, ``fit="pad"``),
            or None for the native size.
        tune_slices: Slices to set aside for tuning (0: none).

    Returns:
        ``(evaluation, tuning, where)``: the slices, the tuning slices and a sentence saying where the
        tuning slices come from.

    Raises:
        InputError: No foreground slice, or a slice smaller than 41 x 41 (VIF's four scales).
    """
    from artefix.data.io import read_volume
    from artefix.data.slices import ForegroundFilter, prepare_slices, resolve_axis, seed_keys

    foreground = ForegroundFilter()
    refs: list[tuple[int, int]] = []
    for pos, file in enumerate(files):
        volume = read_volume(file)
        array = np.asarray(volume.array)
        stack = array[None] if array.ndim == 2 else np.moveaxis(array, resolve_axis(volume), 0)
        refs.extend((pos, int(k)) for k in np.flatnonzero(foreground.keep(stack)))
    if not refs:
        raise InputError(f"no slice of the {len(files)} scan(s) passes the foreground filter {foreground}")
    chosen = select_positions(len(refs), max_slices)
    spare = [p for p in range(len(refs)) if p not in set(chosen)]
    if tune_slices <= 0:
        tune, where = [], "no tuning slices"
    elif spare:
        tune = [spare[p] for p in select_positions(len(spare), tune_slices)]
        where = f"{len(tune)} slice(s) that are not evaluated"
    else:
        tune = chosen[:tune_slices]
        where = f"the first {len(tune)} evaluation slice(s), with independent corruptions (no spare slices)"
    wanted: dict[int, set[int]] = {}
    for p in set(chosen) | set(tune):
        wanted.setdefault(refs[p][0], set()).add(refs[p][1])
    keys = seed_keys(files)
    prepared: dict[tuple[int, int], EvalSlice] = {}
    for pos, indices in sorted(wanted.items()):
        file = Path(files[pos])
        volume = read_volume(file)
        axis = resolve_axis(volume)
        shape, spacing = _in_plane(volume, axis)
        if matrix is None:
            size, fit, pixel = shape, "stretch", spacing
        else:
            size, fit = (int(matrix), int(matrix)), "pad"
            p = max(shape[0] * spacing[0], shape[1] * spacing[1]) / int(matrix)
            pixel = (p, p)
        if min(size) < 41:
            raise InputError(f"{file}: slices of {size[0]}x{size[1]} are too small for VIF (>= 41x41); use `matrix`")
        order = sorted(indices)
        stack, kept = prepare_slices(volume, axis, size, foreground, normalise="percentile", fit=fit, indices=order)
        key = keys[pos]
        for k, img in zip(kept.tolist(), stack, strict=True):
            prepared[(pos, int(k))] = EvalSlice(str(file), key, int(k), np.abs(img), pixel)
    return [prepared[refs[p]] for p in chosen], [prepared[refs[p]] for p in tune], where


# ---------------------------------------------------------------------------------------- corruption


def corruption_rng(
    seed: int, stream: str, experiment: str, severity: float | None, key: str, index: int
) -> np.random.Generator:
    """The generator of one corruption: seeded with the SHA-256 of its identity (stable across runs).

    Args:
        seed: The run's seed.
        stream: ``"eval"`` for the evaluation corruptions, ``"tune"`` for the tuning ones.
        experiment: Experiment name.
        severity: Severity level (None for a scenario).
        key: ``"folder/file"`` of the scan.
        index: Slice index.

    Returns:
        A fresh ``numpy.random.Generator``.
    """
    text = json.dumps([int(seed), stream, experiment, severity, key, int(index)])
    return np.random.default_rng(stable_entropy(text, 8))


def make_case(clean: np.ndarray, experiment: str, severity: float | None, rng: np.random.Generator) -> Case:
    """Corrupt one clean slice for an experiment; the magnitude image is kept.

    Args:
        clean: Clean non-negative slice ``(H, W)``.
        experiment: Experiment name.
        severity: Level of a single-artefact experiment (ignored for a scenario).
        rng: Source of all randomness (:func:`corruption_rng`).

    Returns:
        The :class:`Case`; for subsampling it carries the low-resolution image
        ``|centre_crop_kspace_image(clean, R)|`` (the centred mask keeps exactly its k-space).
    """
    from artefix.artefacts.sampler import apply_params, compose, make_params, sample_composition
    from artefix.artefacts.subsampling import centre_crop_kspace_image

    shape = (int(clean.shape[0]), int(clean.shape[1]))
    if experiment in SCENARIOS:
        names = [n for n, _ in SCENARIOS[experiment]]
        levels = [lv for _, lv in SCENARIOS[experiment]]
        params = sample_composition(names, rng, shape, levels, random_order=True)
        corrupted = compose(clean, params, "magnitude")
        return Case(clean, np.asarray(corrupted, dtype=np.float32))
    if severity is None:
        raise ValueError(f"experiment {experiment!r} needs a severity")
    params = make_params(experiment, rng, shape, severity)
    corrupted = np.asarray(to_output(apply_params(clean, params), "magnitude"), dtype=np.float32)
    lowres = None
    if experiment == "subsampling":
        lowres = np.abs(centre_crop_kspace_image(clean, severity)).astype(np.float32)
    return Case(clean, corrupted, lowres)
