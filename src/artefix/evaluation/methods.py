"""Uniform "methods" of the evaluation: the corrupted input, classical baselines, models and model chains.

Every method of ``artefix evaluate`` is described by a small, picklable :class:`MethodSpec` and run on
one :class:`Case` (a clean slice, its corruption and, for super-resolution, the low-resolution image)
by :func:`apply_method`, which returns the method's image and, for a model, its residuals. The runner
(:mod:`artefix.evaluation.experiments`) z-normalises every returned image before scoring it, so a method
may answer in any affine intensity scale.

Kinds of method:

* ``input``: the corrupted image itself (the paper's "Original" row).
* ``baseline``: a classical method of :data:`artefix.evaluation.baselines.BASELINES`, called on the
  corrupted magnitude image (or, for ``needs == "lowres"``, on the low-resolution image and the slice
  shape), with fixed settings (e.g. the tuned TV weight).
* ``model``: a trained model (:class:`ModelSpec`), called on the z-normalised corrupted slice
  ``u = (x - mean(x)) / std(x)``; its output ``Znorm(u + sum_i p_i)`` adds all its residuals.
* ``sequential``: two models one after the other, ``A>B``: ``B(Znorm(A(u)))``, the left one first.

Models run at the pixel size declared by their card's training ``matrix`` (as in ``artefix correct``,
:func:`artefix.correction.core.working_shape`); without one, at the slice's own size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from artefix.artefacts.base import znorm

if TYPE_CHECKING:
    import torch

    from artefix.models.policy import InferencePolicy

__all__ = [
    "KINDS",
    "Case",
    "MethodOutput",
    "MethodSpec",
    "ModelPool",
    "ModelSpec",
    "apply_method",
    "model_spec",
]

KINDS: tuple[str, ...] = ("input", "baseline", "model", "sequential")
"""The kinds of :class:`MethodSpec`."""


@dataclass(frozen=True)
class ModelSpec:
    """A trained model taking part in the evaluation (picklable; the weights are loaded per process).

    Attributes:
        name: Name in every output: the shipped name, or the file stem of a checkpoint path.
        path: The ``.safetensors`` file.
        heads: Residual heads in channel order (one head: a single-task model).
        matrix: Training matrix ``(H, W)`` from the model card, or None (run at the slice's size).
    """

    name: str
    path: str
    heads: tuple[str, ...]
    matrix: tuple[int, int] | None = None

    @property
    def multi_task(self) -> bool:
        """True for a model with more than one residual head."""
        return len(self.heads) > 1


@dataclass(frozen=True)
class MethodSpec:
    """One row of the result tables.

    Attributes:
        name: Name in every output (``input``, ``n4``, ``mt-lc-brain``, ``bias-brain>noise-brain``).
        kind: One of :data:`KINDS`.
        parts: ``()`` for ``input``; the baseline name for ``baseline``; the model name for ``model``;
            the two model names, first applied first, for ``sequential``.
        settings: Keyword settings of a baseline, as sorted ``(key, value)`` pairs (e.g. the tuned TV
            weight).
    """

    name: str
    kind: str
    parts: tuple[str, ...] = ()
    settings: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"method kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        expected = {"input": 0, "baseline": 1, "model": 1, "sequential": 2}[self.kind]
        if len(self.parts) != expected:
            raise ValueError(f"a {self.kind!r} method needs {expected} part(s), got {self.parts!r}")


@dataclass(frozen=True, eq=False)
class Case:
    """One corrupted slice to correct.

    Attributes:
        clean: Clean slice ``(H, W)``, non-negative magnitudes (scaled by the volume's 99th percentile).
        corrupted: Corrupted magnitude slice ``(H, W)``, same scale.
        lowres: For subsampling only: the low-resolution magnitude image ``(h, w)`` whose k-space is the
            centred window the mask kept; None otherwise.
        spacing: In-plane pixel size ``(dy, dx)`` in mm (for a model's working matrix).
    """

    clean: np.ndarray
    corrupted: np.ndarray
    lowres: np.ndarray | None = None
    spacing: tuple[float, float] = (1.0, 1.0)


@dataclass(frozen=True, eq=False)
class MethodOutput:
    """What a method returns for one :class:`Case`.

    Attributes:
        image: The corrected slice ``(H, W)``, float64, in any affine intensity scale.
        residuals: For a ``model``: head name -> residual ``(H, W)`` in z-normalised input units; else
            None.
    """

    image: np.ndarray
    residuals: dict[str, np.ndarray] | None = None


@dataclass
class ModelPool:
    """The models of one process, loaded once on first use (or all at once with :meth:`load_all`).

    Attributes:
        specs: The models, by name.
        device: Torch device of the weights and inputs (``"cpu"``, ``"cuda"``).
        ensemble: Self-ensemble of every model (``InferencePolicy.ensemble``: 1, 2, 4 or 8), or None for
            each model's own.
    """

    specs: dict[str, ModelSpec]
    device: str = "cpu"
    ensemble: int | None = None
    _models: dict[str, Any] = field(default_factory=dict, repr=False)

    def load_all(self) -> None:
        """Load (and checksum-verify) every model now."""
        for name in self.specs:
            self.get(name)

    def get(self, name: str) -> tuple[Any, InferencePolicy]:
        """The loaded model ``name`` (eval mode, on :attr:`device`) and the inference policy it runs with."""
        if name not in self._models:
            if name not in self.specs:
                raise ValueError(f"unknown model {name!r}; this evaluation has {', '.join(self.specs) or 'none'}")
            from artefix.models.registry import load_named_model

            model, _ = load_named_model(Path(self.specs[name].path), device=self.device)
            policy = model.policy.with_options(ensemble=self.ensemble)
            self._models[name] = (model.eval(), policy)
        return self._models[name]

    def run(self, name: str, image: np.ndarray, spacing: tuple[float, float]) -> tuple[np.ndarray, np.ndarray]:
        """Correct one slice with model ``name`` (all heads added).

        The slice is z-normalised, ``u = (x - mean(x)) / std(x)``, and the model's output
        ``Znorm(u + sum_i p_i)`` is returned with the residuals ``p`` (:func:`correct_batch` with
        ``mu = 0``, ``sigma = 1``, all heads selected).

        Args:
            name: Model name.
            image: Slice ``(H, W)``, real, any scale.
            spacing: Pixel size ``(dy, dx)`` in mm.

        Returns:
            ``(output, residuals)``: float64 ``(H, W)`` and ``(K, H, W)`` in z-normalised units.
        """
        import torch

        from artefix.correction.core import correct_batch, working_shape

        spec = self.specs[name]
        model, policy = self.get(name)
        u = np.asarray(znorm(np.asarray(image, dtype=np.float64)), dtype=np.float32)
        work = working_shape(u.shape, spacing, spec.matrix)
        device = torch.device(self.device)
        batch = torch.from_numpy(u)[None].to(device)
        zero = torch.zeros(1, dtype=torch.float64, device=device)
        one = torch.ones(1, dtype=torch.float64, device=device)
        weights = torch.ones(len(spec.heads), device=device)
        with torch.no_grad():
            y, p, _ = correct_batch(model, batch, zero, one, weights, work, policy=policy)
        return _numpy(y[0]), _numpy(p[0])


def _numpy(t: torch.Tensor) -> np.ndarray:
    return t.detach().to("cpu").numpy().astype(np.float64)


def model_spec(name_or_path: str) -> ModelSpec:
    """Describe a shipped model (by name) or a checkpoint (by path) without loading its weights.

    The heads and training matrix come from the model card; a checkpoint without a card is loaded once
    to read its heads.

    Args:
        name_or_path: A shipped name (``mt-lc-brain``) or a ``.safetensors`` path, optionally labelled
            ``LABEL=NAME_OR_PATH`` (e.g. ``mt-lc-seed3=runs/x/best.safetensors``).

    Returns:
        The :class:`ModelSpec`; its name is the label, else the shipped name or the path's file stem.

    Raises:
        InputError: Unknown name or missing/unreadable file (from the registry), a bad label.
    """
    from artefix.errors import InputError
    from artefix.models.checkpoint import read_card
    from artefix.models.registry import resolve_model

    label, sep, target = name_or_path.partition("=")
    if not sep or Path(name_or_path).expanduser().is_file():  # a file whose name holds '=' is a plain path
        label, target = "", name_or_path
    elif not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", label) or not target:
        raise InputError(f"{name_or_path!r}: a labelled model is LABEL=MODEL, LABEL of letters, digits, . _ + -")
    path = resolve_model(target)
    card = read_card(path) or {}
    heads = card.get("heads") or (card.get("config") or {}).get("heads")
    if not heads:
        from artefix.models.checkpoint import load_model

        model, _ = load_model(path)
        heads = model.config.heads
    matrix = card.get("matrix")
    mat = (int(matrix[0]), int(matrix[1])) if matrix else None
    return ModelSpec(label or path.stem, str(path), tuple(str(h) for h in heads), mat)


def _baseline(name: str, settings: dict[str, Any], case: Case) -> np.ndarray:
    from artefix.evaluation.baselines import BASELINES

    base = BASELINES[name]
    if base.needs == "lowres":
        if case.lowres is None:
            raise ValueError(f"baseline {name!r} needs the low-resolution image, which only subsampling has")
        return np.asarray(base.func(case.lowres, case.corrupted.shape, **settings), dtype=np.float64)
    return np.asarray(base.func(case.corrupted, **settings), dtype=np.float64)


def apply_method(method: MethodSpec, case: Case, pool: ModelPool | None = None) -> MethodOutput:
    """Run one method on one case.

    Args:
        method: What to run.
        case: The corrupted slice.
        pool: The loaded models (needed for ``model`` and ``sequential`` methods).

    Returns:
        The method's image (any affine scale; the caller z-normalises) and, for ``model``, its
        residuals by head.
    """
    if method.kind == "input":
        return MethodOutput(np.asarray(case.corrupted, dtype=np.float64))
    if method.kind == "baseline":
        return MethodOutput(_baseline(method.parts[0], dict(method.settings), case))
    if pool is None:
        raise ValueError(f"method {method.name!r} runs a model, but no ModelPool was given")
    if method.kind == "model":
        out, p = pool.run(method.parts[0], case.corrupted, case.spacing)
        heads = pool.specs[method.parts[0]].heads
        return MethodOutput(out, {h: p[k] for k, h in enumerate(heads)})
    first, second = method.parts
    mid, _ = pool.run(first, case.corrupted, case.spacing)
    out, _ = pool.run(second, mid, case.spacing)
    return MethodOutput(out)
