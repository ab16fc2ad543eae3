"""Bias field: a smooth multiplicative intensity inhomogeneity (Simko et al. 2023, "Bias field removal").

The field is a stationary Gaussian random field with the Gaussian covariance of the paper's Eq. (2),

    cov(r) = exp(-pi/4 * (r / l)^2),

computed on a coarse grid (the paper downscales the image to 32x32 for computational efficiency, so the
length scale ``l`` is measured in coarse-grid pixels), upsampled smoothly to the image size, min/max
rescaled to ``[1 - b/2, 1 + b/2]`` and multiplied into the image:

    I_biased(x) = B(x) * I(x),   min B = 1 - b/2,   max B = 1 + b/2.

The random field is made by spectral synthesis (white noise filtered with the square root of the
covariance's power spectrum), which takes well under a millisecond on a 32x32 grid; no geostatistics
package is needed.

Example:
    >>> import numpy as np
    >>> from artefix.artefacts.bias_field import BiasFieldParams, apply_bias_field
    >>> params = BiasFieldParams(length_scale=20.0, field_range=0.4, seed=7)
    >>> out = apply_bias_field(np.ones((64, 64), dtype=np.float32), params)
    >>> round(float(out.min()), 4), round(float(out.max()), 4)
    (0.8, 1.2)

"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F

from artefix.artefacts.base import (
    RngLike,
    as_rng,
    check_image,
    draw_seed,
    from_tensor,
    to_tensor,
    torch_generator,
)

LENGTH_SCALE_RANGE = (10.0, 50.0)
"""Training range of the correlation length ``l`` in coarse-grid pixels (paper: 10 < l < 50)."""

FIELD_RANGE_RANGE = (0.1, 1.0)
"""Training range of the field range ``b`` (fields from [0.95, 1.05] to [0.5, 1.5])."""

SEVERITY_LEVELS = (0.05, 0.1, 0.2)
"""The paper's evaluation levels: the largest deviation of the field from 1 (5 %, 10 %, 20 %)."""

DEFAULT_GRID_SIZE = 32
"""Side of the coarse grid (along the shorter image axis) on which the random field is computed."""

_PAD_LENGTH_SCALES = 3.0
"""Padding of the synthesis grid, in length scales: cov(3 l) = exp(-9 pi / 4) ~ 8.5e-4."""

_MAX_LENGTH_SCALE_PER_GRID = 8.0
"""``l`` may be at most this many coarse grids long; beyond it the field is a plane on the grid."""


@dataclass(frozen=True)
class BiasFieldParams:
    """One bias-field corruption.

    Attributes:
        length_scale: Correlation length ``l`` of the Gaussian covariance, in pixels of the coarse grid
            (``0 < l <= 8 * grid_size``; the paper trains with ``10 < l < 50`` on a 32x32 grid).
        field_range: ``b``; the field is rescaled to ``[1 - b/2, 1 + b/2]`` (``0 <= b < 2``; ``b = 0``
            is the identity).
        seed: Seed of the white noise behind the random field, so the corruption can be replayed.
        grid_size: Side of the coarse grid along the shorter image axis (the other side keeps the
            image's aspect ratio), ``>= 2``.

    """

    name: ClassVar[str] = "bias"

    length_scale: float
    field_range: float
    seed: int
    grid_size: int = DEFAULT_GRID_SIZE

    def __post_init__(self) -> None:
        if not (isinstance(self.grid_size, int | np.integer) and self.grid_size >= 2):
            raise ValueError(f"grid_size must be an integer >= 2, got {self.grid_size!r}")
        max_l = _MAX_LENGTH_SCALE_PER_GRID * self.grid_size
        if not (math.isfinite(self.length_scale) and 0.0 < self.length_scale <= max_l):
            raise ValueError(
                f"length_scale must be in (0, {max_l:g}] (coarse-grid pixels, at most "
                f"{_MAX_LENGTH_SCALE_PER_GRID:g} x grid_size), got {self.length_scale!r}"
            )
        if not (math.isfinite(self.field_range) and 0.0 <= self.field_range < 2.0):
            raise ValueError(
                f"field_range b must be in [0, 2) so the field [1 - b/2, 1 + b/2] stays positive, "
                f"got {self.field_range!r}"
            )
        if not isinstance(self.seed, int | np.integer):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        # plain Python scalars, so base.params_to_dict is JSON-serialisable
        object.__setattr__(self, "length_scale", float(self.length_scale))
        object.__setattr__(self, "field_range", float(self.field_range))
        object.__setattr__(self, "seed", int(self.seed))
        object.__setattr__(self, "grid_size", int(self.grid_size))


