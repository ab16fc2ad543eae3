"""``artefix demo``: corrupt a built-in real slice with each artefact, correct it, show and score it.

Nothing is downloaded: the slice is the package's built-in sample (:func:`artefix.load_sample`). Each of
the paper's four artefacts is simulated at a middle evaluation level, plus all four together at their
mildest levels (applied in the order bias, subsampling, motion, noise); the five corrupted slices are
corrected with one model (:func:`artefix.correction.correct_volume`, all heads applied) and scored
against the clean slice with SSIM and VIF (:mod:`artefix.evaluation.metrics`, both images
z-normalised per slice as in the paper). Outputs in ``out_dir``:

* ``demo_corrections.png``: the paper's Fig. 1 layout; rows clean, corrupted, corrupted - clean,
  corrected, corrected - clean; columns the five cases (z-normalised units);
* ``demo_residuals.png``: per column the model's four residuals ``p_i`` (z-normalised units);
* ``demo_metrics.json``: the SSIM/VIF table, the cases and the model.

The library returns the table (:class:`DemoResult`); the CLI prints it.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from artefix.artefacts.base import HEADS, znorm
from artefix.atomic import atomic_file, check_output_path
from artefix.errors import OutputError


@dataclass(frozen=True)
class DemoCase:
    """One column of the demo: artefacts applied in order, with the paper's severity units."""

    name: str
    artefacts: tuple[str, ...]
    severities: tuple[float, ...]


DEMO_CASES: tuple[DemoCase, ...] = (
    DemoCase("bias", ("bias",), (0.1,)),
    DemoCase("subsampling", ("subsampling",), (3.0,)),
    DemoCase("motion", ("motion",), (0.125,)),
    DemoCase("noise", ("noise",), (0.0,)),
    DemoCase("all four", HEADS, (0.05, 2.0, 0.25, 5.0)),
)
"""Bias: largest field deviation 0.1; subsampling: R = 3 (centred); motion: 12.5 % uncorrupted k-space
centre; noise: SNR 0 dB; all four: the mildest paper levels (0.05, R = 2, 25 %, 5 dB)."""

FIGURE_NAME = "demo_corrections.png"
RESIDUALS_NAME = "demo_residuals.png"
METRICS_NAME = "demo_metrics.json"


@dataclass(frozen=True)
class DemoRow:
    """Scores of one case against the clean slice (z-normalised images)."""

    case: str
    ssim_corrupted: float
    ssim_corrected: float
    vif_corrupted: float
    vif_corrected: float
    note: str = ""


@dataclass
class DemoResult:
    """What :func:`run_demo` produced.

    Attributes:
        rows: One :class:`DemoRow` per case, in :data:`DEMO_CASES` order.
        figure: Path of the Fig. 1-style PNG.
        residual_figure: Path of the residual-map PNG.
        metrics: Path of the JSON table.
        model: Name of the model used.
        seconds: Wall time of the whole demo.
        images: ``{"clean": (H, W), "corrupted": (5, H, W), "corrected": (5, H, W),
            "residuals": (5, K, H, W)}``, z-normalised.
    """

    rows: list[DemoRow]
    figure: Path
    residual_figure: Path
    metrics: Path
    model: str
    seconds: float
    images: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


VISIBLE_GAIN = 0.005
"""SSIM or VIF gain over the corrupted slice below which a case counts as "barely changed"."""

OPEN_GATE = 0.5
"""Detector score below which the demo says a head's correction was held back."""


def case_note(record: Any, index: int, case: DemoCase, row: DemoRow) -> str:
    """Why case ``index`` was, or was not, corrected: one line from the correction's QC record.

    For each artefact of the case, the head's gate (the detector's score, with the noise head's SNR gate)
    and, where a gate held the correction back, the reason and the option that applies it anyway.

    Args:
        record: The :class:`artefix.correction.record.CorrectionRecord` of the demo's stack.
        index: The case's slice in that stack.
        case: The case.
        row: Its scores.
    """
    parts = []
    held = False
    for artefact in dict.fromkeys(case.artefacts):
        if artefact not in record.heads:
            parts.append(f"{artefact}: the model has no {artefact} head")
            continue
        k = record.heads.index(artefact)
        if record.detection is None or not np.isfinite(record.detection[index, k]):
            continue
        score = float(record.detection[index, k])
        if score >= OPEN_GATE:
            parts.append(f"{artefact} found ({score:.2f})")
            continue
        if artefact == "subsampling" and score == 0.0 and _untruncated(record, index):
            parts.append("subsampling not applied: no truncated k-space found (the head fills in missing k-space)")
            continue
        why = f"{artefact} held back (gate {score:.2f}"
        gate_snr = record.gate_snr_db()
        snr = None if gate_snr is None else float(gate_snr[index])
        if artefact == "noise" and record.noise_snr is not None and snr is not None and snr > record.noise_snr[0]:
            why += f"; SNR {snr:.1f} dB, the gate fades out from {record.noise_snr[0]:g} to {record.noise_snr[1]:g} dB"
        parts.append(why + ")")
        held = True
    if held:
        parts.append("'artefix correct --no-gates' applies what the gates held back")
    gain = max(row.ssim_corrected - row.ssim_corrupted, row.vif_corrected - row.vif_corrupted)
    if gain < VISIBLE_GAIN:
        parts.append(f"barely changed (SSIM/VIF gain < {VISIBLE_GAIN})")
    return "; ".join(parts)


