"""Training configuration: typed sections, YAML loading with validation, command-line overrides.

A configuration file is a YAML mapping with the sections below; every key is optional and unknown keys
are errors (with a "did you mean" hint). ``configs/`` in the repository holds the paper's models.

.. code-block:: yaml

    name: mt_lc_brain          # run name (model card)
    seed: 0                    # seed_everything at the start of a run; default of model.seed / data.seed
    model:     {preset: compact, heads: null, seed: null}
    loss:      {deltas: {E: 0.30, PT: 0.83, ...}, alpha: 0.87}   # Table 2; deltas may be a preset name
    optimizer: {name: rmsprop, log10_lr: -3.91, weight_decay: 0.0}   # lr = 10 ** log10_lr
    data:      {source: files, base: ../../shared/data, roots: [...], split: null, matrix: [320, 320], ...}
    trainer:   {max_epochs: 200, patience: 10, devices: auto, strategy: auto, precision: 32-true, ...}
    tune:      {max_epochs: 20, patience: 3, sampler: tpe, ...}

Paths: ``data.base`` and ``data.split`` are relative to the folder of the file that gives them (the config
file, or the current folder for a ``--set`` override); ``data.roots`` are relative to ``data.base`` when it
is set, else resolved like ``data.base``. The resolved configuration written next to a run holds absolute
paths, so it trains again from any folder.

Overrides (``--set KEY=VALUE``, repeatable) use dotted keys and YAML values:
``--set trainer.max_epochs=3 --set data.roots=[/data/a,/data/b] --set model.heads=[noise]``.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from artefix.artefacts.names import HEADS
from artefix.atomic import atomic_file, one_line
from artefix.errors import ArtefixError

if TYPE_CHECKING:
    from artefix.models.policy import InferencePolicy

__all__ = [
    "ConfigError",
    "DataSection",
    "LossSection",
    "ModelSection",
    "OptimizerSection",
    "TrainConfig",
    "TrainerSection",
    "TuneSection",
    "apply_overrides",
    "load_config",
    "save_config",
]

OPTIMIZERS: tuple[str, ...] = ("rmsprop", "adam")
SOURCES: tuple[str, ...] = ("files", "sample")
OUTPUTS: tuple[str, ...] = ("magnitude", "real")
PRECISIONS: tuple[str, ...] = ("32-true", "32", "16-mixed", "bf16-mixed", "bf16-true", "16-true", "64-true")
PROGRESS_BARS: tuple[str, ...] = ("rich", "tqdm", "none")
VAL_METRICS: tuple[str, ...] = ("mse", "ssim", "vif")
SAMPLERS: tuple[str, ...] = ("tpe", "gp", "random")
PRUNERS: tuple[str, ...] = ("median", "none")
MONITORS: tuple[str, ...] = ("val/mse", "val/loss")
GATE_CRITERIA: tuple[str, ...] = ("loss", "quality")
KEEPS: tuple[str, ...] = ("best", "last")
PATH_KEYS: tuple[str, ...] = ("data.base", "data.split")


class ConfigError(ArtefixError, ValueError):
    """A training configuration that cannot be read or is invalid (the CLI prints one line, exit 2)."""


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _int(value: Any, name: str, minimum: int | None = None) -> int:
    if not _is_int(value) or (minimum is not None and value < minimum):
        bound = f" >= {minimum}" if minimum is not None else ""
        raise ValueError(f"{name} must be an integer{bound}, got {value!r}")
    return int(value)


def _float(value: Any, name: str, low: float | None = None, high: float | None = None) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        raise ValueError(f"{name} must lie in [{low}, {high}], got {value!r}")
    return float(value)


def _choice(value: Any, name: str, choices: Sequence[str]) -> str:
    text = str(value).lower() if isinstance(value, str) else value
    if text not in choices:
        raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return text


def _names(value: Any, name: str, allowed: Sequence[str] | None = None, *, empty: bool = False) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ValueError(f"{name} must be a list of names, got {value!r}")
    if not value and not empty:
        raise ValueError(f"{name} must not be empty")
    if allowed is not None:
        bad = [v for v in value if v not in allowed]
        if bad:
            raise ValueError(f"{name} has unknown name(s) {bad}; choose from {', '.join(allowed)}")
    if len(set(value)) != len(value):
        raise ValueError(f"{name} lists a name twice: {list(value)}")
    return tuple(value)


def _limit(value: Any, name: str) -> int | float | None:
    """Lightning's ``limit_*_batches``: ``None`` (all), a batch count >= 1 or a fraction in (0, 1]."""
    if value is None:
        return None
    if _is_int(value) and value >= 1:
        return int(value)
    if isinstance(value, float) and 0.0 < value <= 1.0:
        return value
    raise ValueError(f"{name} must be null, an integer >= 1 or a fraction in (0, 1], got {value!r}")


