"""Image-quality metrics of the paper's evaluation: the old import path of :mod:`artefix.metrics.numpy_metrics`.

SSIM, pixel-domain VIF, MSE, PSNR, the foreground mask and :func:`compute_metrics` live in
:mod:`artefix.metrics.numpy_metrics` (their torch twins in :mod:`artefix.metrics.torch_metrics`); this
module re-exports every name it had before the move, private helpers and module imports included.
"""

from __future__ import annotations

from artefix.metrics.numpy_metrics import (  # noqa: F401  (re-exports, __all__ included)
    _SSIM_WIN,
    _VIF_EPS,
    _VIF_SCALES,
    METRICS,
    VIF_MIN_SIZE,
    Any,
    MappingProxyType,
    __all__,
    _as_image,
    _check_mask,
    _data_range,
    _filter_valid,
    _gaussian_window_1d,
    _pair,
    compute_metrics,
    foreground_mask,
    mse,
    ndimage,
    np,
    psnr,
    ssim,
    vif,
    vif_paper,
    vifp,
    znorm,
)