def _untruncated(record: Any, index: int) -> bool:
    """Whether the data-consistency step looked at slice ``index`` and found its k-space complete."""
    return record.kspace_window is not None and index not in record.truncated_slices()


def corrupt_cases(clean: np.ndarray, seed: int = 0, cases: tuple[DemoCase, ...] = DEMO_CASES) -> np.ndarray:
    """Corrupted versions of ``clean``, one per case, shape ``(len(cases), H, W)`` (magnitude images)."""
    from artefix.simulation import simulate

    out = []
    for i, case in enumerate(cases):
        artefact: Any = case.artefacts[0] if len(case.artefacts) == 1 else list(case.artefacts)
        severity: Any = case.severities[0] if len(case.severities) == 1 else list(case.severities)
        out.append(simulate(clean, artefact, severity=severity, seed=seed + i))
    return np.stack(out).astype(np.float32)


def _paths(out_dir: Path, overwrite: bool) -> tuple[Path, Path, Path]:
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: exists and is not a folder")
    if not out_dir.parent.is_dir():
        raise OutputError(f"{out_dir}: its parent folder {out_dir.parent} does not exist")
    paths = (out_dir / FIGURE_NAME, out_dir / RESIDUALS_NAME, out_dir / METRICS_NAME)
    if out_dir.is_dir():
        for path in paths:
            check_output_path(path, overwrite=overwrite)
    return paths


def _plt():  # noqa: ANN202 - matplotlib.pyplot with the Agg backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    with atomic_file(path) as tmp:
        fig.savefig(tmp, format="png", dpi=80)
    _plt().close(fig)


def corrections_figure(clean: np.ndarray, corrupted: np.ndarray, corrected: np.ndarray, names: list[str]) -> Any:
    """Fig. 1 layout: rows clean / corrupted / corrupted - clean / corrected / corrected - clean.

    Args:
        clean: ``(H, W)`` z-normalised.
        corrupted: ``(C, H, W)`` z-normalised.
        corrected: ``(C, H, W)`` z-normalised.
        names: Column titles.

    Returns:
        The matplotlib figure.
    """
    plt = _plt()
    cols = len(names)
    fig, axes = plt.subplots(5, cols, figsize=(2.6 * cols, 13.2), squeeze=False, constrained_layout=True)
    lo, hi = np.percentile(clean, [0.5, 99.5])
    d = float(np.percentile(np.abs(corrupted - clean), 99.5)) or 1.0
    labels = ("clean", "corrupted", "corrupted - clean", "corrected", "corrected - clean")
    for c, name in enumerate(names):
        images = (clean, corrupted[c], corrupted[c] - clean, corrected[c], corrected[c] - clean)
        for r, (label, img) in enumerate(zip(labels, images, strict=True)):
            ax = axes[r, c]
            diff = "-" in label
            ax.imshow(img, cmap="RdBu_r" if diff else "gray", vmin=-d if diff else lo, vmax=d if diff else hi)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
            if c == 0:
                ax.set_ylabel(label)
    return fig


def residuals_figure(residuals: np.ndarray, heads: tuple[str, ...], names: list[str]) -> Any:
    """Per column (case) the model's residuals, one row per head, common symmetric colour scale."""
    plt = _plt()
    cols, k = len(names), len(heads)
    fig, axes = plt.subplots(k, cols, figsize=(2.6 * cols, 2.7 * k), squeeze=False, constrained_layout=True)
    d = float(np.percentile(np.abs(residuals), 99.5)) or 1.0
    for c, name in enumerate(names):
        for r, head in enumerate(heads):
            ax = axes[r, c]
            im = ax.imshow(residuals[c, r], cmap="RdBu_r", vmin=-d, vmax=d)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(name)
            if c == 0:
                ax.set_ylabel(f"{head} residual")
    fig.colorbar(im, ax=axes, shrink=0.5, label="z-normalised units")
    return fig


