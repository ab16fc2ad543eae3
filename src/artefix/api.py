"""The Python API of correction: :func:`correct` an array or tensor in memory, :func:`load_model` once.

Both are exported from the package (``artefix.correct``, ``artefix.load_model``). They run the library path
of ``artefix correct`` (:func:`artefix.correction.correct_volume` with a model from
:func:`artefix.models.registry.load_named_model`) on a NumPy array or a torch tensor instead of a file, and
return the same type that came in.

Example:
    >>> import artefix
    >>> from artefix.fft import fourier_resize
    >>> image = fourier_resize(artefix.load_sample("brain-t2").astype("float64"), (96, 96)).astype("float32")
    >>> noisy = artefix.simulate(image, "noise", severity=5, seed=1)
    >>> result = artefix.correct(noisy, only=["noise"])
    >>> result.image.shape, sorted(result.residuals)
    ((96, 96), ['bias', 'motion', 'noise', 'subsampling'])
    >>> model = artefix.load_model("mt-lc-brain")  # load once, correct many
    >>> artefix.correct(noisy, model).image.shape
    (96, 96)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from artefix.errors import InputError

if TYPE_CHECKING:
    from artefix.correction.record import CorrectionRecord
    from artefix.models.dual_domain import DualDomainModel


@dataclass(frozen=True)
class LoadedModel:
    """A correction model with its model card, from :func:`load_model`.

    Unpacks as ``model, card = artefix.load_model(...)``; pass it whole as :func:`correct`'s ``model``.

    Attributes:
        model: The :class:`~artefix.models.DualDomainModel`, in eval mode.
        card: Its model card (``name``, ``matrix``, ``sha256``, ``weights_path``, ...).
    """

    model: DualDomainModel
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The model's name (its card's, else the weights file's stem)."""
        return str(self.card.get("name", ""))

    @property
    def heads(self) -> tuple[str, ...]:
        """The model's heads, in residual order."""
        return tuple(self.model.head_names)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.model, self.card))


@dataclass(frozen=True)
class Correction:
    """What :func:`correct` returns.

    Attributes:
        image: The corrected image or volume: same shape, type (NumPy array or torch tensor) and, for a
            tensor, device as the input; float32 (a floating tensor keeps its dtype).
        residuals: Head name -> that head's residual in the input's units, same shape and type as
            ``image``, for every head of the model (also those that ``only`` leaves out; ``image`` applies
            only the selected ones).
        scores: Head name -> the artefact detector's score in ``[0, 1]`` for each slice, ``(N,)`` NumPy
            (NaN for constant slices); None for a model without a detector.
        snr_db: Each slice's estimated SNR in dB, ``(N,)`` NumPy; None for a model without a noise gate.
        heads: The model's heads.
        applied: The heads whose residuals ``image`` applies.
        record: The full QC record (:class:`artefix.correction.record.CorrectionRecord`).
    """

    image: Any
    residuals: dict[str, Any]
    scores: dict[str, np.ndarray] | None
    snr_db: np.ndarray | None
    heads: tuple[str, ...]
    applied: tuple[str, ...]
    record: CorrectionRecord = field(repr=False)


def load_model(name_or_path: str | Path = "mt-lc-brain", *, device: str = "cpu") -> LoadedModel:
    """Load a correction model once, to pass to :func:`correct` for many images.

    Args:
        name_or_path: A shipped model's name (``artefix models`` lists them) or a ``.safetensors`` file
            written by :func:`artefix.models.checkpoint.save_model`; its checksum is verified.
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:1"``, ...).

    Returns:
        A :class:`LoadedModel` (unpacks as ``model, card``).

    Raises:
        InputError: Unknown or missing model, checksum mismatch, unusable device.

    Example:
        >>> import artefix
        >>> model, card = artefix.load_model("mt-lc-brain")
        >>> card["name"], model.head_names
        ('mt-lc-brain', ('bias', 'subsampling', 'motion', 'noise'))
    """
    from artefix.models.registry import check_device, load_named_model

    net, card = load_named_model(name_or_path, device=check_device(device))
    return LoadedModel(net, card)


def _as_numpy(image: Any) -> tuple[np.ndarray, Any]:
    """The input as a float32 NumPy array, and the tensor it came from (None for NumPy input)."""
    import torch

    if isinstance(image, torch.Tensor):
        if image.is_complex():
            raise InputError("correct needs a real image; take the magnitude of a complex tensor first")
        return image.detach().to("cpu", torch.float32).numpy(), image
    if not isinstance(image, np.ndarray):
        raise InputError(f"correct takes a NumPy array or a torch tensor, not {type(image).__name__}")
    if np.iscomplexobj(image):
        raise InputError("correct needs a real image; take the magnitude of a complex array first")
    if not (np.issubdtype(image.dtype, np.number) or image.dtype == np.bool_):
        raise InputError(f"correct needs a numeric array, not dtype {image.dtype}")
    return image, None


def _like(array: np.ndarray, tensor: Any) -> Any:
    """``array`` as the input's type: itself for NumPy input, else a tensor on the input's device."""
    if tensor is None:
        return array
    import torch

    dtype = tensor.dtype if tensor.is_floating_point() else torch.float32
    return torch.from_numpy(np.ascontiguousarray(array)).to(device=tensor.device, dtype=dtype)


