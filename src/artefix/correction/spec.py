"""Which model a many-scan run uses, as a small picklable value that each worker process loads once.

``artefix qc`` and bulk ``artefix correct`` run scans in worker processes (or Dask workers): the model is not
sent to them; each loads it from a :class:`ModelSpec` on first use and keeps it for the next scans
(:func:`loaded_model`). Loading follows :func:`artefix.correction.files.correct_file` exactly (checksum
verified; the self-ensemble, priors and gates options make the inference policy of the card's).
"""

from __future__ import annotations

import os
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch

from artefix.correction.options import InferenceOptions
from artefix.models.policy import InferencePolicy

_CACHE: dict[tuple[Any, ...], tuple[torch.nn.Module, dict[str, Any], InferencePolicy]] = {}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelSpec:
    """A model and its inference options.

    Attributes:
        model: Shipped model name or ``.safetensors`` path (None: :data:`artefix.models.registry.DEFAULT_MODEL`).
        device: ``cpu`` or ``cuda`` (``cuda:1``, ...).
        ensemble: Self-ensemble size (1, 2, 4 or 8) instead of the card's, or None.
        priors: Keep the model's physics priors.
        gates: Let the detector weight each residual (False: each in full; its scores are still computed).
    """

    model: str | None = None
    device: str = "cpu"
    ensemble: int | None = None
    priors: bool = True
    gates: bool = True

    @classmethod
    def of(cls, model: str | None, device: str, inference: InferenceOptions) -> ModelSpec:
        """The spec of ``model`` on ``device`` with the self-ensemble, priors and gates of ``inference``.

        The rest of ``inference`` (heads, strengths, SNR scope) is applied per scan
        (:meth:`artefix.correction.bulk.CorrectionOptions.of`).
        """
        return cls(model, device, inference.ensemble, inference.priors, inference.gates)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly fields."""
        return asdict(self)

    def load(self) -> tuple[torch.nn.Module, dict[str, Any], InferencePolicy]:
        """Load the model (a fresh copy) with its card, on :attr:`device`, in eval mode, and the policy to run it with.

        Returns:
            ``(model, card, policy)``: the policy is the card's with this spec's options applied
            (:meth:`InferencePolicy.with_options`).

        Raises:
            InputError: Not installed / not found, checksum mismatch, bad device or ensemble size.
        """
        from artefix.errors import InputError
        from artefix.models.registry import DEFAULT_MODEL, check_device, load_named_model

        net, card = load_named_model(
            self.model if self.model is not None else DEFAULT_MODEL, device=check_device(self.device)
        )
        try:
            policy = net.policy.with_options(ensemble=self.ensemble, priors=self.priors, gates=self.gates)
        except ValueError as exc:
            raise InputError(f"`ensemble`: {exc}") from None
        return net.eval(), card, policy

    def _key(self) -> tuple[Any, ...]:
        from artefix.models.registry import DEFAULT_MODEL, resolve_model

        path = resolve_model(self.model if self.model is not None else DEFAULT_MODEL)
        try:
            stamp = os.stat(path).st_mtime_ns
        except OSError:
            stamp = None
        return (str(Path(path).resolve()), stamp, self.device, self.ensemble, self.priors, self.gates)


def loaded_model(spec: ModelSpec) -> tuple[torch.nn.Module, dict[str, Any], InferencePolicy]:
    """``spec.load()``, once per process: later calls with an equal spec (and unchanged weights file) reuse it.

    Only the latest model is kept, so a process holds at most one.
    """
    key = spec._key()
    with _LOCK:
        if key not in _CACHE:
            _CACHE.clear()
            _CACHE[key] = spec.load()
        return _CACHE[key]


def clear_model_cache() -> None:
    """Forget the model :func:`loaded_model` holds in this process."""
    with _LOCK:
        _CACHE.clear()
