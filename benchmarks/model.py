"""Forward-pass speed of the model presets on this CPU, next to a matmul ceiling.

Prints a Markdown table: per preset and batch size, milliseconds per 320x320 slice (best of N timed
repeats after one warm-up), FLOPs per slice counted by ``torch.utils.flop_counter.FlopCounterMode``
(convolutions and matrix products only; batch norm, activations and FFTs are not counted), and the
achieved GFLOP/s, compared with the GFLOP/s of a float32 2048x2048 matrix product on the same machine
(best of runs before and after the models).

Usage::

    python benchmarks/model.py                  # all presets
    python benchmarks/model.py --presets compact tiny --repeats 10

On a shared machine the numbers are pessimistic (other processes compete for the cores).
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from artefix.models import PRESETS, build_model, count_parameters


def matmul_gflops(n: int = 2048, repeats: int = 10) -> float:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(n, n, generator=g), torch.randn(n, n, generator=g)
    a @ b
    best = min(_timed(lambda: a @ b) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def flops_per_slice(model: torch.nn.Module, size: int) -> int:
    with FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 1, size, size))
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--size", type=int, default=320, help="slice height and width (px)")
    parser.add_argument("--repeats", type=int, default=5, help="timed repeats (paper preset: 2)")
    args = parser.parse_args()

    torch.set_num_threads(os.cpu_count() or 1)
    ceilings = [matmul_gflops()]
    rows = []
    with torch.inference_mode():
        for name in args.presets:
            model = build_model(name, seed=0).eval()
            flops = flops_per_slice(model, args.size)
            batches = (1,) if name == "paper" else (1, 8)
            repeats = min(args.repeats, 2) if name == "paper" else args.repeats
            for batch in batches:
                x = torch.randn(batch, 1, args.size, args.size, generator=torch.Generator().manual_seed(1))
                model(x)  # warm-up (oneDNN primitive creation)
                best = min(_timed(lambda m=model, x=x: m(x)) for _ in range(repeats))
                per_slice = best / batch
                rows.append((name, count_parameters(model), batch, per_slice, flops, flops / per_slice / 1e9))
            del model
    ceilings.append(matmul_gflops())  # best of before and after: contention only lowers it
    ceiling = max(ceilings)

    print(
        f"CPU: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, input {args.size}x{args.size}\n"
    )
    print("| preset | parameters | batch | ms / slice | slices / s | GFLOP / slice | GFLOP/s | % of matmul |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, params, batch, per_slice, flops, gflops in rows:
        print(
            f"| {name} | {params:,} | {batch} | {per_slice * 1e3:.1f} | {1 / per_slice:.1f} | "
            f"{flops / 1e9:.2f} | {gflops:.1f} | {100 * gflops / ceiling:.0f} % |"
        )
    print(
        f"\nfloat32 2048x2048 matmul ceiling: {ceiling:.1f} GFLOP/s "
        f"(measured before/after: {ceilings[0]:.1f} / {ceilings[1]:.1f})"
    )


if __name__ == "__main__":
    main()
