"""Periodic (breathing) motion: a phase error along phase encoding (Simko et al. 2023, Eqs. 3-4).

Following Tamada et al. (2018), every phase-encoding (PE) line of the centred k-space ``S0`` gets a
phase error that depends only on its ky:

    S(kx, ky) = S0(kx, ky) exp(-j phi(ky)),
    phi(ky) = ky * Delta * sin(alpha * ky + beta)   if |ky| > ky0,   0 otherwise,

with ``ky = 2 pi (i - N // 2) / N`` in ``[-pi, pi)`` for PE line ``i`` of ``N`` (DC at ``N // 2``, the
convention of :func:`artefix.fft.fft2c`). By the Fourier shift theorem a phase ``ky * d`` on a line is
the line of the object displaced by ``d`` pixels along the PE axis, so line ``ky`` sees the object
displaced by ``Delta * sin(alpha * ky + beta)`` pixels: ``Delta`` is the breathing amplitude in
**pixels**; ``alpha`` is the breathing frequency in cycles of the sine's argument **per radian of
ky** (with a linear ky ordering ky is proportional to acquisition time, which is why the paper calls it
a frequency in Hz); ``beta`` is the breathing phase in radians; ``ky0`` (radians of ky) protects the
centre lines so the corrupted image stays aligned with the clean one. Magnitudes of k-space are
unchanged.

Training ranges (paper, uniform): ``Delta in [20, 120]`` px, ``alpha in [0.1, 5]``,
``beta in [0, pi/4]``, ``ky0 in (pi/10, pi/8]``. The paper applies it to pelvic scans with PE = AP and
has no evaluation levels for it. A training draw picks the PE axis at random (rows or columns) unless
``pe_axis`` is given: an array's axes do not say which one is AP (a DICOM slice's rows run along it, a
RAS-ordered NIfTI's along the other axis), and clinical protocols also phase-encode left-right.

Example:
    >>> import numpy as np
    >>> from artefix.artefacts.periodic_motion import PeriodicMotionParams, apply_periodic_motion
    >>> from artefix.fft import fft2c
    >>> image = np.random.default_rng(0).random((64, 64))
    >>> params = PeriodicMotionParams(delta_px=40.0, alpha=2.0, beta=0.3, ky0=0.35, pe_axis=-2)
    >>> out = apply_periodic_motion(image, params)
    >>> bool(np.allclose(np.abs(fft2c(out)), np.abs(fft2c(image))))
    True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from artefix.artefacts.base import RngLike, as_rng, check_image, from_tensor, to_tensor
from artefix.fft import fft2c, ifft2c

DELTA_PX_RANGE = (20.0, 120.0)
"""Training range of the breathing amplitude Delta in pixels (paper)."""

ALPHA_RANGE = (0.1, 5.0)
"""Training range of the breathing frequency alpha, per radian of ky (paper: "Hz")."""

BETA_RANGE = (0.0, math.pi / 4)
"""Training range of the breathing phase beta in radians (paper)."""

KY0_RANGE = (math.pi / 10, math.pi / 8)
"""Training range ``(low, high]`` of the protected centre half-width ky0 in radians (paper)."""


@dataclass(frozen=True)
class PeriodicMotionParams:
    """One periodic-motion corruption.

    Attributes:
        delta_px: Breathing amplitude Delta in pixels (``0`` = no corruption).
        alpha: Breathing frequency, per radian of ky.
        beta: Breathing phase in radians.
        ky0: Lines with ``|ky| <= ky0`` (radians, in ``[0, pi]``) are left untouched.
        pe_axis: Image axis of phase encoding: ``-2`` (ky along H) or ``-1`` (ky along W).
    """

    name: ClassVar[str] = "periodic-motion"

    delta_px: float
    alpha: float
    beta: float
    ky0: float
    pe_axis: int

    def __post_init__(self) -> None:
        for field in ("delta_px", "alpha", "beta"):
            value = getattr(self, field)
            if not math.isfinite(value):
                raise ValueError(f"{field} must be finite, got {value!r}")
        if not 0.0 <= self.ky0 <= math.pi:
            raise ValueError(f"ky0 must be in [0, pi] radians, got {self.ky0!r}")
        if self.pe_axis not in (-2, -1):
            raise ValueError(f"pe_axis must be -2 or -1, got {self.pe_axis!r}")
        # plain Python scalars (NumPy ones from a draw or a config are not JSON-serialisable)
        for field in ("delta_px", "alpha", "beta", "ky0"):
            object.__setattr__(self, field, float(getattr(self, field)))
        object.__setattr__(self, "pe_axis", int(self.pe_axis))


def ky_of_lines(n_lines: int) -> np.ndarray:
    """``ky = 2 pi (i - N // 2) / N`` in radians for the ``N`` PE lines of centred k-space, float64."""
    return 2.0 * np.pi * (np.arange(n_lines) - n_lines // 2) / n_lines


def periodic_phase_error(params: PeriodicMotionParams, n_lines: int) -> np.ndarray:
    """The phase error ``phi(ky)`` in radians of each of ``n_lines`` PE lines (Eq. 4), float64."""
    ky = ky_of_lines(n_lines)
    phi = ky * params.delta_px * np.sin(params.alpha * ky + params.beta)
    return np.where(np.abs(ky) > params.ky0, phi, 0.0)


def _check_shape(shape: tuple[int, int]) -> None:
    if len(shape) != 2 or int(shape[0]) < 2 or int(shape[1]) < 2:
        raise ValueError(f"shape must be (H, W) with H, W >= 2, got {tuple(shape)}")


def _draw(rng: np.random.Generator, pe_axis: int | None, delta_px: float | None) -> PeriodicMotionParams:
    if pe_axis is None:
        pe_axis = int(rng.choice((-2, -1)))
    if pe_axis not in (-2, -1):
        raise ValueError(f"pe_axis must be -2, -1 or None, got {pe_axis!r}")
    delta = float(rng.uniform(*DELTA_PX_RANGE))
    alpha = float(rng.uniform(*ALPHA_RANGE))
    beta = float(rng.uniform(*BETA_RANGE))
    low, high = KY0_RANGE
    ky0 = float(high - rng.uniform(0.0, 1.0) * (high - low))
    return PeriodicMotionParams(
        delta_px=delta if delta_px is None else float(delta_px), alpha=alpha, beta=beta, ky0=ky0, pe_axis=pe_axis
    )


def sample_periodic_motion_params(
    rng: RngLike, shape: tuple[int, int], pe_axis: int | None = None
) -> PeriodicMotionParams:
    """Draw periodic motion from the paper's training ranges.

    ``Delta ~ U[20, 120]`` px, ``alpha ~ U[0.1, 5]``, ``beta ~ U[0, pi/4]``, ``ky0 ~ U(pi/10, pi/8]``.

    Args:
        rng: The only source of randomness (``numpy.random.Generator``, seed or None).
        shape: Image shape ``(H, W)`` (validated; the parameters do not depend on it).
        pe_axis: ``-2`` or ``-1``; drawn uniformly when None.

    Returns:
        The parameters.
    """
    _check_shape(shape)
    return _draw(as_rng(rng), pe_axis, None)


def periodic_motion_params_for_severity(
    level: float, shape: tuple[int, int], rng: RngLike, pe_axis: int | None = None
) -> PeriodicMotionParams:
    """Periodic motion of a given amplitude.

    The paper has no evaluation levels for periodic motion (it is only shown qualitatively on pelvic
    scans); the level is the amplitude ``Delta`` in pixels and ``alpha``, ``beta``, ``ky0`` (and the PE
    axis, unless given) are drawn from the training ranges.

    Args:
        level: ``Delta`` in pixels, finite and ``>= 0``.
        shape: Image shape ``(H, W)`` (validated).
        rng: Draws the remaining parameters.
        pe_axis: ``-2`` or ``-1``; drawn uniformly when None.

    Returns:
        The parameters.
    """
    _check_shape(shape)
    if not (math.isfinite(level) and level >= 0.0):
        raise ValueError(f"level (Delta in pixels) must be finite and >= 0, got {level!r}")
    return _draw(as_rng(rng), pe_axis, float(level))


def apply_periodic_motion(image: Any, params: PeriodicMotionParams) -> Any:
    """Add the breathing phase error ``exp(-j phi(ky))`` to the PE lines of the k-space of image(s).

    Args:
        image: NumPy array or torch tensor ``(H, W)`` or ``(B, H, W)``, real or complex.
        params: The corruption. ``delta_px = 0`` returns the input cast to complex, unchanged.

    Returns:
        The corrupted complex image(s) ``ifft2c(S)``, same kind (NumPy/torch, device) and shape as
        ``image``; complex128 for float64/complex128 input, complex64 otherwise.
    """
    check_image(image)
    t, was_numpy = to_tensor(image)
    dtype = torch.complex128 if t.dtype in (torch.float64, torch.complex128) else torch.complex64
    t = t.to(dtype)
    if params.delta_px == 0.0:
        return from_tensor(t, was_numpy)
    phi = periodic_phase_error(params, t.shape[params.pe_axis])
    factor = torch.from_numpy(np.exp(-1j * phi)).to(device=t.device, dtype=dtype)
    factor = factor[:, None] if params.pe_axis == -2 else factor[None, :]
    return from_tensor(ifft2c(fft2c(t) * factor), was_numpy)
