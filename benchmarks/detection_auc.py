"""How well a model's artefact detector tells a corrupted slice from a clean one: ROC AUC per artefact and severity.

The slices are the foreground slices of the given scans taken exactly as ``artefix evaluate`` takes them
(:func:`artefix.evaluation.experiments.load_slices`: native size, scaled by the volume's 99th percentile),
by default on the out-of-distribution bench of ``scripts/build_ood_bench.py``. Each slice is scored clean
and corrupted by every single artefact at every evaluation severity (bias 5/10/20 %, subsampling x2/x3/x4,
motion 25/12.5/5 %, noise 5/0/-5 dB), with the corruptions of ``artefix evaluate --seed SEED`` (same seed
stream, :func:`artefix.evaluation.experiments.corruption_rng`). The model sees each slice as the correction
does (:mod:`artefix.correction.core`): z-normalised by the slice's own mean and standard deviation and, when
the card declares a training matrix, Fourier-resized to its working size; :meth:`DualDomainModel.detect`
then gives one presence score per head (the noise score includes the SNR gate of ``model.noise_snr``,
here on each slice's own estimate: the bench's scans have 1 to 3 slices).

For every artefact x severity and every head's score, the AUC is that of the corrupted slices (positives)
against the same slices clean (negatives): 0.5 is chance, 1 a perfect detector, below 0.5 a score that
falls when the artefact is there. The column ``-SNR`` is the AUC of the negated estimated SNR
(:func:`artefix.models.priors.estimated_snr_db`, what the noise gate reads). A second table gives the median
score, SNR and noise-gate weight per condition. A third gives the error of the severity estimates that
``artefix qc`` reports, against the severity applied: the estimated SNR at each noise level (within 1.5 dB?;
:func:`artefix.models.snr.noise_corrected_snr_db` of the corrupted slice as it is, next to the noise gate's
reading, which ``artefix qc`` reported before) and the estimated acceleration ``1 / sqrt(rows x columns of
k-space measured)`` rounded to a whole factor at each subsampling level (the right class?) and on the clean
slices (1: no truncation found). It only measures: nothing here is asserted.

Usage: ``python benchmarks/detection_auc.py [DATA ...] [--model mt-lc-brain] [--seed 20261125]`` where
``DATA`` are scan files or folders (default: the bench built into a temporary folder).
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from artefix.correction.core import model_input, slice_moments, working_shape
from artefix.data.splits import discover_scans
from artefix.evaluation.experiments import (
    SINGLE_EXPERIMENTS,
    EvalSlice,
    corruption_rng,
    load_slices,
    make_case,
    severities_of,
)
from artefix.models.priors import estimated_snr_db, snr_gate
from artefix.models.registry import DEFAULT_MODEL, load_named_model
from artefix.models.snr import noise_corrected_snr_db

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SEED = 20261125
Condition = tuple[str, float | None]
CLEAN: Condition = ("clean", None)


def conditions() -> list[Condition]:
    """Clean, then every single artefact at each of its evaluation severities (mildest first)."""
    return [CLEAN] + [(e, float(s)) for e in SINGLE_EXPERIMENTS for s in severities_of(e) if s is not None]


def auc(negatives: Sequence[float], positives: Sequence[float]) -> float:
    """ROC AUC of ``positives`` against ``negatives`` (ties count one half); NaN when either is empty.

    scikit-learn's ``roc_auc_score`` where installed, else the Mann-Whitney U statistic over
    ``n_pos * n_neg`` (the same number).
    """
    neg, pos = np.asarray(negatives, np.float64), np.asarray(positives, np.float64)
    if neg.size == 0 or pos.size == 0:
        return float("nan")
    if importlib.util.find_spec("sklearn") is not None:
        from sklearn.metrics import roc_auc_score

        labels = np.concatenate([np.zeros(neg.size), np.ones(pos.size)])
        return float(roc_auc_score(labels, np.concatenate([neg, pos])))
    from scipy.stats import mannwhitneyu

    return float(mannwhitneyu(pos, neg).statistic / (pos.size * neg.size))


def corrupted(s: EvalSlice, condition: Condition, seed: int) -> np.ndarray:
    """The slice clean or corrupted as ``artefix evaluate --seed seed`` corrupts it."""
    experiment, severity = condition
    if condition == CLEAN:
        return np.asarray(s.image, np.float32)
    rng = corruption_rng(seed, "eval", experiment, severity, s.key, s.index)
    return np.asarray(make_case(np.asarray(s.image, np.float32), experiment, severity, rng).corrupted, np.float32)


@torch.no_grad()
def score(model: Any, card: dict[str, Any], image: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """One slice's ``(K + 4,)`` numbers: the ``K`` scores of ``detect``, the noise head's detector score before
    the SNR gate (one pass, :meth:`DualDomainModel.gate_scores`), the noise gate's SNR in dB, the estimated
    acceleration and the noise-corrected SNR in dB (``artefix qc``'s); NaN for a constant slice."""
    from artefix.qc.measure import kspace_fractions

    batch = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None]
    mean, std, constant = slice_moments(batch.numpy())
    if constant[0]:
        return np.full(len(model.head_names) + 4, np.nan)
    shape = working_shape(tuple(image.shape), spacing, card.get("matrix"))
    u = model_input(batch, torch.from_numpy(mean), torch.from_numpy(std), shape)
    x = u.unsqueeze(1).contiguous()
    scores = model.detect(x)[0].double().numpy()
    ungated = float(model.gate_scores(x)[0, model.head_names.index("noise")]) if "noise" in model.head_names else np.nan
    rows, cols = (float(v) for v in kspace_fractions(u)[0])
    corrected = float(noise_corrected_snr_db(batch)[0])
    return np.concatenate([scores, [ungated, float(estimated_snr_db(u)[0]), 1.0 / math.sqrt(rows * cols), corrected]])


