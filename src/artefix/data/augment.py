"""Training-time augmentation of clean slices, for generalisation beyond the training scans.

Applied to the clean, non-negative slice *before* the artefact is simulated, so the corruption
physics is unchanged. Geometric variety (flips, quarter turns) covers other orientations and
phase-encoding directions; a random gamma ``x -> x**gamma`` varies the contrast between tissues,
which a model trained on a few contrasts (T1, T2, FLAIR) otherwise over-fits.

:class:`ScaleCrop` varies the resolution: a native-resolution slice is Fourier-resized by a random factor
between "the whole slice fits the matrix" and 1 (native pixels), then cropped to the matrix at a random
place. A model trained on slices that were all shrunk to one matrix learns that matrix's pixel statistics
(sharpness, noise grain) and "corrects" native-resolution scans towards them at inference; training on
native pixels as well keeps it an identity on clean scans of any resolution.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from artefix.fft import fourier_resize


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


@dataclass(frozen=True)
class ScaleCrop:
    """Random resolution and field of view of a native-resolution slice, at a fixed output matrix.

    Attributes:
        matrix: Output ``(H, W)`` in pixels.
        min_scale: Smallest resize factor; ``None`` takes, per slice, the factor at which the whole slice
            fits the matrix (``min(1, H_m / H, W_m / W)``), so the range spans "whole slice shrunk to the
            matrix" (the ``fit="pad"`` preprocessing) to "native pixels, cropped".
    """

    matrix: tuple[int, int]
    min_scale: float | None = None

    def __post_init__(self) -> None:
        if len(self.matrix) != 2 or any(int(m) != m or int(m) < 2 for m in self.matrix):
            raise ValueError(f"matrix must be two integers >= 2, got {self.matrix!r}")
        object.__setattr__(self, "matrix", (int(self.matrix[0]), int(self.matrix[1])))
        if self.min_scale is not None and not 0 < float(self.min_scale) <= 1:
            raise ValueError(f"min_scale must be in (0, 1] or None, got {self.min_scale!r}")

    def scale_range(self, shape: Sequence[int]) -> tuple[float, float]:
        """``(low, 1)``: the resize factors drawn for a slice of ``shape`` ``(H, W)``."""
        fit = min(1.0, self.matrix[0] / int(shape[0]), self.matrix[1] / int(shape[1]))
        low = fit if self.min_scale is None else min(1.0, float(self.min_scale))
        return low, 1.0

    def _place(self, image: np.ndarray, top: float, left: float) -> np.ndarray:
        """Zero-pad ``image`` (centred) to at least the matrix, then crop the window at relative offsets."""
        mh, mw = self.matrix
        ph, pw = max(0, mh - image.shape[0]), max(0, mw - image.shape[1])
        if ph or pw:
            image = np.pad(image, ((ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)))
        y = int(round(top * (image.shape[0] - mh)))
        x = int(round(left * (image.shape[1] - mw)))
        return np.ascontiguousarray(image[y : y + mh, x : x + mw], dtype=np.float32)

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Resize ``image`` ``(H, W)`` by a log-uniform factor of :meth:`scale_range`, crop at random.

        Returns:
            float32 array of shape :attr:`matrix`, non-negative where ``image`` is (the Fourier resize's
            ringing below zero is clipped).
        """
        img = np.asarray(image, dtype=np.float32)
        low, high = self.scale_range(img.shape)
        factor = math.exp(rng.uniform(math.log(low), math.log(high))) if low < high else low
        top, left = rng.random(), rng.random()
        shape = (max(2, round(img.shape[0] * factor)), max(2, round(img.shape[1] * factor)))
        if shape != img.shape:
            img = np.asarray(fourier_resize(img, shape), dtype=np.float32)
            if float(np.min(image)) >= 0:
                img = np.clip(img, 0, None)
        return self._place(img, top, left)

    def centre(self, image: np.ndarray) -> np.ndarray:
        """The deterministic (validation) view: native pixels, centre window of the matrix (zero-padded)."""
        return self._place(np.asarray(image, dtype=np.float32), 0.5, 0.5)


@dataclass(frozen=True)
class BackgroundMask:
    """Random zeroing of a slice's background, as skull stripping, masking or defacing leave scans.

    Many scans reach users with a zero background: a masked or skull-stripped source image (which the
    scanner's artefacts then corrupt everywhere, background included) or a corrupted scan masked
    afterwards by a pipeline. A model trained only on noisy scanner backgrounds reads either as unknown.
    With probability :attr:`probability` a slice gets a mask, half of the time applied to the clean
    slice *before* the corruption, half of the time to both the corrupted and clean slices *after* it.

    The mask is the head: the slice smoothed (Gaussian, 1.5 px) above a random fraction (5-25 %) of its
    99th percentile, holes filled, then eroded (up to :attr:`max_erosion` of the smaller side: a rough
    skull strip) or dilated (up to 4 px: a generous mask) by a random number of pixels.

    Attributes:
        probability: Chance that a slice is masked (0 disables it).
        max_erosion: Largest erosion as a fraction of the slice's smaller side.
    """

    probability: float = 0.3
    max_erosion: float = 0.08

    def __post_init__(self) -> None:
        if not 0.0 <= float(self.probability) <= 1.0:
            raise ValueError(f"probability must be in [0, 1], got {self.probability!r}")
        if not 0.0 <= float(self.max_erosion) < 0.5:
            raise ValueError(f"max_erosion must be in [0, 0.5), got {self.max_erosion!r}")

    def draw(self, image: np.ndarray, rng: np.random.Generator) -> tuple[str | None, np.ndarray | None]:
        """``(when, mask)`` for one non-negative slice ``(H, W)``: ``when`` is ``"before"``/``"after"``/None.

        Draws nothing from ``rng`` beyond one number when the slice is left unmasked.
        """
        if rng.random() >= self.probability:
            return None, None
        from scipy import ndimage

        when = "before" if rng.random() < 0.5 else "after"
        smooth = ndimage.gaussian_filter(np.asarray(image, np.float32), 1.5)
        top = float(np.percentile(smooth, 99))
        head = ndimage.binary_fill_holes(smooth > rng.uniform(0.05, 0.25) * top)
        most = max(1, int(self.max_erosion * min(image.shape)))
        step = int(rng.integers(-most, 5))
        if step > 0:
            head = ndimage.binary_dilation(head, iterations=step)
        elif step < 0:
            eroded = ndimage.binary_erosion(head, iterations=-step)
            head = eroded if eroded.any() else head
        if not head.any():
            return None, None
        return when, head
