"""Ship a trained model: copy its best weights into the package and write its model card.

Usage (from the repository root)::

    python scripts/release_model.py runs/mt-lc-brain mt-lc-brain --config configs/release/mt_lc_brain.yaml \
        --starts-from runs/mt-lc-brain-stage1 configs/release/mt_lc_brain_stage1.yaml \
        --evaluation eval/mt-lc-brain-val

``RUN`` is an ``artefix train`` output folder; ``--evaluation`` an ``artefix evaluate`` output folder run
on the validation split of that training run (``RUN/split.json``) with the model. The card
(``src/artefix/weights/NAME.json``) gets the training card's fields plus the validation metrics per
artefact and severity (corrupted input, the model and every classical method), the data licences and
the commands; ``docs/models.md`` is re-rendered from every shipped card. A model fine-tuned from another
run's weights (``model.init``) names that run and its config with ``--starts-from RUN CONFIG``, repeated for
a longer chain (earliest stage first): their commands, epochs, wall times and hardware go into the card
(``starts_from``, a list) and their commands lead ``stage_commands``. The card's ``release_command`` is the
one command that regenerates the model, ``artefix train configs/release/pipelines/NAME.yaml`` (every stage
in order; :mod:`artefix.training.pipeline`), where that pipeline file exists.
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from artefix.models.checkpoint import DERIVED_CARD_FIELDS, load_model, save_model
from artefix.models.dual_domain import DualDomainModel

ROOT = Path(__file__).resolve().parents[1]
WEIGHTS = ROOT / "src" / "artefix" / "weights"
DOC = ROOT / "docs" / "models.md"
PIPELINES = ROOT / "configs" / "release" / "pipelines"

LICENCES = {
    "open_ms_data_ljubljana_longitudinal": "CC BY; Lesjak et al., Neuroinformatics 14:403-420 (2016)",
    "ixi_t1_2mm_via_nichart": "CC BY-SA 3.0; IXI dataset (brain-development.org), via NiChart",
    "niivue_demo_images": "CC BY 4.0; TCIA Vestibular-Schwannoma-SEG (Shapey et al. 2021), figshare MR_Gd",
    "msd_brain_slices_via_openjphpy": "CC BY-SA 4.0; Medical Segmentation Decathlon (Antonelli et al. 2022)",
    "prostatex_tcia_via_picai_prep": "CC BY 3.0; TCIA PROSTATEx (Litjens et al. 2017)",
}
METRICS = ("ssim", "vif", "mse")
PATHS_NOTE = "relative to the repository root (the data under ../shared/data)"
"""What a card's ``paths`` field says of every file path in it (:func:`portable`)."""
# One line per shipped model, shown by `artefix models` and docs/models.md (``--description`` overrides).
DESCRIPTIONS = {
    "mt-lc-brain": "Default: all four artefacts, convolutional loss (LC), detector-gated heads; brain T1/T2/FLAIR",
    "mt-brain": "All four artefacts, MSE loss (the paper's MT comparison model); brain T1/T2/FLAIR",
    "bias-brain": "Bias field only (single-task comparison model); brain",
    "subsampling-brain": "k-space subsampling only (single-task comparison model); brain",
    "motion-brain": "Rigid motion only (single-task comparison model); brain",
    "noise-brain": "Noise only (single-task comparison model); brain",
    "mt-lc-pelvis": "All four artefacts with breathing motion, LC loss; pelvic T2 (3 patients: a demonstration)",
}


def portable(value: object, root: Path = ROOT) -> object:
    """``value`` (a card's JSON) with every absolute path under ``root``'s parent made relative to ``root``.

    A shipped card must not hold the paths of the machine that built it: the training card records them
    resolved (``/home/me/artefix/configs/...``, ``/data/shared/...``); the shipped one says
    ``configs/release/brain_split.json`` and ``../shared/data/...``, relative to the repository root, as the
    docs' commands do. Other strings are kept as they are.
    """
    if isinstance(value, dict):
        return {k: portable(v, root) for k, v in value.items()}
    if isinstance(value, list):
        return [portable(v, root) for v in value]
    if isinstance(value, str) and value.startswith("/"):
        path = Path(value)
        if path.is_relative_to(root.parent):
            return Path(os.path.relpath(path, root)).as_posix()
    return value


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


def _whole_run(run: Path) -> dict:
    """Epochs and wall time of the whole run (the best weights' card has them as of the best epoch)."""
    last = run / "last.json"
    if not last.is_file():
        return {}
    card = json.loads(last.read_text())
    return {k: card[k] for k in ("epochs", "wall_time_s") if k in card}


