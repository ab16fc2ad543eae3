"""PyTorch dataset that corrupts every clean slice with exactly one simulated artefact, on the fly.

Each item is a clean slice from a :class:`~artefix.data.slices.SliceIndex` (magnitude, scaled by its
volume's 99th percentile, resampled to the model's matrix) and one corruption drawn from the paper's
training distribution (:func:`artefix.artefacts.sampler.sample_training_corruption`: one artefact out of
``artefacts``, uniformly unless ``weights``, with random parameters). The corruption is applied to the
non-negative image (a magnitude of a Z-normalised image would fold its negative background up), both
images are converted with ``output`` and then Z-normalised per slice, ``(x - mean(x)) / std(x)``, as the
model expects.

Randomness, without any global RNG:

* ``mode="train"``: the corruption of item ``i`` in epoch ``e`` comes from
  ``np.random.default_rng([seed, e, i])``, so every epoch sees fresh corruptions and any epoch can be
  replayed. Call :meth:`ArtefactDataset.set_epoch` before iterating the epoch's DataLoader. The epoch
  lives in a shared-memory tensor, so this works with DataLoader workers whether they are re-created
  every epoch (the default, ``persistent_workers=False``: each epoch's workers get a fresh copy of the
  dataset) or persistent (they read the shared value).
* ``mode="val"`` / ``"test"``: the corruption of a slice depends only on ``seed`` and the slice's name
  ``"parent-folder/file-name#slice"`` (:attr:`~artefix.data.slices.SliceRef.key`) through SHA-256 (not
  Python's salted ``hash``), never on the epoch, the item's position, the machine or the process, so every
  epoch and every run evaluates the same images.

Example:
    >>> from torch.utils.data import DataLoader  # doctest: +SKIP
    >>> ds = ArtefactDataset.from_split(split, "train", matrix=(128, 128))  # doctest: +SKIP
    >>> loader = DataLoader(ds, batch_size=8, shuffle=True, num_workers=2)  # doctest: +SKIP
    >>> for epoch in range(10):  # doctest: +SKIP
    ...     ds.set_epoch(epoch)
    ...     for batch in loader:  # batch.corrupted (8, 1, 128, 128), batch.artefact (8,)
    ...         ...
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from artefix.artefacts.base import params_to_dict, stable_entropy, to_output, znorm
from artefix.artefacts.sampler import (
    BRAIN_TRAINING,
    PELVIS_TRAINING,
    apply_params,
    check_level_ranges,
    get_spec,
    head_of,
    sample_training_corruption,
)
from artefix.data.augment import Augmentation, BackgroundMask, ScaleCrop
from artefix.data.slices import SliceIndex
from artefix.data.splits import Split

Mode = Literal["train", "val", "test"]
MODES: tuple[str, ...] = ("train", "val", "test")
OUTPUTS: tuple[str, ...] = ("magnitude", "real")

__all__ = [
    "BRAIN_TRAINING",
    "NO_ARTEFACT",
    "PELVIS_TRAINING",
    "ArtefactDataset",
    "GroupedShuffleSampler",
    "TrainingSample",
    "stable_entropy",
]


#: Extra entropy word that separates the augmentation stream from the corruption stream.
AUGMENT_STREAM = 0xA06
#: ``artefact`` label of an item left clean (``clean_fraction``): no head should change it.
NO_ARTEFACT = -1


class TrainingSample(NamedTuple):
    """One training pair; the default ``collate_fn`` batches it field by field.

    Attributes:
        corrupted: Model input, float32, shape ``(1, H, W)``, Z-normalised.
        clean: Target, float32, shape ``(1, H, W)``, Z-normalised.
        artefact: int64 scalar tensor, index of the head that corrects the artefact (0 bias,
            1 subsampling, 2 motion, 3 noise; periodic motion is 2), i.e. ``y`` of the multi-task loss;
            :data:`NO_ARTEFACT` (-1) for an item left clean.
        params: The corruption's parameters as a JSON object string (``"artefact"`` names it, ``"none"``
            for a clean item), for logging and replay (``json.loads``); batched as a tuple of strings.
        index: Position of the item in the dataset.
    """

    corrupted: torch.Tensor
    clean: torch.Tensor
    artefact: torch.Tensor
    params: str
    index: int


class ArtefactDataset(Dataset[TrainingSample]):
    """Clean slices corrupted on the fly by one simulated artefact each.

    Attributes:
        index: The clean slices.
        mode: ``"train"`` (fresh corruptions per epoch) or ``"val"``/``"test"`` (fixed per slice).
        artefacts: Artefact names to draw from.
        weights: Their probabilities (``None``: uniform).
        output: ``"magnitude"`` (default; what scanners deliver) or ``"real"`` (the real part, what the
            paper's code used) for both images.
        seed: Base seed of every corruption.
        clean_fraction: Probability that an item is left clean (input = target, label -1).
        severity_fraction: Probability of a draw from the evaluation family (see
            :func:`~artefix.artefacts.sampler.sample_training_corruption`).
        level_ranges: Per-artefact level ranges of those draws that replace the registry's.
        crop: Resolution/field-of-view augmentation of a ``fit="native"`` index (random in training,
            the centre window at native pixels in validation).
    """

    def __init__(
        self,
        index: SliceIndex,
        *,
        mode: Mode = "train",
        artefacts: Sequence[str] = BRAIN_TRAINING,
        weights: Sequence[float] | None = None,
        output: Literal["magnitude", "real"] = "magnitude",
        seed: int = 0,
        augment: Augmentation | None = None,
        clean_fraction: float = 0.0,
        severity_fraction: float = 0.0,
        level_ranges: Mapping[str, Sequence[float]] | None = None,
        crop: ScaleCrop | None = None,
        background: BackgroundMask | None = None,
    ) -> None:
        """Wrap a :class:`SliceIndex`; see :meth:`from_files` and :meth:`from_split` to build one.

        Args:
            index: Clean slices; build it with ``normalise="percentile"`` or ``"none"`` (non-negative
                magnitudes), not ``"zscore"``.
            mode: ``"train"``, ``"val"`` or ``"test"``.
            artefacts: :data:`BRAIN_TRAINING` (default: bias, subsampling, motion, noise) or
                :data:`PELVIS_TRAINING` (adds periodic motion), or any names of the registry.
            weights: Probabilities of ``artefacts`` (normalised), default uniform.
            output: ``"magnitude"`` or ``"real"``.
            seed: Base seed (non-negative).
            augment: Random flips/turns/gamma of the clean slice before corruption, in ``"train"``
                mode only (drawn from a stream of its own, so the corruption parameters do not change).
            clean_fraction: Probability in ``[0, 1)`` that an item stays clean, so the model also learns
                to leave artefact-free images alone (0: the paper, every item has one artefact).
            severity_fraction: Probability in ``[0, 1]`` of drawing the artefact from its evaluation
                family at a random level (0: the paper's training distribution only).
            level_ranges: Per-artefact ``(low, high)`` levels of those draws instead of the registry's
                (:func:`~artefix.artefacts.sampler.check_level_ranges`).
            crop: Required for (and only for) a ``fit="native"`` index: cuts each native slice to
                ``crop.matrix`` (must equal the index's matrix); random zoom and window in ``"train"``
                mode (augmentation stream), centre window at native pixels otherwise.
            background: Random zeroing of the background before or after the corruption, in ``"train"``
                mode only (augmentation stream; nothing is drawn when None).

        Raises:
            ValueError: On an unknown mode, artefact name or output, bad weights, or a Z-normalised index.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        if output not in OUTPUTS:
            raise ValueError(f"output must be one of {', '.join(OUTPUTS)}, got {output!r}")
        if not artefacts:
            raise ValueError("artefacts must name at least one artefact")
        for name in artefacts:
            get_spec(name)
        if weights is not None:
            w = np.asarray(weights, dtype=float)
            if w.shape != (len(artefacts),) or np.any(~np.isfinite(w)) or np.any(w < 0) or w.sum() <= 0:
                raise ValueError(
                    f"weights must be {len(artefacts)} non-negative numbers with a positive sum, got {tuple(weights)}"
                )
        if int(seed) < 0:
            raise ValueError(f"seed must be non-negative, got {seed}")
        if not 0.0 <= float(clean_fraction) < 1.0:
            raise ValueError(f"clean_fraction must be in [0, 1), got {clean_fraction!r}")
        if not 0.0 <= float(severity_fraction) <= 1.0:
            raise ValueError(f"severity_fraction must be in [0, 1], got {severity_fraction!r}")
        ranges = check_level_ranges(level_ranges)
        if (index.fit == "native") != (crop is not None):
            raise ValueError("a fit='native' SliceIndex needs a crop (ScaleCrop), and only such an index takes one")
        if crop is not None and tuple(crop.matrix) != tuple(index.matrix):
            raise ValueError(f"crop.matrix {crop.matrix} differs from the index matrix {index.matrix}")
        if index.normalise == "zscore":
            raise ValueError(
                "the SliceIndex is Z-normalised; build it with normalise='percentile' so that the "
                "simulators see non-negative magnitudes"
            )
        self.index = index
        self.mode: Mode = mode
        self.artefacts: tuple[str, ...] = tuple(artefacts)
        self.weights: tuple[float, ...] | None = None if weights is None else tuple(float(x) for x in weights)
        self.output: Literal["magnitude", "real"] = output
        self.seed = int(seed)
        self.augment = augment
        self.clean_fraction = float(clean_fraction)
        self.severity_fraction = float(severity_fraction)
        self.level_ranges = ranges
        self.crop = crop
        self.background = background
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @classmethod
    def from_files(
        cls,
        files: Sequence[str | Path],
        *,
        mode: Mode = "train",
        matrix: Sequence[int] = (320, 320),
        index_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ArtefactDataset:
        """Build the :class:`SliceIndex` of ``files`` (one read per scan) and wrap it.

        Args:
            files: Scans.
            mode: ``"train"``, ``"val"`` or ``"test"``.
            matrix: Model matrix ``(H, W)``; e.g. ``(128, 128)`` for fast CPU training.
            index_options: Further :class:`SliceIndex` options (``axis``, ``foreground``, ``fit``,
                ``patient_of``, ``cache_size``, ``reader``).
            **kwargs: :class:`ArtefactDataset` options (``artefacts``, ``weights``, ``output``, ``seed``).
        """
        index = SliceIndex(files, matrix=matrix, **(index_options or {}))
        return cls(index, mode=mode, **kwargs)

    @classmethod
    def from_split(
        cls,
        split: Split,
        mode: Mode,
        *,
        root: str | Path | None = None,
        matrix: Sequence[int] = (320, 320),
        index_options: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> ArtefactDataset:
        """The dataset of one set of a :class:`~artefix.data.splits.Split`, with the split's patient IDs.

        Args:
            split: The split.
            mode: Which set, also the dataset mode: ``"train"``, ``"val"`` or ``"test"``.
            root: Where the split's relative paths live (default: the root stored in the split).
            matrix: Model matrix ``(H, W)``.
            index_options: Further :class:`SliceIndex` options (not ``patient_of``).
            **kwargs: :class:`ArtefactDataset` options.

        Raises:
            ValueError: If the set is empty.
        """
        base = root if root is not None else split.root
        patient_of = {
            Path(base) / entry if base is not None else Path(entry): patient
            for patient, entries in split.sets[mode].items()
            for entry in entries
        }
        if not patient_of:
            raise ValueError(f"the split's {mode!r} set is empty (fractions {split.fractions})")
        files = sorted(patient_of)
        options = dict(index_options or {})
        options["patient_of"] = patient_of.__getitem__
        return cls.from_files(files, mode=mode, matrix=matrix, index_options=options, **kwargs)

    def __len__(self) -> int:
        """Number of slices."""
        return len(self.index)

    @property
    def epoch(self) -> int:
        """Current epoch (used by ``mode="train"`` only)."""
        return int(self._epoch.item())

    def set_epoch(self, epoch: int) -> None:
        """Select the training corruptions of ``epoch`` (>= 0); call before iterating the epoch."""
        if int(epoch) < 0:
            raise ValueError(f"epoch must be non-negative, got {epoch}")
        self._epoch.fill_(int(epoch))

    def rng_for(self, i: int) -> np.random.Generator:
        """The generator that draws item ``i``'s corruption in the current epoch (see the module docs)."""
        if not 0 <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} slices")
        if self.mode == "train":
            return np.random.default_rng([self.seed, self.epoch, i])
        return np.random.default_rng([self.seed, *stable_entropy(self.index.refs[i].key)])

    def params_for(self, i: int) -> Any:
        """The corruption parameters of item ``i`` in the current epoch (a frozen params dataclass).

        ``None`` when the item is left clean (``clean_fraction``).
        """
        rng = self.rng_for(i)
        if self.clean_fraction > 0 and rng.random() < self.clean_fraction:
            return None
        return sample_training_corruption(
            rng,
            self.index.matrix,
            self.artefacts,
            self.weights,
            severity_fraction=self.severity_fraction,
            level_ranges=self.level_ranges,
        )

    def __getitem__(self, i: int) -> TrainingSample:
        """Item ``i``: a fresh (train) or fixed (val/test) corruption of slice ``i``."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"item {i} out of range for {len(self)} slices")
        i = int(i) % len(self)
        params = self.params_for(i)
        clean = np.array(self.index.slice(i), dtype=np.float32)
        train = self.mode == "train"
        aug_rng = np.random.default_rng([self.seed, self.epoch, i, AUGMENT_STREAM]) if train else None
        if self.crop is not None:
            clean = self.crop(clean, aug_rng) if aug_rng is not None else self.crop.centre(clean)
        if self.augment is not None and aug_rng is not None:
            clean = self.augment(clean, aug_rng)
        when, mask = (None, None)
        if self.background is not None and aug_rng is not None:
            when, mask = self.background.draw(clean, aug_rng)
        if when == "before":
            clean = clean * mask
        if params is None:
            corrupted = to_output(clean, self.output)
            label, record = NO_ARTEFACT, {"artefact": "none"}
        else:
            corrupted = to_output(apply_params(clean, params), self.output)
            label, record = head_of(params).index, params_to_dict(params)
        clean = to_output(clean, self.output)
        if when == "after":
            corrupted, clean = corrupted * mask, clean * mask
        return TrainingSample(
            corrupted=torch.from_numpy(np.asarray(znorm(corrupted), dtype=np.float32))[None],
            clean=torch.from_numpy(np.asarray(znorm(clean), dtype=np.float32))[None],
            artefact=torch.tensor(label, dtype=torch.int64),
            params=json.dumps(record, sort_keys=True),
            index=i,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(mode={self.mode!r}, slices={len(self)}, scans={len(self.index.files)}, "
            f"matrix={self.index.matrix}, artefacts={self.artefacts}, output={self.output!r}, "
            f"clean_fraction={self.clean_fraction}, severity_fraction={self.severity_fraction}, "
            f"seed={self.seed}, epoch={self.epoch})"
        )


class GroupedShuffleSampler(Sampler[int]):
    """Shuffle that keeps a few scans together, so a small volume cache serves most reads.

    Each epoch the scans are permuted, cut into groups of ``group`` scans, and the slices of each group
    are shuffled among themselves; a :class:`SliceIndex` with ``cache_size >= group`` then reads every
    scan about once per epoch (per DataLoader worker) instead of once per slice. Batches mix ``group``
    scans instead of the whole set, a mild loss of randomness.

    Args:
        dataset: An :class:`ArtefactDataset` or a :class:`SliceIndex`.
        group: Scans per group (>= 1).
        seed: Seed of the shuffle; the order of epoch ``e`` is ``np.random.default_rng([seed, e])``.
    """

    def __init__(self, dataset: ArtefactDataset | SliceIndex, group: int = 4, seed: int = 0) -> None:
        if group < 1:
            raise ValueError(f"group must be >= 1, got {group}")
        self.index = dataset.index if isinstance(dataset, ArtefactDataset) else dataset
        self.group = int(group)
        self.seed = int(seed)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Use the order of ``epoch``."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        """Number of slices."""
        return len(self.index)

    def __iter__(self) -> Iterator[int]:
        """Slice positions of the current epoch's order."""
        rng = np.random.default_rng([self.seed, self.epoch])
        scans = rng.permutation(len(self.index.files))
        for start in range(0, scans.size, self.group):
            members = [self.index.slices_of(int(f)) for f in scans[start : start + self.group]]
            positions = np.concatenate([np.arange(r.start, r.stop) for r in members])
            yield from (int(p) for p in rng.permutation(positions))
