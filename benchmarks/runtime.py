"""CPU speed of the two runtimes of ``artefix correct``: PyTorch (default) and ONNX Runtime (``--runtime onnx``).

Corrects the same stack of 320 x 320 slices (the built-in brain slice, each scaled differently, with
noise) with the default shipped model through :func:`artefix.correction.correct_volume`, once with the torch
model and once with :class:`artefix.models.onnx_runtime.OnnxModel`, after one warm-up run each (the ONNX
graph is exported once per slice size: that cost is printed on its own). Prints a Markdown table of wall
seconds and slices per second, and the largest difference between the two corrected stacks.

Needs the ``[export]`` extra (onnx, onnxruntime, onnxscript).

Usage: ``python benchmarks/runtime.py [--slices 32] [--threads 2] [--repeats 3]``
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from artefix.correction import correct_volume
from artefix.data.io import Volume
from artefix.data.samples import load_sample
from artefix.fft import fourier_resize
from artefix.models.onnx_runtime import OnnxModel
from artefix.models.registry import DEFAULT_MODEL, load_named_model


def make_stack(n: int, size: int = 320, seed: int = 0) -> np.ndarray:
    """``(size, size, n)`` float32: the built-in brain slice at ``size`` pixels, scaled per slice, with noise."""
    rng = np.random.default_rng(seed)
    base = fourier_resize(load_sample("brain-t1").astype(np.float64), (size, size)).clip(0)
    slices = [base * (0.5 + k / n) + rng.normal(0, 0.02 * base.max(), base.shape) for k in range(n)]
    return np.stack(slices, axis=-1).astype(np.float32)


def timed(fn, repeats: int) -> float:  # noqa: ANN001 - a no-argument callable
    """The fastest of ``repeats`` wall times of ``fn()``, seconds."""
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def main() -> None:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model, card = load_named_model(DEFAULT_MODEL)
    volume = Volume(make_stack(args.slices), meta={"slice_axis": 2})
    runtimes = {"torch": model, "onnx": None}

    start = time.perf_counter()
    runtimes["onnx"] = OnnxModel(model)
    first = correct_volume(Volume(volume.array[..., :1].copy()), runtimes["onnx"])  # exports the 320 x 320 graph
    export_s = time.perf_counter() - start
    outputs, rows = {}, []
    for name, net in runtimes.items():
        correct_volume(Volume(volume.array[..., :2].copy()), net)  # warm-up

        def run(net=net, name=name) -> None:  # noqa: ANN001
            outputs[name] = correct_volume(volume, net, matrix=card.get("matrix")).volume.array

        seconds = timed(run, args.repeats)
        rows.append((name, seconds, args.slices / seconds))
    diff = float(np.abs(outputs["torch"] - outputs["onnx"]).max() / np.abs(outputs["torch"]).max())
    print(
        f"{DEFAULT_MODEL}, {args.slices} slices of 320 x 320, {args.threads} threads, best of {args.repeats}; "
        f"{platform.processor() or platform.machine()}, torch {torch.__version__}\n"
    )
    print("| runtime | seconds | slices/s |\n|---|---|---|")
    for name, seconds, rate in rows:
        print(f"| {name} | {seconds:.2f} | {rate:.1f} |")
    print(
        f"\nONNX export and session for one slice size: {export_s:.1f} s (once per size and run; "
        f"{first.record.n_slices} slice corrected). Largest difference between the runtimes' outputs: "
        f"{diff:.1e} of the image's maximum."
    )


if __name__ == "__main__":
    main()
