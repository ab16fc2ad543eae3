r"""The QC numbers of one scan: per-slice artefact scores, estimated SNR and measured k-space, and their summary.

Every slice is seen exactly as ``artefix correct`` sees it (:mod:`artefix.correction.core`): z-normalised by its
own mean and standard deviation and, when the model card declares a training matrix, Fourier-resized to the
model's working size. Per slice:

* **artefact scores** ``bias``, ``subsampling``, ``motion``, ``noise`` in ``[0, 1]``: the model's detector
  (:meth:`artefix.models.DualDomainModel.detect` through :func:`artefix.correction.core.qc_batch`), i.e. the
  weight with which ``artefix correct`` applies that head's correction. With the noise gate of the model
  (``ModelConfig.noise_snr``) the noise score includes it, computed on the scan's SNR as ``artefix correct``
  does by default (``snr_scope="scan"``). Higher = more of that correction applied; a model without a detector
  gives no scores (NaN).
* **estimated SNR** in dB (:func:`artefix.models.snr.noise_corrected_snr_db`, the reported severity): the SNR
  of the paper's noise artefact, ``20 log10(S / N)`` with ``S`` the clean mean k-space magnitude and ``N`` the
  noise per component, estimated from the native slice (within 1.5 dB of the applied SNR on 91-95 % of the
  training/validation slices at 5 / 0 / -5 dB). A clean scan reads its own noise; a zeroed background has
  none and reads very high;
* **the noise gate's SNR** in dB (:func:`artefix.models.priors.estimated_snr_db` of what the model sees): what
  the shipped noise gate reads, in the paper's definition but with ``S`` taken from the noisy image, so it
  reads 2-7 dB above the applied SNR; kept because the gate's ramp was chosen on it.
* **measured k-space** fractions of the rows and columns (:func:`artefix.models.consistency.measured_window`,
  the window of the subsampling head's data-consistency step, computed here for any model): 1 for a fully
  sampled slice, ``1 / R`` for a centred-window acceleration ``R`` (zero-filled interpolation, truncation).

Per scan, over its *counted* slices (not constant and holding anatomy: :class:`artefix.data.slices.ForegroundFilter`,
more than 5 % of the slice above 10 % of the volume's 99th percentile; every non-constant slice when none does):

* each artefact score is the :data:`SCAN_PERCENTILE`-th percentile of its slices' scores (linear interpolation):
  a scan scores high when about a tenth of its slices do, so an artefact confined to a few slices of a
  multi-slice acquisition counts, while a single stray end slice does not decide it;
* ``snr_db`` is the median estimated SNR of the counted slices; ``gate_snr_db`` is the SNR the noise gate sees,
  the median of its reading over the non-constant slices (:func:`artefix.correction.core.scan_snr_db`);
* ``kspace_rows`` / ``kspace_cols`` are the medians of the counted slices, and the acceleration is
  :math:`R = 1 / \sqrt{f_\mathrm{rows} f_\mathrm{cols}}` (the paper's centred-window subsampling at ``R`` keeps
  ``1/R`` of both);
* an artefact is *flagged* when its score is at least its threshold (:data:`DEFAULT_THRESHOLD`, 0.5: ``artefix
  correct`` would apply at least half of that correction);
* the *worst slices* are the counted slices with the highest score of any artefact.

Motion severity and bias-field amplitude have no estimator: only their scores are reported. The candidates
tried (a fast N4's log-field span, a robust quadratic fit; k-space line consistency for the clean centre band)
did not tell the paper's levels from clean slices on the brain split's validation slices
(``benchmarks/severity_probe.py``; numbers in ``docs/usage/datasets.md``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from artefix.artefacts.names import HEADS
from artefix.correction.core import model_input, qc_batch, scan_snr_db
from artefix.correction.record import SNR_SCOPES
from artefix.correction.volume import (
    _head_names,
    _model_device,
    _stack_view,
    auto_batch_size,
    model_policy,
    slice_stack,
)
from artefix.data.io import Volume, check_finite
from artefix.data.slices import ForegroundFilter
from artefix.errors import InputError
from artefix.models.policy import InferencePolicy

SCAN_PERCENTILE = 90.0
"""Percentile of the counted slices' scores that is the scan's score."""

DEFAULT_THRESHOLD = 0.5
"""A scan is flagged for an artefact when its score is at least this (per artefact: ``--threshold``)."""

WORST_SLICES = 3
"""How many worst slices a scan lists (and the dashboard shows)."""


def resolve_thresholds(value: float | Mapping[str, float] | None = None) -> dict[str, float]:
    """Per-artefact thresholds: one number for all, or artefact -> number (others keep :data:`DEFAULT_THRESHOLD`).

    Raises:
        InputError: An unknown artefact or a value outside ``[0, 1]``.
    """
    out = dict.fromkeys(HEADS, DEFAULT_THRESHOLD)
    items = dict.fromkeys(HEADS, value) if isinstance(value, (int, float)) else dict(value or {})
    for head, v in items.items():
        if head not in HEADS:
            raise InputError(f"`threshold`: unknown artefact {head!r}; choose from {', '.join(HEADS)}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0.0 <= float(v) <= 1.0:
            raise InputError(f"`threshold`: {head}={v!r} must be a number from 0 to 1")
        out[head] = float(v)
    return out


def kspace_fractions(u: torch.Tensor) -> torch.Tensor:
    """Fractions of k-space rows and columns measured, ``(B, 2)``, for images ``u`` of shape ``(B, H, W)``.

    The same numbers as :attr:`artefix.correction.core.QCScores.window`, for any model.
    """
    from artefix.models.consistency import measured_window

    measured = measured_window(u)
    return torch.stack([measured.any(dim=-1).float().mean(dim=-1), measured.any(dim=-2).float().mean(dim=-1)], dim=-1)


@dataclass
class ScanQC:
    """The QC numbers of one scan (``N`` slices along its slice axis, ``K`` model heads).

    Attributes:
        heads: The model's heads, in the column order of :attr:`detection`.
        axis: Slice axis (None for a 2D image).
        shape: Shape of the volume.
        work_shape: In-plane size ``(H, W)`` at which the model saw the slices.
        detection: ``(N, K)`` scores in ``[0, 1]``, NaN for constant slices; None for a model without a detector.
        snr_db: ``(N,)`` estimated SNR in dB (:func:`~artefix.models.snr.noise_corrected_snr_db`), NaN for constant
            slices.
        gate_snr: ``(N,)`` the noise gate's SNR reading in dB (:func:`~artefix.models.priors.estimated_snr_db`),
            NaN for constant slices.
        kspace: ``(N, 2)`` fractions of the k-space rows and columns measured, NaN for constant slices.
        constant: ``(N,)`` True for constant slices (never seen by the model).
        foreground: ``(N,)`` True for slices that hold anatomy (:class:`~artefix.data.slices.ForegroundFilter`).
        gate_snr_db: The SNR (dB) the noise gate saw on every slice (scan scope), else None.
    """

    heads: tuple[str, ...]
    axis: int | None
    shape: tuple[int, ...]
    work_shape: tuple[int, int]
    detection: np.ndarray | None
    snr_db: np.ndarray
    gate_snr: np.ndarray
    kspace: np.ndarray
    constant: np.ndarray
    foreground: np.ndarray
    gate_snr_db: float | None = None

    @property
    def n_slices(self) -> int:
        """Number of slices."""
        return int(self.constant.size)

    def counted(self) -> np.ndarray:
        """``(N,)`` mask of the slices the scan's summary uses: non-constant foreground slices (else non-constant)."""
        keep = ~self.constant & self.foreground
        return keep if keep.any() else ~self.constant

    def score(self, head: str) -> float | None:
        """The scan's score for ``head``: :data:`SCAN_PERCENTILE`-th percentile over the counted slices."""
        if self.detection is None or head not in self.heads:
            return None
        values = self.detection[self.counted(), self.heads.index(head)]
        values = values[np.isfinite(values)]
        return float(np.percentile(values, SCAN_PERCENTILE)) if values.size else None

    def scores(self) -> dict[str, float | None]:
        """:meth:`score` of each of :data:`HEADS` (None where the model has no such head or no detector)."""
        return {head: self.score(head) for head in HEADS}

    def snr(self) -> float | None:
        """The scan's estimated SNR in dB: the median over the counted slices."""
        return scan_snr_db(self.snr_db[self.counted()])

    def scan_gate_snr(self) -> float | None:
        """The SNR in dB the noise gate reads for the scan: the median over the non-constant slices."""
        return scan_snr_db(self.gate_snr)

    def kspace_fraction(self) -> tuple[float, float] | None:
        """Median fractions ``(rows, cols)`` of k-space measured over the counted slices."""
        values = self.kspace[self.counted()]
        values = values[np.isfinite(values).all(axis=1)]
        if not values.size:
            return None
        rows, cols = np.median(values, axis=0)
        return float(rows), float(cols)

    def acceleration(self) -> float | None:
        """``1 / sqrt(rows * cols)`` of :meth:`kspace_fraction`: 1 for a fully sampled scan."""
        fraction = self.kspace_fraction()
        return None if fraction is None else float(1.0 / np.sqrt(fraction[0] * fraction[1]))

    def flags(self, thresholds: Mapping[str, float]) -> dict[str, bool | None]:
        """Head -> score at least its threshold (None where there is no score)."""
        out: dict[str, bool | None] = {}
        for head, value in self.scores().items():
            out[head] = None if value is None else bool(value >= thresholds[head])
        return out

    def slice_max(self) -> np.ndarray | None:
        """``(N,)`` the highest score of any head per slice (NaN for constant slices); None without a detector."""
        if self.detection is None:
            return None
        finite = np.where(np.isfinite(self.detection), self.detection, -np.inf)
        best = finite.max(axis=1)
        return np.where(np.isfinite(best), best, np.nan)

    def worst_slices(self, k: int = WORST_SLICES) -> list[int]:
        """The ``k`` counted slices with the highest score of any artefact (lowest gate SNR without a detector)."""
        candidates = np.flatnonzero(self.counted())
        best = self.slice_max()
        badness = -self.gate_snr if best is None else best
        values = np.nan_to_num(badness[candidates], nan=-np.inf)
        order = np.lexsort((candidates, -values))  # highest first, then the lower index
        return [int(z) for z in candidates[order][:k]]


