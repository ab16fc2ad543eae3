"""The built-in sample: a few real MRI slices shipped inside the package (no download).

Attribution and licences: ``artefix/data/sample/LICENSE.md``.

Example:
    >>> from artefix.data.samples import load_sample, SAMPLE_NAMES
    >>> load_sample("brain-t1").shape
    (320, 320)
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import numpy as np

SAMPLE_NAMES: tuple[str, ...] = ("brain-t1", "brain-t2", "brain-flair", "pelvis-t2")
DEFAULT_SAMPLE = "brain-t1"


@lru_cache(maxsize=1)
def _archive() -> dict[str, np.ndarray]:
    path = resources.files("artefix.data") / "sample" / "sample.npz"
    with resources.as_file(path) as p, np.load(p, allow_pickle=False) as npz:
        return {name: npz[name] for name in npz.files}


def load_sample(name: str = DEFAULT_SAMPLE) -> np.ndarray:
    """Load one built-in sample slice.

    Args:
        name: One of :data:`SAMPLE_NAMES`: ``brain-t1``, ``brain-t2`` (448x406, non-square),
            ``brain-flair`` (320x320 each unless noted) or ``pelvis-t2`` (384x384).

    Returns:
        A float32 array of shape (H, W) in the scanner's original intensity units (a fresh copy).

    Raises:
        ValueError: If ``name`` is not a sample.
    """
    if name not in SAMPLE_NAMES:
        raise ValueError(f"unknown sample {name!r}; choose one of {', '.join(SAMPLE_NAMES)}")
    return _archive()[name].astype(np.float32)
