"""Model files: safetensors weights plus a JSON model card (no pickle anywhere).

A model ``NAME`` is two files side by side:

* ``NAME.safetensors``: the ``state_dict`` tensors, with the architecture (:class:`ModelConfig` as
  JSON, ``model_config``) and the inference policy (:class:`~artefix.models.policy.InferencePolicy`,
  ``inference``) in the safetensors metadata, so the weights alone are enough to rebuild the model;
* ``NAME.json``: the model card (preset, parameter count, training data and command, metrics, ...) with the
  same two sections (``config`` and ``inference``) and the ``sha256`` of the weights file, checked on every
  load.

Files written before the two were separate hold one flat ``model_config``; they load as before.

Example:
    >>> from artefix.models import build_model
    >>> from artefix.models.checkpoint import save_model, load_model
    >>> path = save_model(build_model("tiny"), tmp / "m.safetensors", card={"name": "m"})  # doctest: +SKIP
    >>> model, card = load_model(path)                                                      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from artefix.atomic import atomic_file, one_line
from artefix.errors import InputError
from artefix.models.dual_domain import DualDomainModel, ModelConfig, split_settings
from artefix.models.policy import InferencePolicy
from artefix.models.presets import count_parameters
from artefix.models.registry import WEIGHTS_SUFFIX

FORMAT_VERSION = "2"
DERIVED_CARD_FIELDS = ("config", "inference", "parameters", "heads", "weights", "sha256")
"""Model-card fields that :func:`save_model` writes itself from the model and the weights file."""


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def card_path(weights: Path) -> Path:
    """The model card next to a weights file (``x.safetensors`` -> ``x.json``)."""
    return Path(weights).with_suffix(".json")


def _holds(path: Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bool:
    """Whether the safetensors file ``path`` already holds exactly ``tensors`` and ``metadata``.

    safetensors writes its metadata map in no fixed order, so saving the same weights twice can give two
    files with different checksums; keeping the file avoids that (a card re-written for the same weights
    keeps its ``sha256``).
    """
    if not path.is_file():
        return False
    try:
        with safe_open(str(path), framework="pt") as f:
            if f.metadata() != metadata or set(f.keys()) != set(tensors):
                return False
            return all(torch.equal(f.get_tensor(k), v) for k, v in tensors.items())
    except (OSError, SafetensorError, ValueError):  # an unreadable file is simply replaced
        return False


def save_model(model: DualDomainModel, path: Path, card: dict[str, Any] | None = None) -> Path:
    """Write ``model``'s weights (safetensors) and its model card (JSON), both atomically.

    Args:
        model: The model; its ``config`` and ``policy`` are stored in the weights' metadata.
        path: Target ``*.safetensors`` path; a file there that holds the same weights and metadata is kept
            byte for byte (its checksum does not change).
        card: Extra model-card fields (name, training, metrics, ...); the :data:`DERIVED_CARD_FIELDS`
            are filled in.

    Returns:
        The weights path.
    """
    path = Path(path)
    if path.suffix != WEIGHTS_SUFFIX:
        raise ValueError(f"weights must be saved as {WEIGHTS_SUFFIX}, got {path.name}")
    config = model.config.to_dict()
    inference = model.policy.to_dict()
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    metadata = {
        "format": "artefix",
        "format_version": FORMAT_VERSION,
        "model_config": json.dumps(config),
        "inference": json.dumps(inference),
    }
    if not _holds(path, tensors, metadata):
        with atomic_file(path) as tmp:
            mode = tmp.stat().st_mode  # the usual 0666 less the umask; safetensors recreates the file as 0600
            save_file(tensors, str(tmp), metadata=metadata)
            os.chmod(tmp, mode)
    full_card = dict(card or {})
    full_card.update(
        config=config,
        inference=inference,
        parameters=count_parameters(model),
        heads=list(model.config.heads),
        weights=path.name,
        sha256=sha256_of(path),
    )
    with atomic_file(card_path(path)) as tmp:
        tmp.write_text(json.dumps(full_card, indent=2) + "\n")
    return path


def read_card(weights: Path) -> dict[str, Any] | None:
    """The model card next to ``weights``, or None if there is none."""
    path = card_path(weights)
    if not path.is_file():
        return None
    try:
        card = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: unreadable model card ({one_line(exc)})") from exc
    if not isinstance(card, dict):
        raise InputError(f"{path}: a model card is a JSON object, not {type(card).__name__}")
    return card


def read_settings(metadata: dict[str, str]) -> tuple[ModelConfig, InferencePolicy]:
    """The architecture and inference policy in a weights file's metadata (either format version).

    Raises:
        ValueError, json.JSONDecodeError: For settings that are not valid JSON or not valid values.
    """
    settings = json.loads(metadata["model_config"])
    if "inference" in metadata:
        return ModelConfig.from_dict(settings), InferencePolicy.from_dict(json.loads(metadata["inference"]))
    architecture, inference = split_settings(settings)  # format 1: one flat mapping
    return ModelConfig.from_dict(architecture), InferencePolicy.from_dict(inference)


def load_model(
    path: Path, *, verify: bool = True, device: str | torch.device = "cpu"
) -> tuple[DualDomainModel, dict[str, Any]]:
    """Rebuild a model from its safetensors file (architecture from the metadata), in eval mode.

    Args:
        path: ``*.safetensors`` written by :func:`save_model`.
        verify: Check the file's SHA-256 against the model card next to it (when there is a card).
        device: Where to put the weights.

    Returns:
        ``(model, card)``; ``card`` is ``{}`` when the file has none.

    Raises:
        InputError: Missing or unreadable file, checksum mismatch, or weights that do not fit the
            architecture in their metadata.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: model file not found")
    if path.suffix != WEIGHTS_SUFFIX:
        raise InputError(f"{path}: weights load from {WEIGHTS_SUFFIX} files only (no pickle)")
    card = read_card(path) or {}
    if verify and card.get("sha256") and sha256_of(path) != card["sha256"]:
        raise InputError(f"{path}: checksum mismatch with its model card (corrupted or replaced weights)")
    try:
        with safe_open(str(path), framework="pt") as fh:
            metadata = fh.metadata() or {}
        tensors = load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise InputError(f"{path}: unreadable safetensors file ({one_line(exc)})") from exc
    if "model_config" not in metadata:
        raise InputError(f"{path}: no artefix model configuration in the safetensors metadata")
    try:
        config, policy = read_settings(metadata)
        model = DualDomainModel(config, policy=policy)
        model.load_state_dict(tensors, strict=True)
    except (ValueError, RuntimeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: weights do not match their architecture ({one_line(exc)})") from exc
    return model.to(device).eval(), card


def _is_head_key(key: str) -> bool:
    """Whether a tensor has one row per residual head: the branches' 1x1 heads and the detector's scores."""
    return key.endswith((".head.weight", ".head.bias")) or key in ("detector.score.weight", "detector.score.bias")


def _head_rows(key: str, source_heads: tuple[str, ...], target_heads: tuple[str, ...]) -> list[int] | None:
    """Rows of a source head tensor that feed the target's heads (k-space heads: 2 rows per head)."""
    if not _is_head_key(key) or not set(target_heads) <= set(source_heads):
        return None
    per_head = 2 if key.startswith("kspace_branch.") else 1
    return [source_heads.index(h) * per_head + c for h in target_heads for c in range(per_head)]


def transfer_weights(target: DualDomainModel, source: DualDomainModel) -> dict[str, list[str]]:
    """Copy trained weights from ``source`` into ``target`` (fine-tuning and single-task starts).

    Every tensor with the same name and shape is copied. The per-head tensors (the residual heads' 1x1
    convolutions and the detector's scores) of a target with other heads than the source take the rows of
    its heads when the source has them all (e.g. the single-task ``noise`` model from the multi-task one),
    matched by head name, never by shape alone. Everything else (e.g. a detector the source lacks, or heads
    it lacks) keeps the target's initialisation.

    Args:
        target: Model to fill (modified in place).
        source: Trained model of a compatible architecture (same preset).

    Returns:
        ``{"copied": [...], "heads": [...], "kept": [...]}``: tensor names copied whole, copied as head rows,
        and left untouched.

    Raises:
        ValueError: When a tensor of both models differs in shape (other than head rows), or nothing is copied.
    """
    src = source.state_dict()
    dst = target.state_dict()
    report: dict[str, list[str]] = {"copied": [], "heads": [], "kept": []}
    same_heads = tuple(source.head_names) == tuple(target.head_names)
    with torch.no_grad():
        for key, value in dst.items():
            other = src.get(key)
            rows = _head_rows(key, source.head_names, target.head_names)
            if other is not None and (same_heads or not _is_head_key(key)) and other.shape == value.shape:
                value.copy_(other)
                report["copied"].append(key)
            elif other is not None and rows is not None and other[rows].shape == value.shape:
                value.copy_(other[rows])
                report["heads"].append(key)
            else:
                report["kept"].append(key)
    body = [k for k in report["kept"] if k in src and not _is_head_key(k) and not k.endswith("num_batches_tracked")]
    if not report["copied"] or body:
        raise ValueError(
            f"cannot start from these weights: {len(body)} tensor(s) do not match "
            f"(e.g. {body[:3]}); use the same preset"
        )
    target.load_state_dict(dst)
    return report