def _model(model: str | Path | LoadedModel | Any, device: str) -> tuple[Any, dict[str, Any]]:
    import torch

    if isinstance(model, LoadedModel):
        return model.model, model.card
    if isinstance(model, torch.nn.Module):
        return model, {}
    if isinstance(model, (str, Path)):
        loaded = load_model(model, device=device)
        return loaded.model, loaded.card
    raise InputError(f"model must be a model name, a .safetensors path or artefix.load_model(...), not {model!r}")


def correct(
    image_or_volume: Any,
    model: str | Path | LoadedModel | DualDomainModel = "mt-lc-brain",
    *,
    only: Sequence[str] | str | None = None,
    strength: Mapping[str, float] | None = None,
    ensemble: int | None = 1,
    axis: int | None = None,
    device: str = "cpu",
    snr_scope: str = "scan",
    batch_size: int | None = None,
) -> Correction:
    """Correct the artefacts of a 2D slice or a 3D volume held in memory.

    Each slice is z-normalised, corrected by the model and mapped back to its own mean and standard
    deviation, so the result is in the input's units (as ``artefix correct``). A model given by name is
    loaded for this call; load it once with :func:`load_model` to correct many images.

    Args:
        image_or_volume: ``(H, W)`` or 3D NumPy array or torch tensor, real and finite (a tensor may be on
            any device and need not be float32).
        model: A shipped model's name, a ``.safetensors`` path, what :func:`load_model` returned, or a model.
        only: Heads whose residuals are applied (``["noise"]``, ...); None: all of the model's heads.
        strength: Head -> factor in ``[0, 1]`` scaling that head's residual (``{"noise": 0.5}``).
        ensemble: Self-ensemble size, 1, 2, 4 or 8 dihedral transforms averaged per slice (1 is the
            fastest, 8 the most accurate); None keeps the model card's (the model's ``policy``).
        axis: Slice axis of a 3D volume; default the axis of length 1 if there is exactly one, else the
            last. Not allowed for a 2D image.
        device: Device the model runs on when ``model`` is a name or path (``"cpu"``, ``"cuda"``); a
            loaded model runs where it is.
        snr_scope: ``"scan"`` gates the noise head of every slice on the volume's SNR (the median of its
            slices), ``"slice"`` each slice on its own.
        batch_size: Slices per model call; None picks one for the slice size and device.

    Returns:
        A :class:`Correction` with ``image``, ``residuals``, ``scores`` and ``snr_db``.

    Raises:
        InputError: Not a 2D or 3D real, finite array or tensor; an all-constant input; a head in ``only``
            or ``strength`` that the model lacks; a bad ``ensemble``, ``axis``, ``snr_scope`` or
            ``batch_size``; an unknown or missing model.

    Example:
        >>> import numpy as np
        >>> import artefix
        >>> from artefix.fft import fourier_resize
        >>> image = fourier_resize(artefix.load_sample("brain-t2").astype(np.float64), (96, 96))
        >>> noisy = artefix.simulate(image.astype(np.float32), "noise", severity=5, seed=1)
        >>> result = artefix.correct(noisy, only=["noise"])
        >>> result.image.shape, result.image.dtype
        ((96, 96), dtype('float32'))
        >>> sorted(result.residuals), result.snr_db.shape
        (['bias', 'motion', 'noise', 'subsampling'], (1,))
    """
    from artefix.correction.volume import correct_volume
    from artefix.data.io import Volume

    array, tensor = _as_numpy(image_or_volume)
    if array.ndim not in (2, 3):
        raise InputError(f"correct takes a 2D image or a 3D volume, got shape {tuple(array.shape)}")
    if isinstance(only, str):
        only = [only]
    if only is not None and len(only) == 0:
        raise InputError("only=[] applies no head; pass None for all heads or name at least one")
    if isinstance(ensemble, bool) or (ensemble is not None and not isinstance(ensemble, int)):
        raise InputError(f"ensemble must be 1, 2, 4 or 8 (or None), got {ensemble!r}")
    net, card = _model(model, device)
    volume = Volume(np.asarray(array, dtype=np.float32))
    try:
        policy = net.policy.with_options(ensemble=ensemble)
    except ValueError as exc:
        raise InputError(f"ensemble: {exc}") from None
    try:
        result = correct_volume(
            volume,
            net,
            only=only,
            strength=strength,
            axis=axis,
            batch_size=batch_size,
            matrix=card.get("matrix"),
            keep_residuals=True,
            top_k=0,
            snr_scope=snr_scope,
            policy=policy,
        )
    except InputError:
        raise
    except ValueError as exc:  # batch_size, snr_scope
        raise InputError(str(exc)) from None
    record = result.record
    if record is None:  # pragma: no cover - correct_volume always returns one
        raise RuntimeError("correct_volume returned no record")
    scores = None
    if record.detection is not None:
        scores = {head: record.detection[:, k].copy() for k, head in enumerate(record.heads)}
    return Correction(
        image=_like(result.volume.array, tensor),
        residuals={head: _like(v.array, tensor) for head, v in result.residuals.items()},
        scores=scores,
        snr_db=None if record.snr_db is None else record.snr_db.copy(),
        heads=tuple(record.heads),
        applied=tuple(record.applied),
        record=record,
    )
