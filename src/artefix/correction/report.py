"""QC report of a correction: one self-contained HTML file plus a JSON summary for pipelines.

The HTML embeds every figure as a base64 PNG and its style inline: no external file, script or network
access is needed to view it. It shows

* the mean |residual| per slice for each artefact head (input units), flagged slices marked
  (:meth:`artefix.correction.CorrectionRecord.flagged`);
* the slices with the largest corrections: before, after, after - before and each residual;
* an orthogonal view (axial, coronal, sagittal through the volume's centre, as the paper's Fig. 2) of
  the volume before and after correction; the volume is reoriented to RAS+ from its affine, and shown in
  neurological convention (patient's right on the image's right, anterior/superior up); arrays without
  geometry (npy, png) are shown along their array axes;
* the model used and its card.

The JSON summary (:func:`build_summary`) lies next to the HTML (``report.html`` -> ``report.json``): per
artefact the overall and per-slice mean |residual| and the flagged slices, the model's name and sha256,
the input/output paths and the timings.
"""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from artefix.atomic import atomic_file, check_output_path, output_transaction

if TYPE_CHECKING:
    from artefix.correction.files import CorrectionRun
    from artefix.data.io import Volume

_NO_GEOMETRY = ("npy", "npz", "png")
_HEAD_COLOURS = {"bias": "tab:orange", "subsampling": "tab:blue", "motion": "tab:green", "noise": "tab:red"}


