"""The QC record of a correction: what each artefact head did, per slice, and how to summarise it.

:class:`CorrectionRecord` holds per-slice numbers (mean |residual| per head, detector scores, the k-space
window the data-consistency step found, the estimated SNR the noise gate saw) and a few snapshots of the
largest corrections; its methods turn them into the flags, sentences and JSON summary that ``artefix correct``
prints and :mod:`artefix.correction.report` renders.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from artefix.models.policy import SNR_SCOPES as SNR_SCOPES  # the one definition, re-exported

FLAG_MADS = 3.0
"""A slice is flagged for an artefact when its mean |residual| exceeds the median over the volume's
slices by more than this many (normal-consistent) median absolute deviations..."""

FLAG_MIN_FRACTION = 0.01
"""...and is at least this fraction of the slice's standard deviation: a head that changes every slice by
a negligible amount has outliers too, which are not worth a reader's attention."""

"""What the noise gate's SNR describes: the whole scan (the median of its slices) or each slice alone."""


@dataclass(frozen=True)
class SliceSnapshot:
    """One slice kept for the QC report (the largest corrections).

    Attributes:
        index: Slice index along the slice axis.
        score: Sum over the applied heads of the slice's mean |residual| (input units).
        before: Input slice ``(H, W)``.
        after: Corrected slice ``(H, W)``.
        residuals: Residuals ``(K, H, W)`` in input units, channel order of ``CorrectionRecord.heads``.
    """

    index: int
    score: float
    before: np.ndarray
    after: np.ndarray
    residuals: np.ndarray


