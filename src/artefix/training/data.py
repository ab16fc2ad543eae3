"""Training and validation data for Lightning: scans (split by patient) or the built-in sample.

Every training item is a clean slice corrupted on the fly by one simulated artefact
(:class:`artefix.data.dataset.ArtefactDataset`). The simulation runs inside the DataLoader worker
processes (``data.num_workers``), on the CPU, in parallel with the training step on the accelerator, so
it does not starve the model as long as ``num_workers * (slices simulated per second per worker)`` exceeds
the training throughput (``benchmarks/training.py`` measures both).

Randomness (no global RNG is touched):

* epoch ``e`` of the training set draws item ``i``'s corruption from ``default_rng([seed_r, e, i])``
  (``seed_r`` the seed of repeat ``r``; see :class:`RepeatedDataset`), and the order of the items from
  ``default_rng([seed, e])`` (:class:`EpochSampler`); the DataModule sets the epoch before it builds each
  epoch's DataLoader, so a resumed run continues with the corruptions of its next epoch;
* the validation corruption of a slice depends only on the seed and the slice's name
  (``"folder/file#index"``), so every epoch, run and machine validates on the same images.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from artefix.data.augment import Augmentation, BackgroundMask, ScaleCrop
from artefix.data.dataset import ArtefactDataset, GroupedShuffleSampler, TrainingSample, stable_entropy
from artefix.data.io import Volume, check_finite, read_volume
from artefix.data.samples import load_sample
from artefix.data.slices import SliceIndex
from artefix.data.splits import SET_NAMES, Split, common_root, discover_scans, make_split
from artefix.errors import InputError
from artefix.training.config import DataSection

log = logging.getLogger(__name__)

SAMPLE_FOLDER = "builtin-sample"
"""Pseudo folder of the built-in sample slices (their slice names are ``builtin-sample/NAME#0``)."""

__all__ = ["ArtefactDataModule", "DataPlan", "EpochSampler", "RepeatedDataset", "plan_data", "read_scan"]


def read_scan(path: Path) -> Volume:
    """Read a scan for training: :func:`artefix.data.io.read_volume`, plus two cases it does not cover.

    * ``builtin-sample/NAME``: a built-in sample slice (:func:`artefix.data.samples.load_sample`).
    * an ``.npz`` holding several 2D arrays of one shape (e.g. the MSD slices of the shared data): stacked
      along a last axis into one ``(H, W, N)`` volume instead of reading only its first array.
    """
    path = Path(path)
    if path.parent.name == SAMPLE_FOLDER and not path.exists():
        try:
            return Volume(load_sample(path.name), spacing=(1.0, 1.0), source=path)
        except ValueError as exc:
            raise InputError(str(exc)) from None
    if path.suffix.lower() == ".npz":
        with np.load(path, allow_pickle=False) as npz:
            arrays = [npz[k] for k in npz.files]
        if len(arrays) > 1 and all(a.ndim == 2 and a.shape == arrays[0].shape for a in arrays):
            stack = np.stack([np.asarray(a, np.float32) for a in arrays], axis=-1)
            return check_finite(Volume(stack, spacing=(1.0, 1.0, 1.0), source=path, meta={"slice_axis": 2}))
    return read_volume(path)


class RepeatedDataset(Dataset[TrainingSample]):
    """``repeats`` differently seeded corruptions of each slice of one :class:`SliceIndex`.

    Item ``j`` is item ``j mod n`` of copy ``j div n`` (``n`` slices); copy 0 uses ``seed`` itself, copy
    ``r > 0`` a seed derived from ``(seed, r)`` by SHA-256, so ``repeats=1`` is the plain dataset.

    Args:
        index: The clean slices (shared by all copies, so their volume cache is shared too).
        repeats: Number of copies (>= 1).
        seed: Base seed.
        **kwargs: :class:`ArtefactDataset` options (``mode``, ``artefacts``, ``weights``, ``output``).
    """

    def __init__(self, index: SliceIndex, repeats: int = 1, seed: int = 0, **kwargs: Any) -> None:
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        seeds = [int(seed)] + [stable_entropy(f"artefix-repeat/{seed}/{r}", 1)[0] for r in range(1, repeats)]
        self.copies = [ArtefactDataset(index, seed=s, **kwargs) for s in seeds]
        self.index = index

    def __len__(self) -> int:
        """Slices times repeats."""
        return len(self.index) * len(self.copies)

    def set_epoch(self, epoch: int) -> None:
        """Select the training corruptions of ``epoch`` in every copy."""
        for copy in self.copies:
            copy.set_epoch(epoch)

    def __getitem__(self, j: int) -> TrainingSample:
        """Item ``j`` (its ``index`` field is ``j``)."""
        if not 0 <= j < len(self):
            raise IndexError(f"item {j} out of range for {len(self)} items")
        n = len(self.index)
        return self.copies[j // n][j % n]._replace(index=j)


class EpochSampler(Sampler[int]):
    """Training order of a :class:`RepeatedDataset`, reproducible per epoch.

    With ``grouped`` the slices of a few scans at a time are shuffled together
    (:class:`~artefix.data.dataset.GroupedShuffleSampler`, one pass per repeat) so each worker's small
    volume cache serves most reads; otherwise all items are permuted.

    Args:
        dataset: The dataset.
        seed: Seed of the order; epoch ``e`` uses ``default_rng([seed, e])``.
        group: Scans per shuffled group (``grouped`` only).
        grouped: Group by scan (large data) or permute everything (data that fits in the cache).
    """

    def __init__(self, dataset: RepeatedDataset, seed: int = 0, group: int = 4, grouped: bool = True) -> None:
        self.n = len(dataset.index)
        self.repeats = len(dataset.copies)
        self.seed = int(seed)
        self.grouped = grouped
        self.base = GroupedShuffleSampler(dataset.index, group=group, seed=seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Items per epoch."""
        return self.n * self.repeats

    def __iter__(self) -> Iterator[int]:
        """Item positions of the current epoch."""
        if not self.grouped:
            yield from (int(p) for p in np.random.default_rng([self.seed, self.epoch]).permutation(len(self)))
            return
        for r in range(self.repeats):
            self.base.set_epoch(self.epoch * self.repeats + r)
            yield from (p + r * self.n for p in self.base)


@dataclass(frozen=True)
class DataPlan:
    """Which scans train and validate, decided once before training.

    Attributes:
        train_files: Training scans.
        val_files: Validation scans.
        patient_of: Patient ID of every scan.
        split: The patient split (``None`` for the built-in sample).
        cached: Whether all prepared scans stay in memory (small data).
    """

    train_files: tuple[Path, ...]
    val_files: tuple[Path, ...]
    patient_of: dict[Path, str]
    split: Split | None = None
    cached: bool = False

    def describe(self) -> dict[str, Any]:
        """Counts and file lists for the model card."""
        return {
            "train_files": [str(f) for f in self.train_files],
            "val_files": [str(f) for f in self.val_files],
            "train_patients": sorted({self.patient_of[f] for f in self.train_files}),
            "val_patients": sorted({self.patient_of[f] for f in self.val_files}),
        }


def _split_files(split: Split, name: str, root: str | None) -> tuple[tuple[Path, ...], dict[Path, str]]:
    base = root if root is not None else split.root
    patient_of = {
        (Path(base) / entry if base is not None else Path(entry)): patient
        for patient, entries in split.sets[name].items()
        for entry in entries
    }
    return tuple(sorted(patient_of)), patient_of


def _make_split(data: DataSection) -> Split:
    """Discover the scans under ``data.roots`` and split them by patient (per root with ``stratify``)."""
    base = Path(data.base) if data.base is not None else None
    roots = [(base / r if base is not None else Path(r)) for r in data.roots]
    groups = [discover_scans(r) for r in roots] if data.stratify else [discover_scans(roots)]
    if not any(groups):
        raise InputError(f"no scans found under {', '.join(str(r) for r in roots)}")
    files = sorted({f for g in groups for f in g})
    root = base if base is not None else common_root(files)
    sets: dict[str, dict[str, tuple[str, ...]]] = {name: {} for name in SET_NAMES}
    rule = ""
    try:
        for group in (g for g in groups if g):
            part = make_split(group, data.fractions, data.split_seed, root=root)
            rule = part.rule
            for name in SET_NAMES:
                for patient, entries in part.sets[name].items():
                    sets[name][patient] = tuple(sorted({*sets[name].get(patient, ()), *entries}))
        return Split(sets, data.fractions, data.split_seed, root.as_posix(), rule)
    except ValueError as exc:
        raise InputError(f"cannot split the scans by patient: {exc}") from None


def plan_data(data: DataSection, split_out: Path | None = None) -> DataPlan:
    """Decide the training and validation scans.

    ``source: sample`` uses the built-in slices named in ``train_samples`` / ``val_samples`` (one patient
    each). ``source: files`` loads ``data.split`` when given, else discovers the scans under ``roots``
    (relative to ``base``) and splits them by patient (:func:`artefix.data.splits.make_split`, per root when
    ``stratify``); the split is written to ``split_out`` when given.

    Raises:
        InputError: Missing roots or split file, no scans, or an empty training or validation set.
    """
    if data.source == "sample":
        train = tuple(Path(SAMPLE_FOLDER) / n for n in data.train_samples)
        val = tuple(Path(SAMPLE_FOLDER) / n for n in data.val_samples)
        return DataPlan(train, val, {f: f.name for f in train + val}, None, cached=True)
    split = Split.load(data.split) if data.split is not None else _make_split(data)
    root = data.base if data.split is not None and data.base is not None else None
    train, train_patients = _split_files(split, "train", root)
    val, val_patients = _split_files(split, "val", root)
    for name, files in (("training", train), ("validation", val)):
        if not files:
            raise InputError(
                f"the {name} set is empty (split fractions {split.fractions}, "
                f"{sum(len(v) for v in split.sets.values())} patients); give more patients or other fractions"
            )
    if split_out is not None:
        split.save(split_out)
    return DataPlan(train, val, {**train_patients, **val_patients}, split)


def _index(files: Sequence[Path], patient_of: dict[Path, str], data: DataSection, cached: bool) -> SliceIndex:
    try:
        index = SliceIndex(
            files,
            matrix=data.matrix,
            axis=data.axis,
            fit=data.fit,
            patient_of=patient_of.__getitem__,
            cache_size=None if cached else data.cache_size,
            reader=read_scan,
        )
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return index


class ArtefactDataModule(L.LightningDataModule):
    """Lightning DataModule of the on-the-fly corrupted training and validation slices.

    Args:
        data: The ``data`` section.
        plan: Scans to use (:func:`plan_data`).
        seed: Seed of the corruptions and of the training order.
    """

    def __init__(self, data: DataSection, plan: DataPlan, seed: int) -> None:
        super().__init__()
        self.data = data
        self.plan = plan
        self.seed = int(seed)
        self.train_set: RepeatedDataset | None = None
        self.val_set: RepeatedDataset | None = None

    def setup(self, stage: str | None = None) -> None:
        """Index the scans (one read each) and build the datasets; runs once per process."""
        if self.train_set is not None:
            return
        d = self.data
        options = {
            "artefacts": d.artefacts,
            "weights": d.weights,
            "output": d.output,
            "clean_fraction": d.clean_fraction,
            "severity_fraction": d.severity_fraction,
            "level_ranges": d.level_ranges,
            "crop": ScaleCrop(d.matrix) if d.fit == "native" else None,
        }
        train_index = _index(self.plan.train_files, self.plan.patient_of, d, self.plan.cached)
        val_index = _index(self.plan.val_files, self.plan.patient_of, d, self.plan.cached)
        for name, index in (("training", train_index), ("validation", val_index)):
            if len(index) == 0:
                raise InputError(f"the {name} scans hold no slice with enough foreground: {list(index.files)}")
        augment = Augmentation() if d.augment else None
        background = BackgroundMask(d.background) if d.background > 0 else None
        self.train_set = RepeatedDataset(
            train_index, d.repeats, self.seed, mode="train", augment=augment, background=background, **options
        )
        self.val_set = RepeatedDataset(val_index, d.val_repeats, self.seed, mode="val", **options)
        log.info("training on %d items, validating on %d", len(self.train_set), len(self.val_set))

    def _loader(
        self, dataset: Dataset[TrainingSample], batch_size: int, sampler: Sampler[int] | None, epoch: int
    ) -> DataLoader:
        # A private generator: otherwise every DataLoader iterator draws its base seed from torch's global RNG.
        generator = torch.Generator().manual_seed(stable_entropy(f"artefix-loader/{self.seed}/{epoch}", 1)[0])
        return DataLoader(
            dataset,
            batch_size=batch_size,
            sampler=sampler,
            num_workers=self.data.num_workers,
            pin_memory=torch.cuda.is_available(),
            drop_last=False,
            generator=generator,
        )

    def train_dataloader(self) -> DataLoader:
        """This epoch's loader (the trainer reloads it every epoch, after the epoch counter moved)."""
        assert self.train_set is not None, "setup() must run first"
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        self.train_set.set_epoch(epoch)
        sampler = EpochSampler(self.train_set, self.seed, self.data.cache_size, grouped=not self.plan.cached)
        sampler.set_epoch(epoch)
        return self._loader(self.train_set, self.data.batch_size, sampler, epoch)

    def val_dataloader(self) -> DataLoader:
        """The fixed validation set, in scan order."""
        assert self.val_set is not None, "setup() must run first"
        return self._loader(self.val_set, self.data.val_batch_size or self.data.batch_size, None, -1)
