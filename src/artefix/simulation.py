"""``artefix.simulate``: the one-call facade over the artefact simulators.

Example:
    >>> import artefix
    >>> image = artefix.load_sample("brain-t1")                       # (320, 320) float32
    >>> noisy = artefix.simulate(image, "noise", severity=0, seed=1)  # SNR 0 dB, magnitude image
    >>> both = artefix.simulate(image, ["subsampling", "motion"], severity=[4, 0.05], seed=2)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from artefix.artefacts.base import Output, RngLike, as_rng, params_to_dict, znorm
from artefix.artefacts.sampler import ARTEFACT_NAMES, BRAIN_TRAINING, compose, make_params, sample_composition
from artefix.errors import InputError

RANDOM = "random"


@dataclass(frozen=True)
class Simulation:
    """A corrupted image together with the exact parameters that produced it.

    Attributes:
        image: The corrupted image(s), same shape as the input.
        params: Per slice, the tuple of parameter dataclasses in application order.
    """

    image: np.ndarray
    params: tuple[tuple[Any, ...], ...]

    def to_records(self) -> list[list[dict[str, Any]]]:
        """JSON-friendly parameters, one list per slice."""
        return [[params_to_dict(p) for p in seq] for seq in self.params]


def validate_image(image: Any) -> np.ndarray:
    """Check that ``image`` is a finite real (H, W) or (B, H, W) array and return it as NumPy.

    A torch tensor is detached and copied to the CPU (a bfloat16 or float16 one becomes float32); the
    result is always a NumPy array.

    Raises:
        InputError: With a one-line reason.
    """
    if hasattr(image, "detach") and hasattr(image, "cpu"):  # a torch tensor, without importing torch here
        image = image.detach().cpu()
        if getattr(image, "is_floating_point", lambda: False)() and image.element_size() < 4:
            image = image.float()
        image = image.numpy()
    arr = np.asarray(image)
    if arr.ndim not in (2, 3):
        raise InputError(f"expected a 2D slice (H, W) or a batch (B, H, W), got an array of shape {arr.shape}")
    if min(arr.shape[-2:]) < 2:
        raise InputError(f"slices must be at least 2x2, got shape {arr.shape}")
    if np.iscomplexobj(arr) or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise InputError(f"expected real-valued image data, got dtype {arr.dtype}")
    bad = int(arr.size - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise InputError(f"image contains {bad} NaN or infinite value(s)")
    return arr if arr.dtype in (np.float32, np.float64) else arr.astype(np.float32)


def _draw(
    names: str | Sequence[str],
    severity: float | Sequence[float | None] | None,
    rng: np.random.Generator,
    shape: tuple[int, int],
    random_order: bool,
    options: dict[str, Any],
) -> tuple[Any, ...]:
    if isinstance(names, str):
        if names == RANDOM:
            if severity is not None:
                raise ValueError("severity cannot be combined with artefact='random'")
            if options:
                raise ValueError(f"artefact options ({', '.join(options)}) apply to a named artefact, not to 'random'")
            names = BRAIN_TRAINING[int(rng.integers(len(BRAIN_TRAINING)))]
        return (make_params(names, rng, shape, severity, **options),)
    if options:
        raise ValueError("artefact options apply to a single artefact, not to a composition")
    sev = None if severity is None else [severity] * len(names) if np.isscalar(severity) else severity
    return sample_composition(list(names), rng, shape, sev, random_order=random_order)


def simulate_with_params(
    image: Any,
    artefact: str | Sequence[str],
    severity: float | Sequence[float | None] | None = None,
    seed: RngLike = None,
    output: Output = "magnitude",
    znormalise: bool = False,
    random_order: bool = False,
    **options: Any,
) -> Simulation:
    """Like :func:`simulate`, also returning the parameters of every slice's corruption."""
    arr = validate_image(image)
    if output not in ("magnitude", "real"):
        raise ValueError(f"output must be 'magnitude' or 'real', got {output!r}")
    rng = as_rng(seed)
    batch = arr[None] if arr.ndim == 2 else arr
    shape = (int(batch.shape[-2]), int(batch.shape[-1]))
    out = np.empty(batch.shape, dtype=batch.dtype)
    all_params = []
    for i, slice_ in enumerate(batch):
        params = _draw(artefact, severity, rng, shape, random_order, dict(options))
        out[i] = compose(slice_, params, output)
        all_params.append(params)
    if znormalise:
        out = znorm(out)
    return Simulation(out[0] if arr.ndim == 2 else out, tuple(all_params))


def simulate(
    image: Any,
    artefact: str | Sequence[str],
    severity: float | Sequence[float | None] | None = None,
    seed: RngLike = None,
    output: Output = "magnitude",
    znormalise: bool = False,
    random_order: bool = False,
    **options: Any,
) -> np.ndarray:
    """Corrupt an image (or each slice of a batch) with one or several MRI artefacts.

    k-space artefacts are applied to the centred orthonormal k-space of the image
    (:mod:`artefix.fft`); the result is brought back to image space and returned as a magnitude
    image (what scanners deliver) unless ``output="real"`` (the real part, what the paper's code kept).

    Args:
        image: Real image, shape (H, W) or a batch (B, H, W); any size, even or odd, non-square.
        artefact: One of ``bias``, ``subsampling``, ``motion``, ``periodic-motion``, ``noise``;
            ``random`` (one of the four paper artefacts with training parameters); or a sequence of
            names, applied in order (or shuffled per slice with ``random_order=True``).
        severity: The paper's evaluation level, in the artefact's unit: bias 0.05/0.1/0.2 (largest
            deviation of the field from 1); subsampling R = 2/3/4 (centred mask keeping the central
            (H/R)x(W/R); ``mask="random"`` or ``"equispaced"`` for fastMRI-style masks along the PE
            axis); motion 0.25/0.125/0.05 (uncorrupted k-space centre fraction); periodic-motion
            Delta in px; noise SNR in dB (5/0/-5). A sequence gives one level per artefact of a
            composition. None draws parameters from the training distribution.
        seed: Seed or ``numpy.random.Generator``; the same seed gives the same output bit for bit.
            Each slice of a batch gets its own draw.
        output: ``"magnitude"`` (default) or ``"real"``.
        znormalise: Z-normalise each output slice (zero mean, unit std), as the paper's model sees it.
        random_order: Shuffle a composition's order per slice (the paper's multi-artefact scenarios).
        **options: ``pe_axis`` (-2: lines along rows' index, -1: columns) and ``mask`` for subsampling.

    Returns:
        The corrupted image(s), same shape; float32 (float64 input stays float64).

    Raises:
        InputError: For a non-2D/3D, complex or non-finite image.
        ValueError: For an unknown artefact, a bad severity or option.
    """
    return simulate_with_params(image, artefact, severity, seed, output, znormalise, random_order, **options).image


__all__ = ["ARTEFACT_NAMES", "RANDOM", "Simulation", "simulate", "simulate_with_params", "validate_image"]
