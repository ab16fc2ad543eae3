"""Paired per-slice comparison of two methods of an ``artefix evaluate`` folder, as a Markdown table.

Usage (from the repository root)::

    python scripts/paired_difference.py eval/ablation-seed2 --a mt-lc-seed2 --b mt-seed2

Both methods corrected the same corrupted slices (same seed), so each slice gives one paired difference
``A - B``. One row per experiment and severity: the mean difference in SSIM, VIF and MSE, how many slices
A wins (higher SSIM / VIF, lower MSE), and the two-sided Wilcoxon signed-rank p-value of each metric (scipy;
``-`` where every difference is zero). ``docs/experiments.md`` was written with it.
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from pathlib import Path

import numpy as np
from scipy.stats import wilcoxon

METRICS = ("ssim", "vif", "mse")
LOWER_IS_BETTER = {"mse"}


def paired(evaluation: Path, a: str, b: str) -> dict[str, dict[str, np.ndarray]]:
    """Per experiment key and metric, the per-slice differences ``A - B`` (slices both methods scored)."""
    values: dict[tuple[str, str, str], dict[tuple[str, int], float]] = defaultdict(dict)
    for row in json.loads((evaluation / "per_slice.json").read_text()):
        if row["method"] in (a, b) and row["metric"] in METRICS:
            key = row["experiment"] if row["severity"] is None else f"{row['experiment']}@{row['severity']:g}"
            values[(key, row["metric"], row["method"])][(row["file"], int(row["slice"]))] = float(row["value"])
    if not any(k[2] == a for k in values) or not any(k[2] == b for k in values):
        raise SystemExit(f"{evaluation}: needs both methods {a!r} and {b!r} in per_slice.json")
    out: dict[str, dict[str, np.ndarray]] = defaultdict(dict)
    for key, metric, method in values:  # the evaluation's own order (experiments as run, mild to severe)
        if method != a or (key, metric, b) not in values:
            continue
        other = values[(key, metric, b)]
        common = sorted(set(values[(key, metric, a)]) & set(other))
        out[key][metric] = np.array([values[(key, metric, a)][s] - other[s] for s in common])
    return out


def _p(diff: np.ndarray) -> str:
    if diff.size == 0 or not np.any(diff):
        return "-"
    return f"{wilcoxon(diff).pvalue:.2g}"


def table(evaluation: Path, a: str, b: str) -> str:
    """The Markdown table of :func:`paired` differences."""
    lines = [
        f"| experiment | slices | {a} - {b}: SSIM | VIF | MSE | {a} wins (SSIM / VIF / MSE) | p (SSIM / VIF / MSE) |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, diffs in paired(evaluation, a, b).items():
        n = len(next(iter(diffs.values())))
        means = [f"{diffs[m].mean():+.4f}" if m in diffs else "" for m in METRICS]
        wins = [
            str(int(np.sum(diffs[m] < 0 if m in LOWER_IS_BETTER else diffs[m] > 0))) if m in diffs else ""
            for m in METRICS
        ]
        pvalues = [_p(diffs[m]) if m in diffs else "" for m in METRICS]
        lines.append(f"| {key} | {n} | {' | '.join(means)} | {' / '.join(wins)} | {' / '.join(pvalues)} |")
    return "\n".join(lines)


def main() -> None:
    """Command line: print the table for one evaluation folder and two of its methods."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("evaluation", type=Path, help="an artefix evaluate output folder")
    parser.add_argument("--a", required=True, help="method A (a model's name in the folder)")
    parser.add_argument("--b", required=True, help="method B")
    args = parser.parse_args()
    print(table(args.evaluation, args.a, args.b))


if __name__ == "__main__":
    main()
