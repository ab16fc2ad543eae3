r"""Slice-batch maths of artefact correction: intensity mapping, model matrix, residual selection.

For an input slice ``x`` (scanner units) with mean ``mu`` and standard deviation ``sigma`` (population,
over the slice) the model sees ``u = (x - mu) / sigma`` and predicts one residual ``p_i`` per head. The
corrected slice and the residuals are returned in the input's units:

.. math::  y = \mu + \sigma\,\operatorname{Znorm}\Bigl(u + \sum_i m_i\,p_i\Bigr), \qquad r_i = \sigma\,p_i,

i.e. ``y`` is ``x + sum_i m_i r_i`` re-standardised to the input slice's own mean and standard deviation
(the model's output layer is a Z-normalisation, so a trained model fixes the residuals only up to that
affine map). ``m_i`` is the head selection (``--only``): with no head selected ``y = x`` up to float32
round-off, and two selections differ exactly by the excluded ``r_i`` before the re-standardisation.

A constant slice (``max == min``) has no contrast to normalise: it is passed through unchanged with zero
residuals and never reaches the model.

Model matrix: the network is fully convolutional (it pads to its stride internally), so by default it
runs at the slice's native size. When a model card declares its training ``matrix`` ``(Hm, Wm)``, each
slice is Fourier-resized (:func:`artefix.fft.fourier_resize`: field of view kept, resolution changed) to
the pixel size the training slices had, the residuals are predicted there and Fourier-resized back to
the native matrix, where they are added to the native ``u`` (see :func:`working_shape`). Residual
content above the working matrix's Nyquist frequency is therefore not corrected when the native matrix
is finer than the training one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import torch

from artefix.artefacts.base import znorm
from artefix.fft import fourier_resize

if TYPE_CHECKING:
    from artefix.models.policy import InferencePolicy


def slice_moments(stack: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-slice mean, standard deviation and constancy of a stack, in float64.

    Args:
        stack: Slices, shape ``(N, H, W)``, any real dtype.

    Returns:
        ``(mean, std, constant)``, each of shape ``(N,)``; ``std`` is the population standard deviation
        and ``constant[z]`` is True when slice ``z`` has ``max == min``.
    """
    arr = np.asarray(stack)
    flat = arr.reshape(arr.shape[0], -1)
    mean = flat.mean(axis=1, dtype=np.float64)
    std = flat.std(axis=1, dtype=np.float64)
    constant = flat.max(axis=1) == flat.min(axis=1)
    return mean, std, constant


def working_shape(
    shape: tuple[int, int], spacing: Sequence[float] = (1.0, 1.0), matrix: Sequence[int] | None = None
) -> tuple[int, int]:
    r"""The in-plane size at which the model sees a slice.

    Without a declared training ``matrix`` it is the native ``shape``. With one, the slice is resampled to
    square pixels of the size the training slices had after the dataset's ``fit="pad"`` preprocessing
    (zero-pad to the matrix's aspect ratio, then Fourier-resize to the matrix):

    .. math::  p = \max\bigl(H\,\Delta_y / H_m,\; W\,\Delta_x / W_m\bigr), \qquad
        (H', W') = \operatorname{round}\bigl(H\,\Delta_y / p,\; W\,\Delta_x / p\bigr),

    so the longer physical side fills the matrix and the aspect ratio is kept (no padding is needed: the
    model is fully convolutional).

    Args:
        shape: Native ``(H, W)`` in pixels.
        spacing: In-plane pixel size ``(dy, dx)`` in mm (any common unit; only ratios matter).
        matrix: Training matrix ``(Hm, Wm)``, or None.

    Returns:
        ``(H', W')``, each at least 2.

    Raises:
        ValueError: For a matrix that is not two integers >= 2 or a non-positive spacing.
    """
    h, w = int(shape[0]), int(shape[1])
    if matrix is None:
        return h, w
    if len(matrix) != 2 or any(isinstance(m, bool) or int(m) != m or int(m) < 2 for m in matrix):
        raise ValueError(f"model matrix must be two integers >= 2, got {matrix!r}")
    dy, dx = (float(s) for s in spacing)
    if not (dy > 0 and dx > 0 and np.isfinite(dy) and np.isfinite(dx)):
        dy = dx = 1.0
    pixel = max(h * dy / int(matrix[0]), w * dx / int(matrix[1]))
    return max(2, round(h * dy / pixel)), max(2, round(w * dx / pixel))


