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
from pathlib import Path

from artefix.evaluation.baselines import BASELINES


def _cell(values: dict[str, float]) -> str:
    return f"{values['ssim']:.3f} / {values['vif']:.3f}"


def table(evaluation: Path, models: list[str]) -> str:
    """The Markdown table of ``evaluation``'s ``summary.json`` for ``models``."""
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
            better = m is not None and m["ssim"] > base["ssim"] and m["vif"] > base["vif"]
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
    args = parser.parse_args()
    print(table(args.evaluation, [m for m in args.models.split(",") if m]))


if __name__ == "__main__":
    main()
