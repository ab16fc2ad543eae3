r"""Change the inference settings of a shipped model, keeping its weights tensor for tensor.

An inference setting (:data:`artefix.models.dual_domain.INFERENCE_FIELDS`: data consistency, the truncation
gate, the self-ensemble, the physics priors) changes what the model does with its residuals, not the
weights, so no training stage re-runs. The settings live in the safetensors metadata; this rewrites the file
with the same tensors, the card's ``config`` and ``sha256`` follow, a dated note says what changed, and
``docs/models.md`` is re-rendered from the cards.

    python scripts/set_inference.py mt-lc-brain truncation_gate=true \
        --note "subsampling head only where a truncated k-space is found (issue #19)"

Values are JSON (``true``, ``0.1``, ``[9, 11]``, ``null``). Re-run the model's validation afterwards and
refresh its card (``scripts/refresh_validation.py``).
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
from pathlib import Path
from types import ModuleType

from artefix.models.checkpoint import DERIVED_CARD_FIELDS, load_model, read_card, save_model
from artefix.models.dual_domain import DualDomainModel
from artefix.models.policy import FIELDS

WEIGHTS = Path(__file__).resolve().parents[1] / "src" / "artefix" / "weights"


def _sibling(name: str) -> ModuleType:
    """The release script ``scripts/NAME.py`` as a module (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name(f"{name}.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


release_model = _sibling("release_model")


def parse_setting(text: str) -> tuple[str, object]:
    """``"name=value"`` -> ``(name, JSON value)``; only inference fields may change."""
    name, sep, value = text.partition("=")
    if not sep or name not in FIELDS:
        raise SystemExit(f"error: expected NAME=VALUE with NAME one of {list(FIELDS)}, got {text!r}")
    try:
        return name, json.loads(value)
    except json.JSONDecodeError:
        raise SystemExit(f"error: {name}: the value must be JSON (true, 0.1, [9, 11], null), got {value!r}") from None


def set_inference(weights: Path, changes: dict[str, object], note: str) -> dict[str, object]:
    """Rewrite ``weights`` with ``changes`` to its inference settings; returns the new card."""
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
    save_model(model, weights, release_model.portable(card))
    return read_card(weights) or {}


def main() -> None:
    """Command line: NAME NAME=VALUE... [--note TEXT]."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("name", help="a shipped model (src/artefix/weights/NAME.safetensors)")
    parser.add_argument("settings", nargs="+", help="NAME=VALUE, NAME one of the inference fields")
    parser.add_argument("--note", default="", help="why; appended to the card's notes with the date")
    args = parser.parse_args()
    weights = WEIGHTS / f"{args.name}.safetensors"
    if not weights.is_file():
        raise SystemExit(f"error: no shipped model {args.name!r} ({weights})")
    card = set_inference(weights, dict(parse_setting(s) for s in args.settings), args.note)
    release_model.render_doc()
    print(json.dumps(card["inference"]))


if __name__ == "__main__":
    main()
