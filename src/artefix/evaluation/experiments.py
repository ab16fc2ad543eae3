"""The paper's evaluation protocol (Tables 3-7) on any dataset: corrupt, correct, score, test.

:func:`evaluate` runs every experiment on the foreground slices of the given scans:

1. **Slices** are taken as in training: a volume's slices pass the :class:`ForegroundFilter`, are
   scaled by the volume's 99th percentile (non-negative magnitudes, what the simulators expect) and kept
   at their native in-plane size (``matrix=None``; the Fourier resize is then the identity) or
   Fourier-resized to ``matrix x matrix`` after zero-padding to a square field of view (``fit="pad"``, the
   training preprocessing; the paper used 320). ``max_slices`` keeps the centres of ``max_slices`` equal
   bins of the ordered (file, slice) list, so a small run still spans every file.
2. **Corruption**: each slice is corrupted at each evaluation severity of
   :data:`artefix.artefacts.sampler.REGISTRY` (bias 5/10/20 %, centred subsampling x2/x3/x4, motion with
   25/12.5/5 % of central k-space clean, noise 5/0/-5 dB) and the magnitude image is kept. The
   generator of one corruption is seeded with the SHA-256 of ``(seed, stream, experiment, severity,
   "folder/file", slice index)``, so numbers do not depend on where the data lives, on ``jobs``, on the
   other experiments or on the methods. The multi-artefact scenarios apply one documented level of each
   artefact in a random order per slice (:data:`SCENARIOS`): ``subsampling+motion`` = centred x3 +
   motion 12.5 %, ``noise+bias`` = 0 dB + 10 % (the paper gives no levels; these are the middle ones).
3. **Methods** (:func:`plan_methods`): ``input`` (the corrupted image), the classical baselines of the
   experiment (:data:`artefix.evaluation.baselines.BASELINES`; the ones whose optional package is
   missing are skipped and the report says so), the single-task model of the artefact and every
   multi-task model. The scenarios compare the input, each single-task model of the two artefacts alone,
   both sequential orders ``A>B`` (A first) and the multi-task models.
4. **Scores**: :func:`artefix.evaluation.metrics.compute_metrics` of ``Znorm(output)`` against
   ``Znorm(clean)``: every output is z-normalised (zero mean, unit standard deviation) before it is
   compared with the z-normalised clean slice, as in the paper, so a global gain or offset is never
   penalised.
5. **Statistics** (:func:`summarise_rows`): per experiment x severity x metric, the slices x methods
   matrix goes through :func:`artefix.evaluation.stats.summarise` (Friedman, Nemenyi, bold groups).
   Slices where a method scored a non-finite value (PSNR of an exact reconstruction) are left out of
   that matrix; ``n`` says how many slices remain.

The ``tv`` weight is tuned (:func:`artefix.evaluation.baselines.tune_tv_weight`) on ``tune_slices``
slices that are **not** evaluated when the data has spare slices (the centres of equal bins of the
slices that ``max_slices`` left out), otherwise on the first evaluation slices; either way they are
corrupted at every motion severity from a separate seed stream (``"tune"``), never with the evaluation
corruptions. For a strict protocol, evaluate a test split and keep ``max_slices`` below its size.

Determinism: every computation runs with ``threads`` CPU threads in torch and SimpleITK (N4's fit and
the network's convolutions round differently with other thread counts), in this process for
``jobs == 1`` and in ``jobs`` spawned worker processes otherwise (models loaded once per worker), so the
numbers never depend on ``jobs``.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from artefix.artefacts.base import HEADS, stable_entropy, to_output, znorm
from artefix.errors import InputError
from artefix.evaluation.methods import Case, MethodSpec, ModelPool, ModelSpec, apply_method

__all__ = [
    "DEFAULT_MODELS",
    "EXPERIMENTS",
    "METHOD_NOTES",
    "SCENARIOS",
    "SINGLE_EXPERIMENTS",
    "TUNE_SLICES",
    "EvalSlice",
    "EvaluationResult",
    "Example",
    "corruption_rng",
    "evaluate",
    "load_slices",
    "make_case",
    "plan_methods",
    "resolve_experiments",
    "select_positions",
    "severities_of",
    "summarise_rows",
]

SINGLE_EXPERIMENTS: tuple[str, ...] = HEADS
"""The single-artefact experiments (paper Tables 3-6)."""

SCENARIOS: MappingProxyType[str, tuple[tuple[str, float], ...]] = MappingProxyType(
    {
        "subsampling+motion": (("subsampling", 3.0), ("motion", 0.125)),
        "noise+bias": (("noise", 0.0), ("bias", 0.1)),
    }
)
"""Multi-artefact scenarios (paper Table 7): ``(artefact, level)`` pairs applied in a random order per
slice. The paper gives no levels; these are the middle evaluation level of each artefact."""

EXPERIMENTS: tuple[str, ...] = SINGLE_EXPERIMENTS + tuple(SCENARIOS)
"""Every experiment name, in report order."""

DEFAULT_MODELS: tuple[str, ...] = (
    "mt-brain",
    "mt-lc-brain",
    "bias-brain",
    "subsampling-brain",
    "motion-brain",
    "noise-brain",
)
"""Shipped models evaluated by default when installed (the paper's brain models)."""

TUNE_SLICES = 3
"""Default number of slices on which the ``tv`` weight is tuned."""

METHOD_NOTES: MappingProxyType[str, str] = MappingProxyType(
    {
        "bias": "The paper's second bias baseline, the implicitly trained bias-field CNN, is not published (no "
        "package, no weights); it is left out rather than imitated.",
        "subsampling": "UniRes (the paper's third super-resolution baseline) is not on PyPI; `tv-sr` "
        "(TV-regularised super-resolution with the exact k-space-crop forward model) stands in for it. "
        "`zero-filled` equals `input` here: the corrupted image is the zero-filled reconstruction.",
    }
)
"""Experiment -> facts about its compared methods that every report states."""

_UNITS = {"bias": "fraction", "subsampling": "acceleration", "motion": "clean k-space fraction", "noise": "dB"}

ProgressFn = Callable[[int, int], None]


# ----------------------------------------------------------------------------------------- choosing


def resolve_experiments(names: Sequence[str]) -> tuple[str, ...]:
    """Validate experiment names; ``multi`` stands for both multi-artefact scenarios.

    Args:
        names: Experiment names (:data:`EXPERIMENTS`) or ``multi``.

    Returns:
        The experiments, without duplicates, in :data:`EXPERIMENTS` order.

    Raises:
        InputError: An unknown name, or no name at all.
    """
    chosen: set[str] = set()
    for raw in names:
        name = raw.strip().lower()
        if name == "multi":
            chosen.update(SCENARIOS)
        elif name in EXPERIMENTS:
            chosen.add(name)
        else:
            raise InputError(f"unknown experiment {raw!r}; choose from {', '.join(EXPERIMENTS)} or multi")
    if not chosen:
        raise InputError("no experiment chosen")
    return tuple(e for e in EXPERIMENTS if e in chosen)


def severities_of(experiment: str) -> tuple[float | None, ...]:
    """Evaluation severities of an experiment (``(None,)`` for a multi-artefact scenario)."""
    from artefix.artefacts.sampler import REGISTRY

    if experiment in SCENARIOS:
        return (None,)
    if experiment not in SINGLE_EXPERIMENTS:
        raise ValueError(f"unknown experiment {experiment!r}; choose from {', '.join(EXPERIMENTS)}")
    return tuple(float(s) for s in REGISTRY[experiment].severities)


def plan_methods(
    experiments: Sequence[str],
    models: Sequence[ModelSpec],
    baselines: Sequence[str] | None = None,
    settings: Mapping[str, Mapping[str, Any]] | None = None,
) -> tuple[dict[str, tuple[MethodSpec, ...]], list[str]]:
    """The rows of every experiment's tables, and why some methods are missing.

    Rows: ``input``; the experiment's baselines in :data:`BASELINES` order (those in ``baselines`` whose
    optional package imports); the single-task models of the artefact; the multi-task models. A scenario
    ``A+B``: ``input``; each single-task model of A or B; every ``a>b`` and ``b>a`` chain of a single-task
    model of A and one of B; the multi-task models.

    Args:
        experiments: Experiment names (validated with :func:`resolve_experiments`).
        models: The models, in the order given by the user.
        baselines: Baseline names to include (None: all).
        settings: Baseline name -> keyword settings (e.g. ``{"tv": {"weight": 0.07}}``).

    Returns:
        ``(methods, notes)``: experiment -> method specs, and one line per skipped baseline or unused model.
    """
    from artefix.evaluation.baselines import BASELINES, available

    chosen = set(BASELINES) if baselines is None else set(baselines)
    settings = settings or {}
    notes: list[str] = []
    missing: dict[str, list[str]] = {}
    multi = [m for m in models if m.multi_task]
    single = {h: [m for m in models if m.heads == (h,)] for h in SINGLE_EXPERIMENTS}
    plan: dict[str, tuple[MethodSpec, ...]] = {}
    used: set[str] = {m.name for m in multi}
    for exp in experiments:
        rows = [MethodSpec("input", "input")]
        if exp in SINGLE_EXPERIMENTS:
            for name, base in BASELINES.items():
                if base.experiment != exp or name not in chosen:
                    continue
                if not available(name):
                    missing.setdefault(f"{base.module}|{base.extra}", []).append(name)
                    continue
                rows.append(MethodSpec(name, "baseline", (name,), tuple(sorted(settings.get(name, {}).items()))))
            rows += [MethodSpec(m.name, "model", (m.name,)) for m in single[exp]]
            used.update(m.name for m in single[exp])
        else:
            a, b = (name for name, _ in SCENARIOS[exp])
            rows += [MethodSpec(m.name, "model", (m.name,)) for m in single[a] + single[b]]
            for ma in single[a]:
                for mb in single[b]:
                    rows.append(MethodSpec(f"{mb.name}>{ma.name}", "sequential", (mb.name, ma.name)))
                    rows.append(MethodSpec(f"{ma.name}>{mb.name}", "sequential", (ma.name, mb.name)))
            used.update(m.name for m in single[a] + single[b])
        rows += [MethodSpec(m.name, "model", (m.name,)) for m in multi]
        plan[exp] = tuple(rows)
    for key, names in missing.items():
        module, extra = key.split("|")
        notes.append(
            f"Skipped {', '.join(sorted(set(names)))}: the optional package `{module}` is not installed "
            f'(`pip install "artefix[{extra}]"`).'
        )
    for m in models:
        if m.name not in used:
            notes.append(f"Model `{m.name}` (heads {', '.join(m.heads)}) takes part in none of the chosen experiments.")
    return plan, notes


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


# ------------------------------------------------------------------------------------------ the runs


@dataclass(frozen=True)
class _Plan:
    seed: int
    methods: dict[str, tuple[MethodSpec, ...]]
    models: tuple[ModelSpec, ...]
    device: str
    threads: int
    ensemble: int | None = None


@dataclass(frozen=True, eq=False)
class _Task:
    order: int
    position: int
    slice: EvalSlice
    experiment: str
    severity: float | None
    keep_images: bool


@dataclass
class _TaskResult:
    order: int
    values: list[tuple[str, str, float | None]]
    residuals: dict[str, dict[str, float]]
    seconds: dict[str, float]
    images: dict[str, np.ndarray] | None


@dataclass(frozen=True, eq=False)
class Example:
    """Images of the example slice for the figures (all z-normalised, float32).

    Attributes:
        experiment: Experiment name.
        severity: Severity (None for a scenario).
        file: The scan.
        index: The slice index.
        images: ``"clean"``, then every method name -> ``(H, W)``.
    """

    experiment: str
    severity: float | None
    file: str
    index: int
    images: dict[str, np.ndarray]


@dataclass
class EvaluationResult:
    """Everything :func:`evaluate` measured.

    Attributes:
        per_slice: One row per slice x experiment x severity x method x metric: ``file``, ``slice``,
            ``experiment``, ``severity``, ``method``, ``metric``, ``value`` (None when not finite).
        summary: :func:`summarise_rows` of ``per_slice``.
        residuals: Per experiment x severity x model: ``experiment``, ``severity``, ``model``,
            ``n_slices`` and ``mean_abs`` (head -> mean over slices of ``mean |p_head|``, z-normalised
            units).
        methods: Experiment -> method names (table rows, in order).
        severities: Experiment -> severities (table columns).
        examples: Example images per experiment (one per severity).
        notes: Sentences for the report (skipped methods, substitutions, tuning).
        settings: The run's settings and timings (JSON-friendly).
    """

    per_slice: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    residuals: list[dict[str, Any]]
    methods: dict[str, tuple[str, ...]]
    severities: dict[str, tuple[float | None, ...]]
    examples: dict[str, list[Example]]
    notes: list[str]
    settings: dict[str, Any]


_WORKER: dict[str, Any] = {}


@contextmanager
def _threads(n: int) -> Iterator[None]:
    """Run torch and SimpleITK with ``n`` threads, restoring the settings afterwards.

    (BM3D runs single-threaded inside :mod:`artefix.evaluation.baselines`, which makes it deterministic.)
    """
    import torch

    before = torch.get_num_threads()
    sitk = _optional("SimpleITK")
    sitk_before = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads() if sitk else 0
    _set_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
        if sitk and sitk_before:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(sitk_before)


def _set_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    sitk = _optional("SimpleITK")
    if sitk:
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(n)


def _optional(module: str) -> Any:
    """The module if it is installed and imports, else None."""
    import importlib

    try:
        return importlib.import_module(module)
    except (ImportError, OSError):
        return None


def _init_worker(plan: _Plan) -> None:
    """Process-pool initializer: fix the thread counts and load every model once."""
    _set_threads(plan.threads)
    pool = ModelPool({m.name: m for m in plan.models}, plan.device, plan.ensemble)
    pool.load_all()
    _WORKER["plan"] = plan
    _WORKER["pool"] = pool


def _worker_task(task: _Task) -> _TaskResult:
    return _run_task(task, _WORKER["plan"], _WORKER["pool"], None)


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


def _run_task(task: _Task, plan: _Plan, pool: ModelPool, tick: Callable[[], None] | None) -> _TaskResult:
    """Corrupt one slice at one severity, run every method, score every output."""
    from artefix.evaluation.metrics import compute_metrics, foreground_mask

    s = task.slice
    rng = corruption_rng(plan.seed, "eval", task.experiment, task.severity, s.key, s.index)
    case = make_case(s.image, task.experiment, task.severity, rng)
    case = Case(case.clean, case.corrupted, case.lowres, s.spacing)
    ref = np.asarray(znorm(np.asarray(s.image, dtype=np.float64)))
    mask = foreground_mask(ref)
    values: list[tuple[str, str, float | None]] = []
    residuals: dict[str, dict[str, float]] = {}
    seconds: dict[str, float] = {}
    images: dict[str, np.ndarray] | None = {"clean": ref.astype(np.float32)} if task.keep_images else None
    for method in plan.methods[task.experiment]:
        start = time.perf_counter()
        out = apply_method(method, case, pool)
        seconds[method.name] = time.perf_counter() - start
        img = np.asarray(znorm(np.asarray(out.image, dtype=np.float64)))
        if not np.isfinite(img).all():
            raise ValueError(f"method {method.name!r} returned non-finite values on {s.key}#{s.index}")
        for metric, value in compute_metrics(ref, img, mask).items():
            values.append((method.name, metric, _finite(value)))
        if out.residuals is not None:
            residuals[method.name] = {h: float(np.mean(np.abs(r))) for h, r in out.residuals.items()}
        if images is not None:
            images[method.name] = img.astype(np.float32)
        if tick is not None:
            tick()
    return _TaskResult(task.order, values, residuals, seconds, images)


def summarise_rows(
    per_slice: Sequence[Mapping[str, Any]],
    methods: Mapping[str, Sequence[str]],
    severities: Mapping[str, Sequence[float | None]],
) -> list[dict[str, Any]]:
    """Mean, standard error and bold group of every table cell, from the per-slice values.

    For each experiment x severity x metric, the matrix of slices (rows, in ``per_slice`` order of
    first appearance) x methods (columns) goes to :func:`artefix.evaluation.stats.summarise`; slices
    with a missing or non-finite value of any method are left out.

    Args:
        per_slice: Rows with ``file``, ``slice``, ``experiment``, ``severity``, ``method``, ``metric``,
            ``value`` (e.g. ``per_slice.json``).
        methods: Experiment -> method names, in table order.
        severities: Experiment -> severities, in table order.

    Returns:
        Rows ``experiment``, ``severity``, ``method``, ``metric``, ``mean``, ``sem``, ``bold``, ``n``
        (``mean``/``sem`` None when not finite), ordered by experiment, severity, metric, method.
    """
    from artefix.evaluation.metrics import METRICS
    from artefix.evaluation.stats import summarise

    table: dict[tuple[str, Any, str], dict[tuple[str, int], dict[str, float | None]]] = {}
    for row in per_slice:
        cell = table.setdefault((row["experiment"], row["severity"], row["metric"]), {})
        cell.setdefault((row["file"], int(row["slice"])), {})[row["method"]] = row["value"]
    out: list[dict[str, Any]] = []
    for exp, names in methods.items():
        for sev in severities[exp]:
            for metric, lower in METRICS.items():
                cell = table.get((exp, sev, metric), {})
                full = [
                    [v[m] for m in names]
                    for v in cell.values()
                    if all(v.get(m) is not None and math.isfinite(v[m]) for m in names)
                ]
                if full:
                    stats = summarise(np.asarray(full, dtype=np.float64), list(names), lower)
                else:
                    stats = [{"method": m, "mean": math.nan, "sem": math.nan, "bold": False} for m in names]
                for s in stats:
                    out.append(
                        {
                            "experiment": exp,
                            "severity": sev,
                            "method": s["method"],
                            "metric": metric,
                            "mean": _finite(s["mean"]),
                            "sem": _finite(s["sem"]),
                            "bold": bool(s["bold"]),
                            "n": len(full),
                        }
                    )
    return out


def _tune(
    plan_baselines: set[str], experiments: Sequence[str], tune: Sequence[EvalSlice], seed: int
) -> dict[str, dict[str, Any]]:
    """Tuned settings of the baselines that need them (``tv``), from the tuning slices."""
    from artefix.evaluation.baselines import BASELINES

    settings: dict[str, dict[str, Any]] = {}
    for name in sorted(plan_baselines):
        base = BASELINES[name]
        if base.tune is None or base.experiment not in experiments:
            continue
        if not tune:
            raise InputError(f"baseline {name!r} needs tuning slices; set tune_slices >= 1")
        pairs = []
        for s in tune:
            for sev in severities_of(base.experiment):
                case = make_case(
                    s.image, base.experiment, sev, corruption_rng(seed, "tune", base.experiment, sev, s.key, s.index)
                )
                pairs.append((case.corrupted, case.clean))
        settings[name] = dict(base.tune(pairs))
    return settings


def evaluate(
    data: Sequence[str | Path],
    *,
    experiments: Sequence[str] = EXPERIMENTS,
    models: Sequence[str] | None = None,
    baselines: Sequence[str] | None = None,
    max_slices: int | None = None,
    matrix: int | None = None,
    seed: int = 0,
    jobs: int = 1,
    threads: int = 1,
    tune_slices: int = TUNE_SLICES,
    device: str = "cpu",
    ensemble: int | None = None,
    progress: ProgressFn | None = None,
) -> EvaluationResult:
    """Run the paper's evaluation protocol on the scans under ``data`` (see the module docstring).

    Args:
        data: Scan files or folders (anything :func:`artefix.data.splits.discover_scans` finds).
        experiments: Experiment names or ``multi`` (:func:`resolve_experiments`).
        models: Shipped model names or ``.safetensors`` paths; None evaluates the installed
            :data:`DEFAULT_MODELS`.
        baselines: Baseline names to run (None: every one whose package is installed).
        max_slices: Evaluate at most this many slices (>= 1), or None for all foreground slices.
        matrix: Fourier-resize slices to ``matrix x matrix`` (>= 41), or None for the native size.
        seed: Seed of every corruption.
        jobs: Worker processes (>= 1); 1 runs in this process. Results do not depend on it.
        threads: CPU threads of torch and SimpleITK in each process (>= 1); results may change with it.
        tune_slices: Slices on which ``tv`` is tuned (>= 1 when ``tv`` runs).
        device: Torch device of the models.
        ensemble: Self-ensemble of every model (1, 2, 4 or 8 dihedral transforms averaged per slice,
            ``ModelConfig.ensemble``), or None for each model's own.
        progress: Called as ``progress(done, total)`` in method runs (slice x severity x method).

    Returns:
        The :class:`EvaluationResult`.

    Raises:
        InputError: Unknown experiment, baseline or model, no scans or no foreground slices, a bad ensemble.
    """
    from artefix.data.splits import discover_scans
    from artefix.evaluation.baselines import BASELINES
    from artefix.models.dual_domain import ENSEMBLES
    from artefix.models.registry import list_models

    started = time.perf_counter()
    exps = resolve_experiments(experiments)
    for name, value, low in (("max_slices", max_slices, 1), ("matrix", matrix, 41)):
        if value is not None and (isinstance(value, bool) or int(value) != value or value < low):
            raise InputError(f"{name} must be an integer >= {low}, got {value!r}")
    for name, value in (("jobs", jobs), ("threads", threads)):
        if isinstance(value, bool) or int(value) != value or value < 1:
            raise InputError(f"{name} must be an integer >= 1, got {value!r}")
    if ensemble is not None and (isinstance(ensemble, bool) or ensemble not in ENSEMBLES):
        raise InputError(f"ensemble must be one of {', '.join(map(str, ENSEMBLES))}, got {ensemble!r}")
    if isinstance(tune_slices, bool) or int(tune_slices) != tune_slices or tune_slices < 0:
        raise InputError(f"tune_slices must be an integer >= 0, got {tune_slices!r}")
    if baselines is not None:
        unknown = [b for b in baselines if b not in BASELINES]
        if unknown:
            raise InputError(f"unknown method(s) {', '.join(unknown)}; choose from {', '.join(BASELINES)}")
    if models is None:
        installed = {m.name for m in list_models()}
        models = [m for m in DEFAULT_MODELS if m in installed]
    from artefix.evaluation.methods import model_spec

    specs = [model_spec(m) for m in models]
    names = [s.name for s in specs]
    if len(set(names)) != len(names):
        raise InputError(f"two models share a name ({', '.join(names)}); rename a checkpoint file")
    clash = set(names) & (set(BASELINES) | {"input"})
    if clash:
        raise InputError(f"model name(s) {', '.join(sorted(clash))} clash with method names; rename the file")

    if specs:
        from artefix.models.registry import check_device

        check_device(device)  # before reading any scan
    files = discover_scans([Path(d) for d in data])
    if not files:
        raise InputError(f"no scans found in {', '.join(map(str, data))}")
    plan_draft, _ = plan_methods(exps, specs, baselines)
    uses = {m.parts[0] for rows in plan_draft.values() for m in rows if m.kind == "baseline"}
    needs_tuning = any(BASELINES[b].tune is not None for b in uses)
    slices, tune, where = load_slices(files, max_slices, matrix, tune_slices if needs_tuning else 0)

    with _threads(int(threads)):
        settings = _tune(uses, exps, tune, int(seed))
    methods, notes = plan_methods(exps, specs, baselines, settings)
    notes = [METHOD_NOTES[e] for e in exps if e in METHOD_NOTES] + notes
    if "tv" in settings:
        notes.append(
            f"`tv` weight {settings['tv']['weight']:g} (z-normalised scale) was tuned on {where}, corrupted at "
            "every motion severity from a separate seed stream (lowest mean MSE on the weight grid)."
        )
    if not specs:
        notes.append("No model was given or installed: only the classical methods were evaluated.")
    elif ensemble is not None and ensemble > 1:
        notes.append(
            f"Every model averaged its corrections over {ensemble} flips/transposes of each slice (--ensemble)."
        )
    plan = _Plan(int(seed), methods, tuple(specs), device, int(threads), ensemble)
    tasks: list[_Task] = []
    for pos, s in enumerate(slices):
        for exp in exps:
            for sev in severities_of(exp):
                tasks.append(_Task(len(tasks), pos, s, exp, sev, pos == 0))
    total = sum(len(methods[t.experiment]) for t in tasks)
    results = _execute(tasks, plan, int(jobs), total, progress)
    run = {
        "data": [str(d) for d in data],
        "files": [str(f) for f in files],
        "n_slices": len(slices),
        "experiments": list(exps),
        "models": [{"name": m.name, "path": m.path, "heads": list(m.heads)} for m in specs],
        "seed": int(seed),
        "max_slices": max_slices,
        "matrix": matrix,
        "jobs": int(jobs),
        "threads": int(threads),
        "device": device,
        "ensemble": ensemble,
        "tuned": settings,
        "tuning_slices": where if settings else None,
        "scenarios": {k: [list(p) for p in v] for k, v in SCENARIOS.items() if k in exps},
    }
    result = _assemble(tasks, results, plan, exps, notes, run)
    result.settings["seconds"] = time.perf_counter() - started
    return result


def _execute(
    tasks: Sequence[_Task], plan: _Plan, jobs: int, total: int, progress: ProgressFn | None
) -> list[_TaskResult]:
    """Run the tasks in this process (``jobs == 1``) or in a pool of spawned worker processes."""
    done = 0

    def advance(n: int) -> None:
        nonlocal done
        done += n
        if progress is not None:
            progress(done, total)

    advance(0)
    if jobs == 1:
        pool = ModelPool({m.name: m for m in plan.models}, plan.device, plan.ensemble)
        with _threads(plan.threads):
            return [_run_task(t, plan, pool, lambda: advance(1)) for t in tasks]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed

    results: list[_TaskResult | None] = [None] * len(tasks)
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(jobs, mp_context=context, initializer=_init_worker, initargs=(plan,))
    try:
        futures = {executor.submit(_worker_task, t): t for t in tasks}
        for future in as_completed(futures):
            task = futures[future]
            results[task.order] = future.result()
            advance(len(plan.methods[task.experiment]))
    except BaseException:
        executor.shutdown(wait=True, cancel_futures=True)
        raise
    executor.shutdown(wait=True)
    return [r for r in results if r is not None]


def _assemble(
    tasks: Sequence[_Task],
    results: Sequence[_TaskResult],
    plan: _Plan,
    exps: Sequence[str],
    notes: list[str],
    run: dict[str, Any],
) -> EvaluationResult:
    """Gather the task results (in task order) into per-slice rows, summaries, residuals and examples."""
    per_slice: list[dict[str, Any]] = []
    residual_sums: dict[tuple[str, float | None, str], list[dict[str, float]]] = {}
    seconds: dict[str, list[float]] = {}
    examples: dict[str, list[Example]] = {e: [] for e in exps}
    for task, res in zip(tasks, results, strict=True):
        s = task.slice
        for method, metric, value in res.values:
            per_slice.append(
                {
                    "file": s.file,
                    "slice": s.index,
                    "experiment": task.experiment,
                    "severity": task.severity,
                    "method": method,
                    "metric": metric,
                    "value": value,
                }
            )
        for model, heads in res.residuals.items():
            residual_sums.setdefault((task.experiment, task.severity, model), []).append(heads)
        for method, sec in res.seconds.items():
            seconds.setdefault(method, []).append(sec)
        if res.images is not None:
            examples[task.experiment].append(Example(task.experiment, task.severity, s.file, s.index, res.images))
    methods = {e: tuple(m.name for m in plan.methods[e]) for e in exps}
    severities = {e: severities_of(e) for e in exps}
    residuals = [
        {
            "experiment": exp,
            "severity": sev,
            "model": model,
            "n_slices": len(rows),
            "mean_abs": {h: float(np.mean([r[h] for r in rows])) for h in rows[0]},
        }
        for (exp, sev, model), rows in residual_sums.items()
    ]
    run["seconds_per_run"] = {m: float(np.mean(v)) for m, v in seconds.items()}
    run["method_runs"] = {m: len(v) for m, v in seconds.items()}
    summary = summarise_rows(per_slice, methods, severities)
    return EvaluationResult(per_slice, summary, residuals, methods, severities, examples, notes, run)