@dataclass
class CorrectionRecord:
    """What a correction did, per slice and per artefact (the QC record; numbers in input units).

    Attributes:
        heads: The model's residual heads, in channel order.
        applied: The heads whose residuals were added (``--only``; a strength of 0 leaves a head out).
        axis: Slice axis of the volume (``None`` for a 2D image).
        shape: Shape of the volume.
        work_shape: In-plane size at which the model ran (the native size unless the card declared a matrix).
        mean_abs_residual: ``(N, K)``: mean over slice ``z`` of ``|r_k|``; zero rows for constant slices.
        slice_mean: ``(N,)`` input mean per slice.
        slice_std: ``(N,)`` input standard deviation per slice.
        constant_slices: Indices of slices passed through unchanged (constant).
        snapshots: The largest corrections, largest first.
        batch_size: Maximum slices per model call.
        device: Device the model ran on.
        seconds: Wall time of the correction (s).
        max_batch_seen: Largest batch actually passed to the model.
        detection: ``(N, K)`` artefact presence scores in ``[0, 1]`` from a model with a detector
            (``ModelConfig.gates``), NaN for constant slices; ``None`` for models without one.
        kspace_window: ``(N, 2)`` fractions of the k-space rows and columns each slice was measured with,
            as found by the data-consistency step of the subsampling head (``ModelConfig.consistency``;
            below 1 where the k-space was truncated, e.g. zero-filled interpolation), NaN for constant
            slices; ``None`` for models without the step.
        strength: Applied head -> factor in ``(0, 1]`` its residual was scaled by (``--strength``; 1 for
            the full correction).
        ensemble: Dihedral transforms the model averaged per slice (``ModelConfig.ensemble``; 1: none).
        snr_db: ``(N,)`` each slice's own estimated SNR (dB) at the model's input
            (:func:`artefix.models.priors.estimated_snr_db`; what the noise gate saw with ``snr_scope="slice"``,
            :meth:`gate_snr_db` is what it saw in either scope), NaN for constant slices; ``None`` for models
            without the gate.
        noise_snr: The gate's ``(lo, hi)`` in dB (``ModelConfig.noise_snr``): the noise correction is full
            below ``lo`` and off from ``hi``; ``None`` without the gate.
        snr_scope: ``"scan"``: the gate saw one SNR for every slice, :attr:`scan_snr` (the median of
            :attr:`snr_db`); ``"slice"``: each slice's own.
        scan_snr: The scan's SNR in dB (``snr_scope="scan"``), else None.
    """

    heads: tuple[str, ...]
    applied: tuple[str, ...]
    axis: int | None
    shape: tuple[int, ...]
    work_shape: tuple[int, int]
    mean_abs_residual: np.ndarray
    slice_mean: np.ndarray
    slice_std: np.ndarray
    constant_slices: tuple[int, ...]
    snapshots: tuple[SliceSnapshot, ...] = ()
    batch_size: int = 8
    device: str = "cpu"
    seconds: float = 0.0
    max_batch_seen: int = 0
    detection: np.ndarray | None = None
    kspace_window: np.ndarray | None = None
    strength: dict[str, float] = field(default_factory=dict)
    ensemble: int = 1
    snr_db: np.ndarray | None = None
    noise_snr: tuple[float, float] | None = None
    snr_scope: str = "slice"
    scan_snr: float | None = None
    gated: bool = True

    def strength_of(self, head: str) -> float:
        """The factor ``head``'s residual was added with: 0 when not applied, else its strength (default 1)."""
        return float(self.strength.get(head, 1.0)) if head in self.applied else 0.0

    def applied_label(self, head: str) -> str:
        """``"yes"``, ``"no"`` or ``"50%"`` (a partial correction, ``--strength``) for one head."""
        factor = self.strength_of(head)
        return "no" if factor == 0.0 else "yes" if factor == 1.0 else f"{factor:.0%}"

    def applied_text(self) -> str:
        """``"bias, noise (50 %)"``: the applied heads, with the strength of any partial correction."""
        parts = [h if self.strength_of(h) == 1.0 else f"{h} ({self.strength_of(h):.0%})" for h in self.applied]
        return ", ".join(parts)

    @property
    def n_slices(self) -> int:
        """Number of slices along the slice axis."""
        return int(self.mean_abs_residual.shape[0])

    def overall(self) -> dict[str, float]:
        """Mean |residual| over the whole volume per head (every slice has the same voxel count)."""
        return {h: float(self.mean_abs_residual[:, k].mean()) for k, h in enumerate(self.heads)}

    def flagged(self, n_mads: float = FLAG_MADS, min_fraction: float = FLAG_MIN_FRACTION) -> dict[str, tuple[int, ...]]:
        r"""Slices whose correction stands out, per head.

        Slice ``z`` is flagged for head ``k`` when ``a_zk > median_z(a_zk) + n_mads * 1.4826 * MAD_z(a_zk)``
        and ``a_zk > min_fraction * s_z``, where ``a_zk`` is the mean |residual|, ``s_z`` the slice's
        standard deviation, and the statistics run over the non-constant slices (at least three are
        needed; otherwise nothing is flagged).
        """
        keep = np.setdiff1d(np.arange(self.n_slices), np.asarray(self.constant_slices, dtype=int))
        out: dict[str, tuple[int, ...]] = {}
        for k, head in enumerate(self.heads):
            if keep.size < 3:
                out[head] = ()
                continue
            values = self.mean_abs_residual[keep, k]
            median = float(np.median(values))
            mad = 1.4826 * float(np.median(np.abs(values - median)))
            limit = median + n_mads * mad
            material = (values > 0) & (values >= min_fraction * self.slice_std[keep])
            out[head] = tuple(int(z) for z in keep[(values > limit) & material])
        return out

    def detection_mean(self, k: int) -> float | None:
        """Mean presence score of head ``k`` over the non-constant slices (``None`` without a detector)."""
        if self.detection is None:
            return None
        finite = self.detection[:, k][np.isfinite(self.detection[:, k])]
        return float(finite.mean()) if finite.size else None

    def truncated_slices(self) -> tuple[int, ...]:
        """Slices whose k-space was found truncated on some side (empty without the data-consistency step)."""
        if self.kspace_window is None:
            return ()
        window = np.nan_to_num(self.kspace_window, nan=1.0)
        return tuple(int(z) for z in np.flatnonzero((window < 1.0).any(axis=1)))

    def kspace_summary(self) -> dict[str, Any] | None:
        """Truncated slices and the median fractions of rows/columns measured in them (``None`` without the step)."""
        if self.kspace_window is None:
            return None
        truncated = list(self.truncated_slices())
        median = np.median(self.kspace_window[truncated], axis=0) if truncated else np.ones(2)
        return {
            "truncated_slices": truncated,
            "median_rows_measured": float(median[0]),
            "median_columns_measured": float(median[1]),
            "per_slice": [None if not np.isfinite(r) else [float(r), float(c)] for r, c in self.kspace_window],
        }

    def kspace_sentence(self) -> str:
        """One line on the slices whose k-space was found truncated; "" when none was (or nobody looked)."""
        summary = self.kspace_summary()
        if not summary or not summary["truncated_slices"]:
            return ""
        n = len(summary["truncated_slices"])
        rows, cols = summary["median_rows_measured"], summary["median_columns_measured"]
        return (
            f"k-space truncated (zero-filled) in {n} of {self.n_slices} slices, median {rows:.0%} of the rows x "
            f"{cols:.0%} of the columns measured: the subsampling correction only fills the missing lines"
        )

    def gate_snr_db(self) -> np.ndarray | None:
        """The SNR in dB the noise gate used per slice, ``(N,)``; None without the gate.

        The scan's for every slice with ``snr_scope="scan"``, else each slice's own; NaN for constant slices.
        """
        if self.snr_db is None or self.noise_snr is None:
            return None
        if self.snr_scope == "scan" and self.scan_snr is not None:
            return np.where(np.isfinite(self.snr_db), self.scan_snr, np.nan)
        return self.snr_db

    def noise_gate_weights(self) -> np.ndarray | None:
        """The noise gate's weight per slice, ``(N,)`` in ``[0, 1]``; None without the gate.

        :func:`~artefix.models.priors.snr_gate` of :meth:`gate_snr_db`; NaN for constant slices.
        """
        from artefix.models.priors import snr_gate

        gate_snr = self.gate_snr_db()
        if gate_snr is None or self.noise_snr is None:
            return None
        return snr_gate(torch.from_numpy(np.asarray(gate_snr, dtype=np.float64)), *self.noise_snr).numpy()

    def snr_summary(self) -> dict[str, Any] | None:
        """Median estimated SNR, the gate's range and the slices it turned the noise correction off for."""
        weights = self.noise_gate_weights()
        if weights is None or self.noise_snr is None or self.snr_db is None:
            return None
        finite = self.snr_db[np.isfinite(self.snr_db)]
        off = np.flatnonzero(weights == 0)
        return {
            "median_db": float(np.median(finite)) if finite.size else None,
            "scope": self.snr_scope,
            "scan_db": self.scan_snr,
            "noise_gate_db": list(self.noise_snr),
            "noise_off_slices": [int(z) for z in off],
            "per_slice": [None if not np.isfinite(v) else float(v) for v in self.snr_db],
        }

    def gates_sentence(self) -> str:
        """One line when the detector's scores were reported but not applied (``--no-gates``), else ""."""
        if self.detection is None or self.gated:
            return ""
        return "detection scores shown, not applied (--no-gates): each applied correction in full"

    def snr_sentence(self) -> str:
        """One line on the SNR the noise gate read and what it did; "" for a model without the gate.

        That reading (:func:`artefix.models.priors.estimated_snr_db`) is 2-7 dB above the SNR of the paper's noise
        artefact (its ``S`` includes the noise); ``artefix qc`` reports the noise-corrected estimate as ``snr_db``.
        """
        summary = self.snr_summary()
        if not summary or summary["median_db"] is None:
            return ""
        lo, hi = summary["noise_gate_db"]
        fade = f"the noise correction fades out from {lo:g} to {hi:g} dB (a scan's own noise is kept)"
        if self.strength_of("noise") == 0:  # left out (--only): the gate's state would mislead
            return f"noise gate's SNR median {summary['median_db']:.1f} dB; the noise correction was not applied"
        if summary["scope"] == "scan" and summary["scan_db"] is not None:
            snr = summary["scan_db"]
            weight = float(np.nanmax(self.noise_gate_weights()))  # the same for every slice
            state = "off" if weight < 0.005 else "full" if weight > 0.995 else f"at {weight:.0%}"
            return f"noise gate's SNR {snr:.1f} dB (median of the slices, used for the whole scan); {fade}: {state}"
        off = len(summary["noise_off_slices"])
        median = summary["median_db"]
        return f"noise gate's SNR median {median:.1f} dB, per slice; {fade}: off in {off} of {self.n_slices} slices"

    def _detection_of(self, k: int) -> dict[str, Any]:
        if self.detection is None:
            return {}
        return {
            "detection_mean": self.detection_mean(k),
            "detection_per_slice": [None if not np.isfinite(v) else float(v) for v in self.detection[:, k]],
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary (per head: overall and per-slice mean |residual|, flagged slices)."""
        flagged = self.flagged()
        overall = self.overall()
        return {
            "heads": list(self.heads),
            "applied": list(self.applied),
            "axis": self.axis,
            "shape": list(self.shape),
            "slices": self.n_slices,
            "work_shape": list(self.work_shape),
            "batch_size": self.batch_size,
            "device": self.device,
            "ensemble": self.ensemble,
            "detector_applied": None if self.detection is None else self.gated,
            "units": "input intensity units",
            "artefacts": {
                head: {
                    "applied": head in self.applied,
                    "strength": self.strength_of(head),
                    "mean_abs_residual": overall[head],
                    "per_slice": [float(v) for v in self.mean_abs_residual[:, k]],
                    "flagged_slices": list(flagged[head]),
                    **self._detection_of(k),
                }
                for k, head in enumerate(self.heads)
            },
            "kspace_truncation": self.kspace_summary(),
            "estimated_snr": self.snr_summary(),
            "constant_slices": list(self.constant_slices),
            "largest_corrections": [s.index for s in self.snapshots],
            "correction_seconds": self.seconds,
        }
