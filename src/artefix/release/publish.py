"""Ship a trained model: copy its best weights into the package and write its model card.

``RUN`` is an ``artefix train`` output folder; the evaluation an ``artefix evaluate`` output folder run on
the validation split of that training run (``RUN/split.json``) with the model. The card
(``src/artefix/weights/NAME.json``) gets the training card's fields plus the validation metrics per artefact
and severity (corrupted input, the model and every classical method), the data licences and the commands.
A model fine-tuned from another run's weights (``model.init``) names that run and its config with
``--starts-from RUN CONFIG``, repeated for a longer chain (earliest stage first): their commands, epochs,
wall times and hardware go into the card (``starts_from``, a list) and their commands lead
``stage_commands``. The card's ``release_command`` is the one command that regenerates the model,
``artefix train configs/release/pipelines/NAME.yaml`` (every stage in order;
:mod:`artefix.training.pipeline`), where that pipeline file exists::

    python -m artefix.release model runs/mt-lc-brain mt-lc-brain --config configs/release/mt_lc_brain.yaml \
        --starts-from runs/mt-lc-brain-stage1 configs/release/mt_lc_brain_stage1.yaml \
        --evaluation eval/mt-lc-brain-val
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from artefix.models.checkpoint import DERIVED_CARD_FIELDS, load_model, save_model
from artefix.models.dual_domain import DualDomainModel

from .cards import DESCRIPTIONS, LICENCES, PATHS_NOTE, portable, said
from .repository import Repository
from .validation import validation_summary


def _whole_run(run: Path) -> dict:
    """Epochs and wall time of the whole run (the best weights' card has them as of the best epoch)."""
    last = run / "last.json"
    if not last.is_file():
        return {}
    card = json.loads(last.read_text())
    return {k: card[k] for k in ("epochs", "wall_time_s") if k in card}


def pipeline_command(repo: Repository, name: str) -> str | None:
    """The one command that trains every stage of model ``name`` (its pipeline file), or None if it has none."""
    pipeline = repo.pipelines / f"{name}.yaml"
    if not pipeline.is_file():
        return None
    return f"artefix train {pipeline.relative_to(repo.root).as_posix()} --out runs/{name}-release"


def publish(
    repo: Repository,
    run: Path,
    name: str,
    *,
    config: str,
    evaluation: Path | None = None,
    evaluation_command: str = "",
    notes: str = "",
    description: str | None = None,
    split_file: str | None = None,
    starts_from: Sequence[tuple[str, str]] = (),
    consistency: bool = False,
    ensemble: int | None = None,
    bias_smooth: float | None = None,
    noise_snr: Sequence[float] | None = None,
) -> Path:
    """Copy ``run``'s best weights to ``repo.weights/NAME.safetensors`` with the card; returns that file.

    ``consistency``, ``ensemble``, ``bias_smooth`` and ``noise_snr`` ship the model with those inference
    settings (the trained weights are unchanged; the card's ``release_changes`` says so); ``description``
    defaults to :data:`~.cards.DESCRIPTIONS`; ``starts_from`` holds ``(RUN, CONFIG)`` of every earlier stage.
    """
    model, card = load_model(run / "best.safetensors")
    card = dict(card)
    changes = {}
    if consistency and not model.policy.consistency:
        changes["consistency"] = True
    if ensemble is not None and ensemble != model.policy.ensemble:
        changes["ensemble"] = ensemble
    if bias_smooth is not None and bias_smooth != model.policy.bias_smooth:
        changes["bias_smooth"] = bias_smooth
    if noise_snr is not None and tuple(noise_snr) != model.policy.noise_snr:
        changes["noise_snr"] = tuple(noise_snr)
    card.pop("release_changes", None)
    if changes:
        shipped = DualDomainModel(model.config, policy=model.policy.replace(**changes))
        shipped.load_state_dict(model.state_dict())
        model = shipped
        text = ", ".join(f"model.{k} {said(v)}" for k, v in changes.items())
        card["release_changes"] = f"{text} at release (inference only; weights as trained)"
    card.update(_whole_run(run))
    for key in DERIVED_CARD_FIELDS:
        card.pop(key, None)
    commands = []
    card.pop("starts_from", None)
    if starts_from:
        card["starts_from"] = []
    for run_text, stage_config in starts_from:
        stage = Path(run_text)
        best = json.loads((stage / "best.json").read_text())
        commands.append(f"artefix train {stage_config} --out {stage.as_posix()}")
        card["starts_from"].append(
            {
                "run": stage.as_posix(),
                "command": commands[-1],
                **{k: best.get(k) for k in ("epochs", "best_epoch", "wall_time_s", "hardware", "seed", "val_metrics")},
                **_whole_run(stage),
            }
        )
    stages = " && ".join([*commands, f"artefix train {config} --out {run.as_posix()}"])
    card.update(
        name=name,
        description=description if description is not None else DESCRIPTIONS.get(name, ""),
        release_command=pipeline_command(repo, name) or stages,
        stage_commands=stages,
        licences={
            root: text
            for root, text in LICENCES.items()
            if any(root in str(r) for r in card["training_config"]["data"].get("roots", []))
        },
        split_file=split_file,
        notes=notes,
    )
    if evaluation:
        card["validation"] = validation_summary(evaluation, name, evaluation_command)
    card["paths"] = PATHS_NOTE
    weights = repo.weights / f"{name}.safetensors"
    save_model(model, weights, card=portable(card, repo.root))
    return weights