FREEZABLE = ("image_branch", "kspace_branch", "detector")
"""Model parts that ``model.freeze`` can name."""


@dataclass(frozen=True)
class ModelSection:
    """Which network to train.

    Attributes:
        preset: :data:`artefix.models.PRESETS` name: ``paper`` (75.5 M parameters), ``compact`` (1.2 M)
            or ``tiny`` (8 k, tests).
        heads: Residual heads; ``None`` means all four (the multi-task model), one name gives the paper's
            single-task model for that artefact.
        seed: Seed of the initial weights; ``None`` takes the top-level ``seed``.
        init: Start from trained weights instead (fine-tuning): a ``.safetensors`` path (relative to the
            config file) or a shipped model name. Every tensor of the same shape is copied; a model with
            fewer heads takes the matching heads' rows (:func:`artefix.models.checkpoint.transfer_weights`).
        gates: Add the artefact detector whose per-head scores gate the residuals
            (:mod:`artefix.models.detector`; not in the paper).
        consistency: k-space data consistency of the subsampling head (:mod:`artefix.models.consistency`;
            not in the paper): its residual may only change the k-space lines a truncated input lacks.
        truncation_gate: With ``consistency``: the subsampling residual is dropped on slices whose k-space
            is not found truncated (:attr:`artefix.models.ModelConfig.truncation_gate`, eval mode only).
        freeze: Parts of the model kept as they are (no gradient, batch-norm statistics fixed):
            ``image_branch``, ``kspace_branch``, ``detector``. With both branches frozen only the detector
            learns, e.g. to recalibrate its gates for a trained model at a fraction of a full step's cost.
        bias_smooth: The bias head's smooth-field prior (:attr:`artefix.models.ModelConfig.bias_smooth`,
            eval mode only): in validation, in the saved model and, with ``loss.fit_gates``, in training.
        noise_snr: The noise head's SNR gate ``[lo, hi]`` in dB (:attr:`artefix.models.ModelConfig.noise_snr`),
            likewise; null for none.
    """

    preset: str = "compact"
    heads: tuple[str, ...] | None = None
    seed: int | None = None
    init: str | None = None
    gates: bool = False
    consistency: bool = False
    truncation_gate: bool = False
    freeze: tuple[str, ...] = ()
    bias_smooth: float = 0.0
    noise_snr: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        from artefix.models import ALL_HEADS, PRESETS
        from artefix.models.policy import InferencePolicy

        object.__setattr__(self, "preset", _choice(self.preset, "model.preset", tuple(PRESETS)))
        if self.heads is not None:
            object.__setattr__(self, "heads", _names(self.heads, "model.heads", ALL_HEADS))
        if self.seed is not None:
            _int(self.seed, "model.seed", 0)
        if self.init is not None and (not isinstance(self.init, str) or not self.init):
            raise ValueError(f"model.init must be a weights path, a shipped model name or null, got {self.init!r}")
        for name in ("gates", "consistency", "truncation_gate"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"model.{name} must be true or false, got {getattr(self, name)!r}")
        if self.truncation_gate and not self.consistency:
            raise ValueError("model.truncation_gate needs model.consistency")
        object.__setattr__(self, "freeze", _names(self.freeze, "model.freeze", FREEZABLE, empty=True))
        if "detector" in self.freeze and not self.gates:
            raise ValueError("model.freeze names the detector but model.gates is false (there is none)")
        if self.noise_snr is not None and not isinstance(self.noise_snr, (list, tuple)):
            raise ValueError(f"model.noise_snr must be [lo, hi] in dB or null, got {self.noise_snr!r}")
        try:
            priors = InferencePolicy(bias_smooth=self.bias_smooth, noise_snr=self.noise_snr)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"model.{exc}") from None
        object.__setattr__(self, "bias_smooth", priors.bias_smooth)
        object.__setattr__(self, "noise_snr", priors.noise_snr)

    @property
    def policy(self) -> InferencePolicy:
        """The inference policy these settings give the trained model (saved with its weights)."""
        from artefix.models.policy import InferencePolicy

        return InferencePolicy(
            consistency=self.consistency,
            truncation_gate=self.truncation_gate,
            bias_smooth=self.bias_smooth,
            noise_snr=self.noise_snr,
        )

    @property
    def head_names(self) -> tuple[str, ...]:
        """The heads in residual order (all four when ``heads`` is ``None``)."""
        from artefix.models import ALL_HEADS

        chosen = self.heads if self.heads is not None else ALL_HEADS
        return tuple(h for h in ALL_HEADS if h in chosen)