def _hardware(hardware: dict) -> str:
    """'NVIDIA H200 (CUDAAccelerator)' or the CPU model when no GPU trained it."""
    return f"{hardware.get('gpu') or hardware.get('cpu')} ({hardware.get('accelerator')})"


def _loss_line(loss: dict) -> str:
    """The training loss of the last stage, e.g. a gate refit (``fit_gates``) or Eq. 6 with its weights."""
    if loss.get("fit_gates"):
        criterion = "(1 - SSIM) + (1 - VIF)" if loss.get("gate_criterion") == "quality" else "the training criterion"
        what = f"`fit_gates` on {criterion}, per-slice log, floor {loss['gate_floor']:g}"
        return f"- loss: detector refit on fixed residuals ({what}), deltas `{loss['deltas']}`"
    return "- loss: deltas `{deltas}`, alpha {alpha}, all_heads {all_heads}".format(**loss)


def _inference_line(config: dict) -> str:
    """The inference steps a model ships with (its card's ``inference``), or ''."""
    steps = []
    if config.get("consistency"):
        steps.append("k-space data consistency of the subsampling head")
    if config.get("truncation_gate"):
        steps.append("subsampling head only where a truncated k-space is found")
    if config.get("bias_smooth"):
        steps.append(f"smooth bias field (sigma {config['bias_smooth']:g} of the field of view)")
    if config.get("noise_snr"):
        lo, hi = config["noise_snr"]
        steps.append(f"noise head faded out from {lo:g} to {hi:g} dB estimated SNR")
    if config.get("ensemble", 1) > 1:
        steps.append(f"self-ensemble of {config['ensemble']}")
    return "- at inference: " + "; ".join(steps) if steps else ""


def pipeline_command(name: str) -> str | None:
    """The one command that trains every stage of model ``name`` (its pipeline file), or None if it has none."""
    pipeline = PIPELINES / f"{name}.yaml"
    if not pipeline.is_file():
        return None
    return f"artefix train {pipeline.relative_to(ROOT).as_posix()} --out runs/{name}-release"


def render_doc() -> None:
    """docs/models.md from every shipped card."""
    lines = ["# Shipped models", "", "Generated by `scripts/release_model.py` from `src/artefix/weights/*.json`.", ""]
    for card_path in sorted(WEIGHTS.glob("*.json")):
        card = json.loads(card_path.read_text())
        lines += [f"## {card['name']}", ""]
        if card.get("description"):
            lines += [card["description"], ""]
        lines += [
            f"- preset `{card['preset']}`, {card['parameters']:,} parameters, heads {', '.join(card['heads'])}",
            _loss_line(card["training_config"]["loss"]),
            f"- trained with `{card.get('release_command', card.get('command'))}`",
            *([f"- the same stages one by one: `{card['stage_commands']}`"] if card.get("stage_commands") else []),
            f"- {card['epochs']} epochs (best {card['best_epoch']}), {card['wall_time_s'] / 60:.0f} min on "
            f"{_hardware(card['hardware'])}, seed {card['seed']}",
        ]
        if card.get("release_changes"):
            lines.append(f"- {card['release_changes']}")
        inference = _inference_line(card.get("inference") or card["config"])
        if inference:
            lines.append(inference)
        for start in card.get("starts_from") or []:
            lines.append(
                f"- starts from `{start['run']}`: {start['epochs']} epochs, {start['wall_time_s'] / 60:.0f} min on "
                f"{_hardware(start['hardware'])}, seed {start['seed']}"
            )
        lines += [
            f"- sha256 `{card['sha256']}`",
            "- training data: " + "; ".join(f"`{k}` ({v})" for k, v in card.get("licences", {}).items()),
            "",
        ]
        if card.get("notes"):
            lines += [card["notes"], ""]
        val = card.get("validation")
        if val:
            lines += [
                f"Validation split ({val['slices_note']}): mean SSIM / VIF / MSE, z-normalised images.",
                "",
                "| experiment | method | SSIM | VIF | MSE |",
                "|---|---|---|---|---|",
            ]
            for key, methods in val["methods"].items():
                for method, m in methods.items():
                    cells = []
                    for metric in METRICS:
                        text = f"{m[metric]['mean']:.4f}" if metric in m else ""
                        cells.append(f"**{text}**" if metric in m and m[metric]["bold"] else text)
                    lines.append(f"| {key} | {method} | " + " | ".join(cells) + " |")
            lines.append("")
    DOC.write_text("\n".join(lines) + "\n")


