"""Speed and memory of ``artefix correct`` on a 160 x 320 x 320 volume, against a classical chain.

The volume is built from the built-in brain slice (each slice scaled differently, plus Rician-like
noise), so nothing is downloaded. The model is the default shipped model when it is installed, else the
``compact`` preset with random weights (same architecture and cost; the report says which). Prints a
Markdown table:

* wall seconds and slices/s of :func:`artefix.correction.correct_volume` (in memory, batch ``--batch``),
  and of the whole file path (:func:`artefix.correction.correct_file`: read NIfTI, correct, write NIfTI
  and the four residual volumes);
* peak resident memory above the baseline (input volume + model loaded) during the in-memory run on 16
  slices and on the whole volume, from the kernel's VmHWM (reset through ``/proc/self/clear_refs`` where
  allowed): the difference is the output array, the rest is bounded by the batch; ``--tracemalloc``
  adds a traced run for the peak of NumPy/Python allocations;
* the classical chain per slice: N4 bias correction (SimpleITK, default schedule, Otsu mask) followed
  by BM3D denoising when ``bm3d`` is installed, else scikit-image's non-local means as a stand-in
  (labelled); timed on ``--classical-slices`` slices and extrapolated to the volume.

Usage: ``python benchmarks/correct.py [--slices 160] [--batch N] [--classical-slices 3] [--threads N]
[--ensemble 8] [--no-priors]``
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import resource
import tempfile
import time
import tracemalloc
from pathlib import Path

import numpy as np
import torch

from artefix.correction import (
    ExecutionSettings,
    InferenceOptions,
    OutputSpec,
    auto_batch_size,
    correct_file,
    correct_volume,
)
from artefix.data.io import Volume, write_volume
from artefix.data.samples import load_sample
from artefix.models import build_model
from artefix.models.checkpoint import save_model
from artefix.models.registry import DEFAULT_MODEL, list_models, load_named_model


def rss_mb(field: str = "VmRSS") -> float:
    """Current (VmRSS) or peak (VmHWM) resident memory of this process in MB."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def make_volume(n: int, seed: int = 0) -> np.ndarray:
    """(320, 320, n) float32 volume from the built-in slice with per-slice scale and noise."""
    rng = np.random.default_rng(seed)
    base = load_sample("brain-t1").astype(np.float32)
    scale = np.linspace(0.6, 1.4, n, dtype=np.float32)
    vol = base[..., None] * scale
    noise = rng.standard_normal((2, *vol.shape), dtype=np.float32) * 0.02 * float(base.max())
    return np.sqrt((vol + noise[0]) ** 2 + noise[1] ** 2)


def model_for_benchmark(tmp: Path) -> tuple[Path, str]:
    """Path of the default shipped model, or a saved compact model with random weights."""
    installed = {m.name: m for m in list_models()}
    if DEFAULT_MODEL in installed:
        return installed[DEFAULT_MODEL].weights, f"{DEFAULT_MODEL} (shipped)"
    path = save_model(build_model("compact", seed=0), tmp / "compact.safetensors", card={"name": "compact-random"})
    return path, "compact preset, random weights (no shipped weights yet)"