@dataclass(frozen=True)
class LossSection:
    """The multi-task loss (Eq. 6) with the convolutional loss LC as criterion.

    Attributes:
        deltas: Kernel weights ``delta_k``: a :data:`artefix.losses.DELTA_PRESETS` name (``mse``,
            ``mt_lc_brain``, ``mt_lc_pelvis``) or a mapping ``{kernel: delta}`` (missing kernels are 0).
        alpha: Residual regulariser weight, >= 0.
        all_heads: Weight of an extra term (not in the paper) that scores the output with *all* residuals
            applied, as at inference: ``L(v, u + sum_i p_i)``. Eq. 6 alone never penalises a head for a
            correction it invents on an image without its artefact (only the regulariser ``alpha`` does,
            by shrinking every residual); this term does, without shrinking the needed correction.
            0 (default) is the paper's loss.
        detection: Weight of a binary cross-entropy between the detector's scores (``model.gates``) and
            the applied artefact, one-hot over the heads (all zero for a clean slice): the training data
            know which artefact each slice has, so the detector learns it directly instead of only through
            the reconstruction. 0 (default) leaves the detector to the reconstruction loss alone.
        quiet_heads: Weight of a penalty (not in the paper) on the *ungated* residual of every head whose
            artefact a slice does not have (all heads on a clean slice): the mean square of ``p_i`` before the
            detector's gate. With ``model.gates`` the reconstruction terms see only the gated residuals, so a
            head may add texture wherever its gate is shut, and a gate cannot open on an unfamiliar scan
            without that texture coming along; this term teaches each head to leave images without its
            artefact alone by itself. 0 (default) leaves it out.
        fit_gates: A gate-calibration stage (not in the paper) for a trained model whose branches are
            frozen (``model.freeze``): the loss is ``L(v, u + sum_i g_i p_i)`` with the heads' residuals
            ``p`` fixed as the model applies them at inference (data consistency and physics priors
            included, :meth:`artefix.models.DualDomainModel.ungated_residuals`) and only the detector's
            scores ``g`` learning. The scores become "how much of each head helps" rather than "which
            artefact was applied": a head that over-corrects a mild artefact, or invents one on a clean
            slice, is turned down. Each slice's loss enters as ``log(L_b + gate_floor)`` (the batch mean of
            these), so a mild artefact or a clean slice, whose loss is small, weighs as much as a severe
            artefact (a squared error averages over slices as PSNR does not): otherwise the few severe slices
            decide every gate. ``all_heads`` and ``detection`` are not used.
        gate_floor: The floor of the per-slice log-loss with ``fit_gates`` (> 0; in units of the criterion on
            Z-normalised images, where 1e-3 is an error 30 dB below the image's variance).
        gate_criterion: What ``fit_gates`` scores each slice with: ``loss`` (default), the training criterion
            ``L`` (LC with ``deltas``); ``quality``, the paper's evaluation metrics,
            ``(1 - SSIM) + (1 - VIF)`` (:func:`artefix.losses.quality_deficit`, clipped at 0 below the log).
            A squared-error criterion lets a head blur fine texture or invent smooth shading on a clean
            slice at almost no cost; VIF counts that as information lost.
    """

    deltas: str | dict[str, float] = "mse"
    alpha: float = 0.0
    all_heads: float = 0.0
    detection: float = 0.0
    quiet_heads: float = 0.0
    fit_gates: bool = False
    gate_floor: float = 1e-3
    gate_criterion: str = "loss"

    def __post_init__(self) -> None:
        from artefix.losses import DELTA_PRESETS, KERNEL_NAMES

        if isinstance(self.deltas, str):
            object.__setattr__(self, "deltas", _choice(self.deltas, "loss.deltas", tuple(DELTA_PRESETS)))
        elif isinstance(self.deltas, Mapping):
            unknown = sorted(set(self.deltas) - set(KERNEL_NAMES))
            if unknown:
                raise ValueError(f"loss.deltas has unknown kernel(s) {unknown}; kernels are {', '.join(KERNEL_NAMES)}")
            values = {k: _float(self.deltas.get(k, 0.0), f"loss.deltas.{k}", 0.0) for k in KERNEL_NAMES}
            if not any(values.values()):
                raise ValueError("loss.deltas are all zero; at least one kernel needs a positive weight")
            object.__setattr__(self, "deltas", values)
        else:
            raise ValueError(f"loss.deltas must be a preset name or a mapping kernel -> weight, got {self.deltas!r}")
        object.__setattr__(self, "alpha", _float(self.alpha, "loss.alpha", 0.0))
        object.__setattr__(self, "all_heads", _float(self.all_heads, "loss.all_heads", 0.0))
        object.__setattr__(self, "detection", _float(self.detection, "loss.detection", 0.0))
        object.__setattr__(self, "quiet_heads", _float(self.quiet_heads, "loss.quiet_heads", 0.0))
        if not isinstance(self.fit_gates, bool):
            raise ValueError(f"loss.fit_gates must be true or false, got {self.fit_gates!r}")
        object.__setattr__(self, "gate_floor", _float(self.gate_floor, "loss.gate_floor", 0.0))
        if self.gate_floor <= 0:
            raise ValueError(f"loss.gate_floor must be > 0, got {self.gate_floor}")
        object.__setattr__(self, "gate_criterion", _choice(self.gate_criterion, "loss.gate_criterion", GATE_CRITERIA))

    @property
    def delta_values(self) -> dict[str, float]:
        """All nine ``{kernel: delta}`` values."""
        from artefix.losses import deltas_from_preset

        return deltas_from_preset(self.deltas) if isinstance(self.deltas, str) else dict(self.deltas)

    @property
    def is_mse(self) -> bool:
        """Whether only the identity kernel is weighted (the MSE models of Table 2)."""
        return all(v == 0.0 for k, v in self.delta_values.items() if k != "E")


