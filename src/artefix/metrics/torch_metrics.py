"""Differentiable torch twins of the evaluation's SSIM and pixel-domain VIF, and the criterion built on them.

* :func:`ssim_torch`: SSIM per slice with scikit-image's settings (7x7 uniform windows, ``K1 = 0.01``,
  ``K2 = 0.03``), the twin of :func:`artefix.metrics.numpy_metrics.ssim` without a mask.
* :func:`vifp_torch`: pixel-domain VIF per slice (sewar's four scales, windows and guards), the twin of
  :func:`artefix.metrics.numpy_metrics.vifp`, written without in-place updates so gradients flow.
* :func:`quality_deficit`: ``(1 - SSIM) + (1 - VIF)`` per slice, the paper's two quality metrics as one
  differentiable criterion (a gate-calibration criterion of the training, re-exported by
  :mod:`artefix.losses`).

Each agrees with its numpy twin to a relative 1e-10 in float64 (``tests/metrics/test_torch_metrics.py``).
``scipy`` (the numpy module) is imported only when :func:`quality_deficit` runs.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["quality_deficit", "ssim_torch", "vifp_torch"]


def _gaussian_window(n: int, like: torch.Tensor) -> torch.Tensor:
    """The 1D Gaussian factor (``sigma = n / 5``, sum 1) of :func:`artefix.metrics.numpy_metrics.vifp`'s window."""
    x = torch.arange(-(n // 2), n // 2 + 1, dtype=like.dtype, device=like.device)
    g = torch.exp(-(x**2) / (2.0 * (n / 5.0) ** 2))
    return g / g.sum()


def _filter_valid(x: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Correlation of ``(B, 1, H, W)`` with ``outer(g, g)``, 'valid' region only (two 1D passes)."""
    return F.conv2d(F.conv2d(x, g[None, None, :, None]), g[None, None, None, :])


def vifp_torch(output: torch.Tensor, reference: torch.Tensor, sigma_nsq: float = 2.0) -> torch.Tensor:
    """Differentiable pixel-domain VIF per slice, the torch twin of :func:`artefix.metrics.numpy_metrics.vifp`.

    Same four scales, windows and guards (sewar's), written without in-place updates so that gradients
    flow to ``output`` (torchmetrics' VIF modifies tensors in place and cannot be back-propagated).

    Args:
        output: Distorted images ``(B, 1, H, W)``, ``H, W >= 41``.
        reference: Reference images, same shape.
        sigma_nsq: Visual-noise variance in squared intensity units (2.0 for a 0-255 scale).

    Returns:
        ``(B,)`` VIF values (1 for ``output == reference``).
    """
    eps = 1e-10
    gt, p = reference, output
    num = gt.new_zeros(gt.shape[0])
    den = gt.new_zeros(gt.shape[0])
    zero = gt.new_zeros(())
    for scale in range(1, 5):
        w = _gaussian_window(2 ** (5 - scale) + 1, gt)
        if scale > 1:
            gt = _filter_valid(gt, w)[..., ::2, ::2]
            p = _filter_valid(p, w)[..., ::2, ::2]
        mu1, mu2 = _filter_valid(gt, w), _filter_valid(p, w)
        s11 = (_filter_valid(gt * gt, w) - mu1 * mu1).clamp(min=0.0)
        s22 = (_filter_valid(p * p, w) - mu2 * mu2).clamp(min=0.0)
        s12 = _filter_valid(gt * p, w) - mu1 * mu2
        g = s12 / (s11 + eps)
        sv = s22 - g * s12
        flat = s11 < eps
        g, sv, s11 = torch.where(flat, zero, g), torch.where(flat, s22, sv), torch.where(flat, zero, s11)
        blank = s22 < eps
        g, sv = torch.where(blank, zero, g), torch.where(blank, zero, sv)
        negative = g < 0
        sv, g = torch.where(negative, s22, sv), torch.where(negative, zero, g)
        sv = sv.clamp(min=eps)
        num = num + torch.log10(1.0 + g**2 * s11 / (sv + sigma_nsq)).sum(dim=(1, 2, 3))
        den = den + torch.log10(1.0 + s11 / sigma_nsq).sum(dim=(1, 2, 3))
    return num / den


def ssim_torch(output: torch.Tensor, reference: torch.Tensor, data_range: torch.Tensor) -> torch.Tensor:
    """Differentiable SSIM per slice, the torch twin of :func:`artefix.metrics.numpy_metrics.ssim` (no mask).

    scikit-image's settings: 7x7 uniform windows, ``K1 = 0.01``, ``K2 = 0.03``, sample covariances, the mean
    of the map over the image minus its 3-pixel border (exactly the 'valid' windows).

    Args:
        output: Images to score ``(B, 1, H, W)``, ``H, W >= 7``.
        reference: Reference images, same shape.
        data_range: ``(B, 1, 1, 1)`` data ranges (the references' max - min).

    Returns:
        ``(B,)`` SSIM values.
    """
    win = 7
    box = output.new_full((win,), 1.0 / win)
    ux, uy = _filter_valid(output, box), _filter_valid(reference, box)
    cov_norm = win * win / (win * win - 1.0)
    vx = cov_norm * (_filter_valid(output * output, box) - ux * ux)
    vy = cov_norm * (_filter_valid(reference * reference, box) - uy * uy)
    vxy = cov_norm * (_filter_valid(output * reference, box) - ux * uy)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    smap = (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return smap.mean(dim=(1, 2, 3))


def quality_deficit(output: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-slice ``(1 - SSIM) + (1 - VIF)``, the paper's two quality metrics as one differentiable criterion.

    The evaluation's metrics (:mod:`artefix.metrics.numpy_metrics`) in torch: :func:`ssim_torch` with the
    reference's data range and :func:`vifp_torch` after the affine map that takes each reference slice to
    [0, 255]. Not in the paper: a gate-calibration criterion (``loss.gate_criterion: quality``) for the
    metrics the model is evaluated on.

    Args:
        output: Images to score, ``(B, 1, H, W)``, ``H, W >= 41`` (VIF's four scales).
        reference: Reference images, same shape, none of them constant.

    Returns:
        ``(B,)`` deficits, 0 for ``output == reference``; slightly negative where VIF exceeds 1 (a gain).
    """
    if output.ndim != 4 or output.shape[1] != 1 or output.shape != reference.shape:
        raise ValueError(
            f"output and reference must both have shape (B, 1, H, W), got {tuple(output.shape)} and "
            f"{tuple(reference.shape)}"
        )
    from artefix.metrics.numpy_metrics import VIF_MIN_SIZE

    if min(output.shape[-2:]) < VIF_MIN_SIZE:
        raise ValueError(f"VIF needs images of at least {VIF_MIN_SIZE}x{VIF_MIN_SIZE}, got {tuple(output.shape[-2:])}")
    lo = reference.amin(dim=(1, 2, 3), keepdim=True)
    span = reference.amax(dim=(1, 2, 3), keepdim=True) - lo
    if bool((span <= 0).any()):
        raise ValueError("a reference slice is constant: SSIM and VIF are undefined")
    scale = 255.0 / span
    vif = vifp_torch((output - lo) * scale, (reference - lo) * scale)
    return (1.0 - ssim_torch(output, reference, span)) + (1.0 - vif)