def slice_image(volume: Volume, axis: int | None, index: int) -> np.ndarray:
    """Slice ``index`` along ``axis`` of ``volume``, ``(H, W)`` (the volume itself when 2D)."""
    return np.asarray(_stack_view(volume.array, axis)[index])


def measure_volume(
    volume: Volume,
    model: torch.nn.Module,
    *,
    axis: int | None = None,
    batch_size: int | None = None,
    matrix: Sequence[int] | None = None,
    snr_scope: str = "scan",
    policy: InferencePolicy | None = None,
) -> ScanQC:
    """The per-slice QC numbers of ``volume`` (see the module docstring).

    Args:
        volume: 2D image or 3D volume, finite.
        model: The correcting model (eval mode is set), on the device to use.
        axis: Slice axis; default the header's acquisition axis, as ``artefix correct``.
        batch_size: Slices per model call (None: :func:`~artefix.correction.volume.auto_batch_size`).
        matrix: The model card's training matrix, or None.
        snr_scope: ``"scan"`` (the noise gate of the noise score sees the scan's SNR, as ``artefix correct``
            by default) or ``"slice"``.
        policy: The inference policy whose scores are reported (None: the model's own).

    Returns:
        :class:`ScanQC`.

    Raises:
        InputError: Non-finite voxels, a bad axis, slices smaller than 3x3, every slice constant.
        ValueError: An unknown ``snr_scope`` or a bad ``batch_size``.
    """
    from artefix.models.priors import estimated_snr_db
    from artefix.models.snr import noise_corrected_snr_db

    if snr_scope not in SNR_SCOPES:
        raise ValueError(f"snr_scope must be one of {', '.join(SNR_SCOPES)}, got {snr_scope!r}")
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    check_finite(volume)
    slice_axis, src, mean, std, constant, work = slice_stack(volume, axis, matrix, min_side=3, purpose="check")
    n = src.shape[0]
    heads = _head_names(model)
    policy = model_policy(model, policy)
    model.eval()
    device = _model_device(model)
    if batch_size is None:
        batch_size = auto_batch_size(work, device)
    todo = np.flatnonzero(~constant)
    snr = np.full(n, np.nan)
    gate = np.full(n, np.nan)
    kspace = np.full((n, 2), np.nan)
    gated = getattr(model, "detector", None) is not None
    detection = np.full((n, len(heads)), np.nan) if gated else None

    def batches():  # noqa: ANN202 - (indices, slices, mean, std) tensors on the device
        for first in range(0, todo.size, batch_size):
            idx = todo[first : first + batch_size]
            batch = torch.from_numpy(np.ascontiguousarray(src[idx], dtype=np.float32)).to(device)
            yield idx, batch, torch.from_numpy(mean[idx]).to(device), torch.from_numpy(std[idx]).to(device)

    with torch.inference_mode():
        for idx, batch, mu, sigma in batches():
            u = model_input(batch, mu, sigma, work)
            gate[idx] = estimated_snr_db(u).double().cpu().numpy()
            snr[idx] = noise_corrected_snr_db(batch).double().cpu().numpy()
            kspace[idx] = kspace_fractions(u).double().cpu().numpy()
        noise_gate = policy.noise_snr is not None
        scan_snr = scan_snr_db(gate) if noise_gate and snr_scope == "scan" else None
        if detection is not None:
            for idx, batch, mu, sigma in batches():
                gate_snr = None
                if scan_snr is not None:
                    gate_snr = torch.full((idx.size,), scan_snr, dtype=torch.float32, device=device)
                scores = qc_batch(model, batch, mu, sigma, work, gate_snr, policy).detection
                detection[idx] = scores.float().cpu().numpy()
    foreground = ForegroundFilter().keep(src)
    return ScanQC(
        heads=tuple(heads),
        axis=slice_axis,
        shape=tuple(volume.array.shape),
        work_shape=work,
        detection=detection,
        snr_db=snr,
        gate_snr=gate,
        kspace=kspace,
        constant=np.asarray(constant, dtype=bool),
        foreground=np.asarray(foreground, dtype=bool),
        gate_snr_db=scan_snr,
    )
