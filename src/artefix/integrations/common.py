"""Slice-wise corruption of a channel-first image, shared by the TorchIO and MONAI transforms.

A transform draws one integer seed from its library's random mechanism; :func:`draw_slice_params` turns it
into the frozen parameters of every slice (the draws of :func:`artefix.simulate` with that seed) and
:func:`apply_slice_params` applies them with artefix's own ``compose``. The parameters are the record: applying
them again gives the same image bit for bit. No global random generator is read or reseeded here.

Layout: an image is channel-first, ``(C, H, W)`` (2D: each channel is one slice) or ``(C, X, Y, Z)`` (3D:
slices are taken along the spatial axis ``axis``, -1 being Z). The parameters hold one entry per slice,
channel-major (channel ``c``, slice ``s`` at ``c * S + s``), each the tuple of corruptions applied in order.

Example:
    >>> import numpy as np
    >>> from artefix.integrations.common import apply_slice_params, corrupt_slices
    >>> volume = np.random.default_rng(0).random((1, 32, 32, 4), dtype=np.float32)
    >>> out, params = corrupt_slices(volume, "noise", severity=5.0, seed=1)
    >>> len(params), bool((apply_slice_params(volume, params) == out).all())
    (4, True)
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from artefix.artefacts.base import Output, RngLike, as_rng
from artefix.artefacts.sampler import ARTEFACT_NAMES, REGISTRY, compose, make_params
from artefix.simulation import RANDOM, validate_image
from artefix.simulation import _draw as draw_corruption

#: Per slice (channel-major), the corruptions applied in order: what the transforms record.
SliceParams = tuple[tuple[Any, ...], ...]
ArtefactArg = str | Sequence[str]
SeverityArg = float | Sequence[float | None] | None

_CHOICES = f"{', '.join(ARTEFACT_NAMES)} or {RANDOM!r} (one of the four paper artefacts per slice)"
_PROBE_SHAPE = (16, 16)


def missing_extra(extra: str, library: str) -> ImportError:
    """The error of an integration whose library is absent, naming the pip extra that installs it."""
    return ImportError(
        f"artefix.integrations.{extra} needs {library}, which is not installed: pip install 'artefix[{extra}]'"
    )


def check_artefact(
    artefact: ArtefactArg,
    severity: SeverityArg = None,
    options: Mapping[str, Any] | None = None,
    output: str = "magnitude",
) -> None:
    """Validate a transform's arguments up front, with messages that name the valid choices.

    Args:
        artefact: An artefact name, ``"random"``, or a sequence of names (a composition applied in order).
        severity: None (training distribution), an evaluation level in the artefact's unit, or one level per
            name of a composition.
        options: Artefact options (``pe_axis``; ``mask`` for subsampling severities).
        output: ``"magnitude"`` or ``"real"``.

    Raises:
        ValueError: On an unknown artefact, an invalid severity or option, or a bad ``output``.
    """
    options = dict(options or {})
    if output not in ("magnitude", "real"):
        raise ValueError(f"output must be 'magnitude' or 'real', got {output!r}")
    if isinstance(artefact, str):
        names = [artefact]
    elif isinstance(artefact, Sequence) and artefact and all(isinstance(n, str) for n in artefact):
        names = list(artefact)
        if options:
            raise ValueError("artefact options apply to a single artefact, not to a composition")
    else:
        raise ValueError(f"artefact must be a name or a non-empty sequence of names ({_CHOICES}), got {artefact!r}")
    if names == [RANDOM] and isinstance(artefact, str):
        if severity is not None or options:
            raise ValueError("artefact='random' draws training parameters: it takes no severity and no options")
        return
    for name in names:
        if name not in REGISTRY:
            raise ValueError(f"unknown artefact {name!r}; choose one of {_CHOICES}")
    levels = _levels(severity, len(names))
    for name, level in zip(names, levels, strict=True):
        spec = REGISTRY[name]
        unknown = set(options) - set(spec.options)
        if unknown:
            raise ValueError(
                f"artefact {name!r} does not take option(s) {', '.join(sorted(unknown))}; "
                f"it takes {', '.join(spec.options) or 'none'}"
            )
        if level is None:
            make_params(name, np.random.default_rng(0), _PROBE_SHAPE, None, **options)
            continue
        paper = ", ".join(f"{s:g}" for s in spec.severities)
        what = f"severity {level!r} for {name!r} ({spec.severity_unit}; the paper's levels: {paper})"
        if isinstance(level, bool) or not isinstance(level, numbers.Real) or not math.isfinite(level):
            raise ValueError(f"invalid {what}: a severity is a finite number, or None for the training distribution")
        try:
            make_params(name, np.random.default_rng(0), _PROBE_SHAPE, float(level), **options)
        except ValueError as exc:
            raise ValueError(f"invalid {what}: {exc}") from None


def _levels(severity: SeverityArg, n: int) -> list[Any]:
    if severity is None or isinstance(severity, (numbers.Real, np.generic)):
        return [severity] * n
    if isinstance(severity, Sequence) and not isinstance(severity, str) and len(severity) == n:
        return list(severity)
    raise ValueError(f"severity must be None, a number, or one level per artefact ({n}), got {severity!r}")


def check_axis(axis: int) -> int:
    """Validate a slice axis over the three spatial axes (-3..2) and return it."""
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)) or not -3 <= int(axis) <= 2:
        raise ValueError(f"axis must be a spatial axis: 0, 1, 2 or -3, -2, -1, got {axis!r}")
    return int(axis)


def slice_layout(shape: Sequence[int], axis: int = -1) -> tuple[int, tuple[int, int]]:
    """Number of slices and the ``(H, W)`` of each for a channel-first image of ``shape``.

    Raises:
        ValueError: For an image that is not ``(C, H, W)`` or ``(C, X, Y, Z)`` or slices smaller than 2x2.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) == 3:
        n, plane = shape[0], (shape[1], shape[2])
    elif len(shape) == 4:
        dim = 1 + check_axis(axis) % 3
        n, plane = shape[0] * shape[dim], tuple(s for i, s in enumerate(shape[1:], 1) if i != dim)
    else:
        raise ValueError(f"expected a channel-first image (C, H, W) or (C, X, Y, Z), got shape {shape}")
    if min(plane) < 2:
        raise ValueError(f"slices along axis {axis} of a {shape} image are {plane[0]}x{plane[1]}; need at least 2x2")
    return n, (plane[0], plane[1])


