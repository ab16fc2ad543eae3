"""Classical baselines of the paper's single-artefact experiments, in the paper's and in a tuned setting.

Every method is a plain function on one real 2D slice ``(H, W)`` and returns a float64 slice of the
target shape. Methods that see the corrupted image take it as the first argument; the
super-resolution methods take the low-resolution image instead (see ``needs`` in :data:`BASELINES`).
Each classical method gets its best shot: besides the paper's setting (``-paper``), a tuned variant is
reported side by side.

========================  =============  =========  ==========================================================
name                      experiment     input      method
========================  =============  =========  ==========================================================
``n4-paper``              bias           corrupted  N4ITK, 4 control points, intensities in [0, 10], full size
``n4``                    bias           corrupted  N4ITK fitted inside the foreground mask, shrink factor 2
``bfc``                   bias           corrupted  the implicitly trained bias CNN of Simko et al. (MIDL 2022)
``zero-filled``           subsampling    corrupted  identity: the corrupted image *is* the zero-filled recon
``bicubic``               subsampling    lowres     cubic upsampling on the Fourier-aligned grid
``tv-sr``                 subsampling    lowres     TV-regularised super-resolution, exact k-space-crop model
``tv-paper``              motion         corrupted  TV denoising (scikit-image, Chambolle), weight 0.05
``tv``                    motion         corrupted  TV denoising with the weight tuned on validation pairs
``cad``                   noise          corrupted  curvature anisotropic diffusion (SimpleITK defaults)
``bm3d-paper``            noise          corrupted  BM3D hard thresholding, sigma 50/255 on [0, 1]
``bm3d``                  noise          corrupted  BM3D hard thresholding, sigma estimated from the image
========================  =============  =========  ==========================================================

``bfc`` is the paper's second bias baseline, the implicitly trained bias-field CNN of Simko et al.: the
authors' published Keras model (MIT licence) ported to torch, its weights converted once into the package
(:mod:`~artefix.evaluation.baselines.bias_cnn`). It is a network, not a classical method, but it is one of the
paper's baselines and needs no training here, so it is run like one.

Not included, and why:

* UniRes (Brudfors et al., the paper's third super-resolution baseline) is not on PyPI, nor is its
  ``nitorch`` dependency. ``tv-sr`` stands in for it: UniRes is itself a (multi-channel) total-variation
  regularised super-resolution; ``tv-sr`` solves the single-channel problem with the exact forward model
  of the centred k-space crop. It is implemented here (a small primal-dual solver) rather than taken from
  ``sigpy``, which would add ``numba``/``llvmlite`` for a few lines of FFT-based code.

Optional dependencies are imported inside the functions: ``SimpleITK`` (``pip install "artefix[eval]"``)
for ``n4``/``cad`` and ``bm3d`` (``pip install "artefix[bm3d]"``; its binary is free for non-commercial
use only, so it is never a required dependency). :func:`available` says whether a method can run.

Intensity conventions: methods with a weight or a noise level defined on a particular intensity scale
map the input to that scale and the result back with the inverse affine map, so each function is
equivariant to the affine maps used (``f(a x + b) = a f(x) + b`` for ``a > 0``). TV weights are defined
on the z-normalised scale (zero mean, unit standard deviation), the scale of the paper's images.

One family per module, all re-exported here: :mod:`~artefix.evaluation.baselines.bias` (N4ITK),
:mod:`~artefix.evaluation.baselines.bias_cnn` (the implicitly trained bias CNN),
:mod:`~artefix.evaluation.baselines.resolution` (zero-filled, bicubic, TV super-resolution),
:mod:`~artefix.evaluation.baselines.denoise` (TV, CAD, BM3D); the shared input checks and intensity
scaling are in :mod:`~artefix.evaluation.baselines._common`. This module holds the registry
(:data:`BASELINES`, :class:`Baseline`) and :func:`available`.
"""

# Re-exports: every name of the former single module (submodules' private helpers included) stays
# importable from here.
# ruff: noqa: F401

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import ndimage

