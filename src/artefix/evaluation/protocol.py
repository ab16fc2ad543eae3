"""The evaluation protocol: experiments, scenarios, severities and the methods each table compares.

Paper Tables 3-6 (one artefact each) and Table 7 (the multi-artefact scenarios); :func:`plan_methods` gives
the rows of every experiment's tables (input, baselines, single-task, sequential and multi-task models).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any

from artefix.artefacts.base import HEADS
from artefix.errors import InputError
from artefix.evaluation.methods import MethodSpec, ModelSpec

__all__ = [
    "DEFAULT_MODELS",
    "EXPERIMENTS",
    "METHOD_NOTES",
    "SCENARIOS",
    "SINGLE_EXPERIMENTS",
    "TUNE_SLICES",
    "plan_methods",
    "resolve_experiments",
    "severities_of",
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
        "bias": "`bfc` is the paper's second bias baseline, the implicitly trained bias-field CNN (Simko et al., "
        "MIDL 2022), with the authors' published weights (MIT) ported to torch; it works on 256x256 slices, so "
        "other sizes are resized to 256x256 and its field back.",
        "subsampling": "UniRes (the paper's third super-resolution baseline) is not on PyPI; `tv-sr` "
        "(TV-regularised super-resolution with the exact k-space-crop forward model) stands in for it. "
        "`zero-filled` equals `input` here: the corrupted image is the zero-filled reconstruction.",
    }
)
"""Experiment -> facts about its compared methods that every report states."""

_UNITS = {"bias": "fraction", "subsampling": "acceleration", "motion": "clean k-space fraction", "noise": "dB"}


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
