"""Image-quality metrics, in numpy for the evaluation and in torch for the training.

* :mod:`artefix.metrics.numpy_metrics`: ``ssim``, ``vif``, ``vif_paper``, ``vifp``, ``mse``, ``psnr``,
  ``foreground_mask``, ``compute_metrics``, ``znorm`` and the ``METRICS`` orientation table (used by
  ``artefix evaluate``; re-exported by :mod:`artefix.evaluation.metrics`).
* :mod:`artefix.metrics.torch_metrics`: the differentiable twins ``ssim_torch`` and ``vifp_torch`` and the
  criterion ``quality_deficit`` built on them (re-exported by :mod:`artefix.losses`).

The numpy and torch versions agree to a relative 1e-10 in float64. Every name is re-exported here and
loads on first access, so ``import artefix.metrics`` imports neither scipy nor the torch module.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__all__ = [
    "METRICS",
    "VIF_MIN_SIZE",
    "compute_metrics",
    "foreground_mask",
    "mse",
    "psnr",
    "quality_deficit",
    "ssim",
    "ssim_torch",
    "vif",
    "vif_paper",
    "vifp",
    "vifp_torch",
    "znorm",
]

_TORCH = frozenset({"quality_deficit", "ssim_torch", "vifp_torch"})


def __getattr__(name: str) -> Any:
    if name in __all__:
        module = "torch_metrics" if name in _TORCH else "numpy_metrics"
        return getattr(import_module(f"artefix.metrics.{module}"), name)
    raise AttributeError(f"module 'artefix.metrics' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