@dataclass(frozen=True)
class OptimizerSection:
    """The optimiser; Table 2 used RMSprop with ``lr = 10 ** g``.

    Attributes:
        name: ``rmsprop`` or ``adam`` (PyTorch defaults for all other settings).
        log10_lr: ``g`` of ``lr = 10 ** g``.
        weight_decay: L2 weight decay (the paper: 0).
        schedule: ``constant`` (the paper) or ``cosine``: the learning rate decays per epoch to 0 at
            ``trainer.max_epochs`` (``torch.optim.lr_scheduler.CosineAnnealingLR``), so a short fine-tuning
            run ends on small steps instead of oscillating around its optimum.
        bn_momentum: Momentum of the batch-norm running statistics (PyTorch's default 0.1 averages about
            the last ten batches, so the statistics used at inference follow whatever the last batches of
            an epoch held; 0.01 averages about a hundred).
        detector_lr_scale: Learning-rate factor of the artefact detector's parameters (``model.gates``):
            a small classifier added to trained weights can learn faster than the network it gates.
    """

    name: str = "rmsprop"
    log10_lr: float = -4.0
    weight_decay: float = 0.0
    schedule: str = "constant"
    bn_momentum: float = 0.1
    detector_lr_scale: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "name", _choice(self.name, "optimizer.name", OPTIMIZERS))
        object.__setattr__(self, "log10_lr", _float(self.log10_lr, "optimizer.log10_lr", -12.0, 1.0))
        object.__setattr__(self, "weight_decay", _float(self.weight_decay, "optimizer.weight_decay", 0.0))
        object.__setattr__(self, "schedule", _choice(self.schedule, "optimizer.schedule", ("constant", "cosine")))
        momentum = _float(self.bn_momentum, "optimizer.bn_momentum", 0.0, 1.0)
        if momentum <= 0:
            raise ValueError(f"optimizer.bn_momentum must lie in (0, 1], got {self.bn_momentum!r}")
        object.__setattr__(self, "bn_momentum", momentum)
        scale = _float(self.detector_lr_scale, "optimizer.detector_lr_scale", 0.0)
        if scale <= 0:
            raise ValueError(f"optimizer.detector_lr_scale must be positive, got {self.detector_lr_scale!r}")
        object.__setattr__(self, "detector_lr_scale", scale)

    @property
    def lr(self) -> float:
        """The learning rate ``10 ** log10_lr``."""
        return float(10.0**self.log10_lr)


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


_SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "loss": LossSection,
    "optimizer": OptimizerSection,
    "data": DataSection,
    "trainer": TrainerSection,
    "tune": TuneSection,
}


def _unknown_keys(given: Iterable[str], allowed: Sequence[str], where: str) -> None:
    for key in given:
        if key not in allowed:
            hint = difflib.get_close_matches(str(key), allowed, n=1)
            suffix = f"; did you mean {hint[0]!r}?" if hint else f"; valid keys: {', '.join(allowed)}"
            raise ValueError(f"unknown key '{where}{key}'{suffix}")


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class TrainConfig:
    """A complete, validated training configuration (see the module docstring for the YAML layout).

    Attributes:
        name: Run name, written to the model card.
        seed: Global seed of a run (``lightning.seed_everything``) and default of the other seeds.
        model, loss, optimizer, data, trainer, tune: The sections.
        source: The file the configuration came from (not part of :meth:`to_dict`).
    """

    name: str = "artefix"
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    loss: LossSection = field(default_factory=LossSection)
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    data: DataSection = field(default_factory=DataSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    tune: TuneSection = field(default_factory=TuneSection)
    source: str | None = field(default=None, compare=False)

    KEYS: ClassVar[tuple[str, ...]] = ("name", "seed", *_SECTIONS)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        _int(self.seed, "seed", 0)
        heads = set(self.model.head_names)
        from artefix.artefacts.sampler import get_spec

        missing = [a for a in self.data.artefacts if get_spec(a).head.value not in heads]
        if missing:
            raise ValueError(
                f"data.artefacts {missing} have no matching model head (model.heads: {list(self.model.head_names)})"
            )
        from artefix.evaluation.metrics import VIF_MIN_SIZE

        if "vif" in self.trainer.val_metrics and min(self.data.matrix) < VIF_MIN_SIZE:
            raise ValueError(
                f"data.matrix {list(self.data.matrix)} is too small for the vif validation metric "
                f"(>= {VIF_MIN_SIZE} a side); enlarge it or drop vif from trainer.val_metrics"
            )

    @property
    def model_seed(self) -> int:
        """Seed of the initial weights."""
        return self.model.seed if self.model.seed is not None else self.seed

    @property
    def data_seed(self) -> int:
        """Seed of the corruptions."""
        return self.data.seed if self.data.seed is not None else self.seed

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> TrainConfig:
        """Validate a nested mapping (as read from YAML).

        Raises:
            ConfigError: Unknown keys, wrong types or bad values, with the file name and the key.
        """
        where = f"{source}: " if source else ""
        try:
            if not isinstance(data, Mapping):
                raise ValueError(f"a configuration must be a mapping, got {type(data).__name__}")
            _unknown_keys(data, cls.KEYS, "")
            raws = {key: data.get(key) or {} for key in _SECTIONS}
            for key, raw in raws.items():  # all unknown keys first: the likeliest mistake
                if not isinstance(raw, Mapping):
                    raise ValueError(f"section {key!r} must be a mapping, got {raw!r}")
                _unknown_keys(raw, [f.name for f in dataclasses.fields(_SECTIONS[key])], f"{key}.")
            sections = {key: _SECTIONS[key](**raw) for key, raw in raws.items()}
            top = {k: data[k] for k in ("name", "seed") if k in data}
            return cls(**top, **sections, source=source)
        except ArtefixError as exc:
            raise ConfigError(f"{where}{exc}") from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}{one_line(exc)}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, no tuples), the inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        for key in _SECTIONS:
            out[key] = _plain(dataclasses.asdict(getattr(self, key)))
        return out

    def replace(self, **sections: Mapping[str, Any] | Any) -> TrainConfig:
        """A copy with some keys changed, validated again.

        Args:
            **sections: Top-level keys; a mapping for a section is merged into it, e.g.
                ``config.replace(trainer={"max_epochs": 3}, seed=1)``.
        """
        data = self.to_dict()
        for key, value in sections.items():
            if key in _SECTIONS and isinstance(value, Mapping):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return TrainConfig.from_dict(data, source=self.source)


