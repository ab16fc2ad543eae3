"""The paper's losses: the convolutional loss ``LC`` (Table 1 kernels) and the multi-task loss (Eq. 6).

Convolutional loss (Simko et al. 2023, "Perceptual loss" section)::

    L(I, x, y) = MSE(I * x, I * y)            LC(x, y) = sum_k delta_k L(I_k, x, y)

over the nine kernels ``k`` of Table 1, in the order of :data:`KERNEL_NAMES`.

Conventions (fixed here, pinned by ``tests/test_losses.py``):

* **Normalisation.** By default every kernel is divided by the divisor the authors' code used
  (:data:`KERNEL_DIVISORS`: 6 for Prewitt, 8 for Sobel 3x3 and Laplace 3x3, 36 for Sobel 5x5, 32 for
  Laplace 5x5, 1 for the identity), i.e. by the sum of the absolute values of its weights. With
  ``normalise=False`` the raw integer matrices printed in the paper's Table 1 are used.
* **One convolution.** The 3x3 kernels are zero-padded (centred) to 5x5 and all nine are stacked into
  one ``(9, 1, 5, 5)`` weight, so the nine responses come from a single ``conv2d`` call.
* **'valid' convolution.** No padding: a border would create fake edges. Every response is evaluated
  on the same ``(H - 4, W - 4)`` grid (the 5x5 support), so each term -- including the identity, whose
  padded 5x5 version crops 2 pixels on every side -- is the mean over the image cropped by 2 px:
  ``L(I_E, x, y) == MSE(x[..., 2:-2, 2:-2], y[..., 2:-2, 2:-2])``.
* **Cross-correlation.** ``torch.nn.functional.conv2d`` computes the cross-correlation
  ``r[i, j] = sum_ab I[a, b] x[i + a, j + b]``, not the flipped convolution of the text. Every kernel of
  Table 1 is either symmetric (E, L3, L5) or antisymmetric (Prewitt, Sobel) under a 180 degree rotation,
  so the two differ at most by a sign and the squared errors, hence all loss values, are identical.
  Signed responses (:func:`kernel_responses`) follow cross-correlation: the "top" kernels give
  ``x[i + 1] - x[i - 1]`` (positive for intensity increasing downwards), the "right" kernels
  ``x[j - 1] - x[j + 1]`` (positive for intensity decreasing to the right).
* **Linearity.** ``I * x - I * y = I * (x - y)``, so the kernels are applied once, to the difference.

Multi-task loss (Eq. 6)::

    L_total(v, u, p, y) = L(v, Znorm(u + sum_i 1[y = i] p_i)) + alpha * sum_i ||p_i||^2

with ``v`` the clean target, ``u`` the corrupted input, ``p`` the residuals in the order of
:class:`artefix.artefacts.base.Artefact` (bias, subsampling, motion, noise) and ``y`` the index of the
applied artefact: only the residual of the applied artefact enters the reconstruction term.

The differentiable metrics ``ssim_torch``, ``vifp_torch`` and ``quality_deficit`` live in
:mod:`artefix.metrics.torch_metrics` and are re-exported here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artefix.artefacts.base import znorm
from artefix.metrics.torch_metrics import _filter_valid as _filter_valid  # re-exported: old import path
from artefix.metrics.torch_metrics import _gaussian_window as _gaussian_window  # re-exported: old import path
from artefix.metrics.torch_metrics import quality_deficit, ssim_torch, vifp_torch

__all__ = [
    "ALPHA_PRESETS",
    "DELTA_PRESETS",
    "KERNEL_DIVISORS",
    "KERNEL_NAMES",
    "ConvolutionalLoss",
    "DeltasLike",
    "MultiTaskLoss",
    "MultiTaskLossOutput",
    "conv_loss",
    "deltas_from_preset",
    "kernel_responses",
    "kernels",
    "quality_deficit",
    "ssim_torch",
    "vifp_torch",
]

KERNEL_NAMES: tuple[str, ...] = ("E", "PT", "PR", "S3T", "S3R", "S5T", "S5R", "L3", "L5")
"""Names of the nine kernels of Table 1, in the order of every ``(9, ...)`` tensor of this module."""

KERNEL_SIZE = 5
"""Side of the stacked kernels (the 3x3 kernels are zero-padded to 5x5)."""

_RAW_KERNELS: Mapping[str, tuple[tuple[int, ...], ...]] = MappingProxyType(
    {
        "E": ((0, 0, 0), (0, 1, 0), (0, 0, 0)),
        "PT": ((-1, -1, -1), (0, 0, 0), (1, 1, 1)),
        "PR": ((1, 0, -1), (1, 0, -1), (1, 0, -1)),
        "S3T": ((-1, -2, -1), (0, 0, 0), (1, 2, 1)),
        "S3R": ((1, 0, -1), (2, 0, -2), (1, 0, -1)),
        "S5T": (
            (-2, -2, -4, -2, -2),
            (-1, -1, -2, -1, -1),
            (0, 0, 0, 0, 0),
            (1, 1, 2, 1, 1),
            (2, 2, 4, 2, 2),
        ),
        "S5R": (
            (2, 1, 0, -1, -2),
            (2, 1, 0, -1, -2),
            (4, 2, 0, -2, -4),
            (2, 1, 0, -1, -2),
            (2, 1, 0, -1, -2),
        ),
        "L3": ((0, -1, 0), (-1, 4, -1), (0, -1, 0)),
        "L5": (
            (0, 0, -1, 0, 0),
            (0, -1, -2, -1, 0),
            (-1, -2, 16, -2, -1),
            (0, -1, -2, -1, 0),
            (0, 0, -1, 0, 0),
        ),
    }
)

KERNEL_DIVISORS: Mapping[str, int] = MappingProxyType(
    {"E": 1, "PT": 6, "PR": 6, "S3T": 8, "S3R": 8, "S5T": 36, "S5R": 36, "L3": 8, "L5": 32}
)
"""Divisor of each kernel under ``normalise=True`` (the authors' code; the sum of absolute weights)."""


def _preset(values: Sequence[float]) -> Mapping[str, float]:
    return MappingProxyType(dict(zip(KERNEL_NAMES, (float(v) for v in values), strict=True)))


DELTA_PRESETS: Mapping[str, Mapping[str, float]] = MappingProxyType(
    {
        "mse": _preset((1, 0, 0, 0, 0, 0, 0, 0, 0)),
        "mt_lc_brain": _preset((0.30, 0.83, 0.25, 0.74, 0.30, 0.21, 0.72, 0.09, 0.82)),
        "mt_lc_pelvis": _preset((0.13, 0.23, 0.03, 0.84, 0.23, 0.14, 0.91, 0.38, 0.77)),
    }
)
"""Kernel weights ``delta_k`` of Table 2: ``"mse"`` (identity only: the Bias, Subsampling, Motion,
Noise and MT models), ``"mt_lc_brain"`` (column MT+LC) and ``"mt_lc_pelvis"`` (column Pelvis MT+LC)."""

ALPHA_PRESETS: Mapping[str, float] = MappingProxyType(
    {
        "bias": 0.60,
        "subsampling": 0.48,
        "motion": 0.59,
        "noise": 0.85,
        "mt": 0.51,
        "mt_lc_brain": 0.87,
        "mt_lc_pelvis": 0.89,
    }
)
"""Residual-regulariser weights ``alpha`` of Table 2, one per column (model)."""

_MODEL_DELTAS: Mapping[str, str] = MappingProxyType(
    {
        "bias": "mse",
        "subsampling": "mse",
        "motion": "mse",
        "noise": "mse",
        "mt": "mse",
        "mt_lc_brain": "mt_lc_brain",
        "mt_lc_pelvis": "mt_lc_pelvis",
    }
)

DeltasLike = str | Mapping[str, float] | Sequence[float] | torch.Tensor | np.ndarray
"""A preset name of :data:`DELTA_PRESETS`, a ``{kernel name: delta}`` mapping (missing names are 0),
or nine values in the order of :data:`KERNEL_NAMES`."""


def deltas_from_preset(name: str) -> dict[str, float]:
    """The kernel weights of a Table 2 column.

    Args:
        name: A key of :data:`DELTA_PRESETS` (``"mse"``, ``"mt_lc_brain"``, ``"mt_lc_pelvis"``).

    Returns:
        A fresh ``{kernel name: delta}`` dict with all nine names of :data:`KERNEL_NAMES`.

    """
    if name not in DELTA_PRESETS:
        raise ValueError(f"unknown delta preset {name!r}; expected one of {sorted(DELTA_PRESETS)}")
    return dict(DELTA_PRESETS[name])


def _deltas_vector(deltas: DeltasLike) -> list[float]:
    """Turn any :data:`DeltasLike` into nine finite, non-negative floats in kernel order."""
    if isinstance(deltas, str):
        values = [deltas_from_preset(deltas)[k] for k in KERNEL_NAMES]
    elif isinstance(deltas, Mapping):
        unknown = sorted(set(deltas) - set(KERNEL_NAMES))
        if unknown:
            raise ValueError(f"unknown kernel name(s) {unknown} in deltas; expected {KERNEL_NAMES}")
        values = [float(deltas.get(k, 0.0)) for k in KERNEL_NAMES]
    else:
        if isinstance(deltas, torch.Tensor):
            deltas = deltas.detach().cpu().reshape(-1).tolist()
        elif isinstance(deltas, np.ndarray):
            deltas = deltas.reshape(-1).tolist()
        values = [float(v) for v in deltas]
        if len(values) != len(KERNEL_NAMES):
            raise ValueError(
                f"deltas must have {len(KERNEL_NAMES)} values (one per kernel {KERNEL_NAMES}), "
                f"got {len(values)}: {values}"
            )
    for name, value in zip(KERNEL_NAMES, values, strict=True):
        if not math.isfinite(value) or value < 0:
            raise ValueError(f"delta for kernel {name!r} must be finite and >= 0, got {value}")
    return values


def kernels(
    normalise: bool = True,
    *,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """The nine kernels of Table 1, stacked as one ``conv2d`` weight.

    Args:
        normalise: Divide each kernel by :data:`KERNEL_DIVISORS` (the authors' code, default); ``False``
            gives the raw integer matrices of the paper's text.
        dtype: Floating dtype of the result.
        device: Device of the result.

    Returns:
        Tensor of shape ``(9, 1, 5, 5)`` in the order of :data:`KERNEL_NAMES`; the 3x3 kernels sit in the
        centre ``[1:4, 1:4]`` with zeros around.

    """
    stack = np.zeros((len(KERNEL_NAMES), 1, KERNEL_SIZE, KERNEL_SIZE), dtype=np.float64)
    for k, name in enumerate(KERNEL_NAMES):
        raw = np.asarray(_RAW_KERNELS[name], dtype=np.float64)
        off = (KERNEL_SIZE - raw.shape[0]) // 2
        stack[k, 0, off : off + raw.shape[0], off : off + raw.shape[1]] = raw
        if normalise:
            stack[k] /= KERNEL_DIVISORS[name]
    return torch.as_tensor(stack, dtype=dtype, device=device)


def _as_batch(x: torch.Tensor, what: str) -> torch.Tensor:
    """Reshape an ``(..., H, W)`` real image tensor to ``(N, 1, H, W)``."""
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"{what} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2 or x.is_complex() or not x.is_floating_point():
        raise ValueError(f"{what} must be a real floating (B, 1, H, W) tensor, got {x.dtype} {tuple(x.shape)}")
    return x.reshape(-1, 1, *x.shape[-2:])


def _check_pair(x: torch.Tensor, y: torch.Tensor, min_size: int) -> None:
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {tuple(x.shape)} and {tuple(y.shape)}")
    if x.ndim < 2 or x.shape[-1] < min_size or x.shape[-2] < min_size:
        raise ValueError(
            f"images must be at least {min_size}x{min_size} for a 'valid' {min_size}x{min_size} convolution, "
            f"got shape {tuple(x.shape)}"
        )


def kernel_responses(x: torch.Tensor, normalise: bool = True) -> torch.Tensor:
    """Signed responses ``I_k * x`` of the nine kernels ('valid' cross-correlation, one ``conv2d``).

    Args:
        x: Real images of shape ``(B, 1, H, W)`` (any ``(..., H, W)`` is flattened to ``(N, 1, H, W)``),
            ``H, W >= 5``.
        normalise: Use the normalised kernels (see :func:`kernels`).

    Returns:
        Tensor of shape ``(N, 9, H - 4, W - 4)``:
        ``r[n, k, i, j] = sum_ab I_k[a, b] x[n, i + a, j + b]`` with ``I_k`` the 5x5 (padded) kernel.

    """
    xb = _as_batch(x, "x")
    _check_pair(xb, xb, KERNEL_SIZE)
    return F.conv2d(xb, kernels(normalise, dtype=xb.dtype, device=xb.device))


def conv_loss(
    x: torch.Tensor,
    y: torch.Tensor,
    kernel: str | torch.Tensor,
    *,
    normalise: bool = True,
) -> torch.Tensor:
    """The convolutional loss ``L(I, x, y) = mean_j ((I * x - I * y)_j ** 2)`` for one kernel.

    Args:
        x: Images of shape ``(B, 1, H, W)`` (any ``(..., H, W)``), real floating.
        y: Images of the same shape as ``x``.
        kernel: A name from :data:`KERNEL_NAMES` (then the 5x5-padded kernel of :func:`kernels` is used,
            so the value equals the matching term of :meth:`ConvolutionalLoss.terms`) or a 2D tensor
            ``(kh, kw)`` used as given.
        normalise: For a kernel name, use the normalised kernel (default) or the raw one.

    Returns:
        Scalar tensor: the mean over the batch and the ``(H - kh + 1) x (W - kw + 1)`` 'valid' grid.

    """
    if isinstance(kernel, str):
        if kernel not in KERNEL_NAMES:
            raise ValueError(f"unknown kernel {kernel!r}; expected one of {KERNEL_NAMES}")
        weight = kernels(normalise, dtype=x.dtype, device=x.device)[KERNEL_NAMES.index(kernel)][None]
    else:
        if not isinstance(kernel, torch.Tensor) or kernel.ndim != 2:
            shape = tuple(kernel.shape) if isinstance(kernel, torch.Tensor) else type(kernel).__name__
            raise ValueError(f"kernel must be a kernel name or a 2D tensor (kh, kw), got {shape}")
        weight = kernel.to(dtype=x.dtype, device=x.device)[None, None]
    xb, yb = _as_batch(x, "x"), _as_batch(y, "y")
    _check_pair(x, y, max(weight.shape[-2:]))
    return F.conv2d(xb - yb, weight).square().mean()


class ConvolutionalLoss(nn.Module):
    """``LC(x, y) = sum_k delta_k MSE(I_k * x, I_k * y)`` over the nine kernels of Table 1.

    All nine kernel responses of the difference ``x - y`` come from one 'valid' ``conv2d`` call with
    the stacked, zero-padded 5x5 kernels, so every term is a mean over the same ``(H - 4) x (W - 4)``
    grid; with only ``delta_E = 1`` the loss is exactly the MSE of the images cropped by 2 px.

    Args:
        deltas: Kernel weights: a :data:`DELTA_PRESETS` name, a ``{name: delta}`` mapping (missing
            names are 0) or nine values in :data:`KERNEL_NAMES` order; finite and ``>= 0``. Stored as the
            buffer ``deltas`` (shape ``(9,)``, saved in the ``state_dict``).
        normalise: Use the normalised kernels of the authors' code (default) or the raw ones.

    The stacked kernels are built in the dtype and on the device of each input (and cached), so they
    are exact in float64 whatever dtype the module was moved to.

    Attributes:
        deltas: Buffer ``(9,)``, float64 by default (cast to the input's dtype in :meth:`forward`).

    """

    deltas: torch.Tensor

    def __init__(self, deltas: DeltasLike = "mt_lc_brain", normalise: bool = True) -> None:
        super().__init__()
        self.normalise = bool(normalise)
        self.register_buffer("deltas", torch.tensor(_deltas_vector(deltas), dtype=torch.float64))
        self._weights: dict[tuple[torch.dtype, torch.device], torch.Tensor] = {}

    def weight(self, like: torch.Tensor) -> torch.Tensor:
        """The stacked kernels ``(9, 1, 5, 5)`` (see :func:`kernels`) in the dtype/device of ``like``."""
        key = (like.dtype, like.device)
        if key not in self._weights:
            self._weights[key] = kernels(self.normalise, dtype=like.dtype, device=like.device)
        return self._weights[key]

    def extra_repr(self) -> str:
        """The deltas by kernel name and the normalisation flag."""
        pairs = ", ".join(f"{n}={v:.3g}" for n, v in zip(KERNEL_NAMES, self.deltas.tolist(), strict=True))
        return f"{pairs}, normalise={self.normalise}"

    def terms(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Per-kernel losses ``L(I_k, x, y)`` (unweighted).

        Args:
            x: Images of shape ``(B, 1, H, W)`` (any ``(..., H, W)``), ``H, W >= 5``, real floating.
            y: Images of the same shape.

        Returns:
            Tensor of shape ``(9,)`` in :data:`KERNEL_NAMES` order.

        """
        _check_pair(x, y, KERNEL_SIZE)
        diff = _as_batch(x, "x") - _as_batch(y, "y")
        response = F.conv2d(diff, self.weight(diff))
        return response.square().mean(dim=(0, 2, 3))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The weighted sum ``sum_k delta_k L(I_k, x, y)``; a scalar tensor (see :meth:`terms`)."""
        terms = self.terms(x, y)
        return (self.deltas.to(terms) * terms).sum()


class MultiTaskLossOutput(NamedTuple):
    """The parts of the multi-task loss, each a scalar tensor; ``total = reconstruction + regulariser``."""

    total: torch.Tensor
    reconstruction: torch.Tensor
    regulariser: torch.Tensor


class MultiTaskLoss(nn.Module):
    """Multi-task loss of Eq. 6 with the residual L2 regulariser.

    For each sample ``b`` with applied artefact ``y_b``::

        prediction_b = Znorm(u_b + sum_i 1[y_b = i] p_{b,i})
        reconstruction = criterion(prediction, Znorm(v))                  (batch mean)
        regulariser = alpha * (1/B) sum_b sum_i (1/(H W)) sum_pixels p_{b,i}^2

    The prediction is Z-normalised per slice (:func:`artefix.artefacts.base.znorm`) because the
    model's output layer is; the target is Z-normalised too (idempotent for the already Z-normalised
    targets of the data pipeline). Only the selected residual of each sample enters the reconstruction
    term, so with ``alpha = 0`` the other heads receive exactly zero gradient from that sample. The
    regulariser acts on **all** heads: it is the paper's ``alpha ||p_i||_2^2`` with the squared norm
    taken as the *mean* of squares over the ``H x W`` pixels (so ``alpha`` does not depend on the image
    size), summed over the heads and averaged over the batch.

    Single-task models (residuals with one channel) always use their single residual; the artefact
    index may then be ``None`` and is ignored.

    Args:
        deltas: Kernel weights of the :class:`ConvolutionalLoss` used as criterion (default ``"mse"``:
            identity kernel only, i.e. MSE on the image cropped by 2 px). Must be ``None`` when
            ``criterion`` is given.
        alpha: Regulariser weight, finite and ``>= 0`` (Table 2: :data:`ALPHA_PRESETS`).
        normalise: Kernel normalisation of the convolutional loss (see :func:`kernels`).
        criterion: Any module ``(prediction, target) -> scalar`` to use instead of the convolutional
            loss, e.g. ``torch.nn.MSELoss()`` for the full-image MSE.
        znorm_target: Z-normalise the target before comparing (default ``True``).

    """

    def __init__(
        self,
        deltas: DeltasLike | None = None,
        alpha: float = 0.0,
        *,
        normalise: bool = True,
        criterion: nn.Module | None = None,
        znorm_target: bool = True,
    ) -> None:
        super().__init__()
        alpha = float(alpha)
        if not math.isfinite(alpha) or alpha < 0:
            raise ValueError(f"alpha must be finite and >= 0, got {alpha}")
        if criterion is not None and deltas is not None:
            raise ValueError("give either deltas (convolutional loss) or criterion, not both")
        self.alpha = alpha
        self.znorm_target = bool(znorm_target)
        self.criterion = (
            criterion
            if criterion is not None
            else ConvolutionalLoss("mse" if deltas is None else deltas, normalise=normalise)
        )

    @classmethod
    def from_preset(cls, name: str) -> MultiTaskLoss:
        """The loss of one Table 2 column (deltas and alpha).

        Args:
            name: A key of :data:`ALPHA_PRESETS`: ``"bias"``, ``"subsampling"``, ``"motion"``,
                ``"noise"``, ``"mt"`` (all with ``"mse"`` deltas), ``"mt_lc_brain"``, ``"mt_lc_pelvis"``.

        """
        if name not in ALPHA_PRESETS:
            raise ValueError(f"unknown loss preset {name!r}; expected one of {sorted(ALPHA_PRESETS)}")
        return cls(deltas=_MODEL_DELTAS[name], alpha=ALPHA_PRESETS[name])

    def extra_repr(self) -> str:
        """The regulariser weight and the target normalisation flag."""
        return f"alpha={self.alpha:.3g}, znorm_target={self.znorm_target}"

    @staticmethod
    def selection(
        artefact_index: torch.Tensor | None,
        batch: int,
        n_heads: int,
        like: torch.Tensor,
    ) -> torch.Tensor:
        """The indicator ``1[y_b = i]`` as a ``(B, n_heads)`` tensor of the dtype/device of ``like``.

        Args:
            artefact_index: ``(B,)`` integer indices in ``[0, n_heads)``, or a ``(B, n_heads)`` boolean /
                0-1 mask (several heads per sample, e.g. multi-artefact images; an all-zero row means
                no artefact). Ignored (may be ``None``) when ``n_heads == 1``.
            batch: ``B``.
            n_heads: Number of residual heads.
            like: Tensor whose dtype and device the result takes.

        """
        if n_heads == 1:
            return like.new_ones(batch, 1)
        if artefact_index is None:
            raise ValueError(f"artefact_index is required for residuals with {n_heads} heads")
        idx = torch.as_tensor(artefact_index, device=like.device)
        if idx.ndim == 1 and not idx.is_floating_point() and idx.dtype != torch.bool:
            if idx.shape[0] != batch:
                raise ValueError(f"artefact_index must have shape ({batch},), got {tuple(idx.shape)}")
            if bool(((idx < 0) | (idx >= n_heads)).any()):
                raise ValueError(f"artefact_index values must lie in [0, {n_heads}), got {idx.tolist()}")
            return (idx[:, None] == torch.arange(n_heads, device=like.device)).to(like.dtype)
        if idx.shape != (batch, n_heads):
            raise ValueError(
                f"artefact_index must be integer indices of shape ({batch},) or a mask of shape "
                f"({batch}, {n_heads}), got {idx.dtype} {tuple(idx.shape)}"
            )
        mask = idx.to(like.dtype)
        if bool(((mask != 0) & (mask != 1)).any()):
            raise ValueError(f"an artefact mask must hold only 0 and 1, got {mask.tolist()}")
        return mask

    def forward(
        self,
        target: torch.Tensor,
        corrupted: torch.Tensor,
        residuals: torch.Tensor,
        artefact_index: torch.Tensor | None = None,
    ) -> MultiTaskLossOutput:
        """Evaluate the loss.

        Args:
            target: Clean images ``v``, shape ``(B, 1, H, W)``.
            corrupted: Model inputs ``u``, shape ``(B, 1, H, W)``.
            residuals: Residuals ``p``, shape ``(B, n, H, W)``; ``n = 4`` in the order bias,
                subsampling, motion, noise (:class:`artefix.artefacts.base.Artefact`), or ``n = 1``.
            artefact_index: Applied artefact per sample, ``(B,)`` long (or a ``(B, n)`` 0-1 mask);
                see :meth:`selection`.

        Returns:
            :class:`MultiTaskLossOutput` ``(total, reconstruction, regulariser)`` of scalar tensors.

        """
        if residuals.ndim != 4:
            raise ValueError(f"residuals must have shape (B, n, H, W), got {tuple(residuals.shape)}")
        batch, n_heads, height, width = residuals.shape
        for name, image in (("target", target), ("corrupted", corrupted)):
            if tuple(image.shape) != (batch, 1, height, width):
                raise ValueError(
                    f"{name} must have shape {(batch, 1, height, width)} to match residuals "
                    f"{tuple(residuals.shape)}, got {tuple(image.shape)}"
                )
        mask = self.selection(artefact_index, batch, n_heads, residuals)
        prediction = znorm(corrupted + (mask[:, :, None, None] * residuals).sum(dim=1, keepdim=True))
        reference = znorm(target) if self.znorm_target else target
        reconstruction = self.criterion(prediction, reference)
        if self.alpha > 0:
            regulariser = self.alpha * residuals.square().mean(dim=(0, 2, 3)).sum()
        else:
            regulariser = reconstruction.new_zeros(())
        return MultiTaskLossOutput(reconstruction + regulariser, reconstruction, regulariser)
