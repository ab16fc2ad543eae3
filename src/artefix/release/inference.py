r"""Change the inference settings of a shipped model, keeping its weights tensor for tensor.

An inference setting (:data:`artefix.models.policy.FIELDS`: data consistency, the truncation gate, the
self-ensemble, the physics priors) changes what the model does with its residuals, not the weights, so no
training stage re-runs. The settings live in the safetensors metadata; this rewrites the file with the same
tensors, the card's ``config`` and ``sha256`` follow, a dated note says what changed, and the model pages are
re-rendered from the cards::

    python -m artefix.release set-inference mt-lc-brain truncation_gate=true \
        --note "subsampling head only where a truncated k-space is found (issue #19)"

Values are JSON (``true``, ``0.1``, ``[9, 11]``, ``null``). Re-run the model's validation afterwards and
refresh its card (``python -m artefix.release refresh-validation``).
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from artefix.models.checkpoint import DERIVED_CARD_FIELDS, load_model, read_card, save_model
from artefix.models.dual_domain import DualDomainModel
from artefix.models.policy import FIELDS

from .cards import portable


def parse_setting(text: str) -> tuple[str, object]:
    """``"name=value"`` -> ``(name, JSON value)``; only inference fields may change."""
    name, sep, value = text.partition("=")
    if not sep or name not in FIELDS:
        raise SystemExit(f"error: expected NAME=VALUE with NAME one of {list(FIELDS)}, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        raise SystemExit(f"error: {name}: the value must be JSON (true, 0.1, [9, 11], null), got {value!r}") from None


def set_inference(weights: Path, changes: dict[str, object], note: str, *, root: Path) -> dict[str, object]:
    """Rewrite ``weights`` with ``changes`` to its inference settings; returns the new card.

    ``root`` is the repository root the card's paths are made relative to (:func:`~.cards.portable`).
    """
    loaded, _ = load_model(weights)
    old = loaded.policy
    model = DualDomainModel(loaded.config, policy=old.replace(**changes))
    model.load_state_dict(loaded.state_dict())
    card = {k: v for k, v in (read_card(weights) or {}).items() if k not in DERIVED_CARD_FIELDS}
    if note:
        notes = card.get("notes") or ""
        day = datetime.date.today().isoformat()
        changed = ", ".join(f"{k}: {getattr(old, k)!r} -> {getattr(model.policy, k)!r}" for k in changes)
        card["notes"] = f"{notes}\n{day}, inference settings changed ({changed}): {note}".strip()
    save_model(model, weights, portable(card, root))
    return read_card(weights) or {}