def classical_chain(slices: np.ndarray) -> tuple[float, str]:
    """Seconds per slice of N4 + BM3D (or NL-means stand-in) over the given (k, H, W) slices."""
    import SimpleITK as sitk  # noqa: N813 - the conventional alias
    from skimage.filters import threshold_otsu

    has_bm3d = importlib.util.find_spec("bm3d") is not None
    if has_bm3d:
        import bm3d

        label = "N4 (SimpleITK) + BM3D"
    else:
        from skimage.restoration import denoise_nl_means, estimate_sigma

        label = "N4 (SimpleITK) + NL-means (scikit-image; bm3d not installed)"
    t0 = time.perf_counter()
    for s in slices:
        image = sitk.GetImageFromArray(s.astype(np.float32))
        mask = sitk.GetImageFromArray((s > threshold_otsu(s)).astype(np.uint8))
        corrected = sitk.GetArrayFromImage(sitk.N4BiasFieldCorrectionImageFilter().Execute(image, mask))
        scale = float(corrected.max()) or 1.0
        if has_bm3d:
            bm3d.bm3d(corrected / scale, sigma_psd=0.02)
        else:
            x = corrected / scale
            denoise_nl_means(x, h=0.8 * float(estimate_sigma(x)), patch_size=5, patch_distance=6, fast_mode=True)
    return (time.perf_counter() - t0) / len(slices), label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=160)
    parser.add_argument("--batch", type=int, default=None, help="slices per call (default: auto_batch_size)")
    parser.add_argument("--classical-slices", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--skip-file", action="store_true", help="skip the end-to-end file run")
    parser.add_argument("--tracemalloc", action="store_true", help="also trace NumPy allocations (extra run)")
    parser.add_argument("--ensemble", type=int, default=None, help="self-ensemble (1, 2, 4, 8); default the model's")
    parser.add_argument("--no-priors", action="store_true", help="turn the model's physics priors off")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        weights, model_label = model_for_benchmark(tmp)
        model, card = load_named_model(weights)
        policy = model.policy.with_options(ensemble=args.ensemble, priors=not args.no_priors)
        array = make_volume(args.slices)
        volume = Volume(array, affine=np.diag([0.7, 0.7, 3.0, 1.0]), format="nifti", meta={"slice_axis": 2})
        correct_volume(Volume(array[..., :2].copy()), model, batch_size=args.batch, policy=policy)  # warm-up
        peaks = {}
        for n_run in sorted({min(16, args.slices), args.slices}):
            sub = Volume(array[..., :n_run], affine=volume.affine, format="nifti", meta={"slice_axis": 2})
            base = rss_mb()
            peak_reset = reset_peak()
            t0 = time.perf_counter()
            result = correct_volume(sub, model, batch_size=args.batch, matrix=card.get("matrix"), policy=policy)
            seconds = time.perf_counter() - t0
            peaks[n_run] = rss_mb("VmHWM") - base
            del result
        traced_peak = None
        if args.tracemalloc:
            tracemalloc.start()
            correct_volume(volume, model, batch_size=args.batch, matrix=card.get("matrix"), policy=policy)
            traced_peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()

        file_seconds = None
        if not args.skip_file:
            src = write_volume(volume, tmp / "scan.nii")
            t0 = time.perf_counter()
            correct_file(
                src,
                tmp / "out.nii",
                model=weights,
                inference=InferenceOptions(ensemble=args.ensemble, priors=not args.no_priors),
                outputs=OutputSpec(residuals=tmp / "res"),
                execution=ExecutionSettings(batch_size=args.batch),
            )
            file_seconds = time.perf_counter() - t0

        k = max(1, args.classical_slices)
        picks = np.moveaxis(array[..., np.linspace(0, args.slices - 1, k).astype(int)], -1, 0)
        per_slice, classical_label = classical_chain(picks)

    n = args.slices
    volume_mb = array.nbytes / 2**20
    batch_label = args.batch or f"auto ({auto_batch_size((320, 320), 'cpu')})"
    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}; model: {model_label}, self-ensemble {policy.ensemble}, "
        f"priors {'off' if args.no_priors else 'as shipped'}; "
        f"batch {batch_label}; volume {n} x 320 x 320 float32 "
        f"({volume_mb:.0f} MB)"
    )
    print()
    print("| what | seconds | slices/s |")
    print("|---|---:|---:|")
    print(f"| correct_volume (in memory) | {seconds:.1f} | {n / seconds:.1f} |")
    if file_seconds is not None:
        row = "correct_file (NIfTI in, NIfTI + 4 residual NIfTI out)"
        print(f"| {row} | {file_seconds:.1f} | {n / file_seconds:.1f} |")
    print(f"| {classical_label}, {k} slices timed, extrapolated | {per_slice * n:.1f} | {1 / per_slice:.2f} |")
    print()
    print(f"speed-up over the classical chain: {per_slice * n / seconds:.0f}x")
    hwm = "VmHWM reset before each run" if peak_reset else "VmHWM since process start (reset not permitted)"
    for n_run, extra in peaks.items():
        out_mb = n_run * 320 * 320 * 4 / 2**20
        print(
            f"peak RSS above baseline, correct_volume on {n_run} slices: {extra:.0f} MB ({hwm}; the output array "
            f"is {out_mb:.0f} MB of it, the rest is the batch's activations)"
        )
    print(f"baseline RSS (input volume + model + libraries): {base:.0f} MB")
    if traced_peak is not None:
        print(f"tracemalloc peak (NumPy/Python allocations) during correct_volume: {traced_peak / 2**20:.0f} MB")


if __name__ == "__main__":
    main()
