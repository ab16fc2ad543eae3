"""Does artefact simulation starve training? Samples per second with and without it.

Rows of the printed Markdown table (all on the CPU of this machine):

* ``data: clean only``: the DataLoader delivers (clean, clean) pairs: slice preparation, Z-normalisation,
  collation; no artefact simulation. The pipeline's floor.
* ``data: with simulation``: the training dataset (one random artefact per slice, the paper's brain
  distribution), for 0 and N worker processes.
* ``train step``: forward + backward + RMSprop step of the model on a fixed batch (no data loading).
* ``end to end``: DataLoader with simulation feeding training steps.

Simulation keeps up with training when ``data: with simulation`` (workers) >= ``train step``. On a GPU
the train step is much faster, and the simulation rate scales with the number of worker processes
(``data.num_workers``), one CPU core each.

Usage: ``python benchmarks/training.py [--matrix 320] [--preset compact] [--batch 8] [--workers 2]``
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from artefix.artefacts.base import znorm
from artefix.data.dataset import TrainingSample
from artefix.losses import MultiTaskLoss
from artefix.models import build_model
from artefix.training.config import DataSection
from artefix.training.data import ArtefactDataModule, RepeatedDataset, plan_data


class CleanOnly(Dataset[TrainingSample]):
    """The same items as a :class:`RepeatedDataset`, without corrupting them."""

    def __init__(self, dataset: RepeatedDataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, j: int) -> TrainingSample:
        index = self.dataset.index
        clean = np.array(index.slice(j % len(index)), dtype=np.float32)
        image = torch.from_numpy(np.asarray(znorm(clean), dtype=np.float32))[None]
        return TrainingSample(image, image.clone(), torch.tensor(0), "{}", j)


def loader_rate(dataset: Dataset, batch: int, workers: int, items: int) -> float:
    """Samples per second delivered by a DataLoader over ``items`` items (after one warm-up batch)."""
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    it = iter(loader)
    next(it)
    t0 = time.perf_counter()
    n = 0
    for b in it:
        n += b.corrupted.shape[0]
        if n >= items:
            break
    return n / (time.perf_counter() - t0)


def step_rate(preset: str, matrix: int, batch: int, steps: int) -> float:
    """Training samples per second of forward + backward + optimiser step on a fixed batch."""
    model = build_model(preset, seed=0)
    loss = MultiTaskLoss(deltas="mt_lc_brain", alpha=0.87)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    x = torch.randn(batch, 1, matrix, matrix)
    y = torch.randn(batch, 1, matrix, matrix)
    idx = torch.arange(batch) % 4

    def step() -> None:
        opt.zero_grad()
        out = model(x)
        loss(y, x, out.residuals, idx).total.backward()
        opt.step()

    step()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - t0)


def end_to_end_rate(dataset: Dataset, preset: str, batch: int, workers: int, steps: int) -> float:
    """Samples per second of training steps fed by the simulating DataLoader."""
    model = build_model(preset, seed=0)
    loss = MultiTaskLoss(deltas="mt_lc_brain", alpha=0.87)
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-4)
    loader = DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=workers, drop_last=True)
    t0 = None
    n = 0
    for k, b in enumerate(loader):
        if k == 1:
            t0, n = time.perf_counter(), 0
        opt.zero_grad()
        out = model(b.corrupted)
        loss(b.clean, b.corrupted, out.residuals, b.artefact).total.backward()
        opt.step()
        n += b.corrupted.shape[0]
        if k >= steps:
            break
    assert t0 is not None, "not enough batches"
    return n / (time.perf_counter() - t0)


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--matrix", type=int, default=320)
    parser.add_argument("--preset", default="compact")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--items", type=int, default=160, help="items per data measurement")
    parser.add_argument("--steps", type=int, default=6, help="training steps per measurement")
    args = parser.parse_args()

    data = DataSection(source="sample", matrix=(args.matrix, args.matrix), repeats=64, num_workers=0)
    dm = ArtefactDataModule(data, plan_data(data), seed=0)
    dm.setup("fit")
    train = dm.train_set
    rows = []
    default_threads = torch.get_num_threads()
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)  # workers always use one thread each
        rate = loader_rate(train, args.batch, 0, args.items // 2)
        rows.append((f"data: with simulation, in-process, {threads} torch thread(s)", rate))
    torch.set_num_threads(default_threads)
    for workers in (0, args.workers):
        rows.append(
            (f"data: clean only, {workers} workers", loader_rate(CleanOnly(train), args.batch, workers, args.items))
        )
        if workers:
            rows.append(
                (f"data: with simulation, {workers} workers", loader_rate(train, args.batch, workers, args.items))
            )
    for threads in sorted({1, default_threads}):
        torch.set_num_threads(threads)
        rate = step_rate(args.preset, args.matrix, args.batch, args.steps)
        rows.append((f"train step: {args.preset}, batch {args.batch}, {threads} torch thread(s)", rate))
        rate = end_to_end_rate(train, args.preset, args.batch, args.workers, args.steps)
        rows.append((f"end to end: {args.preset}, {args.workers} workers, {threads} torch thread(s)", rate))
    torch.set_num_threads(default_threads)
    cpu = platform.processor() or platform.machine()
    print(f"# training throughput, {args.matrix}x{args.matrix}, {cpu}, {os.cpu_count()} cores")
    print()
    print("| what | samples/s |")
    print("|---|---:|")
    for name, rate in rows:
        print(f"| {name} | {rate:.1f} |")


if __name__ == "__main__":
    main()