def _plt():  # noqa: ANN202 - matplotlib.pyplot, imported lazily with the Agg backend
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def figure_to_base64(fig: Any, dpi: int = 80) -> str:
    """Render a matplotlib figure to a base64 PNG string (and close it)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    _plt().close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _window(image: np.ndarray) -> tuple[float, float]:
    lo, hi = (float(v) for v in np.percentile(image, [0.5, 99.5]))
    return (lo, hi) if hi > lo else (lo, lo + 1.0)


def orthogonal_planes(volume: Volume) -> list[tuple[str, np.ndarray, float]]:
    """Central axial, coronal and sagittal planes of a volume, ready for ``imshow(origin="lower")``.

    Args:
        volume: 2D or 3D volume; 3D volumes with geometry are reoriented to RAS+ from their affine.

    Returns:
        ``[(title, plane (rows, cols), aspect)]``; ``aspect`` is row spacing / column spacing. A 2D image
        or a one-slice 3D volume gives one plane (flipped so that ``origin="lower"`` shows it as stored).
    """
    array = volume.array
    spacing = np.asarray(volume.spacing if len(volume.spacing) == array.ndim else (1.0,) * array.ndim)
    if array.ndim == 3 and 1 in array.shape:  # one slice stored as 3D: its plane, not one-pixel-wide views
        axis = array.shape.index(1)
        array, spacing = np.take(array, 0, axis=axis), np.delete(spacing, axis)
    if array.ndim == 2:
        return [("slice", array[::-1], float(spacing[0] / spacing[1]))]
    if volume.format in _NO_GEOMETRY:
        planes = []
        for axis in range(3):
            plane = np.take(array, array.shape[axis] // 2, axis=axis)
            rest = [s for i, s in enumerate(spacing) if i != axis]
            planes.append((f"axis {axis} centre", plane[::-1], float(rest[0] / rest[1])))
        return planes
    import nibabel as nib

    ornt = nib.orientations.io_orientation(volume.affine)
    ras = nib.orientations.apply_orientation(array, ornt)
    sp = np.empty(3)
    sp[ornt[:, 0].astype(int)] = spacing
    ci, cj, ck = (n // 2 for n in ras.shape)
    return [
        ("axial", ras[:, :, ck].T, float(sp[1] / sp[0])),
        ("coronal", ras[:, cj, :].T, float(sp[2] / sp[0])),
        ("sagittal", ras[ci, :, :].T, float(sp[2] / sp[1])),
    ]


def residual_profile_figure(run: CorrectionRun) -> Any:
    """Mean |residual| per slice and head (lines; flagged slices circled), as a matplotlib figure."""
    record = run.record
    if record.n_slices == 1:
        return _residual_bars(record)
    plt = _plt()
    fig, ax = plt.subplots(figsize=(8, 3.2), constrained_layout=True)
    flagged = record.flagged()
    z = np.arange(record.n_slices)
    for k, head in enumerate(record.heads):
        values = record.mean_abs_residual[:, k]
        style = "-" if head in record.applied else "--"
        label = head if head in record.applied else f"{head} (not applied)"
        if 0 < record.strength_of(head) < 1:
            label = f"{head} (applied at {record.strength_of(head):.0%})"
        colour = _HEAD_COLOURS.get(head)
        ax.plot(z, values, style, marker="." if record.n_slices < 64 else None, color=colour, label=label)
        idx = list(flagged[head])
        if idx:
            ax.plot(idx, values[idx], "o", mfc="none", ms=9, color=colour)
    ax.set_xlabel(f"slice index (axis {record.axis})" if record.axis is not None else "slice")
    ax.set_ylabel("mean |residual| (input units)")
    ax.legend(fontsize=8, ncol=4)
    ax.grid(alpha=0.3)
    return fig


def _residual_bars(record: Any) -> Any:
    """Mean |residual| per head of a single slice as bars (a profile over one slice would be one point)."""
    fig, ax = _plt().subplots(figsize=(6, 2.8), constrained_layout=True)
    heads = list(record.heads)
    bars = ax.bar(heads, record.mean_abs_residual[0], color=[_HEAD_COLOURS.get(h) for h in heads])
    for bar, head in zip(bars, heads, strict=True):
        if head not in record.applied:
            bar.set_hatch("//")
            bar.set_alpha(0.5)
    ax.set_ylabel("mean |residual| (input units)")
    ax.set_title("one slice: mean |residual| per head (hatched: not applied)", fontsize=9)
    ax.grid(alpha=0.3, axis="y")
    return fig


def largest_corrections_figure(run: CorrectionRun) -> Any | None:
    """Rows of before / after / difference / residuals for the snapshot slices (None when there are none)."""
    record = run.record
    if not record.snapshots:
        return None
    plt = _plt()
    n_cols = 3 + len(record.heads)
    rows = len(record.snapshots)
    fig, axes = plt.subplots(rows, n_cols, figsize=(2.3 * n_cols, 2.5 * rows), squeeze=False, constrained_layout=True)
    for r, snap in enumerate(record.snapshots):
        lo, hi = _window(snap.before)
        diff = snap.after - snap.before
        d = float(np.percentile(np.abs(np.concatenate([diff.ravel(), snap.residuals.ravel()])), 99.5)) or 1.0
        panels = [("before", snap.before, "gray", lo, hi), ("after", snap.after, "gray", lo, hi)]
        panels.append(("after - before", diff, "RdBu_r", -d, d))
        panels += [(f"{h} residual", snap.residuals[k], "RdBu_r", -d, d) for k, h in enumerate(record.heads)]
        shown = []
        for c, (name, img, cmap, vmin, vmax) in enumerate(panels):
            ax = axes[r, c]
            shown.append(ax.imshow(img, cmap=cmap, vmin=vmin, vmax=vmax))
            ax.set_title(f"slice {snap.index}: {name}" if c == 0 else name, fontsize=8)
            ax.axis("off")
        fig.colorbar(shown[1], ax=axes[r, :2].tolist(), shrink=0.8, label="intensity")
        fig.colorbar(shown[2], ax=axes[r, 2:].tolist(), shrink=0.8, label="change (input units)")
    return fig


def orthogonal_figure(before: Volume, after: Volume) -> Any:
    """The paper's Fig. 2 layout: before (top row) and after (bottom row), central orthogonal planes."""
    plt = _plt()
    planes_before, planes_after = orthogonal_planes(before), orthogonal_planes(after)
    cols = len(planes_before)
    fig, axes = plt.subplots(2, cols, figsize=(3.2 * cols, 6.2), squeeze=False, constrained_layout=True)
    lo, hi = _window(before.array)
    for row, (label, planes) in enumerate((("before", planes_before), ("after", planes_after))):
        for c, (name, plane, aspect) in enumerate(planes):
            ax = axes[row, c]
            ax.imshow(plane, cmap="gray", vmin=lo, vmax=hi, origin="lower", aspect=aspect)
            ax.set_title(f"{label}: {name}", fontsize=9)
            ax.axis("off")
    return fig