class CorrectedBatch(NamedTuple):
    """What :func:`correct_batch` returns, in the input's units.

    Attributes:
        image: Corrected slices ``y``, ``(B, H, W)`` float32.
        residuals: All residuals ``r``, ``(B, K, H, W)`` float32.
        scores: The detector's scores that gated the residuals, ``(B, K)`` (the same forward pass); None
            for a model without a detector.
    """

    image: torch.Tensor
    residuals: torch.Tensor
    scores: torch.Tensor | None


def correct_batch(
    model: torch.nn.Module,
    batch: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    weights: torch.Tensor,
    work_shape: tuple[int, int] | None = None,
    snr_db: torch.Tensor | None = None,
    policy: InferencePolicy | None = None,
) -> CorrectedBatch:
    """Correct a batch of non-constant slices, returning the image and residuals in input units.

    Args:
        model: Called as ``model(u, snr_db=..., policy=...)`` with ``u`` of shape ``(B, 1, H', W')`` (each
            keyword only when given); returns a :class:`artefix.models.ModelOutput` (``residuals``
            ``(B, K, H', W')``; ``scores`` read where present).
        batch: Slices ``x`` in input units, ``(B, H, W)`` float32.
        mean: Per-slice mean ``mu``, ``(B,)``.
        std: Per-slice standard deviation ``sigma > 0``, ``(B,)``.
        weights: Head selection ``m``, ``(K,)``: 0/1, or a factor in ``[0, 1]`` for a partial correction.
        work_shape: Size at which the model runs (default: native ``(H, W)``).
        snr_db: ``(B,)`` SNRs in dB for the model's noise gate instead of each slice's own estimate
            (``DualDomainModel.infer``; the scan's SNR, see :func:`scan_snr_db`); None: the slices' own.
        policy: The inference policy (None: the model's own).

    Returns:
        :class:`CorrectedBatch`.
    """
    h, w = int(batch.shape[-2]), int(batch.shape[-1])
    mu = mean.to(batch.dtype)[:, None, None]
    sigma = std.to(batch.dtype)[:, None, None]
    u = (batch - mu) / sigma
    shape = (h, w) if work_shape is None else (int(work_shape[0]), int(work_shape[1]))
    model_in = u if shape == (h, w) else fourier_resize(u, shape)
    x = model_in.unsqueeze(1).contiguous()
    options = {"snr_db": snr_db, "policy": policy}
    out = model(x, **{k: v for k, v in options.items() if v is not None})  # a plain module takes x alone
    p = out.residuals
    if shape != (h, w):
        p = fourier_resize(p, (h, w))
    combined = u + (weights.to(p.dtype)[None, :, None, None] * p).sum(dim=1)
    y = mu + sigma * znorm(combined)
    return CorrectedBatch(y, p * sigma.unsqueeze(1), getattr(out, "scores", None))


def scan_snr_db(snr_db: np.ndarray) -> float | None:
    """The SNR of a scan: the median of its slices' estimated SNRs in dB (NaN entries, constant slices, skipped).

    The noise level is a property of the acquisition, but a slice's SNR also follows how much of it the
    anatomy fills (the paper's ``S`` is the mean k-space magnitude), so slices of one clean scan spread over
    10 dB or more: gating each slice on its own estimate denoises only the emptier ones (e.g. the
    mid-sagittal slices of a brain). One value per scan treats every slice alike.

    Args:
        snr_db: ``(N,)`` per-slice estimates (:func:`artefix.models.priors.estimated_snr_db`).

    Returns:
        The median in dB, or None when no entry is finite.
    """
    finite = np.asarray(snr_db, dtype=np.float64)
    finite = finite[np.isfinite(finite)]
    return float(np.median(finite)) if finite.size else None


