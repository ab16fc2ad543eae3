"""Input checks and intensity scaling shared by the classical baselines (and the optional-import helper)."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

_EXTRA_EVAL = 'pip install "artefix[eval]"'
_EXTRA_BM3D = 'pip install "artefix[bm3d]"'


def _require(module: str, install: str, purpose: str) -> Any:
    """Import an optional dependency or raise an ``ImportError`` that names the pip extra."""
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(f"{purpose} needs the optional package {module!r}: {install}") from err


def _as_slice(x: Any, name: str = "image") -> np.ndarray:
    arr = np.asarray(x)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be a real image, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2 or min(arr.shape) < 2:
        raise ValueError(f"{name} must be a 2D slice (H, W) with H, W >= 2, got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains {int(arr.size - np.isfinite(arr).sum())} NaN or infinite value(s)")
    return arr


def _check_shape(shape: Any) -> tuple[int, int]:
    try:
        h, w = (int(n) for n in shape)
    except (TypeError, ValueError) as err:
        raise ValueError(f"shape must be two positive integers (H, W), got {shape!r}") from err
    if h < 2 or w < 2 or (h, w) != tuple(shape):
        raise ValueError(f"shape must be two integers >= 2 (H, W), got {shape!r}")
    return h, w


def _check_positive(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ValueError(f"{name} must be a positive number, got {value!r}")
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def _minmax(x: np.ndarray, top: float) -> tuple[np.ndarray, float, float]:
    """Map ``x`` affinely to ``[0, top]``; returns the mapped image, offset and scale for the inverse."""
    lo = float(x.min())
    span = float(x.max()) - lo
    if span <= 0:
        return np.zeros_like(x), lo, 1.0
    scale = top / span
    return (x - lo) * scale, lo, scale


def _zscale(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """Z-normalise ``x``; returns the image, mean and standard deviation (1 for a constant image)."""
    mean = float(x.mean())
    std = float(x.std())
    if std <= 0:
        std = 1.0
    return (x - mean) / std, mean, std
