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

* **A background-independent SNR for quality control.** :func:`foreground_snr_db` measures the noise inside
  the signal (the low tail of local second-difference RMS over foreground windows) against the foreground's
  mean, so zeroing, cropping or zero-padding the background moves it by less than 1 dB. It is *not* what the
  noise gate reads: as a gate it separated clean from noisy slices worse (validation noise 5 dB SSIM 0.909 ->
  0.859 with a refitted detector; docs/experiments.md), because the paper's noise is defined, and hurts the
  metrics, relative to the whole field of view.

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


NOISE_WINDOW = 8
"""Side in pixels of the windows over which the local noise level is measured."""

NOISE_QUANTILE = 0.1
"""Quantile of the foreground windows' local noise levels taken as the noise: anatomy only adds to it."""

_QUANTILE_TO_STD = 0.7905
"""That quantile for white Gaussian noise, in standard deviations (measured on 20 images of 258x258)."""

_NOISE_FLOOR = 3.0
"""Foreground windows are brighter than this many noise standard deviations (no pure-noise background)..."""

_NOISE_SIGNAL = 0.25
"""... and than this fraction of the median foreground window (no dim partial-volume rim)."""

_SECOND_DIFFERENCE = (1.0, -2.0, 1.0, -2.0, 4.0, -2.0, 1.0, -2.0, 1.0)
"""Immerkaer's 3x3 filter (separable second differences): zero on planes, unit gain (/ 6) for white noise."""


def _masked_quantile(values: torch.Tensor, mask: torch.Tensor, q: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Per row of ``values`` ``(B, N)``: the ``q`` quantile of the entries where ``mask``, and their count.

    A row without any masked entry gives ``inf``. Written with ``sort`` and ``gather`` (ONNX-exportable).
    """
    ranked = torch.where(mask, values, torch.full_like(values, torch.inf)).sort(dim=-1).values
    count = mask.sum(dim=-1)
    index = ((count - 1).clamp_min(0).to(values.dtype) * q).long()
    return ranked.gather(1, index[:, None])[:, 0], count


def _noise_windows(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per window of each image: mean intensity, least intensity and local noise level, each ``(B, M)``.

    The image is shifted to be non-negative (``u - min(u)``: a magnitude image's background is its
    minimum); the local noise level is the RMS of Immerkaer's second-difference filter (/6, so it equals
    the standard deviation of white noise) over the window.
    """
    x = image.float()
    x = (x - x.flatten(1).amin(dim=-1)[:, None, None])[:, None]
    kernel = x.new_tensor(_SECOND_DIFFERENCE).reshape(1, 1, 3, 3) / 6
    inner = x[..., 1:-1, 1:-1]
    size = (min(NOISE_WINDOW, inner.shape[-2]), min(NOISE_WINDOW, inner.shape[-1]))
    mean = F.avg_pool2d(inner, size).flatten(1)
    least = -F.max_pool2d(-inner, size).flatten(1)
    noise = F.avg_pool2d(F.conv2d(x, kernel) ** 2, size).flatten(1).sqrt()
    return mean, least, noise


def _foreground_noise(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(noise std, mean foreground intensity)`` of ``(B, H, W)`` images, each ``(B,)``, in image units.

    Foreground windows hold no background pixel (none at the image's minimum, so a zeroed background and
    its rim are left out), are brighter than ``3 N`` (no noisy background) and than a quarter of the
    median foreground window; ``N``, the ``NOISE_QUANTILE`` of their local noise levels, and the foreground
    are refined together four times from "every window without a background pixel".
    """
    mean, least, local = _noise_windows(image)
    inside = least > 0
    inside = inside | ~inside.any(dim=-1, keepdim=True)  # no window without background: take them all
    foreground = inside
    for _ in range(4):
        noise = _masked_quantile(local, foreground, NOISE_QUANTILE)[0]
        candidate = inside & (mean > _NOISE_FLOOR * noise[:, None])
        level = _masked_quantile(mean, candidate, 0.5)[0]
        candidate = candidate & (mean > _NOISE_SIGNAL * level[:, None])
        foreground = candidate | (inside & ~candidate.any(dim=-1, keepdim=True))  # or, if none, all inside
    noise, count = _masked_quantile(local, foreground, NOISE_QUANTILE)
    noise = noise / _QUANTILE_TO_STD
    signal = torch.where(foreground, mean, torch.zeros_like(mean)).sum(dim=-1) / count.clamp_min(1)
    return noise, signal


def _check_noise_input(image: torch.Tensor) -> None:
    """Raise ``ValueError`` unless ``image`` is ``(B, H, W)`` with ``H, W >= 3`` (one 3x3 filter fits)."""
    if image.ndim != 3 or image.shape[-2] < 3 or image.shape[-1] < 3:
        raise ValueError(f"expected images of shape (B, H, W) with H, W >= 3, got {tuple(image.shape)}")


def foreground_noise_std(image: torch.Tensor) -> torch.Tensor:
    """Noise standard deviation of each image, measured inside the signal (background-independent).

    Args:
        image: ``(B, H, W)`` real images, ``H, W >= 3``.

    Returns:
        ``(B,)`` float32 estimates in the image's units: the 10 % quantile of the foreground windows' local
        noise levels (see :func:`foreground_snr_db`) over its value for white noise, so white Gaussian noise
        reads its standard deviation (for windows of the full 8x8; smaller images read a little high).
    """
    _check_noise_input(image)
    return _foreground_noise(image)[0]


def foreground_snr_db(image: torch.Tensor) -> torch.Tensor:
    """Foreground SNR ``20 log10(S / N)`` in dB of each image, estimated from the image alone.

    ``S`` is the mean intensity of the foreground windows and ``N`` :func:`foreground_noise_std`, both above
    the image's minimum. Unlike the paper's definition of the SNR it adds (``S`` the mean k-space magnitude,
    which depends on how much of the field of view the anatomy fills), it ignores the background: zeroing,
    cropping or zero-padding it leaves the estimate within about 1 dB. Noise added at the paper's
    5 / 0 / -5 dB reads about 18 / 14 / 11 dB on the training slices; the scans themselves 21-39 dB.

    Args:
        image: ``(B, H, W)`` real images, ``H, W >= 3`` (magnitude or Z-normalised: the ratio ignores scale
            and offset).

    Returns:
        ``(B,)`` float32; a noise-free image gets a large finite value.
    """
    _check_noise_input(image)
    noise, signal = _foreground_noise(image)
    signal = signal.clamp_min(1e-30)
    return (20 * torch.log10(signal / noise.clamp_min(1e-12 * signal))).float()


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
