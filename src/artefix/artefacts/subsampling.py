"""Cartesian k-space subsampling (the paper's "k-space super-resolution" artefact).

A subsampled acquisition keeps a subset ``M`` of the centred k-space samples and zero-fills the rest:
``x_sub = F^-1(1_M * F x)`` with ``F`` = :func:`artefix.fft.fft2c` (masked samples exactly 0). Three mask
families are simulated, all on the Cartesian grid of the image:

* ``"random"`` (fastMRI ``RandomMaskFunc``-style): along the phase-encoding (PE) axis, a fully sampled
  centre band of ``round(N * center_fraction)`` lines plus outer lines drawn at random without
  replacement, so that **exactly** ``round(N / R)`` of the ``N`` PE lines are acquired.
* ``"equispaced"`` (fastMRI ``EquispacedMaskFractionFunc``-style): the same centre band plus outer lines
  equally spaced (random start offset) over the outer region, again exactly ``round(N / R)`` lines.
* ``"centred"``: keep only the centred ``round(H f) x round(W f)`` window of k-space (``f =
  center_fraction``), i.e. exactly what :func:`artefix.fft.kspace_crop_pad` to that size keeps. This is
  a super-resolution problem; :func:`centre_crop_kspace_image` gives the matching low-resolution image.

Line geometry: a *PE line* is a set of samples acquired in one readout, so it runs along the readout
(frequency-encoding) axis and the mask is constant along that axis. ``pe_axis=-2`` means the PE index is
the row index: whole **rows** ``mask[i, :]`` are kept or dropped (``N = H``). ``pe_axis=-1`` means whole
**columns** ``mask[:, j]`` are kept or dropped (``N = W``).

Rounding: every ``round`` here rounds half up (``floor(x + 0.5)``, with a 1e-9 guard against float
error such as ``3 * (1/6)``), not Python's round-half-to-even, and every count is at least 1 line.

Example:
    >>> import numpy as np
    >>> p = SubsamplingParams(kind="random", acceleration=4, center_fraction=0.08, pe_axis=-1, seed=0)
    >>> m = subsampling_mask(p, (64, 320))
    >>> int(m[0].sum()), bool((m == m[0]).all())
    (80, True)

"""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import torch

from artefix.artefacts.base import (
    RngLike,
    as_rng,
    check_image,
    draw_seed,
    from_tensor,
    to_tensor,
    torch_generator,
)
from artefix.fft import fft2c, ifft2c, kspace_crop_pad

__all__ = [
    "ACCELERATIONS",
    "CENTER_FRACTIONS",
    "KINDS",
    "SubsamplingParams",
    "achieved_acceleration",
    "apply_subsampling",
    "centre_crop_kspace_image",
    "sample_subsampling_params",
    "subsampling_mask",
    "subsampling_params_for_severity",
]

KINDS: tuple[str, ...] = ("random", "equispaced", "centred")
"""Mask families."""

ACCELERATIONS: tuple[int, ...] = (2, 3, 4, 8)
"""Training accelerations R (paper: uniform over these)."""

CENTER_FRACTIONS: MappingProxyType[int, float] = MappingProxyType({2: 0.16, 3: 0.12, 4: 0.08, 8: 0.04})
"""Paper's centre fraction per acceleration R: the fastMRI centre band (fraction of PE lines) and the
training centred-mask width (fraction of k-space width per axis)."""

_PE_AXES = (-2, -1)
_ROUND_GUARD = 1e-9


def _round_half_up(x: float) -> int:
    """``floor(x + 0.5)`` with a tiny guard so ``H * (1 / R)`` rounds like ``H / R``."""
    return int(math.floor(x + 0.5 + _ROUND_GUARD))


def _is_real_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


