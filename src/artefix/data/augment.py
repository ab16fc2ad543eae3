"""Training-time augmentation of clean slices, for generalisation beyond the training scans.

Applied to the clean, non-negative slice *before* the artefact is simulated, so the corruption
physics is unchanged. Geometric variety (flips, quarter turns) covers other orientations and
phase-encoding directions; a random gamma ``x -> x**gamma`` varies the contrast between tissues,
which a model trained on a few contrasts (T1, T2, FLAIR) otherwise over-fits.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Augmentation:
    """Random flips, quarter turns and gamma of a clean slice.

    Attributes:
        flips: Flip each axis with probability 1/2.
        rot90: Rotate by a random multiple of 90 degrees (square slices only).
        gamma: Range of the exponent of ``x -> x**gamma`` on the slice scaled to its maximum
            (``(1, 1)`` disables it).
    """

    flips: bool = True
    rot90: bool = True
    gamma: tuple[float, float] = (0.6, 1.6)

    def __post_init__(self) -> None:
        lo, hi = (float(g) for g in self.gamma)
        if not 0 < lo <= hi:
            raise ValueError(f"gamma must be a range 0 < low <= high, got {self.gamma!r}")
        object.__setattr__(self, "gamma", (lo, hi))

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Augment one non-negative slice ``(H, W)``; returns a new float32 array of the same shape."""
        out = np.asarray(image, dtype=np.float32)
        if self.flips:
            if rng.random() < 0.5:
                out = out[::-1]
            if rng.random() < 0.5:
                out = out[:, ::-1]
        if self.rot90 and out.shape[0] == out.shape[1]:
            out = np.rot90(out, int(rng.integers(4)))
        lo, hi = self.gamma
        if hi > lo or lo != 1.0:
            peak = float(out.max())
            if peak > 0:
                gamma = float(np.exp(rng.uniform(np.log(lo), np.log(hi))))
                out = peak * (np.clip(out, 0, None) / peak) ** gamma
        return np.ascontiguousarray(out, dtype=np.float32)
