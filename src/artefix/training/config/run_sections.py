"""The ``data``, ``trainer`` and ``tune`` sections of a training configuration."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from artefix.artefacts.names import HEADS
from artefix.training.config.checks import _choice, _float, _int, _is_int, _limit, _names

SOURCES: tuple[str, ...] = ("files", "sample")
OUTPUTS: tuple[str, ...] = ("magnitude", "real")
PRECISIONS: tuple[str, ...] = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true")
PROGRESS_BARS: tuple[str, ...] = ("rich", "tqdm", "none")
VAL_METRICS: tuple[str, ...] = ("mse", "ssim", "vif")
SAMPLERS: tuple[str, ...] = ("tpe", "gp", "random")
PRUNERS: tuple[str, ...] = ("median", "none")
MONITORS: tuple[str, ...] = ("val/mse", "val/loss")
KEEPS: tuple[str, ...] = ("best", "last")


@dataclass(frozen=True)
class DataSection:
    """Training and validation data (see :mod:`artefix.training.data`).

    Attributes:
        source: ``files`` (scans under ``roots``, split by patient) or ``sample`` (the built-in slices).
        base: Folder that relative ``roots`` are taken from (``--data-root`` on the command line).
        roots: Scan files or folders searched by :func:`artefix.data.splits.discover_scans`.
        split: A split JSON (:meth:`artefix.data.splits.Split.save`) to use instead of making one; when
            ``None`` the split is made from ``roots`` with ``fractions`` and ``split_seed`` and saved in
            the run folder as ``split.json``.
        fractions: ``(train, val, test)`` patient fractions (brain 0.7/0.1/0.2, pelvis 0.8/0.2/0).
        stratify: Split the patients of every root separately (then merge), so that each collection is
            represented in each set as far as its patient count allows.
        split_seed: Seed of the patient shuffle.
        train_samples: Built-in sample names for training (``source: sample``).
        val_samples: Built-in sample names for validation (``source: sample``).
        matrix: Model matrix ``(H, W)`` in pixels (k-space crop/pad of every slice).
        artefacts: Artefacts of the training distribution (one per slice, uniformly unless ``weights``).
        weights: Optional probabilities of ``artefacts``.
        output: ``magnitude`` or ``real`` (the authors' code) image after k-space corruption.
        batch_size: Training batch size per device.
        val_batch_size: Validation batch size (``None``: ``batch_size``).
        num_workers: DataLoader worker processes that read scans and simulate artefacts (0: in-process).
        repeats: Corruptions of every training slice per epoch (each a different draw).
        val_repeats: Fixed corruptions of every validation slice.
        cache_size: Prepared scans kept per worker; the training order shuffles groups of this many scans.
        axis: Slice axis of every scan (``None``: each file's own).
        seed: Seed of the corruptions; ``None`` takes the top-level ``seed``.
        augment: Random flips, quarter turns and gamma of the training slices before corruption
            (:class:`artefix.data.augment.Augmentation`), for generalisation to other scanners and
            contrasts; validation is never augmented.
        background: Probability that a training slice's background is zeroed (skull-stripped, masked or
            defaced scans), half of the time before the corruption and half after it
            (:class:`artefix.data.augment.BackgroundMask`); validation is never masked (0: off).
        fit: How slices reach ``matrix``: ``pad`` (the paper: zero-pad to a square field of view, then
            Fourier-resize the whole slice) or ``native`` (resolution augmentation: every training slice is
            Fourier-resized by a random factor between "whole slice fits" and 1, then cropped to
            ``matrix`` at a random place; validation takes the centre window at native pixels).
        clean_fraction: Probability that a slice is left clean, so the model learns to leave artefact-free
            images alone (0: the paper).
        severity_fraction: Probability that an artefact is drawn from its evaluation family at a random
            mild-to-severe level instead of the paper's training ranges (0: the paper).
        level_ranges: Per-artefact ``[low, high]`` levels of those draws instead of the registry's
            (:attr:`artefix.artefacts.sampler.ArtefactSpec.level_range`), e.g. ``{noise: [-10, 10]}``
            so that no added noise is milder than the paper's 10 dB, in the artefact's severity unit.
    """

    source: str = "files"
    base: str | None = None
    roots: tuple[str, ...] = ()
    split: str | None = None
    fractions: tuple[float, float, float] = (0.7, 0.1, 0.2)
    stratify: bool = True
    split_seed: int = 0
    train_samples: tuple[str, ...] = ("brain-t1", "brain-flair", "pelvis-t2")
    val_samples: tuple[str, ...] = ("brain-t2",)
    matrix: tuple[int, int] = (320, 320)
    artefacts: tuple[str, ...] = HEADS
    weights: tuple[float, ...] | None = None
    output: str = "magnitude"
    batch_size: int = 8
    val_batch_size: int | None = None
    num_workers: int = 2
    repeats: int = 1
    val_repeats: int = 1
    cache_size: int = 4
    axis: int | None = None
    seed: int | None = None
    augment: bool = False
    background: float = 0.0
    fit: str = "pad"
    clean_fraction: float = 0.0
    severity_fraction: float = 0.0
    level_ranges: dict[str, tuple[float, float]] | None = None

    def __post_init__(self) -> None:
        from artefix.artefacts.sampler import ARTEFACT_NAMES, check_level_ranges
        from artefix.data.samples import SAMPLE_NAMES

        object.__setattr__(self, "source", _choice(self.source, "data.source", SOURCES))
        for key in ("base", "split"):
            value = getattr(self, key)
            if value is not None and (not isinstance(value, str) or not value):
                raise ValueError(f"data.{key} must be a path or null, got {value!r}")
        object.__setattr__(self, "roots", _names(self.roots, "data.roots", empty=True))
        fractions = self.fractions
        if not isinstance(fractions, (list, tuple)) or len(fractions) != 3:
            raise ValueError(f"data.fractions must be three numbers (train, val, test), got {fractions!r}")
        fractions = tuple(_float(f, "data.fractions", 0.0, 1.0) for f in fractions)
        if not math.isclose(sum(fractions), 1.0, abs_tol=1e-6) or fractions[0] <= 0 or fractions[1] <= 0:
            raise ValueError(f"data.fractions must add up to 1 with positive train and val parts, got {fractions}")
        object.__setattr__(self, "fractions", fractions)
        for key in ("stratify", "augment"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"data.{key} must be true or false, got {getattr(self, key)!r}")
        _int(self.split_seed, "data.split_seed", 0)
        object.__setattr__(self, "train_samples", _names(self.train_samples, "data.train_samples", SAMPLE_NAMES))
        object.__setattr__(self, "val_samples", _names(self.val_samples, "data.val_samples", SAMPLE_NAMES))
        both = sorted(set(self.train_samples) & set(self.val_samples))
        if both:
            raise ValueError(f"data.train_samples and data.val_samples share {both}: validation needs other slices")
        matrix = self.matrix
        if isinstance(matrix, int) and not isinstance(matrix, bool):
            matrix = (matrix, matrix)
        if not isinstance(matrix, (list, tuple)) or len(matrix) != 2:
            raise ValueError(f"data.matrix must be [H, W] or one integer, got {self.matrix!r}")
        object.__setattr__(self, "matrix", tuple(_int(m, "data.matrix", 8) for m in matrix))
        object.__setattr__(self, "artefacts", _names(self.artefacts, "data.artefacts", ARTEFACT_NAMES))
        if self.weights is not None:
            if not isinstance(self.weights, (list, tuple)) or len(self.weights) != len(self.artefacts):
                raise ValueError(f"data.weights must give one weight per artefact {list(self.artefacts)}")
            weights = tuple(_float(w, "data.weights", 0.0) for w in self.weights)
            if sum(weights) <= 0:
                raise ValueError(f"data.weights must have a positive sum, got {weights}")
            object.__setattr__(self, "weights", weights)
        object.__setattr__(self, "output", _choice(self.output, "data.output", OUTPUTS))
        object.__setattr__(self, "fit", _choice(self.fit, "data.fit", ("pad", "native")))
        if not 0.0 <= _float(self.clean_fraction, "data.clean_fraction", 0.0, 1.0) < 1.0:
            raise ValueError(f"data.clean_fraction must be in [0, 1), got {self.clean_fraction!r}")
        object.__setattr__(self, "clean_fraction", float(self.clean_fraction))
        object.__setattr__(self, "background", _float(self.background, "data.background", 0.0, 1.0))
        object.__setattr__(
            self, "severity_fraction", _float(self.severity_fraction, "data.severity_fraction", 0.0, 1.0)
        )
        if self.level_ranges is not None:
            if not isinstance(self.level_ranges, Mapping):
                raise ValueError(f"data.level_ranges must map artefact names to [low, high], got {self.level_ranges!r}")
            try:
                ranges = check_level_ranges(self.level_ranges)
            except ValueError as exc:
                raise ValueError(f"data.level_ranges: {exc}") from None
            object.__setattr__(self, "level_ranges", ranges)
        _int(self.batch_size, "data.batch_size", 1)
        if self.val_batch_size is not None:
            _int(self.val_batch_size, "data.val_batch_size", 1)
        _int(self.num_workers, "data.num_workers", 0)
        _int(self.repeats, "data.repeats", 1)
        _int(self.val_repeats, "data.val_repeats", 1)
        _int(self.cache_size, "data.cache_size", 1)
        if self.axis is not None:
            _int(self.axis, "data.axis")
        if self.seed is not None:
            _int(self.seed, "data.seed", 0)
        if self.source == "files" and not self.roots and self.split is None:
            raise ValueError("data.source is 'files' but neither data.roots nor data.split is given")


@dataclass(frozen=True)
class TrainerSection:
    """Lightning ``Trainer`` settings, early stopping and validation metrics.

    Attributes:
        max_epochs: Upper bound on epochs.
        patience: Early stopping: epochs without a lower ``monitor`` value before stopping (paper: 10).
        min_delta: Smallest decrease of ``monitor`` that counts as an improvement.
        monitor: What early stopping, the best checkpoint and tuning minimise: ``val/mse`` (default, the
            paper: MSE of the model's output with all residuals added, as at inference) or ``val/loss``
            (the training loss on the validation set, with the residual of the applied artefact only).
        keep: Which epoch's weights become the run's ``best.safetensors`` (what a pipeline's next stage
            starts from and what gets shipped): ``best`` (default), the epoch with the lowest ``monitor``;
            ``last``, the last validated epoch, for a stage whose schedule (e.g. cosine to zero) is meant
            to run to its end and whose validation value moves by less than its epoch-to-epoch noise.
            Early stopping still follows ``monitor`` and ``patience``; ``artefix tune`` scores a trial by the
            ``monitor`` value of the weights it keeps.
        accelerator: ``auto``, ``cpu``, ``gpu``, ``cuda``, ``mps``.
        devices: ``auto``, a device count (``4``) or a list of device indices (``[0, 2]``).
        strategy: ``auto``, ``ddp`` (data-parallel, one process per device), ``ddp_spawn``, ...
        num_nodes: Machines for multi-node DDP.
        precision: ``32-true``; on GPUs ``16-mixed`` or ``bf16-mixed`` for mixed precision.
        limit_train_batches: Batches per training epoch (``None``: all; int count or fraction).
        limit_val_batches: Batches per validation (``None``: all).
        log_every_n_steps: Logging interval of training metrics.
        gradient_clip_val: Gradient norm clipping (``None``: off).
        accumulate_grad_batches: Batches per optimiser step.
        num_sanity_val_steps: Validation batches run before training (catches errors early).
        progress_bar: ``rich``, ``tqdm`` or ``none``.
        val_metrics: Validation metrics per epoch besides the loss: ``mse`` (always), ``ssim``, ``vif``.
        deterministic: Ask PyTorch for deterministic algorithms (slower).
        cpu_threads: PyTorch intra-op threads of the training process (``torch.set_num_threads``, a
            process-wide setting made at the start of a run); ``None`` keeps PyTorch's default (one per
            core). Small models gain nothing from more threads, and on a busy machine extra threads can
            slow training down many times over; DataLoader workers always use one thread each.
    """

    max_epochs: int = 200
    patience: int = 10
    min_delta: float = 0.0
    monitor: str = "val/mse"
    keep: str = "best"
    accelerator: str = "auto"
    devices: int | str | tuple[int, ...] = "auto"
    strategy: str = "auto"
    num_nodes: int = 1
    precision: str = "32-true"
    limit_train_batches: int | float | None = None
    limit_val_batches: int | float | None = None
    log_every_n_steps: int = 20
    gradient_clip_val: float | None = None
    accumulate_grad_batches: int = 1
    num_sanity_val_steps: int = 2
    progress_bar: str = "rich"
    val_metrics: tuple[str, ...] = ("mse", "ssim", "vif")
    deterministic: bool = False
    cpu_threads: int | None = None

    def __post_init__(self) -> None:
        _int(self.max_epochs, "trainer.max_epochs", 1)
        _int(self.patience, "trainer.patience", 1)
        object.__setattr__(self, "min_delta", _float(self.min_delta, "trainer.min_delta", 0.0))
        object.__setattr__(self, "monitor", _choice(self.monitor, "trainer.monitor", MONITORS))
        object.__setattr__(self, "keep", _choice(self.keep, "trainer.keep", KEEPS))
        if not isinstance(self.accelerator, str) or not self.accelerator:
            raise ValueError(f"trainer.accelerator must be a name such as auto, cpu or gpu, got {self.accelerator!r}")
        devices = self.devices
        if isinstance(devices, (list, tuple)):
            devices = tuple(_int(d, "trainer.devices", 0) for d in devices)
            if not devices:
                raise ValueError("trainer.devices must not be an empty list")
        elif devices != "auto" and not (_is_int(devices) and (devices >= 1 or devices == -1)):
            raise ValueError(f"trainer.devices must be 'auto', a count >= 1, -1 or a list of indices, got {devices!r}")
        object.__setattr__(self, "devices", devices)
        if not isinstance(self.strategy, str) or not self.strategy:
            raise ValueError(f"trainer.strategy must be a name such as auto or ddp, got {self.strategy!r}")
        _int(self.num_nodes, "trainer.num_nodes", 1)
        object.__setattr__(self, "precision", _choice(str(self.precision), "trainer.precision", PRECISIONS))
        object.__setattr__(self, "limit_train_batches", _limit(self.limit_train_batches, "trainer.limit_train_batches"))
        object.__setattr__(self, "limit_val_batches", _limit(self.limit_val_batches, "trainer.limit_val_batches"))
        _int(self.log_every_n_steps, "trainer.log_every_n_steps", 1)
        if self.gradient_clip_val is not None:
            object.__setattr__(
                self, "gradient_clip_val", _float(self.gradient_clip_val, "trainer.gradient_clip_val", 0.0)
            )
        _int(self.accumulate_grad_batches, "trainer.accumulate_grad_batches", 1)
        _int(self.num_sanity_val_steps, "trainer.num_sanity_val_steps", 0)
        object.__setattr__(self, "progress_bar", _choice(self.progress_bar, "trainer.progress_bar", PROGRESS_BARS))
        metrics = _names(self.val_metrics, "trainer.val_metrics", VAL_METRICS, empty=True)
        object.__setattr__(self, "val_metrics", tuple(m for m in VAL_METRICS if m in metrics or m == "mse"))
        if not isinstance(self.deterministic, bool):
            raise ValueError(f"trainer.deterministic must be true or false, got {self.deterministic!r}")
        if self.cpu_threads is not None:
            _int(self.cpu_threads, "trainer.cpu_threads", 1)


@dataclass(frozen=True)
class TuneSection:
    """Hyper-parameter search (``artefix tune``): each trial is a short training run.

    Attributes:
        max_epochs: Epoch budget of a trial.
        patience: Early-stopping patience inside a trial.
        search_deltas: Search the nine kernel weights; ``None``: when ``loss.deltas`` is not plain MSE
            (the paper's LC models).
        sampler: ``tpe`` (default, Bayesian), ``gp`` (Gaussian process) or ``random``.
        n_startup_trials: Random trials before the Bayesian sampler takes over.
        pruner: ``median`` (stop trials worse than the median of earlier ones at the same epoch) or ``none``.
        warmup_epochs: Epochs a trial runs before it may be pruned.
    """

    max_epochs: int = 20
    patience: int = 3
    search_deltas: bool | None = None
    sampler: str = "tpe"
    n_startup_trials: int = 5
    pruner: str = "median"
    warmup_epochs: int = 2

    def __post_init__(self) -> None:
        _int(self.max_epochs, "tune.max_epochs", 1)
        _int(self.patience, "tune.patience", 1)
        if self.search_deltas is not None and not isinstance(self.search_deltas, bool):
            raise ValueError(f"tune.search_deltas must be true, false or null, got {self.search_deltas!r}")
        object.__setattr__(self, "sampler", _choice(self.sampler, "tune.sampler", SAMPLERS))
        _int(self.n_startup_trials, "tune.n_startup_trials", 0)
        object.__setattr__(self, "pruner", _choice(self.pruner, "tune.pruner", PRUNERS))
        _int(self.warmup_epochs, "tune.warmup_epochs", 0)