def _resolve(path: str, folder: Path) -> str:
    """``path`` made absolute against ``folder`` and normalised (``a/../b`` -> ``b``)."""
    return os.path.abspath(os.path.join(folder, os.path.expanduser(path)))


def _looks_like_path(text: str) -> bool:
    """A ``model.init`` value that names a file rather than a shipped model."""
    return "/" in text or "\\" in text or text.endswith(".safetensors")


def _resolve_paths(raw: dict[str, Any], folder: Path, *, base_given: bool = False) -> dict[str, Any]:
    """Make ``data.base``/``data.split`` (and ``data.roots`` without a base) absolute against ``folder``.

    ``model.init`` too, when it is a path rather than a shipped model name. ``base_given``: an override
    sets ``data.base`` (``--data-root``), so roots stay relative to it even where the file has no base.
    """
    model = raw.get("model")
    if isinstance(model, dict) and isinstance(model.get("init"), str) and _looks_like_path(model["init"]):
        raw = {**raw, "model": {**model, "init": _resolve(model["init"], folder)}}
    data = raw.get("data")
    if not isinstance(data, dict):
        return raw
    data = dict(data)
    for key in ("base", "split"):
        if isinstance(data.get(key), str) and data[key]:
            data[key] = _resolve(data[key], folder)
    roots = data.get("roots")
    if data.get("base") is None and not base_given and isinstance(roots, list):
        data["roots"] = [_resolve(r, folder) if isinstance(r, str) else r for r in roots]
    return {**raw, "data": data}