from artefix.evaluation.baselines._common import (
    _EXTRA_BM3D,
    _EXTRA_EVAL,
    _as_slice,
    _check_positive,
    _check_shape,
    _minmax,
    _require,
    _zscale,
)
from artefix.evaluation.baselines.bias import (
    N4_CONTROL_POINTS,
    N4_MAX_VALUE,
    N4_SHRINK,
    _check_control_points,
    _n4_run,
    n4,
    n4_paper,
)
from artefix.evaluation.baselines.bias_cnn import bfc, bfc_field
from artefix.evaluation.baselines.denoise import (
    BM3D_PAPER_SIGMA,
    CAD_CONDUCTANCE,
    CAD_ITERATIONS,
    CAD_TIME_STEP,
    TV_PAPER_WEIGHT,
    TV_WEIGHT_GRID,
    _bm3d_run,
    _tv_denoise,
    bm3d,
    bm3d_paper,
    cad,
    tune_tv_weight,
    tv,
    tv_paper,
)
from artefix.evaluation.baselines.resolution import (
    _TV_SR_RATIO_SCALE,
    TV_SR_WEIGHT,
    _divergence,
    _gradient,
    _lowres_input,
    _symmetric_window,
    bicubic,
    fourier_grid_coordinates,
    tv_sr,
    zero_filled,
)
from artefix.fft import fft2c, fourier_resize, ifft2c, kspace_crop_pad

__all__ = [
    "BASELINES",
    "BM3D_PAPER_SIGMA",
    "CAD_CONDUCTANCE",
    "CAD_ITERATIONS",
    "CAD_TIME_STEP",
    "N4_MAX_VALUE",
    "TV_PAPER_WEIGHT",
    "TV_SR_WEIGHT",
    "TV_WEIGHT_GRID",
    "Baseline",
    "available",
    "bfc",
    "bfc_field",
    "bicubic",
    "bm3d",
    "bm3d_paper",
    "cad",
    "fourier_grid_coordinates",
    "n4",
    "n4_paper",
    "tune_tv_weight",
    "tv",
    "tv_paper",
    "tv_sr",
    "zero_filled",
]


@dataclass(frozen=True)
class Baseline:
    """One classical method of the evaluation.

    Attributes:
        func: The method. ``needs == "corrupted"``: ``func(corrupted, **settings)``;
            ``needs == "lowres"``: ``func(lowres, shape, **settings)``.
        experiment: The experiment it belongs to: ``bias``, ``subsampling``, ``motion`` or ``noise``.
        needs: ``"corrupted"`` (the corrupted slice) or ``"lowres"`` (the centre-cropped low-resolution
            image, ``centre_crop_kspace_image(clean, R)``, plus the target shape).
        extra: The pip extra of its optional dependency (``"eval"``, ``"bm3d"``) or ``None``.
        module: The optional module it imports (for :func:`available`), or ``None``.
        tune: ``None``, or a function of validation ``(corrupted, clean)`` pairs returning the settings
            to pass to ``func`` (e.g. ``{"weight": 0.07}`` for ``tv``).
    """

    func: Callable[..., np.ndarray]
    experiment: str
    needs: str
    extra: str | None = None
    module: str | None = None
    tune: Callable[[Iterable[tuple[Any, Any]]], dict[str, Any]] | None = None


def _tune_tv(pairs: Iterable[tuple[Any, Any]]) -> dict[str, Any]:
    return {"weight": tune_tv_weight(pairs)}


BASELINES: MappingProxyType[str, Baseline] = MappingProxyType(
    {
        "n4": Baseline(n4, "bias", "corrupted", "eval", "SimpleITK"),
        "n4-paper": Baseline(n4_paper, "bias", "corrupted", "eval", "SimpleITK"),
        "bfc": Baseline(bfc, "bias", "corrupted"),
        "zero-filled": Baseline(zero_filled, "subsampling", "corrupted"),
        "bicubic": Baseline(bicubic, "subsampling", "lowres"),
        "tv-sr": Baseline(tv_sr, "subsampling", "lowres"),
        "tv": Baseline(tv, "motion", "corrupted", tune=_tune_tv),
        "tv-paper": Baseline(tv_paper, "motion", "corrupted"),
        "cad": Baseline(cad, "noise", "corrupted", "eval", "SimpleITK"),
        "bm3d": Baseline(bm3d, "noise", "corrupted", "bm3d", "bm3d"),
        "bm3d-paper": Baseline(bm3d_paper, "noise", "corrupted", "bm3d", "bm3d"),
    }
)
"""Method name -> :class:`Baseline`, in the order of the paper's tables (tuned variant first)."""


def available(name: str) -> bool:
    """Whether the method ``name`` of :data:`BASELINES` can run (its optional dependency imports).

    Args:
        name: A key of :data:`BASELINES`.

    Returns:
        True when the method has no optional dependency or it is installed.
    """
    if name not in BASELINES:
        raise ValueError(f"unknown baseline {name!r}; choose one of {', '.join(BASELINES)}")
    module = BASELINES[name].module
    if module is None:
        return True
    try:
        importlib.import_module(module)
    except (ImportError, OSError):
        return False
    return True
