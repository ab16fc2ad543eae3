"""A card's validation: the tables of an ``artefix evaluate`` folder, and refreshing them on shipped cards.

The cards of models evaluated together (``artefix evaluate ... --models A,B,...``) each hold the whole table,
other models' rows included. When one of them is re-released, the others' tables go stale; :func:`refresh`
re-reads the evaluation folder their card's ``validation.command`` wrote and replaces ``validation``
(methods, verdicts, slice count), keeping the weights, every other card field and the command::

    python -m artefix.release refresh-validation mt-brain bias-brain subsampling-brain motion-brain \
        noise-brain --evaluation eval/brain-val
"""

from __future__ import annotations

import json
from pathlib import Path

from artefix.models.checkpoint import DERIVED_CARD_FIELDS, load_model, save_model

from .cards import METRICS


def validation_table(evaluation: Path, model_method: str) -> dict:
    """Per experiment and severity: mean +- sem of every method, and the model's verdict vs the input."""
    rows = json.loads((evaluation / "summary.json").read_text())
    table: dict = {}
    for row in rows:
        if row["metric"] not in METRICS:
            continue
        key = f"{row['experiment']}@{row['severity']}" if row["severity"] is not None else row["experiment"]
        cell = table.setdefault(key, {}).setdefault(row["method"], {})
        cell[row["metric"]] = {"mean": row["mean"], "sem": row["sem"], "bold": row["bold"], "n": row.get("n")}
    verdicts = {}
    for key, methods in table.items():
        if model_method not in methods or "input" not in methods:
            continue
        model, inp = methods[model_method], methods["input"]
        classical = [m for m in methods if m not in ("input", model_method) and "brain" not in m and ">" not in m]
        better = {
            "ssim": model["ssim"]["mean"] > inp["ssim"]["mean"],
            "vif": model["vif"]["mean"] > inp["vif"]["mean"],
        }
        beats = {
            metric: {c: model[metric]["mean"] >= methods[c][metric]["mean"] for c in classical}
            for metric in ("ssim", "vif")
        }
        verdicts[key] = {"improves_ssim": better["ssim"], "improves_vif": better["vif"], "matches_classical": beats}
    return {"methods": table, "verdicts": verdicts}


def validation_summary(evaluation: Path, model_method: str, command: str) -> dict:
    """A card's ``validation``: :func:`validation_table` plus the slice count and the evaluate command."""
    summary = validation_table(evaluation, model_method)
    info = json.loads((evaluation / "evaluation.json").read_text())
    summary["slices_note"] = f"{info['n_slices']} slices of {len(info['files'])} scans, seed {info['seed']}"
    summary["command"] = command
    return summary


def refresh(weights: Path, name: str, evaluation: Path) -> None:
    """Replace the ``validation`` of shipped card ``name`` (in folder ``weights``) by the tables of ``evaluation``.

    Raises:
        ValueError: The card has no validation, its command wrote another folder, or the evaluation has
            no rows for the model.
    """
    path = weights / f"{name}.safetensors"
    model, card = load_model(path)
    card = {k: v for k, v in card.items() if k not in DERIVED_CARD_FIELDS}
    old = card.get("validation")
    if not old:
        raise ValueError(f"{name}: the card has no validation to refresh")
    if f"--out {evaluation.as_posix()}" not in old.get("command", ""):
        raise ValueError(f"{name}: its validation came from another command than one writing {evaluation}")
    summary = validation_summary(evaluation, name, old["command"])
    if not summary["verdicts"]:
        raise ValueError(f"{name}: {evaluation} has no rows for this model")
    card["validation"] = summary
    save_model(model, path, card=card)