@dataclass(frozen=True)
class SubsamplingParams:
    """One Cartesian k-space subsampling corruption.

    Attributes:
        kind: ``"random"``, ``"equispaced"`` (fastMRI-style line masks along the PE axis) or
            ``"centred"`` (centred rectangular window, both axes).
        acceleration: Acceleration factor R >= 1. For ``"random"``/``"equispaced"`` exactly
            ``round(N / R)`` of the ``N`` PE lines are sampled. For ``"centred"`` it is only the
            nominal label of the setting (the mask is set by ``center_fraction``; the achieved
            acceleration is about ``1 / center_fraction**2``).
        center_fraction: In (0, 1]. For ``"random"``/``"equispaced"``: fraction of PE lines in the fully
            sampled centre band (must not exceed ``1 / acceleration``). For ``"centred"``: kept fraction
            of the k-space extent along *each* axis (paper evaluation: ``1 / R``; training: 0.16, 0.12,
            0.08, 0.04 for R = 2, 3, 4, 8).
        pe_axis: Phase-encoding axis of the image. ``-2``: the PE index is the row index, whole rows
            ``mask[i, :]`` are kept or dropped (readout along W). ``-1``: whole columns ``mask[:, j]``
            are kept or dropped (readout along H). Irrelevant for ``"centred"``.
        seed: Seed of the random line choice / equispaced offset, so the mask is reproducible.

    """

    name: ClassVar[str] = "subsampling"

    kind: str = "random"
    acceleration: float = 4.0
    center_fraction: float = 0.08
    pe_axis: int = -1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}, got {self.kind!r}")
        if not _is_real_number(self.acceleration) or not (1.0 <= float(self.acceleration) < math.inf):
            raise ValueError(f"acceleration must be a finite number >= 1, got {self.acceleration!r}")
        if not _is_real_number(self.center_fraction) or not (0.0 < float(self.center_fraction) <= 1.0):
            raise ValueError(f"center_fraction must be in (0, 1], got {self.center_fraction!r}")
        if isinstance(self.pe_axis, bool) or self.pe_axis not in _PE_AXES:
            raise ValueError(f"pe_axis must be -2 (rows) or -1 (columns), got {self.pe_axis!r}")
        if not isinstance(self.seed, numbers.Integral) or isinstance(self.seed, bool):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        object.__setattr__(self, "acceleration", float(self.acceleration))
        object.__setattr__(self, "center_fraction", float(self.center_fraction))
        object.__setattr__(self, "pe_axis", int(self.pe_axis))
        object.__setattr__(self, "seed", int(self.seed))
        if self.kind != "centred" and self.center_fraction > 1.0 / self.acceleration + _ROUND_GUARD:
            raise ValueError(
                f"center_fraction {self.center_fraction} exceeds 1/acceleration = "
                f"{1.0 / self.acceleration:.6g}: the centre band alone would sample more lines than "
                f"acceleration {self.acceleration} allows"
            )


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    if len(shape) != 2 or any(int(n) != n or int(n) < 1 for n in shape):
        raise ValueError(f"shape must be two positive integers (H, W), got {shape!r}")
    return int(shape[0]), int(shape[1])


def _centre_start(n: int, width: int) -> int:
    """First index of the ``width``-long window centred on the DC index ``n // 2`` (kspace_crop_pad rule)."""
    return n // 2 - width // 2


def _line_mask(params: SubsamplingParams, n: int) -> np.ndarray:
    """Boolean mask over the ``n`` PE lines with exactly ``round(n / R)`` entries set."""
    target = min(n, max(1, _round_half_up(n / params.acceleration)))
    n_low = min(target, _round_half_up(n * params.center_fraction))
    lines = np.zeros(n, dtype=bool)
    start = _centre_start(n, n_low)
    lines[start : start + n_low] = True
    outer = np.flatnonzero(~lines)
    n_outer = target - n_low
    if n_outer == 0:
        return lines
    g = torch_generator(params.seed)
    if params.kind == "random":
        chosen = torch.randperm(outer.size, generator=g)[:n_outer].numpy()
    else:
        # n_outer positions spaced outer.size / n_outer apart over the outer lines (the centre band
        # cut out), starting at a random integer offset in [0, ceil(spacing) - 1]; the last position
        # stays < outer.size because offset < spacing.
        spacing = outer.size / n_outer
        offset = int(torch.randint(0, math.ceil(spacing), (1,), generator=g).item())
        chosen = np.floor(offset + np.arange(n_outer) * spacing).astype(np.int64)
    lines[outer[chosen]] = True
    return lines


