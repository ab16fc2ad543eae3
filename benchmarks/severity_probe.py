"""Could ``artefix qc`` estimate the bias amplitude and the motion severity from a magnitude slice? (issue #20)

Runs the candidate estimators that were tried on the brain split's train and validation slices (never on the
OOD bench), with the package's own corruptions at the paper's evaluation levels, and prints how well each
separates them. Neither was good enough to ship (``docs/usage/datasets.md``); this script reproduces the numbers.

* **Bias amplitude** (level ``a``: field in ``[1 - a, 1 + a]``, 0.05 / 0.1 / 0.2). A fast N4 (SimpleITK, one
  fitting level, 4 control points, the slice shrunk to ~48 px, a foreground mask at 10 % of the 99th
  percentile) and the 2-98 % span of its log field inside the foreground; and a Tukey-robust quadratic fit of
  the log intensity over the foreground. Printed: the median span per level, ROC AUC against the clean slices,
  the correlation with the span of the applied field inside the foreground (what any estimator can see), the
  time per slice.
* **Motion severity** (fraction of central k-space lines left clean, 0.25 / 0.125 / 0.05; 1 for clean).
  Adjacent-line consistency of the slice's k-space, ``|<K_i, K_i+1>| / (|K_i| |K_i+1|)``, along each axis, as
  a log ratio to the other axis at the same relative distance from DC (smoothed over ``w`` lines); the clean
  band ends where it first falls below a threshold. Threshold and ``w`` chosen on train (class accuracy), then
  the accuracy on val is printed (four classes: chance 25 %).

Usage: ``python benchmarks/severity_probe.py [--slices 24] [--seeds 2]`` (needs ``../shared/data``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from artefix.evaluation.cases import load_slices, make_case

ROOT = Path(__file__).resolve().parents[1]
BIAS_LEVELS = (0.05, 0.1, 0.2)
MOTION_CLASSES = (1.0, 0.25, 0.125, 0.05)


def split_slices(split: str, n: int) -> list[np.ndarray]:
    """``n`` foreground slices (native size, scaled by the 99th percentile) of one split of the brain split."""
    spec = json.loads((ROOT / "configs/release/brain_split.json").read_text())
    root = (ROOT / "configs/release" / spec["root"]).resolve()
    files = [root / f for f in sum(spec[split].values(), [])]
    return [s.image for s in load_slices(files, n, None, tune_slices=0)[0]]


def _shrink(image: np.ndarray, target: int) -> tuple[np.ndarray, np.ndarray]:
    """Box-filtered, subsampled slice (longest side ~``target``) in units of its 99th percentile, and its mask."""
    img = np.asarray(image, np.float64)
    img = img / max(float(np.percentile(img, 99)), 1e-12)
    f = max(1, round(max(img.shape) / target))
    small = ndi.uniform_filter(img, f)[f // 2 :: f, f // 2 :: f] if f > 1 else img
    return small, small > 0.1


def n4_span(image: np.ndarray, iterations: int = 50, target: int = 48) -> float:
    """2-98 % span of N4's log field inside the foreground (one level, 4 control points)."""
    import SimpleITK as sitk  # noqa: N813

    small, mask = _shrink(image, target)
    im = sitk.GetImageFromArray((np.maximum(small, 0) * 10 + 1e-3).astype(np.float32))
    n4 = sitk.N4BiasFieldCorrectionImageFilter()
    n4.SetMaximumNumberOfIterations([iterations])
    n4.SetNumberOfControlPoints([4, 4])
    n4.SetConvergenceThreshold(0.0)
    n4.Execute(im, sitk.GetImageFromArray(mask.astype(np.uint8)))
    values = sitk.GetArrayFromImage(n4.GetLogBiasFieldAsImage(im))[mask]
    return float(np.percentile(values, 98) - np.percentile(values, 2))


def quadratic_span(image: np.ndarray, target: int = 64, iterations: int = 10) -> float:
    """2-98 % span, inside the foreground, of a Tukey-robust quadratic fit of the log intensity."""
    small, mask = _shrink(image, target)
    mask = ndi.binary_erosion(mask)
    y, x = np.meshgrid(*(np.linspace(-1, 1, n) for n in small.shape), indexing="ij")
    design = np.stack([np.ones_like(x), x, y, x * y, x**2 - 1 / 3, y**2 - 1 / 3], -1)[mask]
    target_values = np.log(small[mask])
    weights = np.ones(target_values.size)
    for _ in range(iterations):
        root = np.sqrt(weights)
        beta = np.linalg.lstsq(design * root[:, None], target_values * root, rcond=None)[0]
        residual = target_values - design @ beta
        u = residual / (4.685 * 1.4826 * np.median(np.abs(residual - np.median(residual))) + 1e-12)
        weights = np.where(np.abs(u) < 1, (1 - u**2) ** 2, 0.0)
    fit = design @ beta
    return float(np.percentile(fit, 98) - np.percentile(fit, 2))


