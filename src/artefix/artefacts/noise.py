"""Noise: complex white Gaussian noise added to k-space (Simko et al. 2023, "Noise removal", Eq. 5).

The clean slice's centred k-space ``K`` (:func:`artefix.fft.fft2c`) gets complex white Gaussian noise
whose real and imaginary parts both have standard deviation ``N``, set from the requested SNR:

    SNR = 20 log10(S / N),   S = mean_k |K(k)|,   so   N = S * 10^(-SNR / 20),

with ``S`` computed per slice. The result is returned as a complex image (``ifft2c``); turn it into a
magnitude or real image with :func:`artefix.artefacts.base.to_output`. Because the FFT is orthonormal,
the image-space noise is also white, with the same standard deviation ``N`` per component.

Example:
    >>> import numpy as np
    >>> from artefix.artefacts.noise import NoiseParams, apply_noise, measure_snr_db
    >>> from artefix.fft import fft2c
    >>> image = np.random.default_rng(0).random((128, 128))
    >>> noisy = apply_noise(image, NoiseParams(snr_db=0.0, seed=1))
    >>> abs(measure_snr_db(fft2c(image), fft2c(noisy))) < 0.1
    True

"""

from __future__ import annotations

import math
from dataclasses import dataclass
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
from artefix.fft import fft2c

SNR_DB_RANGE = (-12.0, 10.0)
"""Training range of the k-space SNR in dB (paper: uniform in [-12, 10])."""

SEVERITY_LEVELS = (5.0, 0.0, -5.0)
"""The paper's evaluation SNRs in dB."""


@dataclass(frozen=True)
class NoiseParams:
    """One noise corruption.

    Attributes:
        snr_db: k-space SNR ``20 log10(S / N)`` in dB; any finite value, or ``+inf`` for no noise.
        seed: Seed of the noise realisation, so the corruption can be replayed.

    """

    name: ClassVar[str] = "noise"

    snr_db: float
    seed: int

    def __post_init__(self) -> None:
        if math.isnan(self.snr_db) or self.snr_db == -math.inf:
            raise ValueError(f"snr_db must be a finite number of dB or +inf (no noise), got {self.snr_db!r}")
        if not isinstance(self.seed, int | np.integer):
            raise ValueError(f"seed must be an integer, got {self.seed!r}")
        # plain Python scalars, so base.params_to_dict is JSON-serialisable
        object.__setattr__(self, "snr_db", float(self.snr_db))
        object.__setattr__(self, "seed", int(self.seed))


def _check_shape(shape: tuple[int, int]) -> None:
    if len(shape) != 2 or int(shape[0]) < 2 or int(shape[1]) < 2:
        raise ValueError(f"shape must be (H, W) with H, W >= 2, got {tuple(shape)}")


def sample_noise_params(rng: RngLike, shape: tuple[int, int]) -> NoiseParams:
    """Draw a noise level from the paper's training distribution, ``SNR ~ U(-12, 10)`` dB.

    Args:
        rng: The only source of randomness (``numpy.random.Generator``, seed or None).
        shape: Image shape ``(H, W)`` (validated; the noise level does not depend on it).

    Returns:
        The parameters, with a fresh ``seed`` for the noise realisation.

    """
    _check_shape(shape)
    rng = as_rng(rng)
    snr_db = float(rng.uniform(*SNR_DB_RANGE))
    return NoiseParams(snr_db=snr_db, seed=draw_seed(rng))


def noise_params_for_severity(level: float, shape: tuple[int, int], rng: RngLike) -> NoiseParams:
    """Noise of an evaluation severity.

    Args:
        level: The k-space SNR in dB (the paper evaluates 5, 0 and -5 dB).
        shape: Image shape ``(H, W)`` (validated).
        rng: Draws the seed of the noise realisation.

    Returns:
        The parameters.

    """
    _check_shape(shape)
    return NoiseParams(snr_db=float(level), seed=draw_seed(as_rng(rng)))


def _complex_dtype(t: torch.Tensor) -> torch.dtype:
    """complex128 for float64/complex128 input, complex64 for everything else."""
    return torch.complex128 if t.dtype in (torch.float64, torch.complex128) else torch.complex64


def apply_noise(image: Any, params: NoiseParams) -> Any:
    """Add complex white Gaussian noise of a given SNR to the k-space of image(s).

    ``K_noisy = K + N (n_re + j n_im)`` with ``n_re, n_im ~ N(0, 1)`` i.i.d. and
    ``N = mean|K| * 10^(-SNR/20)`` per slice. Since the centred orthonormal FFT is unitary, the
    noise is drawn directly in image space (same distribution, one FFT fewer). The realisation is drawn on the CPU from
    ``base.torch_generator(params.seed)`` (so it is the same on every device); each slice of a batch
    gets its own realisation.

    Args:
        image: NumPy array or torch tensor, shape ``(H, W)`` or ``(B, H, W)``, real or complex.
        params: The corruption. ``snr_db = inf`` returns the input cast to complex, unchanged.

    Returns:
        The noisy complex image(s) ``ifft2c(K_noisy)``, same kind (NumPy/torch, device) and shape as
        ``image``; complex128 for float64/complex128 input, complex64 otherwise.

    """
    check_image(image)
    t, was_numpy = to_tensor(image)
    t = t.to(_complex_dtype(t))
    if params.snr_db == math.inf:
        return from_tensor(t, was_numpy)
    # S needs the k-space; the noise does not: the centred orthonormal FFT is unitary, so i.i.d.
    # complex Gaussian noise of std N in k-space is i.i.d. complex Gaussian noise of std N in image
    # space. Adding it there gives the same distribution as ifft2c(K + N n) without a second FFT.
    signal = fft2c(t).abs().mean(dim=(-2, -1), keepdim=True)
    sigma = signal * 10.0 ** (-float(params.snr_db) / 20.0)
    real_dtype = torch.float64 if t.dtype == torch.complex128 else torch.float32
    white = torch.randn((*t.shape, 2), generator=torch_generator(params.seed), dtype=real_dtype)
    noise = torch.view_as_complex(white).to(t.device)
    return from_tensor(t + sigma * noise, was_numpy)


def _as_numpy(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def measure_snr_db(clean_kspace: Any, noisy_kspace: Any) -> float:
    """Measured k-space SNR in dB: ``20 log10(mean|K_clean| / std(Re(K_noisy - K_clean)))``.

    Args:
        clean_kspace: Clean centred k-space, NumPy or torch, any shape (pooled over all samples).
        noisy_kspace: Noisy k-space of the same shape.

    Returns:
        The SNR in dB (``inf`` when the two are identical, ``-inf`` for an all-zero clean k-space).

    """
    clean, noisy = _as_numpy(clean_kspace), _as_numpy(noisy_kspace)
    if clean.shape != noisy.shape:
        raise ValueError(f"k-space shapes differ: {clean.shape} vs {noisy.shape}")
    noise_std = float(np.std(np.real(noisy - clean)))
    signal = float(np.mean(np.abs(clean)))
    if noise_std == 0.0:
        return math.inf
    if signal == 0.0:
        return -math.inf
    return 20.0 * math.log10(signal / noise_std)