def subsampling_mask(params: SubsamplingParams, shape: tuple[int, int]) -> np.ndarray:
    """Sampling mask on the centred k-space grid (DC at ``(H // 2, W // 2)``).

    Args:
        params: The corruption.
        shape: ``(H, W)`` of the image / k-space.

    Returns:
        Boolean array of shape ``(H, W)``; True where k-space is acquired. For ``"random"`` and
        ``"equispaced"`` it is constant along the readout axis and holds exactly
        ``round(N / R)`` (half up, at least 1) sampled PE lines, ``N = shape[params.pe_axis]``, including
        the centre band of ``round(N * center_fraction)`` lines starting at ``N // 2 - n_low // 2``.
        For ``"centred"`` it is the ``round(H f) x round(W f)`` window (each at least 1) starting at
        ``(H // 2 - h // 2, W // 2 - w // 2)``, exactly the samples :func:`artefix.fft.kspace_crop_pad`
        keeps.

    """
    h, w = _check_shape(shape)
    if params.kind == "centred":
        f = params.center_fraction
        kh, kw = max(1, _round_half_up(h * f)), max(1, _round_half_up(w * f))
        mask = np.zeros((h, w), dtype=bool)
        r0, c0 = _centre_start(h, kh), _centre_start(w, kw)
        mask[r0 : r0 + kh, c0 : c0 + kw] = True
        return mask
    if params.pe_axis == -2:
        return np.repeat(_line_mask(params, h)[:, None], w, axis=1)
    return np.repeat(_line_mask(params, w)[None, :], h, axis=0)


def _working_tensor(image: Any) -> tuple[torch.Tensor, bool]:
    """Validate ``image`` and cast it to float64/complex128 (kept) or float32/complex64."""
    check_image(image)
    t, was_numpy = to_tensor(image)
    if t.dtype not in (torch.float64, torch.complex128, torch.float32, torch.complex64):
        t = t.to(torch.complex64 if t.is_complex() else torch.float32)
    return t, was_numpy


def apply_subsampling(image: Any, params: SubsamplingParams) -> Any:
    """Subsample the centred k-space of ``image`` and zero-fill: ``ifft2c(mask * fft2c(image))``.

    Args:
        image: NumPy array or torch tensor, shape ``(H, W)`` or ``(B, H, W)``, real or complex.
        params: The corruption; one mask (from ``params.seed``) is shared by every slice of a batch.

    Returns:
        Complex zero-filled image(s) of the input's shape and kind (NumPy in, NumPy out; torch in,
        torch out on the same device); complex128 for float64/complex128 input, else complex64. Its
        k-space is exactly 0 outside the mask. A real image stays real (up to round-off) only where the
        mask is symmetric about DC (e.g. a centred window of odd lengths); otherwise the imaginary part
        is genuine, so pick magnitude or real part with :func:`artefix.artefacts.base.to_output`.

    """
    t, was_numpy = _working_tensor(image)
    mask = torch.from_numpy(subsampling_mask(params, (t.shape[-2], t.shape[-1]))).to(t.device)
    k = fft2c(t)
    k = torch.where(mask, k, torch.zeros((), dtype=k.dtype, device=k.device))
    return from_tensor(ifft2c(k), was_numpy)


def centre_crop_kspace_image(image: Any, factor: float) -> Any:
    """Low-resolution image whose k-space is the centred window kept by the centred mask ``f = 1/factor``.

    ``k_low = sqrt(h w / (H W)) * crop(fft2c(image))`` with ``(h, w) = (round(H / factor),
    round(W / factor))`` (half up, at least 1) and ``crop`` = :func:`artefix.fft.kspace_crop_pad`; the
    scale preserves intensities like :func:`artefix.fft.fourier_resize` (a constant image stays the same
    constant). Zero-padding ``k_low`` back to ``(H, W)`` with the inverse scale
    (``fourier_resize(low, (H, W))``) gives exactly ``apply_subsampling(image, centred mask with
    center_fraction = 1 / factor)``. This is the input of the bicubic-upsampling baseline.

    Args:
        image: NumPy array or torch tensor, shape ``(H, W)`` or ``(B, H, W)``, real or complex.
        factor: Super-resolution factor R >= 1 per axis.

    Returns:
        Complex image(s) of shape ``(..., h, w)``, same kind as the input.

    """
    if not _is_real_number(factor) or not (1.0 <= float(factor) < math.inf):
        raise ValueError(f"factor must be a finite number >= 1, got {factor!r}")
    t, was_numpy = _working_tensor(image)
    big_h, big_w = t.shape[-2], t.shape[-1]
    h = max(1, _round_half_up(big_h / float(factor)))
    w = max(1, _round_half_up(big_w / float(factor)))
    scale = math.sqrt(h * w / (big_h * big_w))
    low = ifft2c(kspace_crop_pad(fft2c(t), (h, w)) * scale)
    return from_tensor(low, was_numpy)