def apply_overrides(raw: Mapping[str, Any], overrides: Iterable[str], cwd: Path | None = None) -> dict[str, Any]:
    """Merge ``KEY=VALUE`` overrides (dotted keys, YAML values) into a raw configuration mapping.

    Relative paths given for ``data.base``, ``data.split`` (and ``data.roots`` when no base is set) are
    resolved against ``cwd`` (default: the current folder).

    Args:
        raw: The mapping read from the file (not modified).
        overrides: Strings such as ``"trainer.max_epochs=3"`` or ``"data.roots=[/a, /b]"``.
        cwd: Folder for relative paths.

    Returns:
        A new mapping.

    Raises:
        ConfigError: Malformed override.
    """
    folder = Path.cwd() if cwd is None else Path(cwd)
    out: dict[str, Any] = {k: dict(v) if isinstance(v, dict) else v for k, v in raw.items()}
    for item in overrides:
        key, sep, text = item.partition("=")
        key = key.strip()
        if not sep or not key or any(not part for part in key.split(".")):
            raise ConfigError(f"an override must look like KEY=VALUE (e.g. trainer.max_epochs=3), got {item!r}")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError as exc:
            raise ConfigError(f"override {item!r}: value is not valid YAML ({one_line(exc)})") from None
        parts = key.split(".")
        node = out
        for part in parts[:-1]:
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            elif not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            else:
                child = node[part] = dict(child)
            node = child
        if key in PATH_KEYS and isinstance(value, str):
            value = _resolve(value, folder)
        if key == "model.init" and isinstance(value, str) and _looks_like_path(value):
            value = _resolve(value, folder)
        if key == "data.roots" and isinstance(value, (list, str)) and not node.get("base"):
            items = [value] if isinstance(value, str) else value
            value = [_resolve(r, folder) if isinstance(r, str) else r for r in items]
        node[parts[-1]] = value
    return out


def read_yaml(path: Path) -> Any:
    """The YAML document in ``path`` (a config or pipeline file).

    Raises:
        ConfigError: Missing or unreadable file, invalid YAML (one line).
    """
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found")
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file ({one_line(exc)})") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({one_line(exc)})") from None


def load_config(
    path: str | Path,
    overrides: Iterable[str] = (),
    *,
    data_root: str | Path | None = None,
    cwd: Path | None = None,
    first: Iterable[str] = (),
    first_cwd: Path | None = None,
) -> TrainConfig:
    """Read, resolve and validate a YAML configuration file.

    Args:
        path: The YAML file.
        overrides: ``KEY=VALUE`` strings (see :func:`apply_overrides`), applied after the file.
        data_root: Shorthand for the override ``data.base=DATA_ROOT``.
        cwd: Folder that relative override paths are resolved against (default: the current folder).
        first: Overrides applied before ``overrides``, with relative paths against ``first_cwd`` (a
            pipeline stage's ``set``, written next to the pipeline file).
        first_cwd: See ``first``.

    Returns:
        The validated :class:`TrainConfig`, with absolute ``data.base`` / ``data.split`` paths.

    Raises:
        ConfigError: Missing or unreadable file, invalid YAML, unknown keys or bad values.
    """
    path = Path(path).expanduser()
    raw = read_yaml(path)
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a config file must hold a YAML mapping, got {type(raw).__name__}")
    first = list(first)
    extra = list(overrides)
    if data_root is not None:
        extra.insert(0, f"data.base={data_root}")
    base_given = any(item.split("=", 1)[0].strip() == "data.base" for item in [*first, *extra])
    raw = _resolve_paths(raw, path.parent.absolute(), base_given=base_given)
    raw = apply_overrides(raw, first, first_cwd)
    raw = apply_overrides(raw, extra, cwd)
    return TrainConfig.from_dict(raw, source=str(path))


def save_config(config: TrainConfig, path: str | Path, header: str | None = None) -> Path:
    """Write ``config`` as YAML (atomically); ``header`` lines become ``#`` comments at the top."""
    path = Path(path)
    text = yaml.safe_dump(config.to_dict(), sort_keys=False, default_flow_style=None, width=120)
    if header:
        text = "".join(f"# {line}\n" for line in header.splitlines()) + text
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path