def _said(value: object) -> str:
    """A release change as the card says it: ``on`` for a switch, ``9-12`` for a range, else the value."""
    if value is True:
        return "on"
    if isinstance(value, tuple):
        return "-".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def main() -> None:
    """Copy, annotate and document one model."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("name")
    parser.add_argument("--evaluation", type=Path)
    parser.add_argument("--config", required=True, help="the config that trained RUN, relative to the repository")
    parser.add_argument("--notes", default="")
    parser.add_argument(
        "--consistency",
        action="store_true",
        help="ship with k-space data consistency of the subsampling head on (artefix.models.consistency); "
        "the trained weights are unchanged",
    )
    parser.add_argument(
        "--ensemble",
        type=int,
        help="ship with this inference self-ensemble (ModelConfig.ensemble: 1, 2, 4 or 8 dihedral transforms "
        "averaged per slice); the trained weights are unchanged",
    )
    parser.add_argument(
        "--bias-smooth",
        type=float,
        help="ship with the smooth-field prior on the bias head (ModelConfig.bias_smooth: Gaussian sigma as a "
        "fraction of the larger image side); the trained weights are unchanged",
    )
    parser.add_argument(
        "--noise-snr",
        type=float,
        nargs=2,
        metavar=("LO", "HI"),
        help="ship with the SNR gate on the noise head (ModelConfig.noise_snr: full below LO dB of estimated "
        "SNR, off above HI); the trained weights are unchanged",
    )
    parser.add_argument("--description", help="one line for `artefix models` (default: DESCRIPTIONS[NAME])")
    parser.add_argument("--evaluation-command", default="", help="the artefix evaluate command line")
    parser.add_argument("--split-file", help="committed copy of RUN/split.json")
    parser.add_argument(
        "--starts-from",
        nargs=2,
        action="append",
        default=[],
        metavar=("RUN", "CONFIG"),
        help="an earlier stage: the run whose weights the next stage started from (model.init) and the config "
        "that trained it, relative to the repository; repeat for each stage, earliest first",
    )
    args = parser.parse_args()
    model, card = load_model(args.run / "best.safetensors")
    card = dict(card)
    changes = {}
    if args.consistency and not model.policy.consistency:
        changes["consistency"] = True
    if args.ensemble is not None and args.ensemble != model.policy.ensemble:
        changes["ensemble"] = args.ensemble
    if args.bias_smooth is not None and args.bias_smooth != model.policy.bias_smooth:
        changes["bias_smooth"] = args.bias_smooth
    if args.noise_snr is not None and tuple(args.noise_snr) != model.policy.noise_snr:
        changes["noise_snr"] = tuple(args.noise_snr)
    card.pop("release_changes", None)
    if changes:
        shipped = DualDomainModel(model.config, policy=model.policy.replace(**changes))
        shipped.load_state_dict(model.state_dict())
        model = shipped
        said = ", ".join(f"model.{k} {_said(v)}" for k, v in changes.items())
        card["release_changes"] = f"{said} at release (inference only; weights as trained)"
    card.update(_whole_run(args.run))
    for key in DERIVED_CARD_FIELDS:
        card.pop(key, None)
    commands = []
    card.pop("starts_from", None)
    if args.starts_from:
        card["starts_from"] = []
    for run_text, config in args.starts_from:
        run = Path(run_text)
        best = json.loads((run / "best.json").read_text())
        commands.append(f"artefix train {config} --out {run.as_posix()}")
        card["starts_from"].append(
            {
                "run": run.as_posix(),
                "command": commands[-1],
                **{k: best.get(k) for k in ("epochs", "best_epoch", "wall_time_s", "hardware", "seed", "val_metrics")},
                **_whole_run(run),
            }
        )
    stages = " && ".join([*commands, f"artefix train {args.config} --out {args.run.as_posix()}"])
    card.update(
        name=args.name,
        description=args.description if args.description is not None else DESCRIPTIONS.get(args.name, ""),
        release_command=pipeline_command(args.name) or stages,
        stage_commands=stages,
        licences={
            root: text
            for root, text in LICENCES.items()
            if any(root in str(r) for r in card["training_config"]["data"].get("roots", []))
        },
        split_file=args.split_file,
        notes=args.notes,
    )
    if args.evaluation:
        card["validation"] = validation_summary(args.evaluation, args.name, args.evaluation_command)
    card["paths"] = PATHS_NOTE
    save_model(model, WEIGHTS / f"{args.name}.safetensors", card=portable(card))
    render_doc()


if __name__ == "__main__":
    main()
