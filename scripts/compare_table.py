"""Print a compact Markdown table from an ``artefix evaluate`` folder: input vs models vs the best classical method.

Usage (from the repository root)::

    python scripts/compare_table.py eval/brain-test --models mt-lc-brain

One row per experiment and severity; each cell is ``SSIM / VIF`` (means over the slices). The "best
classical" column names, per row, the classical method (:data:`artefix.evaluation.baselines.BASELINES`)
with the highest SSIM. A model cell is marked with ``*`` where the model improves both SSIM and VIF over the
input. ``docs/generalisation.md`` was written with it.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from artefix.evaluation.baselines import BASELINES


def _cell(values: dict[str, float]) -> str:
    return f"{values['ssim']:.3f} / {values['vif']:.3f}"


def clear_gains(evaluation: Path) -> set[tuple[str, str, str]]:
    """``(experiment, severity, method)`` whose SSIM and VIF gains over the input both exceed one paired SEM."""
    values: dict[tuple[str, str, str, str], dict[tuple[str, int], float]] = defaultdict(dict)
    for row in json.loads((evaluation / "per_slice.json").read_text()):
        if row["metric"] in ("ssim", "vif"):
            severity = "" if row["severity"] is None else f"{row['severity']:g}"
            key = (row["experiment"], severity, row["method"], row["metric"])
            values[key][(row["file"], row["slice"])] = row["value"]
    clear = set()
    for experiment, severity, method, metric in list(values):
        if method == "input" or metric != "ssim":
            continue
        ok = True
        for m in ("ssim", "vif"):
            a, b = values[(experiment, severity, method, m)], values.get((experiment, severity, "input", m), {})
            diff = np.array([a[k] - b[k] for k in a if k in b])
            sem = diff.std(ddof=1) / np.sqrt(diff.size) if diff.size > 1 else np.inf
            ok = ok and diff.size > 0 and diff.mean() > sem
        if ok:
            clear.add((experiment, severity, method))
    return clear


def table(evaluation: Path, models: list[str], sem: bool = False) -> str:
    """The Markdown table of ``evaluation``'s ``summary.json`` for ``models`` (``sem``: see the module doc)."""
    clear = clear_gains(evaluation) if sem else None
    rows: dict[tuple[str, str], dict[str, dict[str, float]]] = {}
    for row in json.loads((evaluation / "summary.json").read_text()):
        if row["metric"] in ("ssim", "vif"):
            key = (row["experiment"], "" if row["severity"] is None else f"{row['severity']:g}")
            rows.setdefault(key, {}).setdefault(row["method"], {})[row["metric"]] = row["mean"]
    lines = [
        "| experiment | severity | input | " + " | ".join(models) + " | best classical |",
        "|---|---|---|" + "---|" * len(models) + "---|",
    ]
    for (experiment, severity), methods in rows.items():
        base = methods["input"]
        cells = []
        for model in models:
            m = methods.get(model)
            if clear is None:
                better = m is not None and m["ssim"] > base["ssim"] and m["vif"] > base["vif"]
            else:
                better = (experiment, severity, model) in clear
            cells.append("-" if m is None else _cell(m) + (" *" if better else ""))
        classical = {n: v for n, v in methods.items() if n in BASELINES and {"ssim", "vif"} <= v.keys()}
        best = max(classical, key=lambda n: classical[n]["ssim"], default=None)
        best_cell = "-" if best is None else f"{_cell(classical[best])} ({best})"
        lines.append(f"| {experiment} | {severity} | {_cell(base)} | " + " | ".join(cells) + f" | {best_cell} |")
    return "\n".join(lines)


def main() -> None:
    """Parse the arguments and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", type=Path, help="an artefix evaluate output folder")
    parser.add_argument("--models", default="mt-lc-brain", help="comma-separated method names of the models")
    parser.add_argument("--sem", action="store_true", help="mark only gains beyond one paired standard error")
    args = parser.parse_args()
    print(table(args.evaluation, [m for m in args.models.split(",") if m], sem=args.sem))


if __name__ == "__main__":
    main()
