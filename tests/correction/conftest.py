"""Shared fixtures of the correction tests: a QC record built by hand (no model)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from artefix.correction.record import CorrectionRecord

HEADS = ("bias", "subsampling", "motion", "noise")


def _hand_record(n: int = 5, **kw) -> CorrectionRecord:
    """A record of ``n`` slices of a ``(6, 7, n)`` volume, all four heads applied; ``kw`` replaces any field.

    Its mean |residual| is ``1, 2, ... 4 n`` row by row unless ``values`` (``(n, 4)``) is given; each
    slice has mean 0 and standard deviation 10.
    """
    values = kw.pop("values", np.arange(n * 4, dtype=np.float64).reshape(n, 4) + 1.0)
    args = {
        "heads": HEADS,
        "applied": HEADS,
        "axis": 2,
        "shape": (6, 7, n),
        "work_shape": (6, 7),
        "mean_abs_residual": values,
        "slice_mean": np.zeros(n),
        "slice_std": np.full(n, 10.0),
        "constant_slices": (),
    }
    args.update(kw)
    return CorrectionRecord(**args)


@pytest.fixture
def make_record() -> Callable[..., CorrectionRecord]:
    """``make_record(n=5, **fields)``: a hand-built :class:`CorrectionRecord` (see :func:`_hand_record`)."""
    return _hand_record