def model_input(
    batch: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, work_shape: tuple[int, int] | None
) -> torch.Tensor:
    """Z-normalised slices ``(B, H', W')`` at the size the model runs at (Fourier-resized when it differs).

    Args:
        batch: Slices in input units, ``(B, H, W)``.
        mean: Per-slice mean, ``(B,)``.
        std: Per-slice standard deviation ``> 0``, ``(B,)``.
        work_shape: Size at which the model runs (None: native).
    """
    u = (batch - mean.to(batch.dtype)[:, None, None]) / std.to(batch.dtype)[:, None, None]
    h, w = int(batch.shape[-2]), int(batch.shape[-1])
    if work_shape is not None and tuple(work_shape) != (h, w):
        u = fourier_resize(u, (int(work_shape[0]), int(work_shape[1])))
    return u


class QCScores(NamedTuple):
    """What the model's inference steps found in a batch (each ``None`` where the model lacks the step).

    Attributes:
        detection: Per-head artefact presence scores ``(B, K)`` (``DualDomainModel.detect``; models with a
            detector, ``ModelConfig.gates``).
        window: Fractions of the k-space rows and columns each slice was measured with, ``(B, 2)``, as the
            data-consistency step finds them (:func:`artefix.models.consistency.measured_window`; policies
            with ``consistency``).
        snr_db: Estimated SNR in dB of each slice, ``(B,)``, as the noise gate sees it
            (:func:`artefix.models.priors.estimated_snr_db`; policies with ``noise_snr``).
    """

    detection: torch.Tensor | None
    window: torch.Tensor | None
    snr_db: torch.Tensor | None


def qc_batch(
    model: torch.nn.Module,
    batch: torch.Tensor,
    mean: torch.Tensor,
    std: torch.Tensor,
    work_shape: tuple[int, int] | None = None,
    snr_db: torch.Tensor | None = None,
    policy: InferencePolicy | None = None,
    *,
    detect: bool = True,
) -> QCScores:
    """The QC scores of a batch, from the model's input computed once.

    Args:
        model: The correcting model (a :class:`artefix.models.DualDomainModel` or a module with its
            ``detector``, ``head_names``, ``policy`` and ``detect``; steps it lacks give ``None``).
        batch: Slices in input units, ``(B, H, W)``.
        mean: Per-slice mean, ``(B,)``.
        std: Per-slice standard deviation ``> 0``, ``(B,)``.
        work_shape: Size at which the model runs (default: native).
        snr_db: ``(B,)`` SNRs the noise gate uses instead of the slices' own (as in :func:`correct_batch`);
            the detection scores include that gate. The caller has the SNRs then: ``QCScores.snr_db`` is None.
        policy: The inference policy (None: the model's own).
        detect: Run the detector (False when the correction's forward pass already gave the scores:
            :attr:`CorrectedBatch.scores`; ``QCScores.detection`` is None then).
    """
    from artefix.models.consistency import measured_window
    from artefix.models.dual_domain import consistent_head
    from artefix.models.policy import InferencePolicy
    from artefix.models.priors import estimated_snr_db

    policy = getattr(model, "policy", InferencePolicy()) if policy is None else policy
    gated = detect and getattr(model, "detector", None) is not None
    consistent = consistent_head(tuple(model.head_names), policy) is not None
    gate_snr = policy.noise_snr is not None
    if not (gated or consistent or gate_snr):
        return QCScores(None, None, None)
    u = model_input(batch, mean, std, work_shape)
    window = None
    if consistent:
        measured = measured_window(u)
        window = torch.stack(
            [measured.any(dim=-1).float().mean(dim=-1), measured.any(dim=-2).float().mean(dim=-1)], dim=-1
        )
    scores = model.detect(u.unsqueeze(1).contiguous(), snr_db=snr_db, policy=policy) if gated else None
    return QCScores(scores, window, estimated_snr_db(u) if gate_snr and snr_db is None else None)