def collect(slices: Sequence[EvalSlice], model: Any, card: dict[str, Any], seed: int) -> dict[Condition, np.ndarray]:
    """Condition -> ``(N, K + 4)`` :func:`score` rows over the slices."""
    return {c: np.stack([score(model, card, corrupted(s, c, seed), s.spacing) for s in slices]) for c in conditions()}


def _fmt(value: float, digits: int = 3) -> str:
    return "-" if not np.isfinite(value) else f"{value:.{digits}f}"


def tables(
    results: dict[Condition, np.ndarray], heads: Sequence[str], gate: Any, folders: Sequence[str] | None = None
) -> str:
    """The Markdown tables: AUC per artefact x severity x score, medians per condition, SNR per folder.

    Args:
        results: :func:`collect`'s output.
        heads: The model's head names (``K``).
        gate: The noise gate ``(lo, hi)`` in dB, or None.
        folders: Each slice's folder (source), for the SNR table; None leaves it out.
    """
    k = len(heads)
    snr_col = k + 1
    names = [*heads, "noise ungated"]
    clean = results[CLEAN]
    lines = [
        "| artefact | severity | n | " + " | ".join(names) + " | -SNR |",
        "|---|---|---|" + "---|" * (k + 2),
    ]
    for (experiment, severity), rows in results.items():
        if experiment == "clean":
            continue
        keep = np.isfinite(clean[:, snr_col]) & np.isfinite(rows[:, snr_col])
        cells = [_fmt(auc(clean[keep, j], rows[keep, j])) for j in range(k + 1)]
        cells.append(_fmt(auc(-clean[keep, snr_col], -rows[keep, snr_col])))
        lines.append(f"| {experiment} | {severity:g} | {int(keep.sum())} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "| condition | " + " | ".join(f"median {h}" for h in names) + " | median SNR dB | median noise gate |",
        "|---|" + "---|" * (k + 3),
    ]
    for (experiment, severity), rows in results.items():
        name = experiment if severity is None else f"{experiment} {severity:g}"
        rows = rows[np.isfinite(rows[:, snr_col])]
        medians = [_fmt(float(np.median(rows[:, j])) if len(rows) else np.nan) for j in range(k + 1)]
        snr = float(np.median(rows[:, snr_col])) if len(rows) else float("nan")
        weight = "-"
        if gate is not None and len(rows):
            weight = _fmt(float(np.median(snr_gate(torch.from_numpy(rows[:, snr_col]), *gate).numpy())))
        lines.append(f"| {name} | " + " | ".join(medians) + f" | {_fmt(snr, 1)} | {weight} |")
    if folders is not None:
        noise = [c for c in results if c[0] in ("clean", "noise")]
        labels = ["clean" if s is None else f"noise {s:g} dB" for _, s in noise]
        lines += [
            "",
            "| folder | n | " + " | ".join(f"median SNR, {lb}" for lb in labels) + " |",
            "|---|---|" + "---|" * len(noise),
        ]
        where = np.asarray(folders)
        for folder in sorted(set(folders)):
            pick = where == folder
            cells = [_fmt(float(np.nanmedian(results[c][pick, snr_col])), 1) for c in noise]
            lines.append(f"| {folder} | {int(pick.sum())} | " + " | ".join(cells) + " |")
    return "\n".join([*lines, "", severity_table(results, k)])


