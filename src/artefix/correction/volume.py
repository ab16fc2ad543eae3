"""Correct a whole :class:`~artefix.data.io.Volume` slice-wise, streaming batches, with a QC record.

The volume is cut into slices along its slice axis; non-constant slices go through the model in batches
of at most ``batch_size`` (under :func:`torch.inference_mode`) and each corrected batch is written
straight into a preallocated output array, so the memory beyond the input and output arrays is bounded
by the batch: residual volumes are kept only on request (in memory, or memory-mapped in a scratch
folder), and the QC record holds per-slice numbers plus a few snapshots of the largest corrections.
See :mod:`artefix.correction.core` for the maths.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from artefix.correction.core import (
    correct_batch,
    model_input,
    qc_batch,
    scan_snr_db,
    slice_moments,
    working_shape,
)
from artefix.correction.record import SNR_SCOPES, CorrectionRecord, SliceSnapshot
from artefix.data.io import Volume, check_finite
from artefix.data.slices import resolve_axis
from artefix.errors import InputError
from artefix.models.dual_domain import consistent_head, selection_weights
from artefix.models.policy import InferencePolicy


@dataclass
class CorrectionResult:
    """A corrected volume, its residual volumes (when kept) and the QC record.

    Attributes:
        volume: Corrected volume, same shape, affine, header and format as the input (``source`` None).
        residuals: Head name -> residual volume (same shape, input units); empty unless kept.
        record: The :class:`CorrectionRecord`.
    """

    volume: Volume
    residuals: dict[str, Volume] = field(default_factory=dict)
    record: CorrectionRecord | None = None


def _slice_axis(volume: Volume, axis: int | None) -> int | None:
    if volume.array.ndim == 2:
        if axis is not None:
            raise InputError(f"`axis` {axis} does not apply to a 2D image (it is one slice)")
        return None
    try:
        return resolve_axis(volume, axis)
    except ValueError as exc:
        raise InputError(str(exc)) from None


def _stack_view(array: np.ndarray, axis: int | None) -> np.ndarray:
    return array[None] if axis is None else np.moveaxis(array, axis, 0)


class SliceStack(NamedTuple):
    """A volume as the model sees it: a stack of slices and the matrix it works at.

    Attributes:
        axis: The slice axis of the volume (None for a 2D image).
        slices: ``(N, H, W)`` view of the volume's array (no copy).
        mean: ``(N,)`` mean of each slice.
        std: ``(N,)`` standard deviation of each slice.
        constant: ``(N,)`` True for constant slices (left as they are).
        work: ``(h, w)`` matrix the model runs at (:func:`~artefix.correction.core.working_shape`).
    """

    axis: int | None
    slices: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    constant: np.ndarray
    work: tuple[int, int]


def slice_stack(volume: Volume, axis: int | None, matrix: int | None, *, min_side: int, purpose: str) -> SliceStack:
    """Slice ``volume`` along ``axis`` (default: the header's) for a model trained at ``matrix``.

    The one slicing path of ``artefix correct`` and ``artefix qc``.

    Args:
        volume: A finite 2D or 3D volume.
        axis: Slice axis, or None for the header's acquisition axis.
        matrix: The model card's training matrix, or None.
        min_side: Smallest in-plane size accepted.
        purpose: What the caller does ("correct", "check"), for the all-constant error.

    Raises:
        InputError: A bad axis, slices smaller than ``min_side``, every slice constant.
    """
    slice_axis = _slice_axis(volume, axis)
    src = _stack_view(volume.array, slice_axis)
    n, h, w = src.shape
    if h < min_side or w < min_side:
        where = "" if slice_axis is None else f" (slices along axis {slice_axis})"
        raise InputError(f"slices must be at least {min_side}x{min_side}, got {h}x{w}{where}")
    mean, std, constant = slice_moments(src)
    if constant.all():
        name = volume.source if volume.source is not None else "input"
        raise InputError(f"{name}: every slice is constant; there is nothing to {purpose}")
    spacing = volume.spacing if len(volume.spacing) == volume.array.ndim else (1.0,) * volume.array.ndim
    in_plane = [s for i, s in enumerate(spacing) if i != (slice_axis if slice_axis is not None else -1)]
    return SliceStack(slice_axis, src, mean, std, constant, working_shape((h, w), in_plane[-2:], matrix))


def _head_names(model: torch.nn.Module) -> tuple[str, ...]:
    names = getattr(model, "head_names", None)
    if names is None:
        names = model.config.heads
    return tuple(names)


def model_policy(model: torch.nn.Module, policy: InferencePolicy | None = None) -> InferencePolicy:
    """``policy``, or the model's own (``model.policy``; the default policy for a module without one)."""
    if policy is not None:
        return policy
    own = getattr(model, "policy", None)
    return own if isinstance(own, InferencePolicy) else InferencePolicy()


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


CPU_BATCH_PIXELS = 2**17
"""Pixels per model call on a CPU (two 256x256 slices): larger batches of large slices fall out of the
caches (on 2 cores: 320x320 slices 15.4 slices/s in batches of 1, 12.4 in batches of 8; 128x128 slices
58 slices/s in batches of 1, 90 in batches of 8)."""


def auto_batch_size(work_shape: Sequence[int], device: torch.device | str) -> int:
    """Slices per model call when the caller gives none.

    8 on a GPU; on a CPU as many as fit :data:`CPU_BATCH_PIXELS` at the model's working size, from 1 to 8.

    Args:
        work_shape: In-plane size ``(H, W)`` at which the model runs.
        device: Device of the model.
    """
    if torch.device(device).type != "cpu":
        return 8
    pixels = max(1, int(work_shape[0]) * int(work_shape[1]))
    return max(1, min(8, CPU_BATCH_PIXELS // pixels))


def _allocate(shape: tuple[int, ...], scratch_dir: Path | None, name: str) -> np.ndarray:
    if scratch_dir is None:
        return np.zeros(shape, dtype=np.float32)
    return np.lib.format.open_memmap(Path(scratch_dir) / f"{name}.npy", mode="w+", dtype=np.float32, shape=shape)


def _slice_snrs(
    src: np.ndarray,
    mean: np.ndarray,
    std: np.ndarray,
    todo: np.ndarray,
    work: tuple[int, int],
    batch_size: int,
    device: torch.device,
) -> np.ndarray:
    """Estimated SNR in dB of the slices ``src[todo]`` as the model sees them, ``(len(todo),)``."""
    from artefix.models.priors import estimated_snr_db

    out = np.empty(todo.size, dtype=np.float64)
    with torch.inference_mode():
        for first in range(0, todo.size, batch_size):
            idx = todo[first : first + batch_size]
            batch = torch.from_numpy(np.ascontiguousarray(src[idx], dtype=np.float32)).to(device)
            u = model_input(batch, torch.from_numpy(mean[idx]).to(device), torch.from_numpy(std[idx]).to(device), work)
            out[first : first + idx.size] = estimated_snr_db(u).double().cpu().numpy()
    return out


def correct_volume(
    volume: Volume,
    model: torch.nn.Module,
    *,
    only: Sequence[str] | None = None,
    strength: Mapping[str, float] | None = None,
    axis: int | None = None,
    batch_size: int | None = None,
    matrix: Sequence[int] | None = None,
    keep_residuals: bool = False,
    scratch_dir: Path | None = None,
    top_k: int = 3,
    progress: Callable[[int, int], None] | None = None,
    snr_scope: str | None = None,
    policy: InferencePolicy | None = None,
) -> CorrectionResult:
    """Correct every slice of ``volume`` with ``model`` and map the result back to the input's units.

    Args:
        volume: 2D image or 3D volume (finite values; at least one non-constant slice).
        model: A :class:`artefix.models.DualDomainModel` (or a module with the same call and
            ``head_names``), on the device to use; it is put in eval mode.
        only: Heads whose residuals are applied (the paper's selective correction); ``None`` applies all
            of the model's heads, ``[]`` none (the output then equals the input up to round-off).
        strength: Head -> factor in ``[0, 1]`` that scales that head's residual (``--strength``), e.g.
            ``{"noise": 0.5}`` removes half of what the noise head would; heads not named keep 1. A head
            named here must be applied (``only``); 0 leaves it out.
        axis: Slice axis; default the header's acquisition axis (``meta["slice_axis"]``), else the last.
        batch_size: Maximum number of slices per model call; None picks :func:`auto_batch_size` for the
            slice size and device.
        matrix: Training matrix ``(Hm, Wm)`` of the model (its card's ``matrix``), or None to run at the
            native size; see :func:`artefix.correction.core.working_shape`.
        keep_residuals: Return the residual volumes (``(shape)`` float32 each, input units).
        scratch_dir: Existing folder where kept residual volumes are memory-mapped instead of held in
            memory (the caller removes it).
        top_k: Number of largest-correction slices kept as snapshots for the report.
        progress: Called as ``progress(slices_done, slices_total)`` after each batch.
        snr_scope: With a noise gate (``InferencePolicy.noise_snr``): ``"scan"`` (the policy's default) gates
            every slice on the scan's SNR, the median of the slices' estimates (:func:`scan_snr_db`), so
            the noise correction is the same throughout a scan; ``"slice"`` gates each slice on its own
            estimate (as ``artefix evaluate`` does for its independent slices). None: the policy's.
        policy: The inference policy (:class:`~artefix.models.policy.InferencePolicy`: gates, data
            consistency, self-ensemble, priors, heads, strengths, SNR scope); None uses the model's own (its
            card's). ``only``, ``strength`` and ``snr_scope``, when given, replace the policy's
            (:meth:`~artefix.models.policy.InferencePolicy.with_options`); the record holds the policy used.

    Returns:
        :class:`CorrectionResult`.

    Raises:
        InputError: Non-finite voxels, an all-constant volume, a bad axis, a head the model lacks, a slice
            smaller than 2x2, a strength outside ``[0, 1]`` or for a head that ``only`` leaves out.
        ValueError: ``batch_size`` or ``top_k`` not a positive / non-negative integer, an unknown
            ``snr_scope``.
    """
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive integer or None, got {batch_size!r}")
    if isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 0:
        raise ValueError(f"top_k must be a non-negative integer, got {top_k!r}")
    if snr_scope is not None and snr_scope not in SNR_SCOPES:
        raise ValueError(f"snr_scope must be one of {', '.join(SNR_SCOPES)}, got {snr_scope!r}")
    check_finite(volume)
    heads = _head_names(model)
    own = policy is not None or getattr(model, "policy", None) is not None  # False: a module without policies
    try:
        policy = model_policy(model, policy).with_options(only=only, strength=strength, snr_scope=snr_scope)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    snr_scope = policy.snr_scope
    try:
        weights = selection_weights(policy, heads)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    applied = tuple(h for h, m in zip(heads, weights.tolist(), strict=True) if m)
    factors = {h: float(m) for h, m in zip(heads, weights.tolist(), strict=True) if m and m != 1.0}
    slice_axis, src, mean, std, constant, work = slice_stack(volume, axis, matrix, min_side=2, purpose="correct")
    n = src.shape[0]

    out_array = np.array(volume.array, dtype=np.float32, copy=True)
    out = _stack_view(out_array, slice_axis)
    res_arrays = [_allocate(volume.array.shape, scratch_dir, head) for head in heads] if keep_residuals else []
    res_views = [_stack_view(a, slice_axis) for a in res_arrays]
    mean_abs = np.zeros((n, len(heads)), dtype=np.float64)
    detection = np.full((n, len(heads)), np.nan) if getattr(model, "detector", None) is not None else None
    window = np.full((n, 2), np.nan) if consistent_head(heads, policy) is not None else None
    snr = np.full(n, np.nan) if policy.noise_snr is not None else None
    applied_idx = [k for k, head in enumerate(heads) if head in applied] or list(range(len(heads)))
    snapshots: list[tuple[float, int, SliceSnapshot]] = []
    todo = np.flatnonzero(~constant)

    model.eval()
    device = _model_device(model)
    if batch_size is None:
        batch_size = auto_batch_size(work, device)
    weights = weights.to(device)
    max_seen = 0
    start = time.perf_counter()
    scan_snr = None
    if snr is not None:  # every slice's SNR first: the scan's is their median
        snr[todo] = _slice_snrs(src, mean, std, todo, work, batch_size, device)
        scan_snr = scan_snr_db(snr) if snr_scope == "scan" else None
    with torch.inference_mode():
        for first in range(0, todo.size, batch_size):
            idx = todo[first : first + batch_size]
            batch = torch.from_numpy(np.ascontiguousarray(src[idx], dtype=np.float32)).to(device)
            mu = torch.from_numpy(mean[idx]).to(device)
            sigma = torch.from_numpy(std[idx]).to(device)
            gate_snr = None
            if snr is not None:
                gate_snr = torch.from_numpy(np.full(idx.size, scan_snr) if scan_snr is not None else snr[idx])
                gate_snr = gate_snr.to(device=device, dtype=torch.float32)
            y, r, scores = correct_batch(model, batch, mu, sigma, weights, work, gate_snr, policy if own else None)
            if detection is not None:
                detection[idx] = scores.float().cpu().numpy()
            if window is not None:
                qc = qc_batch(model, batch, mu, sigma, work, gate_snr, policy, detect=False)
                window[idx] = qc.window.cpu().numpy()
            max_seen = max(max_seen, int(idx.size))
            y_np = y.cpu().numpy()
            r_np = r.cpu().numpy()
            out[idx] = y_np
            for k, view in enumerate(res_views):
                view[idx] = r_np[:, k]
            mean_abs[idx] = np.abs(r_np).mean(axis=(2, 3), dtype=np.float64)
            for j, z in enumerate(idx):
                score = float(mean_abs[z, applied_idx].sum())
                if top_k and (len(snapshots) < top_k or score > snapshots[0][0]):
                    snap = SliceSnapshot(int(z), score, np.array(src[z]), y_np[j].copy(), r_np[j].copy())
                    item = (score, int(z), snap)
                    if len(snapshots) < top_k:
                        heapq.heappush(snapshots, item)
                    else:
                        heapq.heapreplace(snapshots, item)
            if progress is not None:
                progress(int(min(first + batch_size, todo.size) + (n - todo.size)), n)
    seconds = time.perf_counter() - start

    record = CorrectionRecord(
        heads=heads,
        applied=tuple(applied),
        axis=slice_axis,
        shape=tuple(volume.array.shape),
        work_shape=work,
        mean_abs_residual=mean_abs,
        slice_mean=mean,
        slice_std=std,
        constant_slices=tuple(int(z) for z in np.flatnonzero(constant)),
        snapshots=tuple(s for _, _, s in sorted(snapshots, key=lambda t: (-t[0], t[1]))),
        batch_size=batch_size,
        device=str(device),
        seconds=seconds,
        max_batch_seen=max_seen,
        detection=detection,
        kspace_window=window,
        strength=factors,
        ensemble=policy.ensemble,
        snr_db=snr,
        noise_snr=policy.noise_snr,
        snr_scope=snr_scope if snr is not None else "slice",
        scan_snr=scan_snr,
        gated=policy.gated,
    )
    residuals = {head: volume.with_array(a) for head, a in zip(heads, res_arrays, strict=False)}
    return CorrectionResult(volume.with_array(out_array), residuals, record)
