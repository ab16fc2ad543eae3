"""N4ITK bias-field correction (SimpleITK): ``n4-paper`` and the tuned ``n4``."""

from __future__ import annotations

from typing import Any

import numpy as np

from artefix.evaluation.baselines._common import _EXTRA_EVAL, _as_slice, _minmax, _require

N4_MAX_VALUE = 10.0
"""N4ITK input scale: intensities are mapped to ``[0, N4_MAX_VALUE]`` (paper)."""

N4_CONTROL_POINTS = 4
"""Control points of the B-spline bias model per axis (paper)."""

N4_SHRINK = 2
"""Shrink factor of the tuned ``n4`` (the field is fitted on a 2x subsampled image)."""


def _n4_run(image: np.ndarray, *, mask: np.ndarray | None, shrink: int, control_points: int) -> np.ndarray:
    """Run N4ITK on ``image`` (already in [0, 10]) and return the corrected image at full resolution.

    The field is fitted on the image shrunk by ``shrink`` (inside ``mask`` if given) and evaluated at
    full resolution: ``corrected = image / exp(log_bias)``.
    """
    sitk = _require("SimpleITK", _EXTRA_EVAL, "N4ITK bias correction")
    img = sitk.GetImageFromArray(image)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetNumberOfControlPoints([control_points, control_points])
    m = np.ones(image.shape, np.uint8) if mask is None else mask.astype(np.uint8)
    sitk_mask = sitk.GetImageFromArray(m)
    if shrink > 1:
        corrector.Execute(sitk.Shrink(img, [shrink, shrink]), sitk.Shrink(sitk_mask, [shrink, shrink]))
    else:
        corrector.Execute(img, sitk_mask)
    log_bias = sitk.GetArrayFromImage(corrector.GetLogBiasFieldAsImage(img))
    return image / np.exp(log_bias)


def _check_control_points(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 4:
        raise ValueError(f"control_points must be an integer >= 4 (spline order 3 + 1), got {value!r}")
    return int(value)


def n4_paper(corrupted: Any, *, control_points: int = N4_CONTROL_POINTS) -> np.ndarray:
    """N4ITK bias-field correction in the paper's setting.

    The image is mapped to ``[0, 10]`` (min-max), corrected with SimpleITK's
    ``N4BiasFieldCorrectionImageFilter`` (B-spline field with ``control_points`` per axis, SimpleITK's
    default 4 fitting levels of at most 50 iterations, no mask, no downsampling), and mapped back with
    the inverse affine map. N4 models ``I = B * u``: it estimates ``log B`` as the smooth part of
    ``log I`` that sharpens the intensity histogram, and returns ``I / B``.

    Args:
        corrupted: Bias-corrupted slice ``(H, W)``, real.
        control_points: B-spline control points per axis (paper: 4, SimpleITK's minimum for order 3).

    Returns:
        The corrected slice ``(H, W)``, float64, in the input's intensity units.
    """
    x = _as_slice(corrupted, "corrupted")
    cp = _check_control_points(control_points)
    if x.max() == x.min():
        return x.copy()
    scaled, lo, scale = _minmax(x, N4_MAX_VALUE)
    out = _n4_run(scaled, mask=None, shrink=1, control_points=cp)
    return out / scale + lo


def n4(
    corrupted: Any,
    *,
    shrink: int = N4_SHRINK,
    control_points: int = N4_CONTROL_POINTS,
    mask: Any = None,
) -> np.ndarray:
    """N4ITK bias-field correction, tuned: fitted inside the foreground, on a shrunk image.

    As :func:`n4_paper`, but the field is fitted only inside a foreground mask (by default
    :func:`artefix.evaluation.metrics.foreground_mask` of the input: Otsu threshold, holes filled,
    dilated 2 px; the empty background carries no bias information and only dilutes the histogram) on
    the image shrunk by ``shrink`` (the standard N4 recipe: smoother, faster fits), and the fitted field
    is evaluated at full resolution. On the built-in 320x320 T1 and FLAIR slices at 20 % bias this
    beat :func:`n4_paper` in MSE; on tiny images (<= 96 px) the shrunk fitting grid is too coarse.

    Args:
        corrupted: Bias-corrupted slice ``(H, W)``, real.
        shrink: Integer shrink factor >= 1 of the fitting image.
        control_points: B-spline control points per axis.
        mask: Optional boolean ``(H, W)`` fitting mask instead of the Otsu foreground.

    Returns:
        The corrected slice ``(H, W)``, float64, in the input's intensity units.
    """
    from artefix.evaluation.metrics import foreground_mask

    x = _as_slice(corrupted, "corrupted")
    if isinstance(shrink, bool) or not isinstance(shrink, (int, np.integer)) or shrink < 1:
        raise ValueError(f"shrink must be an integer >= 1, got {shrink!r}")
    cp = _check_control_points(control_points)
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != x.shape or not m.any():
            raise ValueError(f"mask must be a non-empty boolean array of shape {x.shape}, got shape {m.shape}")
    if x.max() == x.min():
        return x.copy()
    scaled, lo, scale = _minmax(x, N4_MAX_VALUE)
    if mask is None:
        m = foreground_mask(scaled)
    out = _n4_run(scaled, mask=m, shrink=int(shrink), control_points=cp)
    return out / scale + lo
