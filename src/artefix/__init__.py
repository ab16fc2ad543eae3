"""artefix: multi-task MRI artefact simulation and correction.

Implements Simko et al., "Improving MR image quality with a multi-task model, using convolutional
losses", BMC Medical Imaging 23, 148 (2023).

Heavy submodules (torch) load lazily, so ``import artefix`` and ``artefix --help`` stay fast::

    >>> import artefix
    >>> image = artefix.load_sample()                            # doctest: +SKIP
    >>> noisy = artefix.simulate(image, "noise", severity=0, seed=1)  # doctest: +SKIP
    >>> corrected = artefix.correct(noisy).image                 # doctest: +SKIP
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "simulate": ("artefix.simulation", "simulate"),
    "load_sample": ("artefix.data.samples", "load_sample"),
    "Artefact": ("artefix.artefacts.base", "Artefact"),
    "correct": ("artefix.api", "correct"),
    "load_model": ("artefix.api", "load_model"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(import_module(module), attr)
    raise AttributeError(f"module 'artefix' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
