"""Throughput and memory of ``artefix qc`` and bulk ``artefix correct`` over many scans (issue #20, item 5).

Synthetic scans (``--size``, default 64 x 64 x 8 float32 NIfTI: the built-in brain slice resized, scaled per
slice, with Rician-like noise) are written into a temporary folder, then each configuration runs in a fresh
Python process (so one run's peak memory and warm caches do not leak into the next):

* ``qc``: :func:`artefix.qc.run.run_qc` (what ``artefix qc`` calls), all four outputs written;
* ``bulk``: :func:`artefix.correction.bulk.run_bulk` (what ``artefix correct DIR --out-dir OUT`` calls);

each with ``jobs=1`` (in the process itself), ``jobs=2`` (two spawned worker processes,
:func:`artefix.parallel.run_tasks`) and on a ``dask.distributed.LocalCluster`` of 2 worker processes with one
thread each (:func:`artefix.parallel.run_dask`; cluster start-up is not timed, the workers' model loading is),
for each number of scans in ``--scans``. The default shipped model is used.

Columns: wall seconds of the library call (model loading in the workers included, imports of the parent not),
scans per minute, seconds per scan, and peak resident memory per worker in MB. Peak memory is
``ru_maxrss``: of the process itself for ``jobs=1`` (``RUSAGE_SELF``; it includes the data and model of the
run), of the largest worker process for ``jobs=2`` (``RUSAGE_CHILDREN`` after the pool has shut down), and of
each Dask worker process (``RUSAGE_SELF`` read on the worker through ``Client.run``; the largest is shown).
A last table fits ``seconds = a + b * scans`` per configuration (least squares): ``b`` is the cost of one
more scan, ``a`` the fixed cost (pool or worker start, model loading), with the largest relative residual.

Usage: ``python benchmarks/qc_bulk.py [--scans 4 8 16] [--size 64 64 8] [--quick]`` (``--quick``: scans 2 4 8,
dask only at the largest count).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("jobs=1", "jobs=2", "dask x2")


def make_scans(folder: Path, count: int, size: tuple[int, int, int]) -> None:
    """Write ``count`` synthetic NIfTI scans of ``size`` into ``folder``."""
    import nibabel as nib
    import numpy as np
    import torch
    import torch.nn.functional as F

    from artefix.data.samples import load_sample

    folder.mkdir(parents=True, exist_ok=True)
    base = torch.from_numpy(load_sample("brain-t1").astype(np.float32))[None, None]
    base = F.interpolate(base, size=size[:2], mode="bilinear", align_corners=False)[0, 0].numpy()
    base /= float(base.max()) or 1.0
    for i in range(count):
        rng = np.random.default_rng(i)
        vol = base[..., None] * np.linspace(0.6, 1.4, size[2], dtype=np.float32)
        noise = rng.standard_normal((2, *vol.shape)).astype(np.float32) * 0.03
        vol = np.sqrt((vol + noise[0]) ** 2 + noise[1] ** 2).astype(np.float32)
        nib.save(nib.Nifti1Image(vol, np.eye(4)), str(folder / f"scan{i:03d}.nii.gz"))


def one_run(task: str, mode: str, scans: Path, out: Path) -> dict:
    """Run one configuration in this process; return wall seconds, scan count, failures and peak MB per worker."""
    from artefix.correction.bulk import run_bulk
    from artefix.correction.spec import ModelSpec
    from artefix.qc.discover import discover
    from artefix.qc.run import run_qc

    refs = discover([scans])
    spec = ModelSpec(None, "cpu")
    cluster = client = None
    jobs, scheduler = 1, None
    if mode == "jobs=2":
        jobs = 2
    elif mode == "dask x2":
        import distributed

        cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None)
        client = distributed.Client(cluster)
        scheduler = client
    try:
        start = time.perf_counter()
        if task == "qc":
            run = run_qc(refs, out, spec=spec, jobs=jobs, scheduler=scheduler)
            failed = len(run.failed)
            done = len(run.results) - failed
        else:
            run = run_bulk(refs, out, spec=spec, jobs=jobs, scheduler=scheduler)
            failed = len(run.failed)
            done = run.count("corrected")
        seconds = time.perf_counter() - start
        if mode == "jobs=1":
            peaks = [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024]
        elif mode == "jobs=2":  # the pool has shut down: its workers are reaped
            peaks = [resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024]
        else:
            got = client.run(lambda: resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            peaks = list(got.values())
    finally:
        if client is not None:
            client.close()
        if cluster is not None:
            cluster.close()
    return {"seconds": seconds, "scans": len(refs), "failed": failed, "done": done, "peak_mb": max(peaks)}


def fit(points: list[tuple[int, float]]) -> tuple[float, float, float]:
    """Least-squares ``seconds = a + b * n``; returns a, b and the largest relative residual."""
    n = len(points)
    mx = sum(p[0] for p in points) / n
    my = sum(p[1] for p in points) / n
    sxx = sum((p[0] - mx) ** 2 for p in points)
    b = sum((p[0] - mx) * (p[1] - my) for p in points) / sxx if sxx else 0.0
    a = my - b * mx
    worst = max(abs(y - (a + b * x)) / y for x, y in points)
    return a, b, worst


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--scans", type=int, nargs="+", default=None, help="Scan counts (default 4 8 16).")
    parser.add_argument("--size", type=int, nargs=3, default=(64, 64, 8), metavar=("X", "Y", "Z"))
    parser.add_argument("--quick", action="store_true", help="Scans 2 4 8; dask only at the largest count.")
    parser.add_argument("--one", nargs=4, metavar=("TASK", "MODE", "SCANS", "OUT"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        task, mode, scans, out = args.one
        print(json.dumps(one_run(task, mode, Path(scans), Path(out))))
        return

    counts = sorted(args.scans or ([2, 4, 8] if args.quick else [4, 8, 16]))
    size = tuple(args.size)
    import torch

    from artefix.models.registry import DEFAULT_MODEL

    print(
        f"# {platform.machine()}, {os.cpu_count()} CPU cores, Python {platform.python_version()}, "
        f"torch {torch.__version__}, model {DEFAULT_MODEL}, scans {size[0]}x{size[1]}x{size[2]} float32 NIfTI"
    )
    rows: list[tuple[str, str, int, dict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for n in counts:
            make_scans(root / f"in{n}", n, size)
        print()
        print("| task | workers | scans | seconds | scans / min | s / scan | peak MB / worker | done | failed |")
        print("|---|---|---|---|---|---|---|---|---|")
        for task in ("qc", "bulk"):
            for mode in MODES:
                for n in counts:
                    if args.quick and mode == "dask x2" and n != counts[-1]:
                        continue
                    out = root / f"out-{task}-{mode.replace(' ', '').replace('=', '')}-{n}"
                    proc = subprocess.run(
                        [sys.executable, __file__, "--one", task, mode, str(root / f"in{n}"), str(out)],
                        capture_output=True,
                        text=True,
                        check=False,
                    )
                    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
                    if proc.returncode or not lines:
                        print(f"| {task} | {mode} | {n} | error: {proc.stderr.strip().splitlines()[-1:]} |||||")
                        continue
                    r = json.loads(lines[-1])
                    rows.append((task, mode, n, r))
                    print(
                        f"| {task} | {mode} | {r['scans']} | {r['seconds']:.1f} | {60 * r['scans'] / r['seconds']:.1f}"
                        f" | {r['seconds'] / r['scans']:.2f} | {r['peak_mb']:.0f} | {r['done']} | {r['failed']} |",
                        flush=True,
                    )
    print()
    print("| task | workers | fixed s (a) | s per extra scan (b) | worst rel. residual | peak MB range |")
    print("|---|---|---|---|---|---|")
    for task in ("qc", "bulk"):
        for mode in MODES:
            mine = [(n, r) for t, m, n, r in rows if t == task and m == mode]
            if len(mine) < 2:
                continue
            a, b, worst = fit([(n, r["seconds"]) for n, r in mine])
            peaks = [r["peak_mb"] for _, r in mine]
            print(f"| {task} | {mode} | {a:.1f} | {b:.2f} | {100 * worst:.0f}% | {min(peaks):.0f}-{max(peaks):.0f} |")


if __name__ == "__main__":
    main()
