"""What ``artefix correct --snr-scope`` changes on whole real scans: one SNR per scan or one per slice.

For each scan (NIfTI file or DICOM series folder) the default model corrects

* the scan as it is (clean: the ideal correction changes nothing), and
* the scan with complex Gaussian noise added to every slice at ``--snr`` dB (the paper's per-slice
  definition, each slice its own seed),

once with the noise gate on the scan's SNR (``scan``, the default: the median of the slices' estimates)
and once on each slice's own estimate (``slice``). Prints a Markdown table: per scan and scope, the scan's
SNR, how many slices the noise correction reached (gate weight above 0), and the mean SSIM / VIF over the
slices against the clean scan (z-normalised slices, as ``artefix evaluate`` scores them; slices with too
little anatomy for VIF's four scales, smaller than 41 x 41, or constant are skipped).

Usage: ``python benchmarks/snr_scope.py SCAN [SCAN ...] [--snr 5] [--model mt-lc-brain] [--max-slices 40]``,
e.g. with the validation and test scans of ``configs/release/brain_split.json`` and a ProstateX series.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

import artefix
from artefix.artefacts.base import znorm
from artefix.correction import correct_volume
from artefix.data.io import Volume, read_volume
from artefix.evaluation.metrics import compute_metrics, foreground_mask
from artefix.models.registry import load_named_model


def _stack(volume: Volume) -> tuple[np.ndarray, int]:
    axis = volume.meta.get("slice_axis")
    axis = volume.array.ndim - 1 if axis is None else int(axis)
    return np.moveaxis(np.asarray(volume.array, dtype=np.float64), axis, 0), axis


def _scores(clean: np.ndarray, image: np.ndarray, keep: np.ndarray) -> tuple[float, float]:
    ssim, vif = [], []
    for z in keep:
        ref = np.asarray(znorm(clean[z]))
        m = compute_metrics(ref, np.asarray(znorm(image[z])), foreground_mask(ref))
        ssim.append(m["ssim"])
        vif.append(m["vif"])
    return float(np.mean(ssim)), float(np.mean(vif))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scans", nargs="+", type=Path)
    parser.add_argument("--snr", type=float, default=5.0, help="SNR (dB) of the added noise")
    parser.add_argument("--model", default="mt-lc-brain")
    parser.add_argument("--max-slices", type=int, default=40, help="central slices kept per scan (0: all)")
    args = parser.parse_args()

    model, card = load_named_model(args.model)
    lo, hi = model.policy.noise_snr or (np.inf, np.inf)
    print(f"model {args.model}, noise gate {lo:g}-{hi:g} dB, added noise {args.snr:g} dB\n")
    print("| scan | input | scope | SNR (dB) | slices denoised | SSIM | VIF |")
    print("|---|---|---|---|---|---|---|")
    start = time.perf_counter()
    for path in args.scans:
        volume = read_volume(path)
        clean, axis = _stack(volume)
        if args.max_slices and clean.shape[0] > args.max_slices:
            first = (clean.shape[0] - args.max_slices) // 2
            clean = clean[first : first + args.max_slices]
        keep = np.flatnonzero([s.max() > s.min() and min(s.shape) >= 41 for s in clean])
        noisy = clean.copy()
        for z in keep:
            noisy[z] = artefix.simulate(clean[z], "noise", severity=args.snr, seed=z)
        for label, stack in (("clean", clean), (f"{args.snr:g} dB", noisy)):
            vol = Volume(np.moveaxis(stack, 0, axis).astype(np.float32), meta={"slice_axis": axis})
            for scope in ("scan", "slice"):
                result = correct_volume(vol, model, matrix=card.get("matrix"), snr_scope=scope)
                record = result.record
                weights = record.noise_gate_weights()[keep]
                out, _ = _stack(result.volume)
                ssim, vif = _scores(clean, out, keep)
                shown = record.scan_snr if scope == "scan" else float(np.nanmedian(record.snr_db))
                name = path.name if path.is_dir() else path.name.split(".")[0]
                print(
                    f"| {name} | {label} | {scope} | {shown:.1f} | {int((weights > 0).sum())}/{keep.size} "
                    f"| {ssim:.4f} | {vif:.4f} |"
                )
            ssim, vif = _scores(clean, stack, keep)
            print(f"| {name} | {label} | (input) | | | {ssim:.4f} | {vif:.4f} |")
    print(f"\n{time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
