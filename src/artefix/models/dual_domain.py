r"""The paper's multi-task dual-domain model: image branch + k-space branch, four residual heads.

For a (Z-normalised) input slice ``u`` the model predicts one residual ``p_i`` per artefact head and
returns

.. math::  v = \operatorname{Znorm}\bigl(u + \textstyle\sum_i m_i\, p_i\bigr),
    \qquad p_i = p_i^{\mathrm{img}}(u)
    + \operatorname{Re}\,\mathcal{F}^{-1}\bigl[p_i^{\mathrm{re}}(\mathcal{F}u)
    + j\,p_i^{\mathrm{im}}(\mathcal{F}u)\bigr],

where ``m_i`` is the head selection (1 = apply, 0 = disregard the correction; the paper adds all), the
image branch works on ``u`` and the k-space branch on the real and imaginary parts of the centred
orthonormal k-space ``F u`` (:func:`artefix.fft.fft2c`). The k-space branch emits two channels per head,
read as one complex k-space map, brought back by :func:`artefix.fft.ifft2c`, of which the real part is
the image-space residual. Heads are ordered as :class:`artefix.artefacts.base.Artefact` (bias,
subsampling, motion, noise); single-task models have one head.

Any ``H x W`` works: the input is padded (zeros by default, the mean of a Z-normalised slice; split
evenly between the two sides of each axis) up to a multiple of the network stride ``2**depth``, and the
residuals are cropped back to ``H x W`` before they are added to the unpadded ``u``.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from artefix.artefacts.base import HEADS, Artefact, znorm
from artefix.fft import fft2c, ifft2c
from artefix.models.consistency import measured_window, project_unmeasured, truncated
from artefix.models.detector import ArtefactDetector
from artefix.models.policy import ENSEMBLES as ENSEMBLES  # re-exported: the self-ensemble sizes
from artefix.models.policy import FIELDS as POLICY_FIELDS
from artefix.models.policy import InferencePolicy
from artefix.models.priors import estimated_snr_db, smooth_bias_residual, snr_gate
from artefix.models.unet import SRResUNet

ALL_HEADS: tuple[str, ...] = HEADS
BRANCHES: tuple[str, ...] = ("image", "kspace")
PAD_MODES: tuple[str, ...] = ("constant", "reflect", "replicate")
_FLIPS: tuple[tuple[int, ...], ...] = ((), (-1,), (-2,), (-2, -1))


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """Dihedral transform ``k`` in ``0..7`` of the last two axes of ``x``.

    0 is the identity, 1 the left-right flip, 2 the up-down flip, 3 both (a half turn); 4-7 are the same
    after a transpose, which turns ``(H, W)`` into ``(W, H)``.
    """
    if k >= 4:
        x = x.transpose(-2, -1)
    flips = _FLIPS[k % 4]
    return torch.flip(x, flips) if flips else x


def undo_dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """The inverse of :func:`dihedral`: ``undo_dihedral(dihedral(x, k), k) == x``."""
    flips = _FLIPS[k % 4]
    x = torch.flip(x, flips) if flips else x
    return x.transpose(-2, -1) if k >= 4 else x


HeadSelection = torch.Tensor | Sequence[bool | int | float | str | Artefact] | None
"""Which residuals to add: ``None`` (all), a 0/1 (or weight) tensor of shape ``(K,)`` or ``(B, K)``, a
sequence of ``K`` booleans/numbers, or a sequence of head names / :class:`Artefact` members to apply."""


def _canonical_heads(heads: Any) -> tuple[str, ...]:
    if isinstance(heads, (str, Artefact)):
        heads = (heads,)
    names: list[str] = []
    for head in heads:
        value = head.value if isinstance(head, Artefact) else head
        if value not in ALL_HEADS:
            raise ValueError(f"unknown head {head!r}; expected some of {list(ALL_HEADS)}")
        if value in names:
            raise ValueError(f"head {value!r} listed twice in {tuple(heads)!r}")
        names.append(value)
    if not names:
        raise ValueError("a model needs at least one head, got none")
    return tuple(sorted(names, key=ALL_HEADS.index))


def split_settings(settings: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Split flat settings into ``(architecture, inference)`` keyword dicts.

    :class:`ModelConfig` fields go left, :class:`~artefix.models.policy.InferencePolicy` fields right: files
    saved before the two were separate stored them in one mapping, and ``build_model`` takes both as keywords.
    """
    inference = {k: v for k, v in settings.items() if k in POLICY_FIELDS}
    return {k: v for k, v in settings.items() if k not in POLICY_FIELDS}, inference


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of a :class:`DualDomainModel`, enough to rebuild it from a checkpoint.

    Attributes:
        base_width: Channels ``b`` of the full-resolution blocks; strided block ``d`` has ``b * 2**d``.
        depth: Strided (and upsampling) blocks per branch ``D``; inputs are padded to multiples of
            ``2**D`` pixels.
        convs_per_block: 3x3 convolutions (+ batch norm + LeakyReLU) per block.
        heads: Residual heads, artefact names; stored in :class:`Artefact` order whatever the order
            given (one name for a single-task model).
        negative_slope: LeakyReLU slope for negative inputs.
        branches: ``("image", "kspace")`` (the paper) or one of them alone (an ablation).
        pad_mode: How inputs whose size is not a multiple of ``2**depth`` are padded: ``"constant"``
            (zeros), ``"reflect"`` (needs the padding smaller than the image) or ``"replicate"``.
        gates: Add an :class:`~artefix.models.detector.ArtefactDetector` whose per-head presence scores
            multiply the residuals (not in the paper; lets the model leave clean images alone).

    How the trained network is applied (data consistency, self-ensemble, physics priors, whether the
    detector gates) is not part of the architecture: see :class:`~artefix.models.policy.InferencePolicy`.
    """

    base_width: int = 8
    depth: int = 5
    convs_per_block: int = 3
    heads: tuple[str, ...] = ALL_HEADS
    negative_slope: float = 0.2
    branches: tuple[str, ...] = BRANCHES
    pad_mode: str = "constant"
    gates: bool = False

    def __post_init__(self) -> None:
        for name in ("base_width", "depth", "convs_per_block"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.negative_slope, (int, float)) and self.negative_slope >= 0):
            raise ValueError(f"negative_slope must be a number >= 0, got {self.negative_slope!r}")
        object.__setattr__(self, "heads", _canonical_heads(self.heads))
        branches = (self.branches,) if isinstance(self.branches, str) else tuple(self.branches)
        if not branches or any(b not in BRANCHES for b in branches) or len(set(branches)) != len(branches):
            raise ValueError(f"branches must be distinct names from {list(BRANCHES)}, got {self.branches!r}")
        object.__setattr__(self, "branches", tuple(sorted(branches, key=BRANCHES.index)))
        if self.pad_mode not in PAD_MODES:
            raise ValueError(f"pad_mode must be one of {list(PAD_MODES)}, got {self.pad_mode!r}")
        object.__setattr__(self, "negative_slope", float(self.negative_slope))
        if not isinstance(self.gates, bool):
            raise ValueError(f"gates must be true or false, got {self.gates!r}")

    @property
    def stride(self) -> int:
        """Total downsampling factor ``2**depth`` of each branch."""
        return 2**self.depth

    def replace(self, **changes: Any) -> ModelConfig:
        """A copy with some fields changed (validated like the constructor)."""
        unknown = sorted(set(changes) - {f.name for f in dataclasses.fields(self)})
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s) {unknown}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists), the inverse of :meth:`from_dict`."""
        d = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelConfig:
        """Rebuild a config from :meth:`to_dict` output (missing fields take their defaults).

        Raises:
            ValueError: On unknown keys or invalid values.
        """
        unknown = sorted(set(data) - {f.name for f in dataclasses.fields(cls)})
        if unknown:
            raise ValueError(f"unknown ModelConfig field(s) {unknown}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        return cls(**kwargs)


class ModelOutput(NamedTuple):
    """What :meth:`DualDomainModel.forward` returns.

    Attributes:
        output: Corrected, Z-normalised image ``v``, shape ``(B, 1, H, W)``.
        residuals: All ``K`` residual maps ``p_i`` (before any head selection), shape ``(B, K, H, W)``,
            channel ``i`` for ``model.head_names[i]``; in the units of the input image.
        scores: The detector's per-head scores ``(B, K)`` that gated the residuals, with the inference
            policy's weights (noise SNR gate, truncation gate) folded in, as :meth:`DualDomainModel.detect`
            gives them; None for a model without a detector.
    """

    output: torch.Tensor
    residuals: torch.Tensor
    scores: torch.Tensor | None = None


def head_weights(
    heads: HeadSelection,
    head_names: Sequence[str],
    *,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Turn a head selection into per-head weights ``m_i``.

    Args:
        heads: See :data:`HeadSelection`.
        head_names: The model's heads, in residual-channel order.
        device: Device of the returned tensor.
        dtype: Floating dtype of the returned tensor.

    Returns:
        Weights of shape ``(K,)`` or, for a ``(B, K)`` tensor selection, ``(B, K)``.

    Raises:
        ValueError: For a wrong length/shape or a head name the model does not have.
    """
    k = len(head_names)
    if heads is None:
        return torch.ones(k, device=device, dtype=dtype)
    if isinstance(heads, torch.Tensor):
        if heads.ndim not in (1, 2) or heads.shape[-1] != k:
            raise ValueError(f"heads tensor must have shape (K,) or (B, K) with K={k}, got {tuple(heads.shape)}")
        return heads.to(device=device, dtype=dtype)
    if isinstance(heads, (str, Artefact)):
        heads = [heads]
    items = list(heads)
    if all(isinstance(h, (str, Artefact)) for h in items):
        names = [h.value if isinstance(h, Artefact) else h for h in items]
        missing = [n for n in names if n not in head_names]
        if missing:
            raise ValueError(f"head(s) {missing} not in this model's heads {list(head_names)}")
        return torch.tensor([float(n in names) for n in head_names], device=device, dtype=dtype)
    if any(isinstance(h, (str, Artefact)) for h in items):
        raise ValueError(f"heads must be all names or all booleans/numbers, got {items!r}")
    if len(items) != k:
        raise ValueError(f"expected {k} head flags for heads {list(head_names)}, got {len(items)}: {items!r}")
    return torch.tensor([float(h) for h in items], device=device, dtype=dtype)


def apply_residuals(
    image: torch.Tensor,
    residuals: torch.Tensor,
    heads: HeadSelection = None,
    head_names: Sequence[str] = ALL_HEADS,
    normalize: bool = True,
) -> torch.Tensor:
    """Add the selected residuals to the input: ``Znorm(u + sum_i m_i p_i)``.

    Useful to re-combine a model's residuals with another head selection without a second forward pass.

    Args:
        image: Input ``u``, shape ``(B, 1, H, W)``.
        residuals: ``p``, shape ``(B, K, H, W)`` (e.g. ``ModelOutput.residuals``).
        heads: Head selection (see :data:`HeadSelection`); ``None`` adds all.
        head_names: Names of the ``K`` residual channels.
        normalize: Apply the per-slice Z-normalisation (the model's output layer).

    Returns:
        ``(B, 1, H, W)``.
    """
    if residuals.shape[1] != len(head_names):
        raise ValueError(f"residuals have {residuals.shape[1]} channels but head_names has {len(head_names)}")
    w = head_weights(heads, head_names, device=residuals.device, dtype=residuals.dtype)
    w = w.reshape(-1 if w.ndim == 2 else 1, w.shape[-1], 1, 1)
    v = image + (w * residuals).sum(dim=1, keepdim=True)
    return znorm(v) if normalize else v


def selection_weights(policy: InferencePolicy, head_names: Sequence[str]) -> torch.Tensor:
    """Per-head weights ``(K,)`` of a policy's head selection and strengths for a model with ``head_names``.

    Raises:
        ValueError: A head in ``policy.only`` or ``policy.strength`` that the model lacks, in the options' words.
    """
    try:
        weights = head_weights(None if policy.only is None else list(policy.only), head_names)
    except ValueError as exc:
        raise ValueError(f"`only`: {exc}") from None
    factors = torch.ones_like(weights)
    for head, value in policy.strength:
        if head not in head_names:
            raise ValueError(f"`strength`: the model has no {head!r} head; it has {', '.join(head_names)}")
        factors[list(head_names).index(head)] = value
    return weights * factors


def consistent_head(head_names: Sequence[str], policy: InferencePolicy) -> int | None:
    """Channel of the subsampling residual that data consistency constrains (``None``: no such step)."""
    if not policy.consistency or "subsampling" not in head_names:
        return None
    return list(head_names).index("subsampling")


class DualDomainModel(nn.Module):
    """Multi-task (or single-task) dual-domain artefact-correction model.

    The network (:class:`ModelConfig`) computes one residual per head and, with ``gates``, the detector's
    scores, in one pass; how they are applied at inference (gating, data consistency, self-ensemble,
    physics priors) is an :class:`~artefix.models.policy.InferencePolicy`: :attr:`policy` is the model's
    own (its card's), and every inference method takes another one for a single call without changing it.

    Args:
        config: Architecture; see :class:`ModelConfig` and :mod:`artefix.models.presets`.
        seed: When given, every convolution is (re-)initialised from a private generator seeded with it
            (PyTorch's default scheme, ``kaiming_uniform_(a=sqrt(5))``), so equal seeds give equal
            models. PyTorch's layer constructors still advance the global RNG, as for any module.
        policy: The model's inference policy (default: gated residuals, no other step).

    Example:
        >>> import torch
        >>> from artefix.models import build_model
        >>> model = build_model("tiny").eval()
        >>> out = model(torch.randn(2, 1, 37, 50), heads=["bias", "noise"])
        >>> tuple(out.output.shape), tuple(out.residuals.shape)
        ((2, 1, 37, 50), (2, 4, 37, 50))
    """

    def __init__(
        self, config: ModelConfig | None = None, seed: int | None = None, policy: InferencePolicy | None = None
    ) -> None:
        super().__init__()
        self.config = config if config is not None else ModelConfig()
        self.policy = policy if policy is not None else InferencePolicy()
        c = self.config
        k = len(c.heads)
        kwargs = dict(
            base_width=c.base_width,
            depth=c.depth,
            convs_per_block=c.convs_per_block,
            negative_slope=c.negative_slope,
        )
        self.image_branch = SRResUNet(1, k, **kwargs) if "image" in c.branches else None
        self.kspace_branch = SRResUNet(2, 2 * k, **kwargs) if "kspace" in c.branches else None
        self.detector = ArtefactDetector(k, negative_slope=c.negative_slope) if c.gates else None
        # NHWC weights let oneDNN pick its fast convolutions on CPU (about 1.5x here); numerics are equal.
        self.to(memory_format=torch.channels_last)
        if seed is not None:
            self.reset_parameters(seed)

    def reset_parameters(self, seed: int) -> None:
        """Re-initialise all weights deterministically from ``seed`` (batch norms to identity)."""
        g = torch.Generator(device="cpu")
        g.manual_seed(int(seed) % (2**63 - 1))
        with torch.no_grad():
            for m in self.modules():
                if isinstance(m, nn.Conv2d):
                    w = torch.empty(m.weight.shape)
                    nn.init.kaiming_uniform_(w, a=math.sqrt(5), generator=g)
                    m.weight.copy_(w)
                    if m.bias is not None:
                        bound = 1.0 / math.sqrt(m.weight[0].numel())
                        m.bias.copy_(torch.empty(m.bias.shape).uniform_(-bound, bound, generator=g))
                elif isinstance(m, nn.BatchNorm2d):
                    m.reset_parameters()

    @property
    def head_names(self) -> tuple[str, ...]:
        """Artefact names of the residual channels, in order."""
        return self.config.heads

    @property
    def stride(self) -> int:
        """Inputs are padded internally to multiples of this many pixels."""
        return self.config.stride

    def acting_policy(self, policy: InferencePolicy | None = None) -> InferencePolicy:
        """The steps a call applies: ``policy`` (default :attr:`policy`).

        In training mode only its gating and data consistency (no self-ensemble, priors or truncation gate).
        """
        policy = self.policy if policy is None else policy
        if not isinstance(policy, InferencePolicy):
            raise TypeError(f"policy must be an InferencePolicy, got {type(policy).__name__}")
        if self.training:
            return InferencePolicy(gated=policy.gated, consistency=policy.consistency)
        return policy

    def _pad(self, x: torch.Tensor) -> tuple[torch.Tensor, int, int]:
        h, w = x.shape[-2], x.shape[-1]
        ph, pw = (-h) % self.stride, (-w) % self.stride
        if ph == 0 and pw == 0:
            return x, 0, 0
        top, left = ph // 2, pw // 2
        if self.config.pad_mode == "reflect" and (ph - top >= h or pw - left >= w):
            raise ValueError(
                f"pad_mode='reflect' cannot pad a {h}x{w} image to a multiple of {self.stride}; "
                "use pad_mode='constant' or 'replicate'"
            )
        pad = (left, pw - left, top, ph - top)
        if self.config.pad_mode == "constant":
            return F.pad(x, pad), top, left
        return F.pad(x, pad, mode=self.config.pad_mode), top, left

    def infer(
        self, x: torch.Tensor, snr_db: torch.Tensor | None = None, policy: InferencePolicy | None = None
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The residuals as applied and the scores that gated them, from one pass per ensemble transform.

        Args:
            x: Input slices ``(B, 1, H, W)``.
            snr_db: ``(B,)`` SNRs in dB for the noise gate (:attr:`InferencePolicy.noise_snr`) instead of
                each slice's own estimate, e.g. one value for all the slices of a scan, whose noise level is
                a property of the acquisition; ignored without the gate or in training mode.
            policy: The inference steps (default :attr:`policy`; see :meth:`acting_policy`).

        Returns:
            ``(residuals (B, K, H, W), scores (B, K) or None)``: with a self-ensemble the residuals and the
            detector's scores are each averaged over its transforms (each pass gated by its own scores);
            the physics priors come last, and the scores carry the noise and truncation gates' weights.
        """
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected input of shape (B, 1, H, W), got {tuple(x.shape)}")
        policy = self.acting_policy(policy)
        n = policy.ensemble
        if n == 1:
            out, scores = self._pass(x, policy)
        else:
            passes = [self._pass(dihedral(x, k), policy) for k in range(n)]
            out = self._consistent(sum(undo_dihedral(p[0], k) for k, p in enumerate(passes)) / n, x, policy)
            scores = None if self.detector is None else sum(p[1] for p in passes) / n
        gate = self._noise_gate(x, snr_db, policy)
        out = self._priors(out, x, policy, gate)
        return out, None if scores is None else self._weighted(scores, x, policy, gate)

    def _weighted(
        self, scores: torch.Tensor, x: torch.Tensor, policy: InferencePolicy, gate: tuple[int, torch.Tensor] | None
    ) -> torch.Tensor:
        """The detector's ``scores`` ``(B, K)`` times the noise ``gate`` and the truncation gate's weights."""
        weights = torch.ones_like(scores)
        if gate is not None:
            weights[:, gate[0]] = gate[1]
        head = consistent_head(self.head_names, policy)
        if policy.truncation_gate and head is not None:
            weights[:, head] = truncated(measured_window(x[:, 0])).to(scores.dtype)
        return scores * weights

    def residuals(
        self, x: torch.Tensor, snr_db: torch.Tensor | None = None, policy: InferencePolicy | None = None
    ) -> torch.Tensor:
        """All residuals ``(B, K, H, W)`` for input ``x`` ``(B, 1, H, W)`` (:meth:`infer` without the scores)."""
        return self.infer(x, snr_db, policy)[0]

    def _noise_gate(
        self, x: torch.Tensor, snr_db: torch.Tensor | None, policy: InferencePolicy
    ) -> tuple[int, torch.Tensor] | None:
        """``(noise channel, (B,) weights)`` of the SNR prior in eval mode, else None.

        ``snr_db`` ``(B,)`` replaces the slices' own estimates (:func:`estimated_snr_db` of ``x``).
        """
        if self.training or policy.noise_snr is None or "noise" not in self.head_names:
            return None
        lo, hi = policy.noise_snr
        if snr_db is None and min(x.shape[-2:]) < 2:
            return None  # a one-pixel-wide image has no 2x2 block to estimate its noise from: no gate
        if snr_db is None:
            snr_db = estimated_snr_db(x[:, 0])
        elif snr_db.shape != (x.shape[0],):
            raise ValueError(f"snr_db must have shape ({x.shape[0]},), one value per slice, got {tuple(snr_db.shape)}")
        return self.head_names.index("noise"), snr_gate(snr_db.to(x.device), lo, hi).to(x.dtype)

    def _priors(
        self, out: torch.Tensor, x: torch.Tensor, policy: InferencePolicy, gate: tuple[int, torch.Tensor] | None
    ) -> torch.Tensor:
        """The physics priors (:attr:`InferencePolicy.bias_smooth`, the noise ``gate``) in eval mode."""
        if self.training:
            return out
        channels = list(out.unbind(dim=1))
        if policy.bias_smooth > 0 and "bias" in self.head_names:
            i = self.head_names.index("bias")
            channels[i] = smooth_bias_residual(x[:, 0], channels[i], policy.bias_smooth)
        if gate is not None:
            channels[gate[0]] = channels[gate[0]] * gate[1][:, None, None]
        return torch.stack(channels, dim=1)

    def _consistent(self, out: torch.Tensor, x: torch.Tensor, policy: InferencePolicy) -> torch.Tensor:
        """Data consistency of the subsampling channel of ``out`` for input ``x`` (a no-op without it)."""
        i = consistent_head(self.head_names, policy)
        if i is None:
            return out
        measured = measured_window(x[:, 0])
        projected = project_unmeasured(out[:, i], measured)
        if policy.truncation_gate:
            projected = projected * truncated(measured).to(projected.dtype)[:, None, None]
        return torch.cat([out[:, :i], projected[:, None], out[:, i + 1 :]], dim=1)

    def ungated_residuals(self, x: torch.Tensor, policy: InferencePolicy | None = None) -> torch.Tensor:
        """The residuals of :meth:`residuals` before the detector's gates, ``(B, K, H, W)`` (one pass).

        Data consistency and, in eval mode, the physics priors are applied as at inference, so that
        ``scores[:, :, None, None] * ungated_residuals(x)`` (``scores`` of :meth:`gate_scores`) is what the model
        adds to ``x`` up to the bias prior's mild non-linearity. The detector is what a gate-calibration
        stage (``loss.fit_gates``) trains on these fixed residuals.
        """
        if x.ndim != 4 or x.shape[1] != 1:
            raise ValueError(f"expected input of shape (B, 1, H, W), got {tuple(x.shape)}")
        policy = self.acting_policy(policy).replace(gated=False)
        return self._priors(self._pass(x, policy)[0], x, policy, self._noise_gate(x, None, policy))

    def _pass(self, x: torch.Tensor, policy: InferencePolicy) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One network pass: the residuals and the detector's raw scores (None without a detector).

        The residuals are gated as ``policy`` says, with data consistency applied.
        """
        h, w = x.shape[-2], x.shape[-1]
        xp, top, left = self._pad(x)
        out = torch.zeros((), dtype=x.dtype, device=x.device)
        if self.image_branch is not None:
            out = out + self.image_branch(xp)
        if self.kspace_branch is not None:
            k = fft2c(xp[:, 0])
            y = self.kspace_branch(torch.stack([k.real, k.imag], dim=1))
            y = y.reshape(y.shape[0], -1, 2, y.shape[-2], y.shape[-1])
            out = out + ifft2c(torch.complex(y[:, :, 0], y[:, :, 1])).real
        scores = None if self.detector is None else self._scores(xp, x, policy)
        if scores is not None and policy.gated:
            out = out * scores[:, :, None, None]
        return self._consistent(out[..., top : top + h, left : left + w], x, policy), scores

    def _scores(self, xp: torch.Tensor, x: torch.Tensor, policy: InferencePolicy) -> torch.Tensor:
        """The detector's scores ``(B, K)`` for ``xp``, the padded ``x`` (both ``(B, 1, H, W)``).

        In eval mode :attr:`InferencePolicy.motion_open` opens the motion gate where ``x``'s k-space is not
        found truncated.
        """
        scores = self.detector(xp)
        if self.training or policy.motion_open is None or "motion" not in self.head_names:
            return scores
        i, (score, gate) = self.head_names.index("motion"), policy.motion_open
        opened = torch.maximum(scores[:, i], (scores[:, i] * (gate / score)).clamp(max=gate))
        motion = torch.where(truncated(measured_window(x[:, 0])), scores[:, i], opened)
        return torch.cat([scores[:, :i], motion[:, None], scores[:, i + 1 :]], dim=1)

    def gate_scores(self, x: torch.Tensor) -> torch.Tensor:
        """The detector's scores ``(B, K)`` for one pass, as they gate :meth:`ungated_residuals` (no SNR gate).

        Raises:
            ValueError: For a model without the detector (``gates``).
        """
        if self.detector is None:
            raise ValueError("this model has no artefact detector (ModelConfig.gates is false)")
        return self.detector(self._pad(x)[0])

    def detect(
        self, x: torch.Tensor, snr_db: torch.Tensor | None = None, policy: InferencePolicy | None = None
    ) -> torch.Tensor | None:
        """Per-head presence scores ``(B, K)`` in ``(0, 1)`` (``None`` without ``gates``).

        The scores of :meth:`infer` (the noise and truncation gates' weights included; with a self-ensemble
        the mean over its transforms) without computing the residuals: the detector alone.
        """
        if self.detector is None:
            return None
        policy = self.acting_policy(policy)
        n = policy.ensemble
        views = [dihedral(x, k) for k in range(n)]
        scores = sum(self._scores(self._pad(v)[0], v, policy) for v in views) / n
        return self._weighted(scores, x, policy, self._noise_gate(x, snr_db, policy))

    def forward(
        self,
        x: torch.Tensor,
        heads: HeadSelection = None,
        snr_db: torch.Tensor | None = None,
        policy: InferencePolicy | None = None,
    ) -> ModelOutput:
        """Correct ``x``.

        Args:
            x: Input slices ``u``, shape ``(B, 1, H, W)``, float, Z-normalised per slice as in the paper.
            heads: Which residuals to add (see :data:`HeadSelection`); ``None``: the policy's heads and
                strengths (all heads in full by default).
            snr_db: ``(B,)`` SNRs in dB for the noise gate instead of the slices' own (see :meth:`infer`).
            policy: The inference steps (default :attr:`policy`).

        Returns:
            :class:`ModelOutput` with ``output`` ``(B, 1, H, W)``, all residuals ``(B, K, H, W)`` and the
            detector's scores ``(B, K)`` (None without a detector).
        """
        p, scores = self.infer(x, snr_db, policy)
        if heads is None:
            heads = self._selection(self.acting_policy(policy))
        return ModelOutput(apply_residuals(x, p, heads, self.head_names), p, scores)

    def _selection(self, policy: InferencePolicy) -> torch.Tensor | None:
        """The policy's head weights ``(K,)`` (its heads times their strengths), None for all heads in full."""
        if policy.only is None and not policy.strength:
            return None
        return selection_weights(policy, self.head_names)
