"""Shared vocabulary of the artefact simulators.

Every artefact module follows one shape (TorchIO's ``get_params``/``apply`` split, made pure):

* a frozen dataclass ``XParams`` that fully determines one corruption (any internal randomness,
  such as a noise realisation, is fixed by a ``seed`` field), so it can be logged and replayed;
* ``sample_x_params(rng, shape, ...) -> XParams`` draws from the paper's *training* ranges;
* ``x_params_for_severity(level, shape, rng) -> XParams`` builds the paper's *evaluation* levels;
* ``apply_x(image, params)`` is deterministic and accepts NumPy arrays or torch tensors of shape
  ``(H, W)`` or ``(B, H, W)``, real or complex, and returns the same kind of object. Artefacts that
  act in k-space return complex images; turn them into what a scanner delivers with
  :func:`to_output`.
"""

from __future__ import annotations

import dataclasses
import hashlib
from typing import Any, Literal

import numpy as np
import torch

from artefix.artefacts.names import HEADS as HEADS  # re-exported: the vocabulary of every simulator
from artefix.artefacts.names import Artefact as Artefact

Output = Literal["magnitude", "real", "complex"]
RngLike = int | np.random.Generator | None


def as_rng(rng: RngLike) -> np.random.Generator:
    """Normalise ``rng`` (seed, Generator or None) to a ``numpy.random.Generator`` (scikit-image style)."""
    if isinstance(rng, np.random.Generator):
        return rng
    return np.random.default_rng(rng)


def stable_entropy(text: str, words: int = 4) -> list[int]:
    """``words`` 32-bit integers from the SHA-256 of ``text``: the same on every machine and run.

    Seeds a generator by a name (``np.random.default_rng([seed, *stable_entropy(key)])``) where Python's
    ``hash`` would differ from process to process.
    """
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return [int.from_bytes(digest[4 * k : 4 * k + 4], "little") for k in range(words)]


def draw_seed(rng: np.random.Generator) -> int:
    """Draw a 63-bit seed for the internal randomness of one corruption."""
    return int(rng.integers(0, 2**63 - 1))


def torch_generator(seed: int, device: torch.device | str = "cpu") -> torch.Generator:
    """A private ``torch.Generator`` seeded with ``seed`` (never the global one)."""
    g = torch.Generator(device=device)
    g.manual_seed(int(seed) % (2**63 - 1))
    return g


def to_tensor(x: Any) -> tuple[torch.Tensor, bool]:
    """Wrap ``x`` as a floating/complex tensor without copying where possible.

    Returns:
        ``(tensor, was_numpy)``; integer and boolean input becomes float32.
    """
    was_numpy = not isinstance(x, torch.Tensor)
    t = torch.from_numpy(np.ascontiguousarray(x)) if was_numpy else x
    if not (t.is_floating_point() or t.is_complex()):
        t = t.to(torch.float32)
    return t, was_numpy


def from_tensor(t: torch.Tensor, was_numpy: bool) -> Any:
    """Inverse of :func:`to_tensor`: back to NumPy when the input was NumPy."""
    return t.detach().cpu().numpy() if was_numpy else t


def check_image(x: Any) -> None:
    """Raise ``ValueError`` unless ``x`` is a finite ``(H, W)`` or ``(B, H, W)`` image array."""
    if x.ndim not in (2, 3):
        raise ValueError(f"expected an image of shape (H, W) or (B, H, W), got shape {tuple(x.shape)}")
    if x.shape[-1] < 2 or x.shape[-2] < 2:
        raise ValueError(f"image must be at least 2x2, got shape {tuple(x.shape)}")


def to_output(x: Any, output: Output = "magnitude") -> Any:
    """Turn a (possibly complex) simulated image into the requested real image.

    Args:
        x: Image(s) from an ``apply_*`` function, NumPy or torch.
        output: ``"magnitude"`` (default; what scanners deliver), ``"real"`` (the real part, what the
            paper's code kept) or ``"complex"`` (no change).

    Returns:
        The converted image(s), same kind as ``x``.
    """
    if output == "complex":
        return x
    if output == "magnitude":
        return x.abs() if isinstance(x, torch.Tensor) else np.abs(x)
    if output == "real":
        return x.real
    raise ValueError(f"output must be 'magnitude', 'real' or 'complex', got {output!r}")


def znorm(x: Any, eps: float = 1e-8) -> Any:
    """Z-normalise each slice (zero mean, unit standard deviation over the last two axes).

    A constant slice maps to zeros instead of dividing by zero.
    """
    if isinstance(x, torch.Tensor):
        mean = x.mean(dim=(-2, -1), keepdim=True)
        std = x.std(dim=(-2, -1), keepdim=True, unbiased=False)
        return (x - mean) / std.clamp_min(eps)
    mean = x.mean(axis=(-2, -1), keepdims=True)
    std = x.std(axis=(-2, -1), keepdims=True)
    return (x - mean) / np.maximum(std, eps)


def params_to_dict(params: Any) -> dict[str, Any]:
    """JSON-friendly dict of a parameter dataclass, with the artefact name under ``"artefact"``."""
    d = dataclasses.asdict(params)
    for key, value in d.items():
        if isinstance(value, tuple):
            d[key] = list(value)
    d["artefact"] = getattr(params, "name", type(params).__name__)
    return d
