"""What an evaluation returns (:class:`EvaluationResult`) and the summary of its tables.

:func:`summarise_rows` hands every experiment x severity x metric matrix to
:func:`artefix.evaluation.stats.summarise` (Friedman, Nemenyi, bold groups).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = [
    "EvaluationResult",
    "Example",
    "summarise_rows",
]


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


def _finite(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


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