def _check_shape(shape: tuple[int, int]) -> tuple[int, int]:
    if len(shape) != 2 or int(shape[0]) < 2 or int(shape[1]) < 2:
        raise ValueError(f"shape must be (H, W) with H, W >= 2, got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def sample_bias_field_params(rng: RngLike, shape: tuple[int, int]) -> BiasFieldParams:
    """Draw a bias field from the paper's training distribution.

    ``l ~ U(10, 50)`` coarse-grid pixels and ``b ~ U(0.1, 1.0)``, i.e. fields from [0.95, 1.05] to
    [0.5, 1.5].

    Args:
        rng: The only source of randomness (``numpy.random.Generator``, seed or None).
        shape: Image shape ``(H, W)`` the field is meant for (validated; the coarse grid follows the
            aspect ratio at apply time).

    Returns:
        The parameters, with a fresh ``seed`` for the random field.

    """
    _check_shape(shape)
    rng = as_rng(rng)
    length_scale = float(rng.uniform(*LENGTH_SCALE_RANGE))
    field_range = float(rng.uniform(*FIELD_RANGE_RANGE))
    return BiasFieldParams(length_scale=length_scale, field_range=field_range, seed=draw_seed(rng))


def bias_field_params_for_severity(level: float, shape: tuple[int, int], rng: RngLike) -> BiasFieldParams:
    """Bias field of an evaluation severity.

    Args:
        level: Largest deviation of the field from 1, in ``(0, 1)``; the paper uses 0.05, 0.1 and 0.2
            (fields in [0.95, 1.05], [0.9, 1.1], [0.8, 1.2]). Sets ``b = 2 * level``.
        shape: Image shape ``(H, W)`` (validated).
        rng: Draws the length scale from the training range ``U(10, 50)`` and the field's seed.

    Returns:
        The parameters.

    """
    _check_shape(shape)
    if not (math.isfinite(level) and 0.0 < level < 1.0):
        raise ValueError(f"bias severity level must be in (0, 1) (e.g. 0.05, 0.1, 0.2), got {level!r}")
    rng = as_rng(rng)
    length_scale = float(rng.uniform(*LENGTH_SCALE_RANGE))
    return BiasFieldParams(length_scale=length_scale, field_range=2.0 * float(level), seed=draw_seed(rng))


def _fft_size(n: int) -> int:
    """Smallest 5-smooth integer ``>= n`` (a fast FFT length)."""
    while True:
        m = n
        for p in (2, 3, 5):
            while m % p == 0:
                m //= p
        if m == 1:
            return n
        n += 1


def gaussian_random_field(
    grid_shape: tuple[int, int],
    length_scale: float,
    seed: int,
    *,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """Stationary zero-mean Gaussian random field with Gaussian covariance, by spectral synthesis.

    The covariance is ``cov(r) = exp(-pi/4 (r / l)^2)`` (paper Eq. 2) with unit variance. Its power
    spectrum is ``P(f) = 4 l^2 exp(-4 pi l^2 |f|^2)`` (``f`` in cycles per pixel); the field is
    ``irfft2(sqrt(lambda) * rfft2(w))`` for real white noise ``w ~ N(0, 1)``, with ``lambda`` the
    spectrum sampled on the FFT grid and normalised so the variance is exactly 1. The synthesis grid is
    padded by ``3 l`` along each axis before cropping, so the periodic wrap-around correlates opposite
    edges by at most ``exp(-9 pi / 4) ~ 1e-3``. The paper's variance of 50 is irrelevant here: the bias
    field is min/max rescaled afterwards, which removes any overall scale.

    Args:
        grid_shape: ``(ny, nx)`` of the field, each ``>= 1``.
        length_scale: ``l > 0`` in pixels. Memory and time grow as ``(n + 3 l)^2``.
        seed: Seed of the private ``torch.Generator`` drawing the white noise (global RNGs untouched).
        dtype: Floating dtype of the result; the synthesis runs in float64 on the CPU.

    Returns:
        Field of shape ``(ny, nx)``, on the CPU.

    """
    ny, nx = int(grid_shape[0]), int(grid_shape[1])
    if ny < 1 or nx < 1:
        raise ValueError(f"grid_shape must be positive, got {tuple(grid_shape)}")
    if not (math.isfinite(length_scale) and length_scale > 0):
        raise ValueError(f"length_scale must be a finite number > 0, got {length_scale!r}")
    pad = math.ceil(_PAD_LENGTH_SCALES * length_scale)
    py, px = _fft_size(ny + pad), _fft_size(nx + pad)
    c = 4.0 * math.pi * length_scale**2
    fy = torch.fft.fftfreq(py, dtype=torch.float64)
    fx_full = torch.fft.fftfreq(px, dtype=torch.float64)
    fx = torch.fft.rfftfreq(px, dtype=torch.float64)
    sy, sx = torch.exp(-c * fy**2), torch.exp(-c * fx**2)
    # variance = mean of the spectrum over the full (ny x nx) frequency grid; separable, so a product
    norm = (py * px) / float(sy.sum() * torch.exp(-c * fx_full**2).sum())
    amplitude = torch.sqrt(norm * sy[:, None] * sx[None, :])
    # float32 draws are ~5x faster than float64 ones and statistically indistinguishable here
    white = torch.randn((py, px), generator=torch_generator(seed), dtype=torch.float32).to(torch.float64)
    field = torch.fft.irfft2(amplitude * torch.fft.rfft2(white), s=(py, px))
    return field[:ny, :nx].to(dtype)


def coarse_grid_shape(shape: tuple[int, int], grid_size: int = DEFAULT_GRID_SIZE) -> tuple[int, int]:
    """Coarse grid on which the field of an ``(H, W)`` image is computed.

    The shorter image side maps to ``grid_size`` points and the longer one keeps the aspect ratio, e.g.
    ``(320, 320) -> (32, 32)`` and ``(33, 47) -> (32, 46)``.
    """
    h, w = _check_shape(shape)
    if h <= w:
        return grid_size, max(grid_size, round(grid_size * w / h))
    return max(grid_size, round(grid_size * h / w)), grid_size


def bias_field(
    params: BiasFieldParams,
    shape: tuple[int, int],
    *,
    device: torch.device | str = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """The multiplicative field ``B`` of ``params`` for an image of ``shape``.

    The random field is synthesised on the coarse grid of :func:`coarse_grid_shape`, upsampled to
    ``(H, W)`` with one bicubic interpolation (``align_corners=True``: the coarse grid spans the image
    corner to corner) and rescaled so that ``min B = 1 - b/2`` and ``max B = 1 + b/2`` exactly.

    Args:
        params: The corruption.
        shape: ``(H, W)`` of the image, each ``>= 2``.
        device: Device of the result (the coarse synthesis runs on the CPU, so the field is the same
            on every device).
        dtype: Floating dtype of the result.

    Returns:
        Field of shape ``(H, W)``, values in ``[1 - b/2, 1 + b/2]``; exactly ones when ``b = 0``.

    """
    h, w = _check_shape(shape)
    b = float(params.field_range)
    if b == 0.0:
        return torch.ones((h, w), device=device, dtype=dtype)
    coarse = gaussian_random_field(
        coarse_grid_shape((h, w), params.grid_size), params.length_scale, params.seed, dtype=dtype
    )
    coarse = coarse.to(device)
    field = F.interpolate(coarse[None, None], size=(h, w), mode="bicubic", align_corners=True)[0, 0]
    lo, hi = torch.aminmax(field)
    span = hi - lo
    if float(span) == 0.0:
        return torch.ones((h, w), device=device, dtype=dtype)
    return (field - lo) * (b / span) + (1.0 - b / 2.0)


def _working_dtype(t: torch.Tensor) -> torch.Tensor:
    """float64/complex128 kept; other complex -> complex64; everything else -> float32."""
    if t.dtype in (torch.float64, torch.complex128):
        return t
    return t.to(torch.complex64 if t.is_complex() else torch.float32)


def apply_bias_field(image: Any, params: BiasFieldParams) -> Any:
    """Multiply a bias field into image(s): ``I_biased = B * I`` (image space).

    Args:
        image: NumPy array or torch tensor, shape ``(H, W)`` or ``(B, H, W)``, real or complex.
        params: The corruption; every slice of a batch gets the same field.

    Returns:
        The biased image(s), same kind (NumPy/torch, device) and shape as ``image``; real input stays
        real. float64/complex128 are preserved, other input becomes float32/complex64.

    """
    check_image(image)
    t, was_numpy = to_tensor(image)
    t = _working_dtype(t)
    real_dtype = torch.float64 if t.dtype in (torch.float64, torch.complex128) else torch.float32
    field = bias_field(params, (t.shape[-2], t.shape[-1]), device=t.device, dtype=real_dtype)
    return from_tensor(t * field, was_numpy)
