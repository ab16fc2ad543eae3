"""The ``model``, ``loss`` and ``optimizer`` sections of a training configuration."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from artefix.training.config.checks import _choice, _float, _int, _names

if TYPE_CHECKING:
    from artefix.models.policy import InferencePolicy

OPTIMIZERS: tuple[str, ...] = ("rmsprop", "adam")
GATE_CRITERIA: tuple[str, ...] = ("loss", "quality")

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
