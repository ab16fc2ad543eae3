r"""Refresh the validation tables of shipped model cards from a re-run of their evaluation.

The cards of models evaluated together (``artefix evaluate ... --models A,B,...``) each hold the whole table,
other models' rows included. When one of them is re-released, the others' tables go stale; this re-reads
the evaluation folder their card's ``validation.command`` wrote and replaces ``validation`` (methods,
verdicts, slice count), keeping the weights, every other card field and the command. ``docs/models.md`` is
re-rendered.

    python scripts/refresh_validation.py mt-brain bias-brain subsampling-brain motion-brain noise-brain \
        --evaluation eval/brain-val
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import release_model  # noqa: E402

from artefix.models.checkpoint import DERIVED_CARD_FIELDS, load_model, save_model  # noqa: E402


def refresh(name: str, evaluation: Path) -> None:
    """Replace the ``validation`` of shipped card ``name`` by the tables of ``evaluation``.

    Raises:
        ValueError: The card has no validation, its command wrote another folder, or the evaluation has
            no rows for the model.
    """
    path = release_model.WEIGHTS / f"{name}.safetensors"
    model, card = load_model(path)
    card = {k: v for k, v in card.items() if k not in DERIVED_CARD_FIELDS}
    old = card.get("validation")
    if not old:
        raise ValueError(f"{name}: the card has no validation to refresh")
    if f"--out {evaluation.as_posix()}" not in old.get("command", ""):
        raise ValueError(f"{name}: its validation came from another command than one writing {evaluation}")
    summary = release_model.validation_summary(evaluation, name, old["command"])
    if not summary["verdicts"]:
        raise ValueError(f"{name}: {evaluation} has no rows for this model")
    card["validation"] = summary
    save_model(model, path, card=card)


def main() -> None:
    """Refresh each named card, then re-render docs/models.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+")
    parser.add_argument("--evaluation", type=Path, required=True)
    args = parser.parse_args()
    for name in args.names:
        refresh(name, args.evaluation)
    release_model.render_doc()


if __name__ == "__main__":
    main()
