"""Physics priors on two residual heads, applied at inference (not in the paper).

Two facts about the artefacts hold for any scan and need no training:

* **A bias field is smooth and multiplicative.** :func:`smooth_bias_residual` replaces the bias head's
  residual by the one of the smooth multiplicative field nearest to it: the log-ratio of the input to the
  corrected image is averaged with a Gaussian (normalised convolution, weighted by the squared signal so
  the background has no say) and applied back as a field. The bias head can then change intensities only
  smoothly; whatever texture it adds is dropped.
* **Added noise lowers the image's signal-to-noise ratio.** :func:`estimated_snr_db` estimates it from the
  input alone, in the paper's definition ``20 log10(S / N)`` (``S`` the mean k-space magnitude, ``N`` the
  noise standard deviation, estimated by the median absolute finest diagonal Haar wavelet coefficient
  over 0.6745: Donoho's robust estimator, which anatomy barely moves). :func:`snr_gate` fades the noise
  head out between ``lo`` and ``hi`` dB, so a scan as clean as the scanner delivers keeps its own noise
  texture. The learned detector alone cannot do this: it opens the noise gate on about a third of clean
  training slices, where the noise head then changes contrast rather than removing noise.

The functions take and return torch tensors of shape ``(B, H, W)`` (any ``H``, ``W``), use only
operations that TorchScript and the ONNX exporter support (order statistics by ``kthvalue``, by ``topk``
while exporting to ONNX), have no trainable parameters and cost a few per cent of a forward pass.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

MAD_TO_STD = 0.6745
"""Median absolute value of a standard normal variable: ``N = median(|d|) / 0.6745`` for Gaussian ``d``."""

_FOREGROUND = 0.1
"""Pixels brighter than this fraction of the 99th percentile (above the minimum) enter the bias fit."""


_MAX_LOG_FIELD = math.log(10.0)
"""Fitted fields are kept within ``[0.1, 10]``."""


def _kth_largest(values: torch.Tensor, fraction: float) -> torch.Tensor:
    """Per row of ``values`` ``(B, N)``: the value with ``fraction`` of the row above it, shape ``(B,)``."""
    n = values.shape[-1]
    k = min(n, max(1, int(math.ceil(fraction * n))))
    if torch.onnx.is_in_onnx_export() or torch.compiler.is_exporting():
        return values.topk(k, dim=-1).values[:, -1]  # the ONNX exporter has TopK but no kthvalue
    return values.kthvalue(n - k + 1, dim=-1).values  # the same value, several times faster than topk


def estimated_noise_std(image: torch.Tensor) -> torch.Tensor:
    """Noise standard deviation of each image, from its finest diagonal Haar wavelet coefficients.

    Args:
        image: ``(B, H, W)`` real images, ``H, W >= 2`` (an odd last row/column is ignored).

    Returns:
        ``(B,)`` estimates in the image's units: ``median(|d|) / 0.6745`` with ``d`` the orthonormal
        Haar diagonal detail of each 2x2 block (exact for white Gaussian noise on a locally linear image).
    """
    if image.ndim != 3 or image.shape[-2] < 2 or image.shape[-1] < 2:
        raise ValueError(f"expected images of shape (B, H, W) with H, W >= 2, got {tuple(image.shape)}")
    h, w = image.shape[-2] // 2 * 2, image.shape[-1] // 2 * 2
    u = image[:, :h, :w]
    d = (u[:, 0::2, 0::2] - u[:, 0::2, 1::2] - u[:, 1::2, 0::2] + u[:, 1::2, 1::2]) / 2
    return _kth_largest(d.abs().flatten(1), 0.5) / MAD_TO_STD


def estimated_snr_db(image: torch.Tensor) -> torch.Tensor:
    """SNR ``20 log10(S / N)`` in dB of each image, the paper's definition estimated from the image alone.

    Args:
        image: ``(B, H, W)`` real images (magnitude or Z-normalised; the ratio ignores scale, not offset:
            pass what the model sees).

    Returns:
        ``(B,)``: ``S`` the mean magnitude of the orthonormal 2D FFT, ``N`` :func:`estimated_noise_std`
        (a noise-free image gets a large finite value).
    """
    signal = torch.fft.fft2(image.float(), norm="ortho").abs().mean(dim=(-2, -1))
    noise = estimated_noise_std(image.float()).clamp_min(1e-12 * signal.clamp_min(1e-30))
    return 20 * torch.log10(signal.clamp_min(1e-30) / noise)


def snr_gate(snr_db: torch.Tensor, lo: float, hi: float) -> torch.Tensor:
    """Weight of the noise head: 1 at or below ``lo`` dB, 0 at or above ``hi`` dB, linear between.

    Args:
        snr_db: Estimated SNRs, any shape.
        lo: SNR (dB) below which the noise head applies fully.
        hi: SNR (dB) from which the noise head is off (``hi > lo``).

    Returns:
        Weights in ``[0, 1]``, the shape of ``snr_db``.
    """
    if not hi > lo:
        raise ValueError(f"the SNR gate needs lo < hi, got lo={lo}, hi={hi}")
    return ((hi - snr_db) / (hi - lo)).clamp(0.0, 1.0)


def _frequencies(n: int, device: torch.device) -> torch.Tensor:
    """``torch.fft.fftfreq(n)`` (cycles per sample), written with ``arange`` as the ONNX exporter lacks it."""
    return ((torch.arange(n, device=device) + n // 2) % n - n // 2).float() / n


def gaussian_smooth(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Gaussian blur of ``(B, H, W)`` images with standard deviation ``sigma`` pixels, zero outside.

    Computed in Fourier space on a zero-padded grid (no wrap-around), the cost of two FFTs whatever
    ``sigma``.
    """
    h, w = image.shape[-2], image.shape[-1]
    pad_h, pad_w = h + int(math.ceil(4 * sigma)), w + int(math.ceil(4 * sigma))
    fy, fx = _frequencies(pad_h, image.device), _frequencies(pad_w, image.device)
    transfer = torch.exp(-2 * (math.pi * sigma) ** 2 * (fy[:, None] ** 2 + fx[None, :] ** 2))
    padded = torch.nn.functional.pad(image.float(), (0, pad_w - w, 0, pad_h - h))
    blurred = torch.fft.ifft2(torch.fft.fft2(padded) * transfer).real
    return blurred[:, :h, :w].to(image.dtype)