def draw_slice_params(
    artefact: ArtefactArg,
    severity: SeverityArg,
    seed: RngLike,
    shape: Sequence[int],
    axis: int = -1,
    options: Mapping[str, Any] | None = None,
) -> SliceParams:
    """Independent parameters for every slice of a channel-first image of ``shape``, all from ``seed``.

    The draws are those of ``artefix.simulate`` on the stack of slices with the same seed (and ``options``).
    """
    n, plane = slice_layout(shape, axis)
    rng = as_rng(seed)
    return tuple(draw_corruption(artefact, severity, rng, plane, False, dict(options or {})) for _ in range(n))


def _as_slices(t: torch.Tensor, axis: int) -> tuple[torch.Tensor, Callable[[torch.Tensor], torch.Tensor]]:
    """``(N, H, W)`` view of a channel-first image and the function that puts such a stack back."""
    if t.ndim == 3:
        return t, lambda b: b
    dim = 1 + axis % 3
    moved = t.movedim(dim, 1)
    batch = moved.reshape(-1, *moved.shape[2:]).contiguous()  # one copy, not a strided gather per slice
    return batch, lambda b: b.reshape(moved.shape).movedim(1, dim)


def _cast(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if not (dtype.is_floating_point or dtype.is_complex):
        low, high = (0, 1) if dtype == torch.bool else (torch.iinfo(dtype).min, torch.iinfo(dtype).max)
        t = t.round().clamp(low, high)
    return t.to(dtype)


def apply_slice_params(data: Any, params: SliceParams, axis: int = -1, output: Output = "magnitude") -> Any:
    """Apply recorded per-slice parameters to a channel-first image (no random draws).

    Args:
        data: NumPy array or torch tensor, ``(C, H, W)`` or ``(C, X, Y, Z)``.
        params: One tuple of corruptions per slice, as :func:`draw_slice_params` returns.
        axis: The spatial slice axis of a 3D image (ignored for 2D).
        output: ``"magnitude"`` (what scanners deliver) or ``"real"``.

    Returns:
        The corrupted image: same kind (NumPy or torch), shape, dtype and device as ``data`` (integer data is
        rounded and clipped to its type's range).

    Raises:
        ValueError: When ``params`` does not hold one entry per slice, or on a bad image.
    """
    was_numpy = not isinstance(data, torch.Tensor)
    tensor = torch.from_numpy(np.asarray(data)) if was_numpy else data.detach()
    n, _ = slice_layout(tensor.shape, axis)
    if len(params) != n:
        raise ValueError(f"the parameters hold {len(params)} slices; this image has {n} along axis {axis}")
    batch, restore = _as_slices(tensor.cpu(), axis)
    arr = validate_image(batch)
    out = np.empty(arr.shape, dtype=arr.dtype)
    for i, corruptions in enumerate(params):
        out[i] = compose(arr[i], corruptions, output)
    result = _cast(restore(torch.from_numpy(out)).contiguous(), tensor.dtype)
    return result.numpy() if was_numpy else result.to(tensor.device)


@dataclass(frozen=True)
class SliceCorruption:
    """What a transform corrupts images with, validated once: draw per-slice parameters, then apply them.

    Attributes:
        artefact: ``bias``, ``subsampling``, ``motion``, ``periodic-motion`` or ``noise``; ``random`` (one of
            the four paper artefacts per slice, training parameters); or a sequence of names applied in order.
        severity: None draws each slice's parameters from the artefact's training distribution (as artefix's
            training data does); a number is an evaluation level in the artefact's unit (bias 0.05/0.1/0.2,
            subsampling R 2/3/4, motion 0.25/0.125/0.05, noise SNR 5/0/-5 dB, periodic-motion Delta in px);
            a composition takes one level per name.
        axis: The spatial slice axis of 3D images (ignored for 2D).
        output: ``"magnitude"`` or ``"real"``.
        options: Artefact options (``pe_axis``, ``mask``).

    Raises:
        ValueError: On an unknown artefact, an invalid severity, option, axis or output.
    """

    artefact: ArtefactArg
    severity: SeverityArg = None
    axis: int = -1
    output: Output = "magnitude"
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_artefact(self.artefact, self.severity, self.options, self.output)
        if not isinstance(self.artefact, str):
            object.__setattr__(self, "artefact", tuple(self.artefact))
        if isinstance(self.severity, (list, tuple)):
            object.__setattr__(self, "severity", tuple(self.severity))
        object.__setattr__(self, "axis", check_axis(self.axis))
        object.__setattr__(self, "options", dict(self.options or {}))

    def draw(self, seed: RngLike, shape: Sequence[int], axis: int | None = None) -> SliceParams:
        """Every slice's parameters for an image of ``shape`` (``axis`` overrides :attr:`axis`)."""
        return draw_slice_params(
            self.artefact, self.severity, seed, shape, self.axis if axis is None else axis, self.options
        )

    def apply(self, data: Any, params: SliceParams, axis: int | None = None) -> Any:
        """:func:`apply_slice_params` with this corruption's axis (or ``axis``) and output."""
        return apply_slice_params(data, params, self.axis if axis is None else axis, self.output)


def corrupt_slices(
    data: Any,
    artefact: ArtefactArg,
    severity: SeverityArg = None,
    seed: RngLike = None,
    axis: int = -1,
    output: Output = "magnitude",
    options: Mapping[str, Any] | None = None,
) -> tuple[Any, SliceParams]:
    """Corrupt every slice of a channel-first image with its own draw; also return the parameters.

    Args:
        data: NumPy array or torch tensor, ``(C, H, W)`` or ``(C, X, Y, Z)``.
        artefact: Name, ``"random"`` or a sequence of names (see :func:`check_artefact`).
        severity: None for training draws, else the evaluation level(s).
        seed: Seed or ``numpy.random.Generator`` of all the draws.
        axis: The spatial slice axis of a 3D image (ignored for 2D).
        output: ``"magnitude"`` or ``"real"``.
        options: Artefact options (``pe_axis``, ``mask``).

    Returns:
        ``(corrupted, params)``: the image as :func:`apply_slice_params` returns it, and the parameters.
    """
    params = draw_slice_params(artefact, severity, seed, tuple(data.shape), axis, options)
    return apply_slice_params(data, params, axis, output), params


__all__ = [
    "SliceCorruption",
    "SliceParams",
    "apply_slice_params",
    "check_artefact",
    "check_axis",
    "corrupt_slices",
    "draw_slice_params",
    "missing_extra",
    "slice_layout",
]
