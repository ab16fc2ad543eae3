"""What a shipped model card says: licences, descriptions, portable paths and the lines of its page."""

from __future__ import annotations

import json
import os
from pathlib import Path

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


def shipped_cards(weights: Path) -> list[dict]:
    """Every card in the weights folder (``NAME.json``), by file name."""
    return [json.loads(path.read_text()) for path in sorted(weights.glob("*.json"))]


def portable(value: object, root: Path) -> object:
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


def hardware_name(hardware: dict) -> str:
    """'NVIDIA H200 (CUDAAccelerator)' or the CPU model when no GPU trained it."""
    return f"{hardware.get('gpu') or hardware.get('cpu')} ({hardware.get('accelerator')})"


def loss_line(loss: dict) -> str:
    """The training loss of the last stage, e.g. a gate refit (``fit_gates``) or Eq. 6 with its weights."""
    if loss.get("fit_gates"):
        criterion = "(1 - SSIM) + (1 - VIF)" if loss.get("gate_criterion") == "quality" else "the training criterion"
        what = f"`fit_gates` on {criterion}, per-slice log, floor {loss['gate_floor']:g}"
        return f"- loss: detector refit on fixed residuals ({what}), deltas `{loss['deltas']}`"
    return "- loss: deltas `{deltas}`, alpha {alpha}, all_heads {all_heads}".format(**loss)


def inference_line(config: dict) -> str:
    """The inference steps a model ships with (its card's ``inference``, or a flat card of format 1), or ''."""
    from artefix.models.dual_domain import split_settings
    from artefix.models.policy import InferencePolicy

    steps = InferencePolicy.from_dict(split_settings(config)[1]).steps()
    return "- at inference: " + "; ".join(steps) if steps else ""


def said(value: object) -> str:
    """A release change as the card says it: ``on`` for a switch, ``9-12`` for a range, else the value."""
    if value is True:
        return "on"
    if isinstance(value, tuple):
        return "-".join(f"{v:g}" for v in value)
    return f"{value:g}" if isinstance(value, float) else str(value)