def line_consistency(image: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per axis: (distance of each adjacent-line pair from DC as a fraction of the lines, their consistency)."""
    k = np.fft.fftshift(np.fft.fft2(image - image.mean()))
    out = []
    for lines in (k, k.T):
        a, b = lines[:-1], lines[1:]
        power = (np.abs(a) ** 2).sum(1) * (np.abs(b) ** 2).sum(1)
        consistency = np.abs((a * b.conj()).sum(1)) / np.sqrt(power + 1e-30)
        n = lines.shape[0]
        out.append((np.abs(np.arange(n - 1) + 0.5 - n // 2) / n, consistency))
    return out


def clean_band(profiles: list[tuple[np.ndarray, np.ndarray]], threshold: float, width: int) -> float:
    """Estimated clean centre fraction: twice the nearest distance where an axis falls ``threshold`` below the other."""
    best = 1.0
    for (d, c), (d_other, c_other) in (profiles, profiles[::-1]):
        order = np.argsort(d_other)
        other = np.interp(d, d_other[order], c_other[order])
        ratio = ndi.uniform_filter1d(np.log(c + 1e-6) - np.log(other + 1e-6), width)
        bad = d[ratio < threshold]
        if bad.size:
            best = min(best, 2 * float(bad.min()))
    return best


def nearest_class(values: np.ndarray) -> np.ndarray:
    """The motion class (``MOTION_CLASSES``) nearest in log to each estimate."""
    logs = np.log(np.asarray(MOTION_CLASSES))
    return np.asarray(MOTION_CLASSES)[np.argmin(np.abs(logs[None] - np.log(np.maximum(values, 1e-3))[:, None]), 1)]


def _auc(negatives: np.ndarray, positives: np.ndarray) -> float:
    return float(np.mean(positives[:, None] > negatives[None]) + 0.5 * np.mean(positives[:, None] == negatives[None]))


def _corrupt(image: np.ndarray, experiment: str, level: float, seed: int, index: int) -> np.ndarray:
    rng = np.random.default_rng([seed, index, round(level * 1000)])
    return np.asarray(make_case(image, experiment, level, rng).corrupted, np.float64)


def bias_rows(slices: Sequence[np.ndarray], seeds: int, name: str, estimator: Callable[[np.ndarray], float]) -> str:
    """Markdown rows of one bias estimator: median span, AUC vs clean, correlation with the applied field's span."""
    start = time.perf_counter()
    clean = np.array([estimator(s) for s in slices])
    rows, calls = [], len(slices)
    for level in BIAS_LEVELS:
        est, true = [], []
        for seed in range(seeds):
            for i, s in enumerate(slices):
                biased = _corrupt(s, "bias", level, seed, i)
                fg = s > 0.1
                ratio = np.log(biased[fg] / s[fg])
                true.append(np.percentile(ratio, 98) - np.percentile(ratio, 2))
                est.append(estimator(biased))
        est_a, true_a = np.asarray(est), np.asarray(true)
        calls += est_a.size
        rows.append((level, np.median(true_a), np.median(est_a), _auc(clean, est_a), np.corrcoef(est_a, true_a)[0, 1]))
    ms = 1000 * (time.perf_counter() - start) / calls
    lines = [f"| {name} | clean | - | {np.median(clean):.3f} | - | - | {ms:.0f} |"]
    lines += [f"| {name} | {lv:g} | {t:.3f} | {m:.3f} | {a:.2f} | {r:.2f} | |" for lv, t, m, a, r in rows]
    return "\n".join(lines)


def motion_profiles(slices: Sequence[np.ndarray], seeds: int) -> list[tuple[float, list]]:
    """(applied class, :func:`line_consistency`) of every slice clean and at each motion level, per seed."""
    out = []
    for level in MOTION_CLASSES:
        for seed in range(seeds):
            for i, s in enumerate(slices):
                image = s if level == 1.0 else _corrupt(s, "motion", level, seed, i)
                out.append((level, line_consistency(image)))
    return out


def motion_accuracy(data: list[tuple[float, list]], threshold: float, width: int) -> tuple[float, dict[float, float]]:
    """Overall and per-class accuracy of :func:`clean_band` rounded to the nearest class."""
    truth = np.array([lv for lv, _ in data])
    pred = nearest_class(np.array([clean_band(p, threshold, width) for _, p in data]))
    return float(np.mean(pred == truth)), {c: float(np.mean(pred[truth == c] == c)) for c in MOTION_CLASSES}


def main(argv: Sequence[str] | None = None) -> int:
    """Print the bias and motion tables (train for choices, val for the verdict)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=24, help="slices per split")
    parser.add_argument("--seeds", type=int, default=2, help="corruption seeds per slice and level")
    args = parser.parse_args(argv)
    train, val = split_slices("train", args.slices), split_slices("val", args.slices)
    print("| estimator | bias level | applied fg span | median estimated span | AUC vs clean | r | ms/slice |")
    print("|---|---|---|---|---|---|---|")
    print(bias_rows(val, args.seeds, "N4 log-field span (val)", n4_span))
    print(bias_rows(val, args.seeds, "robust quadratic span (val)", quadratic_span))
    grid = [(t, w) for t in (-0.5, -1.0, -1.5, -2.0) for w in (3, 9)]
    train_data = motion_profiles(train, args.seeds)
    threshold, width = max(grid, key=lambda tw: motion_accuracy(train_data, *tw)[0])
    train_acc = motion_accuracy(train_data, threshold, width)[0]
    val_acc, per_class = motion_accuracy(motion_profiles(val, args.seeds), threshold, width)
    print(f"\nMotion line consistency: threshold {threshold}, width {width} (train accuracy {train_acc:.0%})")
    classes = ", ".join(f"{c:g}: {a:.0%}" for c, a in per_class.items())
    print(f"val accuracy {val_acc:.0%} (chance 25%); per class {classes}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