def run_demo(
    out_dir: str | Path = "artefix-demo",
    *,
    model: str | Path | None = None,
    sample: str = "brain-t1",
    seed: int = 0,
    device: str = "cpu",
    overwrite: bool = False,
) -> DemoResult:
    """Corrupt, correct, plot and score the built-in sample (see the module docstring).

    Args:
        out_dir: Folder for the figures and the JSON (created if missing; its parent must exist).
        model: Shipped model name or ``.safetensors`` path (default :data:`DEFAULT_MODEL`).
        sample: Built-in sample name (:data:`artefix.data.samples.SAMPLE_NAMES`).
        seed: Seed of the corruptions (case ``i`` uses ``seed + i``).
        device: ``cpu`` or ``cuda``.
        overwrite: Replace existing demo files.

    Returns:
        :class:`DemoResult` with the SSIM/VIF table.

    Raises:
        InputError: Model not installed / unreadable, unknown sample.
        OutputError: Unsafe output folder or existing files without ``overwrite``.
    """
    from artefix.correction import correct_volume
    from artefix.data.io import Volume
    from artefix.data.samples import load_sample
    from artefix.errors import InputError
    from artefix.evaluation.metrics import ssim, vif
    from artefix.models.registry import DEFAULT_MODEL, check_device, load_named_model

    start = time.perf_counter()
    device = check_device(device)
    figure_path, residual_path, metrics_path = _paths(Path(out_dir), overwrite)
    try:
        clean = load_sample(sample)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    net, card = load_named_model(model if model is not None else DEFAULT_MODEL, device=device)
    corrupted = corrupt_cases(clean, seed)
    volume = Volume(corrupted, meta={"slice_axis": 0})
    # Five unrelated cases, not one scan: each slice's own SNR gates its noise correction (one median SNR
    # for the stack, the default for a scan, let the four clean-ish cases switch the 0 dB case's off).
    result = correct_volume(
        volume, net, axis=0, matrix=card.get("matrix"), keep_residuals=True, top_k=0, snr_scope="slice"
    )
    record = result.record
    sigma = record.slice_std[:, None, None, None]
    residuals = np.stack([result.residuals[h].array for h in record.heads], axis=1) / sigma
    clean_z = znorm(clean.astype(np.float64))
    corrupted_z = znorm(corrupted.astype(np.float64))
    corrected_z = znorm(result.volume.array.astype(np.float64))
    names = [case.name for case in DEMO_CASES]
    rows = [
        DemoRow(
            case=name,
            ssim_corrupted=ssim(clean_z, corrupted_z[i]),
            ssim_corrected=ssim(clean_z, corrected_z[i]),
            vif_corrupted=vif(clean_z, corrupted_z[i]),
            vif_corrected=vif(clean_z, corrected_z[i]),
        )
        for i, name in enumerate(names)
    ]
    cases = enumerate(zip(DEMO_CASES, rows, strict=True))
    rows = [replace(row, note=case_note(record, i, case, row)) for i, (case, row) in cases]
    out = Path(out_dir).expanduser()
    created = not out.exists()
    out.mkdir(exist_ok=True)
    new = [p for p in (figure_path, residual_path, metrics_path) if not p.exists()]
    try:
        _save(corrections_figure(clean_z, corrupted_z, corrected_z, names), figure_path)
        _save(residuals_figure(residuals, record.heads, names), residual_path)
        seconds = time.perf_counter() - start
        data = {
            "sample": sample,
            "seed": seed,
            "model": {"name": card.get("name"), "sha256": card.get("sha256")},
            "cases": [asdict(case) for case in DEMO_CASES],
            "metrics": [asdict(row) for row in rows],
            "seconds": seconds,
        }
        with atomic_file(metrics_path) as tmp:
            tmp.write_text(json.dumps(data, indent=2) + "\n")
    except BaseException:
        for path in new:
            path.unlink(missing_ok=True)
        if created:
            out.rmdir()
        raise
    images = {"clean": clean_z, "corrupted": corrupted_z, "corrected": corrected_z, "residuals": residuals}
    return DemoResult(rows, figure_path, residual_path, metrics_path, str(card.get("name")), seconds, images)
