r"""Choose a model's noise-gate ramp (``model.noise_snr``) on training slices by the paper's two metrics.

Corrupts slices of a split's *training* scans with every single-artefact experiment at the paper's
evaluation severities (plus the clean slice), corrects each once with the noise gate off, then scores the
output for every candidate ramp ``LO-HI`` (the noise residual times :func:`artefix.models.priors.snr_gate`
of the slice's estimated SNR) by the mean over all cases of ``log((1 - SSIM) + (1 - VIF) + 1e-3)``, the
gate refit's criterion (``loss.gate_criterion: quality``). The ramp of the shipped default came from::

    python scripts/noise_gate_ramp.py runs/mt-lc-brain-fitgates-quality/last.safetensors \
        --split configs/release/brain_split.json --slices 72 --ramps 9-12,9-11,9-10.5,9-10

It prints one line per ramp, best criterion last column; a tie goes to the widest ramp (more denoising of
noisy scans for the same score). ``--masked`` adds each slice with its background zeroed *before* the
corruption (the head mask of :class:`artefix.data.augment.BackgroundMask`, seeded per slice), as a
skull-stripped or masked scan that then gets the artefacts: noise then fills the zero background.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import numpy as np
import torch

from artefix.data.augment import BackgroundMask
from artefix.data.dataset import stable_entropy
from artefix.data.splits import Split
from artefix.evaluation.experiments import EvalSlice, corruption_rng, load_slices, make_case, severities_of
from artefix.evaluation.metrics import compute_metrics, znorm
from artefix.models.checkpoint import load_model
from artefix.models.priors import estimated_snr_db, snr_gate

EXPERIMENTS = ("bias", "subsampling", "motion", "noise")


def _ramps(text: str) -> list[tuple[float, float]]:
    """``"9-12,9-11"`` -> ``[(9.0, 12.0), (9.0, 11.0)]``."""
    return [(float(lo), float(hi)) for lo, hi in (item.split("-") for item in text.split(","))]


def _masked(s: EvalSlice) -> EvalSlice:
    """``s`` with its background zeroed (a head mask drawn with a seed of its own), under a key of its own."""
    rng = np.random.default_rng([7, *stable_entropy(f"{s.key}#{s.index}")])
    mask = None
    while mask is None:
        _, mask = BackgroundMask(1.0).draw(np.asarray(s.image, np.float32), rng)
    return dataclasses.replace(s, key=f"{s.key}#masked", image=np.asarray(s.image, np.float32) * mask)


def main() -> None:
    """Parse the arguments, print one line per ramp."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("weights", type=Path, help="a model's .safetensors (with its card)")
    parser.add_argument("--split", type=Path, required=True, help="split file; its 'train' scans are used")
    parser.add_argument("--slices", type=int, default=72, help="slices to score (centres of equal bins)")
    parser.add_argument("--ramps", default="9-12,9-11,9-10", help="candidate LO-HI ramps in dB")
    parser.add_argument("--masked", action="store_true", help="also each slice masked before the corruption")
    args = parser.parse_args()
    torch.set_num_threads(2)
    files = Split.load(args.split).files("train")
    slices, _, _ = load_slices(files, max_slices=args.slices, tune_slices=0)
    if args.masked:
        slices = slices + [_masked(s) for s in slices]
    model, _ = load_model(args.weights)
    model.policy = model.policy.replace(noise_snr=None)  # this script applies each candidate ramp itself
    model.eval()
    noise = model.head_names.index("noise")
    ramps = _ramps(args.ramps)
    cases = [("clean", None)] + [(e, s) for e in EXPERIMENTS for s in severities_of(e)]
    scores: dict[tuple[float, float], list[tuple[str, float, float]]] = {r: [] for r in ramps}
    for s in slices:
        ref = znorm(np.asarray(s.image, np.float64))
        for experiment, severity in cases:
            if experiment == "clean":
                corrupted = np.asarray(s.image, np.float32)
            else:
                rng = corruption_rng(0, "eval", experiment, severity, s.key, s.index)
                corrupted = make_case(s.image, experiment, severity, rng).corrupted
            x = torch.from_numpy(np.asarray(corrupted, np.float32))[None]
            u = ((x - x.mean()) / x.std(correction=0))[:, None]
            with torch.no_grad():
                p = model.residuals(u)[0].double()
                snr = estimated_snr_db(u[:, 0])
            others = u[0, 0].double() + p.sum(dim=0) - p[noise]
            for ramp in ramps:
                out = others + float(snr_gate(snr, *ramp)[0]) * p[noise]
                m = compute_metrics(ref, znorm(out.numpy()))
                scores[ramp].append((experiment, m["ssim"], m["vif"]))
    print(f"{len(slices)} training slices x {len(cases)} cases")
    for ramp, rows in scores.items():
        criterion = np.mean([np.log(max(0.0, 2.0 - a - b) + 1e-3) for _, a, b in rows])
        clean = [(a, b) for name, a, b in rows if name == "clean"]
        print(
            f"ramp {ramp[0]:g}-{ramp[1]:g} dB: clean SSIM/VIF {np.mean([a for a, _ in clean]):.4f}/"
            f"{np.mean([b for _, b in clean]):.4f}  criterion {criterion:.4f}"
        )


if __name__ == "__main__":
    main()
