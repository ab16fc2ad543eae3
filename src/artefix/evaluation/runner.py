"""The evaluation run: :func:`evaluate` and the tasks, thread guard and worker processes behind it.

It plans the methods, tunes the baselines, then corrupts, corrects and scores every case, in this process
or in spawned worker processes.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from artefix.artefacts.base import znorm
from artefix.errors import InputError
from artefix.evaluation.cases import EvalSlice, corruption_rng, load_slices, make_case
from artefix.evaluation.methods import Case, MethodSpec, ModelPool, ModelSpec, apply_method
from artefix.evaluation.protocol import (
    DEFAULT_MODELS,
    EXPERIMENTS,
    METHOD_NOTES,
    SCENARIOS,
    TUNE_SLICES,
    plan_methods,
    resolve_experiments,
    severities_of,
)
from artefix.evaluation.summary import EvaluationResult, Example, _finite, summarise_rows

__all__ = ["ProgressFn", "evaluate"]

ProgressFn = Callable[[int, int], None]


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
    """Run the paper's evaluation protocol on the scans under ``data`` (see :mod:`artefix.evaluation.experiments`).

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