def achieved_acceleration(mask: Any) -> float:
    """Achieved acceleration of a sampling mask: ``total samples / sampled samples``.

    Args:
        mask: Boolean (or 0/1) array or tensor of any shape.

    Returns:
        The acceleration as a float (1.0 for a full mask).

    """
    m = mask.detach().cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    sampled = int(np.count_nonzero(m))
    if sampled == 0:
        raise ValueError(f"mask of shape {m.shape} samples nothing; acceleration is undefined")
    return m.size / sampled


def _resolve_pe_axis(rng: np.random.Generator, pe_axis: int | None) -> int:
    if pe_axis is None:
        return int(rng.choice(_PE_AXES))
    if isinstance(pe_axis, bool) or pe_axis not in _PE_AXES:
        raise ValueError(f"pe_axis must be -2, -1 or None, got {pe_axis!r}")
    return int(pe_axis)


def sample_subsampling_params(rng: RngLike, shape: tuple[int, int], pe_axis: int | None = None) -> SubsamplingParams:
    """Draw one corruption from the paper's training distribution.

    R is uniform over {2, 3, 4, 8} with centre fraction 0.16/0.12/0.08/0.04 (fastMRI centre band, or
    centred-window width per axis); the kind is uniform over ``KINDS``; the PE axis is uniform over
    {-2, -1} unless given. Draw order: R, kind, PE axis, seed.

    Args:
        rng: ``numpy.random.Generator`` (or seed / None); the only source of randomness.
        shape: ``(H, W)`` of the image (validated; the distribution does not depend on it).
        pe_axis: Fix the PE axis (-2 or -1) instead of drawing it.

    Returns:
        The drawn parameters.

    """
    _check_shape(shape)
    gen = as_rng(rng)
    r = int(gen.choice(ACCELERATIONS))
    kind = str(gen.choice(KINDS))
    axis = _resolve_pe_axis(gen, pe_axis)
    return SubsamplingParams(
        kind=kind,
        acceleration=float(r),
        center_fraction=CENTER_FRACTIONS[r],
        pe_axis=axis,
        seed=draw_seed(gen),
    )


def subsampling_params_for_severity(
    level: float,
    shape: tuple[int, int],
    rng: RngLike = None,
    *,
    mask: str = "centred",
    pe_axis: int | None = None,
) -> SubsamplingParams:
    """The paper's evaluation setting for acceleration ``level`` (paper: x2, x3, x4 centred masks).

    Args:
        level: Acceleration R. ``mask="centred"``: any R >= 1, keeping the central ``(H/R) x (W/R)`` of
            k-space (``center_fraction = 1/R``, super-resolution by R per axis). ``mask="random"`` or
            ``"equispaced"``: R in {1, 2, 3, 4, 8}, with the paper's centre band 16/12/8/4 % for
            R = 2/3/4/8 (R = 1 samples everything).
        shape: ``(H, W)`` of the image (validated).
        rng: Source of the mask seed and, when ``pe_axis`` is None, of the PE axis.
        mask: ``"centred"`` (default, the paper's evaluation), ``"random"`` or ``"equispaced"``.
        pe_axis: Fix the PE axis instead of drawing it.

    Returns:
        The parameters.

    """
    _check_shape(shape)
    if mask not in KINDS:
        raise ValueError(f"mask must be one of {KINDS}, got {mask!r}")
    if not _is_real_number(level) or not (1.0 <= float(level) < math.inf):
        raise ValueError(f"level (acceleration) must be a finite number >= 1, got {level!r}")
    r = float(level)
    if mask == "centred":
        fraction = 1.0 / r
    elif r == 1.0:
        fraction = 1.0
    elif r in CENTER_FRACTIONS:
        fraction = CENTER_FRACTIONS[int(r)]
    else:
        raise ValueError(
            f"level {level!r} has no paper centre fraction for {mask!r} masks; "
            f"use one of 1, {', '.join(map(str, ACCELERATIONS))} or build SubsamplingParams directly"
        )
    gen = as_rng(rng)
    axis = _resolve_pe_axis(gen, pe_axis)
    return SubsamplingParams(kind=mask, acceleration=r, center_fraction=fraction, pe_axis=axis, seed=draw_seed(gen))