def severity_table(results: dict[Condition, np.ndarray], k: int) -> str:
    """The severity estimates against the severities applied: SNR (within 1.5 dB) and acceleration class.

    SNR rows: ``SNR dB`` is the estimate ``artefix qc`` reports (noise-corrected), ``gate SNR dB`` the noise gate's
    reading (what it reported before); the mean error is signed (bias), then the mean absolute error.
    """
    lines = [
        "| condition | n | estimate | median | mean error | mean absolute error | right within tolerance |",
        "|---|---|---|---|---|---|---|",
    ]
    for (experiment, severity), rows in results.items():
        name = experiment if severity is None else f"{experiment} {severity:g}"
        if experiment == "noise":
            for label, col in (("SNR dB", k + 3), ("gate SNR dB", k + 1)):
                est = rows[np.isfinite(rows[:, col]), col]
                err = est - severity
                cells = [
                    label,
                    _fmt(float(np.median(est)), 1),
                    f"{err.mean():+.1f} dB",
                    _fmt(float(np.abs(err).mean()), 1),
                ]
                cells.append(f"{np.mean(np.abs(err) <= 1.5):.0%} within 1.5 dB")
                lines.append(f"| {name} | {est.size} | " + " | ".join(cells) + " |")
            continue
        if experiment == "clean":
            est = rows[np.isfinite(rows[:, k + 3]), k + 3]
            cells = ["SNR dB", _fmt(float(np.median(est)), 1), "-", "-", f"min {_fmt(float(est.min()), 1)} dB"]
            lines.append(f"| {name} | {est.size} | " + " | ".join(cells) + " |")
        if experiment in ("subsampling", "clean"):
            est = rows[np.isfinite(rows[:, k + 2]), k + 2]
            target = 1.0 if severity is None else severity
            err = np.abs(est - target)
            cells = ["acceleration", _fmt(float(np.median(est)), 2), "-", _fmt(float(err.mean()), 2)]
            cells.append(f"{np.mean(np.round(est) == target):.0%} in class x{target:g}")
        else:
            continue
        lines.append(f"| {name} | {est.size} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _bench() -> Path:
    """Build the OOD bench into a temporary folder (kept for the run)."""
    spec = importlib.util.spec_from_file_location("build_ood_bench", ROOT / "scripts" / "build_ood_bench.py")
    if spec is None or spec.loader is None:
        raise SystemExit("scripts/build_ood_bench.py not found")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = Path(tempfile.mkdtemp(prefix="ood-bench-"))
    module.build(out)
    return out


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", nargs="*", type=Path, help="scans or folders (default: build the OOD bench)")
    parser.add_argument("--model", default=DEFAULT_MODEL, help="shipped model name or .safetensors path")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="corruption seed (as artefix evaluate's)")
    parser.add_argument("--max-slices", type=int, default=None, help="at most N slices (centres of equal bins)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    roots = args.data or [_bench()]
    files = discover_scans(roots)
    slices, _, _ = load_slices(files, args.max_slices, None, tune_slices=0)
    model, card = load_named_model(args.model)
    if getattr(model, "detector", None) is None:
        raise SystemExit(f"{args.model} has no artefact detector (ModelConfig.gates is false)")
    start = time.perf_counter()
    results = collect(slices, model, card, args.seed)
    sources = sorted({Path(s.file).parent.name for s in slices})
    print(
        f"Model {card.get('name', args.model)} (ensemble {model.policy.ensemble}, "
        f"noise gate {model.policy.noise_snr}), "
        f"{len(slices)} slices of {len(files)} scans in {len(sources)} folders ({', '.join(sources)}), "
        f"seed {args.seed}, {time.perf_counter() - start:.0f} s\n"
    )
    folders = [Path(s.file).parent.name for s in slices]
    print(tables(results, model.head_names, model.policy.noise_snr, folders))
    return 0


if __name__ == "__main__":
    sys.exit(main())