def _normalised_blur(values: torch.Tensor, weight: torch.Tensor, sigma: float) -> torch.Tensor:
    """``blur(values) / blur(weight)`` for ``(B, H, W)`` inputs, a Gaussian of ``sigma`` pixels.

    The result is smooth on the scale of ``sigma``, so both are first averaged over blocks of about
    ``sigma / 8`` pixels (the block averages cancel in the ratio), blurred on that coarse grid and the ratio
    brought back to ``H x W`` bilinearly: a small fraction of the cost of blurring at full resolution.
    """
    h, w = values.shape[-2], values.shape[-1]
    factor = max(1, int(sigma // 8))
    stack = torch.stack([values, weight], dim=1)
    if factor > 1:
        stack = F.avg_pool2d(stack, factor, ceil_mode=True)
    b, _, hl, wl = stack.shape
    blurred = gaussian_smooth(stack.reshape(2 * b, hl, wl), sigma / factor).reshape(b, 2, hl, wl)
    # FFT round-off leaves tiny (even negative) weights far from the foreground: floor them, and keep the
    # field within a factor of 10 either way (the paper's fields stay within [0.5, 2]).
    floor = 1e-6 * blurred[:, 1].flatten(1).amax(dim=-1)[:, None, None] + 1e-30  # + 1e-30: no foreground, no NaN
    support = blurred[:, 1].clamp_min(floor)
    ratio = (blurred[:, 0] / support).clamp(-_MAX_LOG_FIELD, _MAX_LOG_FIELD)
    if factor > 1:
        ratio = F.interpolate(ratio[:, None], size=(h, w), mode="bilinear", align_corners=False)[:, 0]
    return ratio


def smooth_bias_residual(image: torch.Tensor, residual: torch.Tensor, sigma: float) -> torch.Tensor:
    """The residual of the smooth multiplicative field nearest to a bias head's ``residual``.

    The image is shifted to be non-negative (``x = u - min(u)``: the background of a magnitude image is
    its minimum), the field ``log f = log(x / (x + p))`` is fitted by a Gaussian-weighted average over the
    foreground (weights ``x**2``) and the result is ``x / f - x``.

    Args:
        image: Model input ``u``, ``(B, H, W)``.
        residual: Bias residual ``p`` for that input, ``(B, H, W)``, same units.
        sigma: Gaussian standard deviation as a fraction of the larger image side (> 0); the paper's
            fields vary over at least a tenth of the field of view.

    Returns:
        ``(B, H, W)``: zero where ``p`` is zero everywhere; a smooth multiplicative ``p`` is kept.
    """
    if image.shape != residual.shape or image.ndim != 3:
        raise ValueError(
            f"expected image and residual of one shape (B, H, W), got {tuple(image.shape)}, {tuple(residual.shape)}"
        )
    if not sigma > 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    x = (image - image.flatten(1).amin(dim=-1)[:, None, None]).float()
    top = _kth_largest(x.flatten(1), 0.01)[:, None, None]
    foreground = x > _FOREGROUND * top
    corrected = (x + residual.float()).clamp_min(1e-3 * top)
    log_field = torch.where(foreground, torch.log(x.clamp_min(1e-3 * top)) - torch.log(corrected), 0.0)
    weight = torch.where(foreground, x * x, 0.0)
    fitted = _normalised_blur(weight * log_field, weight, sigma * max(image.shape[-2], image.shape[-1]))
    return (x * torch.exp(-fitted) - x).to(residual.dtype)
