"""Shipped models: find them by name, list their cards, load them with their checksum verified.

A shipped model ``NAME`` is a pair of files in the weights folder (:func:`weights_dir`):
``NAME.safetensors`` (weights + architecture, :func:`artefix.models.checkpoint.save_model`) and
``NAME.json`` (its model card, holding the weights' ``sha256``). The folder is the package's
``artefix/weights/`` unless the environment variable ``ARTEFIX_WEIGHTS_DIR`` names another one (tests
install a tiny model into a temporary folder that way; a site can keep its own models there).

Model-card fields read here (all optional except ``sha256`` for shipped models): ``name``,
``description``, ``preset``, ``heads``, ``parameters``, ``matrix`` (the training matrix ``[H, W]``;
:mod:`artefix.correction` resamples slices to that resolution), ``training``, ``metrics``, ``licence``.

Listing reads the JSON cards only; weights are read (and checksummed) only when a model is loaded.

Example:
    >>> from artefix.models.registry import list_models, DEFAULT_MODEL
    >>> [m.name for m in list_models()]        # doctest: +SKIP
    ['mt-lc-brain', ...]
    >>> model, card = load_named_model(DEFAULT_MODEL)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from artefix.atomic import one_line
from artefix.errors import InputError

if TYPE_CHECKING:
    import torch

    from artefix.models.dual_domain import DualDomainModel

DEFAULT_MODEL = "mt-lc-brain"
"""The multi-task model with the convolutional loss, trained on brain scans (the paper's best)."""

KNOWN_MODELS: tuple[str, ...] = (
    "mt-lc-brain",
    "mt-brain",
    "bias-brain",
    "subsampling-brain",
    "motion-brain",
    "noise-brain",
    "mt-lc-pelvis",
)
"""The models artefix plans to ship (not all may be installed; see :func:`list_models`)."""

WEIGHTS_ENV = "ARTEFIX_WEIGHTS_DIR"
WEIGHTS_SUFFIX = ".safetensors"


@dataclass(frozen=True)
class ModelInfo:
    """One installed model.

    Attributes:
        name: Model name (the file stem), e.g. ``mt-lc-brain``.
        weights: Path of the ``.safetensors`` file.
        card: The model card (JSON) as a dict.
    """

    name: str
    weights: Path
    card: dict[str, Any] = field(default_factory=dict)

    @property
    def sha256(self) -> str | None:
        """SHA-256 of the weights as recorded in the card."""
        value = self.card.get("sha256")
        return str(value) if value else None

    @property
    def heads(self) -> tuple[str, ...]:
        """Residual heads of the model, in channel order (from the card)."""
        heads = self.card.get("heads") or (self.card.get("config") or {}).get("heads") or ()
        return tuple(str(h) for h in heads)

    @property
    def description(self) -> str:
        """One-line description from the card (empty when absent)."""
        return " ".join(str(self.card.get("description", "")).split())

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly summary, as printed by ``artefix models --json``."""
        return {
            "name": self.name,
            "default": self.name == DEFAULT_MODEL,
            "weights": str(self.weights),
            "size_bytes": self.weights.stat().st_size if self.weights.is_file() else None,
            "sha256": self.sha256,
            "heads": list(self.heads),
            "description": self.description,
            "card": self.card,
        }


def weights_dir() -> Path:
    """The folder holding the shipped models: ``$ARTEFIX_WEIGHTS_DIR`` if set, else ``artefix/weights``."""
    override = os.environ.get(WEIGHTS_ENV)
    if override:
        return Path(override).expanduser()
    return Path(str(resources.files("artefix.weights")))


def _read_card(path: Path) -> dict[str, Any]:
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable model card ({one_line(exc)})") from exc
    if not isinstance(card, dict):
        raise InputError(f"{path}: a model card must be a JSON object")
    return card


def list_models() -> list[ModelInfo]:
    """The installed models (a ``.safetensors`` file with its ``.json`` card), default model first.

    Returns:
        One :class:`ModelInfo` per model, the default first, then by name. Empty when none is installed.

    Raises:
        InputError: A model card that is not valid JSON.
    """
    folder = weights_dir()
    if not folder.is_dir():
        return []
    infos = []
    for weights in sorted(folder.glob(f"*{WEIGHTS_SUFFIX}")):
        card_file = weights.with_suffix(".json")
        if weights.is_file() and card_file.is_file():
            infos.append(ModelInfo(weights.stem, weights, _read_card(card_file)))
    return sorted(infos, key=lambda m: (m.name != DEFAULT_MODEL, m.name))


def _looks_like_path(text: str) -> bool:
    return text.endswith(WEIGHTS_SUFFIX) or os.sep in text or "/" in text or text.startswith((".", "~"))


def resolve_model(name_or_path: str | Path) -> Path:
    """The weights file of a shipped model name, or a checkpoint path checked to exist.

    Args:
        name_or_path: A name listed by :func:`list_models` (e.g. ``mt-lc-brain``) or a path to a
            ``.safetensors`` file written by :func:`artefix.models.checkpoint.save_model`.

    Returns:
        Path of the ``.safetensors`` file.

    Raises:
        InputError: Unknown name or model not installed (the message says how to pass ``--model PATH``),
            missing file, or a file that is not ``.safetensors``.
    """
    text = os.fspath(name_or_path)
    if isinstance(name_or_path, Path) or _looks_like_path(text):
        path = Path(text).expanduser()
        if not path.is_file():
            raise InputError(f"{path}: model file not found")
        if path.suffix != WEIGHTS_SUFFIX:
            raise InputError(f"{path}: models load from {WEIGHTS_SUFFIX} files only (no pickle)")
        return path
    folder = weights_dir()
    weights = folder / f"{text}{WEIGHTS_SUFFIX}"
    if weights.is_file() and weights.with_suffix(".json").is_file():
        return weights
    installed = [m.name for m in list_models()]
    what = "the default model" if text == DEFAULT_MODEL else "model"
    known = f"installed: {', '.join(installed)}" if installed else "no models are installed"
    raise InputError(
        f"{what} {text!r} is not installed in {folder} ({known}); "
        f"pass `model` PATH/TO/MODEL{WEIGHTS_SUFFIX} or set {WEIGHTS_ENV}"
    )


def check_device(device: str | torch.device) -> torch.device:
    """The torch device named by ``device`` if the models can run there: ``cpu``, or ``cuda[:N]`` with CUDA present.

    Raises:
        InputError: Not a device name, another kind of device, or CUDA absent or without device ``N``.
    """
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"`device` {device!r} is not a device (use cpu or cuda)") from exc
    if dev.type not in ("cpu", "cuda"):
        raise InputError(f"`device` {device}: artefix runs on cpu or cuda, not {dev.type}")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise InputError(f"`device` {device}: CUDA is not available on this machine; use `device` cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise InputError(f"`device` {device}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return dev


def load_named_model(
    name_or_path: str | Path = DEFAULT_MODEL, device: str | torch.device = "cpu"
) -> tuple[DualDomainModel, dict[str, Any]]:
    """Load a shipped model by name, or a checkpoint by path, in eval mode with its checksum verified.

    A shipped model must have a card with a ``sha256``; a checkpoint path is verified against the card
    next to it when there is one (:func:`artefix.models.checkpoint.load_model`).

    Args:
        name_or_path: See :func:`resolve_model`.
        device: Device for the weights (``"cpu"``, ``"cuda"``, ...).

    Returns:
        ``(model, card)``; the card gets ``"name"`` (the stem when the card has none) and
        ``"weights_path"``.

    Raises:
        InputError: Not installed / not found, checksum mismatch, unreadable weights.
    """
    from artefix.models.checkpoint import load_model

    path = resolve_model(name_or_path)
    shipped = path.absolute().parent.resolve() == weights_dir().resolve()  # a link in the folder counts too
    if shipped and not _read_card(path.with_suffix(".json")).get("sha256"):
        raise InputError(f"{path}: shipped model card has no sha256; refusing unverified weights")
    model, card = load_model(path, verify=True, device=device)
    card = dict(card)
    card.setdefault("name", path.stem)
    card["weights_path"] = str(path)
    return model, card