def build_summary(run: CorrectionRun) -> dict[str, Any]:
    """The JSON summary of a correction run (see the module docstring)."""
    from artefix import __version__

    card = run.model_card
    summary: dict[str, Any] = {
        "artefix_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "input": str(run.input),
        "output": str(run.output),
        "residuals": {h: str(p) for h, p in run.residual_paths.items()},
        "report": str(run.report) if run.report is not None else None,
        "model": {
            "name": card.get("name"),
            "sha256": card.get("sha256"),
            "weights_path": card.get("weights_path"),
            "heads": list(run.record.heads),
            "matrix": card.get("matrix"),
        },
    }
    summary.update(run.record.to_dict())
    summary["timings_s"] = {k: round(float(v), 4) for k, v in run.timings.items()}
    return summary


_STYLE = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222}
h1{font-size:1.4em}h2{font-size:1.15em;margin-top:1.6em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ccc;padding:.25em .6em;text-align:left}
th{background:#f3f3f3}img{max-width:100%}pre{background:#f6f6f6;padding:.8em;overflow:auto;font-size:.8em}
.muted{color:#777}
"""


def card_facts(card: dict[str, Any]) -> list[tuple[str, str]]:
    """A model card's facts a reader wants first, in words: ``[(label, text)]`` (missing fields left out)."""
    from artefix.models.policy import InferencePolicy

    facts = [("name", str(card.get("name") or "unnamed"))]
    if card.get("description"):
        facts.append(("what it does", str(card["description"])))
    if card.get("heads"):
        facts.append(("heads", ", ".join(map(str, card["heads"]))))
    if card.get("parameters"):
        facts.append(("size", f"{card['parameters']:,} parameters (preset {card.get('preset', 'n/a')})"))
    if card.get("matrix"):
        facts.append(("runs at", " x ".join(map(str, card["matrix"])) + " pixels per slice (the training matrix)"))
    try:
        steps = InferencePolicy.from_dict(card["inference"]).steps() if card.get("inference") else []
    except (TypeError, ValueError):
        steps = []
    if steps:
        facts.append(("at inference", "; ".join(steps)))
    if card.get("epochs") and card.get("wall_time_s"):
        facts.append(("trained", f"{card['epochs']} epochs, {card['wall_time_s'] / 60:.0f} min"))
    if isinstance(card.get("licences"), dict) and card["licences"]:
        facts.append(("training data", "; ".join(f"{k} ({v})" for k, v in card["licences"].items())))
    if card.get("sha256"):
        facts.append(("weights sha256", str(card["sha256"])))
    return facts


def card_table(card: dict[str, Any]) -> str:
    """:func:`card_facts` as an HTML table."""
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in card_facts(card))
    return f"<table>{rows}</table>"


def _img(b64: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'


def render_report(run: CorrectionRun, before: Volume, after: Volume, summary: dict[str, Any] | None = None) -> str:
    """The self-contained HTML QC report as a string.

    Args:
        run: The correction run (paths, record, model card, timings).
        before: The input volume.
        after: The corrected volume.
        summary: The JSON summary (computed when None).

    Returns:
        HTML text with all images embedded as base64 PNG.
    """
    summary = summary if summary is not None else build_summary(run)
    esc = html.escape
    record = run.record
    rows = []
    detected_col = record.detection is not None
    for head, info in summary["artefacts"].items():
        flagged = ", ".join(map(str, info["flagged_slices"])) or "none"
        found = info.get("detection_mean")
        detected = f"<td>{found:.2f}</td>" if found is not None else ("<td>n/a</td>" if detected_col else "")
        rows.append(
            f"<tr><td>{esc(head)}</td><td>{esc(record.applied_label(head))}</td>{detected}"
            f"<td>{info['mean_abs_residual']:.4g}</td><td>{esc(flagged)}</td></tr>"
        )
    facts = [
        ("input", str(run.input)),
        ("output", str(run.output)),
        ("model", f"{summary['model']['name']} (sha256 {summary['model']['sha256'] or 'n/a'})"),
        ("applied corrections", record.applied_text() or "none (identity)"),
        ("volume shape", " x ".join(map(str, record.shape))),
        ("slice axis", str(record.axis)),
        ("model matrix per slice", " x ".join(map(str, record.work_shape))),
        ("self-ensemble", f"{record.ensemble} dihedral transform(s) averaged per slice"),
        *([("artefact detector", record.gates_sentence())] if record.gates_sentence() else []),
        ("constant slices passed through", ", ".join(map(str, record.constant_slices)) or "none"),
        *([("k-space", record.kspace_sentence())] if record.kspace_sentence() else []),
        *([("noise level", record.snr_sentence())] if record.snr_sentence() else []),
        ("timings (s)", ", ".join(f"{k} {v:.2f}" for k, v in run.timings.items())),
    ]
    fact_rows = "".join(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in facts)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>artefix QC: {esc(run.input.name)}</title><style>{_STYLE}</style></head><body>",
        f"<h1>artefix correction QC report: {esc(run.input.name)}</h1>",
        f"<table>{fact_rows}</table>",
        "<h2>Corrections per artefact</h2>",
        "<p class='muted'>Mean |residual| in the input's intensity units. A slice is flagged when its value "
        "exceeds the median over slices by more than 3 robust standard deviations (1.4826 MAD)."
        + (
            " Detection: the model's presence score of the artefact (0 absent, 1 present), mean over slices;"
            " the residual is already scaled by it."
            if detected_col
            else ""
        )
        + "</p>",
        "<table><tr><th>artefact</th><th>applied</th>"
        + ("<th>detection</th>" if detected_col else "")
        + "<th>mean |residual|</th><th>flagged slices</th></tr>",
        "".join(rows),
        "</table>",
        _img(figure_to_base64(residual_profile_figure(run)), "mean absolute residual per slice"),
    ]
    fig = largest_corrections_figure(run)
    if fig is not None:
        indices = ", ".join(str(s.index) for s in record.snapshots)
        parts += [f"<h2>Largest corrections (slices {esc(indices)})</h2>", _img(figure_to_base64(fig), "largest")]
    parts += [
        "<h2>Orthogonal view before and after</h2>",
        "<p class='muted'>Central planes; neurological convention (patient's right on the right).</p>",
        _img(figure_to_base64(orthogonal_figure(before, after)), "orthogonal view"),
        "<h2>Model</h2>",
        card_table(run.model_card),
        "<details><summary>Full model card (JSON)</summary>",
        f"<pre>{esc(json.dumps(run.model_card, indent=2, default=str))}</pre></details>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(run: CorrectionRun, before: Volume, after: Volume, *, overwrite: bool = False) -> list[Path]:
    """Write ``run.report`` (HTML) and ``run.summary`` (JSON), each atomically.

    Both or neither: should the HTML fail after the JSON was written, the JSON is removed again and any
    files being replaced are put back (:func:`artefix.atomic.output_transaction`).

    Args:
        run: The run; ``run.report`` and ``run.summary`` give the paths.
        before: Input volume.
        after: Corrected volume.
        overwrite: Replace existing files.

    Returns:
        The paths this call created (did not exist before).

    Raises:
        OutputError: Unsafe or failed write.
    """
    if run.report is None or run.summary is None:
        raise ValueError("run.report and run.summary must be set to write a report")
    inputs = (run.input, run.output)
    html_path = check_output_path(run.report, overwrite=overwrite, inputs=inputs)
    json_path = check_output_path(run.summary, overwrite=overwrite, inputs=inputs)
    summary = build_summary(run)
    text = render_report(run, before, after, summary)
    created = [p for p in (json_path, html_path) if not p.exists()]
    with output_transaction([json_path, html_path]):
        with atomic_file(json_path) as tmp:
            tmp.write_text(json.dumps(summary, indent=2) + "\n")
        with atomic_file(html_path) as tmp:
            tmp.write_text(text, encoding="utf-8")
    return created
