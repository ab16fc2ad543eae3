"""Write an :class:`~artefix.evaluation.experiments.EvaluationResult`: JSON, CSV, Markdown, LaTeX, figures.

Files written into the output folder (each atomically):

* ``summary.json``: the table cells, a list of rows ``experiment``, ``severity`` (null for a scenario),
  ``method``, ``metric``, ``mean``, ``sem`` (null when undefined, e.g. one slice), ``bold``, ``n``.
* ``summary.csv``: the same rows (empty fields for null), floats written exactly (``repr``).
* ``per_slice.json``: every per-slice value (``file``, ``slice``, ``experiment``, ``severity``,
  ``method``, ``metric``, ``value``), one row per line, so anyone can redo the statistics
  (:func:`artefix.evaluation.experiments.summarise_rows` rebuilds ``summary.json`` from it).
* ``residuals.json``: mean absolute residual per experiment, severity, model and head.
* ``evaluation.json``: the settings, notes, tuned parameters and timings of the run.
* ``report.md`` and ``tables.tex``: the tables laid out like the paper's (rows = methods, columns =
  severities, cells = mean ± standard error, bold groups in bold), one table per experiment and metric.
* ``figures/<experiment>.png``: the example slice at every severity: clean, input and each method's
  output (top row), and ``|output - clean|`` (bottom row), all z-normalised.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from artefix.artefacts.names import HEADS
from artefix.atomic import atomic_file, one_line
from artefix.errors import OutputError
from artefix.evaluation.experiments import SCENARIOS, EvaluationResult, Example

__all__ = [
    "CSV_FIELDS",
    "FILES",
    "METRIC_TITLES",
    "example_figure",
    "format_cell",
    "format_number",
    "latex_tables",
    "markdown_report",
    "severity_label",
    "summary_csv",
    "check_output_folder",
    "write_outputs",
]

CSV_FIELDS: tuple[str, ...] = ("experiment", "severity", "method", "metric", "mean", "sem", "bold", "n")
"""Columns of ``summary.csv`` (the keys of a ``summary.json`` row)."""

FILES: tuple[str, ...] = (
    "summary.json",
    "summary.csv",
    "per_slice.json",
    "residuals.json",
    "evaluation.json",
    "report.md",
    "tables.tex",
)
"""Files that :func:`write_outputs` always writes (plus one figure per experiment)."""

METRIC_TITLES: dict[str, str] = {
    "ssim": "SSIM",
    "ssim-fg": "SSIM inside the foreground",
    "vif": "VIF (0-255 scale)",
    "vif-paper": "VIF, the paper's convention (raw z-normalised images)",
    "mse": "MSE",
    "psnr": "PSNR (dB)",
}
"""Table titles of the metrics."""

_DECIMALS = {"ssim": 3, "ssim-fg": 3, "vif": 3, "vif-paper": 3, "mse": 4, "psnr": 2}


def format_number(value: float | None, metric: str) -> str:
    """A table number: 3 decimals for SSIM/VIF, 4 for MSE, 2 for PSNR; ``n/a`` for None."""
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:.{_DECIMALS.get(metric, 3)}f}"


def format_cell(mean: float | None, sem: float | None, metric: str, pm: str = "±") -> str:
    """``mean ± sem`` (just the mean when the standard error is undefined)."""
    if sem is None or mean is None:
        return format_number(mean, metric)
    return f"{format_number(mean, metric)} {pm} {format_number(sem, metric)}"


def severity_label(experiment: str, severity: float | None) -> str:
    """Column header of a severity.

    ``5%`` (bias), ``x2`` (subsampling), ``25%`` (motion: clean k-space centre), ``5 dB`` (noise); for a
    scenario its levels, e.g. ``x3 + 12.5%``.
    """
    if severity is None:
        if experiment in SCENARIOS:
            return " + ".join(severity_label(name, level) for name, level in SCENARIOS[experiment])
        return "all"
    if experiment in ("bias", "motion"):
        return f"{100 * severity:g}%"
    if experiment == "subsampling":
        return f"x{severity:g}"
    if experiment == "noise":
        return f"{severity:g} dB"
    return f"{severity:g}"


def _cells(result: EvaluationResult) -> dict[tuple[str, Any, str, str], Mapping[str, Any]]:
    return {(r["experiment"], r["severity"], r["metric"], r["method"]): r for r in result.summary}


def _metrics(result: EvaluationResult) -> list[str]:
    seen: list[str] = []
    for row in result.summary:
        if row["metric"] not in seen:
            seen.append(row["metric"])
    return seen


def _lower_is_better(metric: str) -> bool:
    from artefix.evaluation.metrics import METRICS

    return bool(METRICS.get(metric, False))


def markdown_report(result: EvaluationResult, figures: Mapping[str, str] | None = None) -> str:
    """The Markdown report: settings, notes, one table per experiment and metric, residuals, timings.

    Args:
        result: What :func:`artefix.evaluation.experiments.evaluate` returned.
        figures: Experiment -> relative path of its figure, to embed.

    Returns:
        The Markdown text.
    """
    run = result.settings
    cells = _cells(result)
    lines = ["# artefix evaluation", ""]
    models = ", ".join(f"`{m['name']}` ({'+'.join(m['heads'])})" for m in run.get("models", [])) or "none"
    matrix = run.get("matrix")
    lines += [
        f"- Data: {len(run.get('files', []))} scan(s), {run.get('n_slices')} evaluation slice(s) "
        f"(foreground filter{', at most ' + str(run['max_slices']) if run.get('max_slices') else ''}), "
        f"matrix {'native' if matrix is None else f'{matrix}x{matrix}'}.",
        f"- Seed {run.get('seed')}, {run.get('threads')} thread(s) per process, {run.get('jobs')} process(es), "
        f"device {run.get('device')}.",
        f"- Models: {models}.",
        "- Metrics on z-normalised images: every output is z-normalised (zero mean, unit standard deviation) "
        "before it is compared with the z-normalised clean slice. Cells: mean ± standard error over slices. "
        "**Bold**: the best mean and every method not significantly different from it (Friedman test over "
        "the slices x methods matrix, Nemenyi post-hoc, 0.05; all bold when Friedman finds no difference; "
        "a table of two methods uses the Wilcoxon signed-rank test instead, and methods with identical "
        "values, such as `input` and `zero-filled` for subsampling, count once).",
        "- `input` is the corrupted image; `-paper` baselines use the paper's settings, the others are tuned; "
        "`A>B` applies model A, then model B to A's (z-normalised) output.",
    ]
    if "seconds" in run:
        lines.append(f"- Run time: {run['seconds']:.1f} s.")
    lines.append("")
    if result.notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in result.notes] + [""]
    for exp, methods in result.methods.items():
        lines += [f"## {exp}", ""]
        if exp in SCENARIOS:
            parts = " and ".join(f"{name} {severity_label(name, lv)}" for name, lv in SCENARIOS[exp])
            lines += [f"{parts}, applied in a random order per slice.", ""]
        sevs = result.severities[exp]
        for metric in _metrics(result):
            better = "lower" if _lower_is_better(metric) else "higher"
            n = {cells[(exp, s, metric, methods[0])]["n"] for s in sevs if (exp, s, metric, methods[0]) in cells}
            lines += [
                f"### {exp}: {METRIC_TITLES.get(metric, metric)}, {better} is better "
                f"(n = {', '.join(map(str, sorted(n)))})",
                "",
            ]
            lines.append("| method | " + " | ".join(severity_label(exp, s) for s in sevs) + " |")
            lines.append("|---|" + "---:|" * len(sevs))
            for method in methods:
                row = []
                for s in sevs:
                    c = cells.get((exp, s, metric, method))
                    text = "" if c is None else format_cell(c["mean"], c["sem"], metric)
                    row.append(f"**{text}**" if c is not None and c["bold"] else text)
                lines.append(f"| {method} | " + " | ".join(row) + " |")
            lines.append("")
        if figures and exp in figures:
            lines += [f"![{exp}: example slice]({figures[exp]})", ""]
    lines += _residual_lines(result) + _timing_lines(result)
    return "\n".join(lines).rstrip() + "\n"


def _residual_lines(result: EvaluationResult) -> list[str]:
    if not result.residuals:
        return []
    lines = [
        "## Mean absolute residuals",
        "",
        "Mean over slices of the mean |residual| of each head (z-normalised units): which artefacts a model "
        "'sees'. The paper reports these for the multi-task models in the two scenarios.",
        "",
        "| experiment | severity | model | " + " | ".join(HEADS) + " |",
        "|---|---|---|" + "---:|" * len(HEADS),
    ]
    for r in result.residuals:
        vals = [f"{r['mean_abs'][h]:.4f}" if h in r["mean_abs"] else "" for h in HEADS]
        lines.append(
            f"| {r['experiment']} | {severity_label(r['experiment'], r['severity'])} | {r['model']} | "
            + " | ".join(vals)
            + " |"
        )
    return [*lines, ""]


def _timing_lines(result: EvaluationResult) -> list[str]:
    per_run = result.settings.get("seconds_per_run") or {}
    if not per_run:
        return []
    runs = result.settings.get("method_runs") or {}
    lines = ["## Run time per method", "", "| method | runs | seconds per run |", "|---|---:|---:|"]
    for method, sec in per_run.items():
        lines.append(f"| {method} | {runs.get(method, '')} | {sec:.3f} |")
    return [*lines, ""]


def summary_csv(rows: Sequence[Mapping[str, Any]]) -> str:
    """``summary.csv``: one line per ``summary.json`` row, floats in full precision, empty for null."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_FIELDS)
    for r in rows:
        writer.writerow(
            [
                r["experiment"],
                "" if r["severity"] is None else repr(float(r["severity"])),
                r["method"],
                r["metric"],
                "" if r["mean"] is None else repr(float(r["mean"])),
                "" if r["sem"] is None else repr(float(r["sem"])),
                "true" if r["bold"] else "false",
                int(r["n"]),
            ]
        )
    return buffer.getvalue()


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "#": r"\#",
    "_": r"\_",
    "$": r"\$",
    "{": r"\{",
    "}": r"\}",
    ">": r"$>$",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
}


def _tex(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex_tables(result: EvaluationResult) -> str:
    r"""``tables.tex``: one ``tabular`` (booktabs) per experiment and metric, bold groups in ``\textbf``."""
    cells = _cells(result)
    out = [
        "% artefix evaluate: mean $\\pm$ standard error; \\textbf = best and not significantly different",
        "% (Friedman + Nemenyi, 0.05; Wilcoxon for two methods). Needs \\usepackage{booktabs}.",
        "",
    ]
    for exp, methods in result.methods.items():
        sevs = result.severities[exp]
        for metric in _metrics(result):
            out.append(f"% {exp}: {METRIC_TITLES.get(metric, metric)}")
            out.append("\\begin{tabular}{l" + "r" * len(sevs) + "}")
            out.append("\\toprule")
            out.append(
                f"{_tex(exp)}: {_tex(metric)} & " + " & ".join(_tex(severity_label(exp, s)) for s in sevs) + " \\\\"
            )
            out.append("\\midrule")
            for method in methods:
                row = []
                for s in sevs:
                    c = cells.get((exp, s, metric, method))
                    text = "" if c is None else format_cell(c["mean"], c["sem"], metric, pm="$\\pm$")
                    row.append(f"\\textbf{{{text}}}" if c is not None and c["bold"] else text)
                out.append(f"{_tex(method)} & " + " & ".join(row) + " \\\\")
            out += ["\\bottomrule", "\\end{tabular}", ""]
    return "\n".join(out)


def example_figure(examples: Sequence[Example], path: Path, title: str = "") -> Path:
    """Save the example figure of one experiment as PNG.

    For each severity two rows: the z-normalised images (clean, input, each method; grey, window
    = the clean slice's 0.5-99.5 percentiles) and the error maps ``|output - clean|`` (one colour scale
    per severity: 0 to the 99.5th percentile of the input's error).

    Args:
        examples: One :class:`Example` per severity.
        path: PNG file (written atomically).
        title: Figure title.

    Returns:
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not examples:
        raise ValueError("no example images to draw")
    names = list(examples[0].images)
    cols, rows = len(names), 2 * len(examples)
    fig, axes = plt.subplots(rows, cols, figsize=(1.9 * cols, 2.0 * rows), squeeze=False)
    for k, ex in enumerate(examples):
        clean = ex.images["clean"]
        lo, hi = (float(v) for v in np.percentile(clean, [0.5, 99.5]))
        err_hi = float(np.percentile(np.abs(ex.images.get("input", clean) - clean), 99.5)) or 1.0
        label = severity_label(ex.experiment, ex.severity)
        for j, name in enumerate(names):
            top, bottom = axes[2 * k, j], axes[2 * k + 1, j]
            top.imshow(ex.images[name], cmap="gray", vmin=lo, vmax=hi)
            top.set_title(name, fontsize=8)
            if name != "clean":
                bottom.imshow(np.abs(ex.images[name] - clean), cmap="magma", vmin=0.0, vmax=err_hi)
            for ax in (top, bottom):
                ax.set_xticks([])
                ax.set_yticks([])
            if j == 0:
                top.set_ylabel(label, fontsize=8)
            if j == 1:
                bottom.set_ylabel("|output - clean|", fontsize=8)
            if name == "clean":
                bottom.axis("off")
    first = examples[0]
    fig.suptitle(title or f"{first.experiment}: {Path(first.file).name} slice {first.index}", fontsize=10)
    fig.tight_layout()
    with atomic_file(Path(path)) as tmp:
        fig.savefig(tmp, format="png", dpi=90)
    plt.close(fig)
    return Path(path)


def _json_rows(rows: Sequence[Mapping[str, Any]]) -> str:
    if not rows:
        return "[]\n"
    return "[\n" + ",\n".join(json.dumps(r, allow_nan=False) for r in rows) + "\n]\n"


def _write_text(path: Path, text: str) -> Path:
    with atomic_file(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def check_output_folder(out: Path, *, overwrite: bool = False) -> None:
    """Refuse an output folder that an evaluation must not write into (checked before any work).

    An earlier evaluation is a folder holding ``summary.json``; a folder holding other files (e.g. a
    ``summary.csv`` of the user's own) is no earlier evaluation, and writing into it could replace them.

    Args:
        out: Output folder (need not exist).
        overwrite: Write into a folder that holds an earlier evaluation or other files.

    Raises:
        OutputError: ``out`` is a file or cannot be listed, or, without ``overwrite``, holds an earlier
            evaluation or other files.
    """
    out = Path(out).expanduser()
    if out.exists() and not out.is_dir():
        raise OutputError(f"{out}: exists and is not a folder")
    if overwrite or not out.is_dir():
        return
    if (out / "summary.json").exists():
        raise OutputError(f"{out}: holds an earlier evaluation; pass `overwrite` to replace it")
    try:
        names = sorted(p.name for p in out.iterdir())
    except OSError as exc:
        raise OutputError(f"{out}: cannot list the output folder ({one_line(exc)})") from exc
    if names:
        shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
        raise OutputError(
            f"{out}: holds files but no earlier evaluation ({shown}); choose another folder or pass `overwrite` "
            "to write into it"
        )


def write_outputs(result: EvaluationResult, out: Path, *, overwrite: bool = False) -> list[Path]:
    """Write every output file of an evaluation into the folder ``out`` (created if needed).

    Args:
        result: The evaluation.
        out: Output folder.
        overwrite: Write into a folder that holds an earlier evaluation or other files, replacing those
            with an output's name (:func:`check_output_folder`).

    Returns:
        The written paths.

    Raises:
        OutputError: ``out`` is a file, or holds an earlier evaluation or other files and ``overwrite``
            is False.
    """
    out = Path(out).expanduser()
    check_output_folder(out, overwrite=overwrite)
    try:
        (out / "figures").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out}: cannot create the output folder ({exc})") from exc
    written: list[Path] = []
    figures: dict[str, str] = {}
    for exp, examples in result.examples.items():
        if examples:
            written.append(example_figure(examples, out / "figures" / f"{exp}.png"))
            figures[exp] = f"figures/{exp}.png"
    settings = dict(result.settings)
    settings["notes"] = list(result.notes)
    settings["methods"] = {e: list(m) for e, m in result.methods.items()}
    written += [
        _write_text(out / "summary.json", _json_rows(result.summary)),
        _write_text(out / "summary.csv", summary_csv(result.summary)),
        _write_text(out / "per_slice.json", _json_rows(result.per_slice)),
        _write_text(out / "residuals.json", _json_rows(result.residuals)),
        _write_text(out / "evaluation.json", json.dumps(settings, indent=2) + "\n"),
        _write_text(out / "report.md", markdown_report(result, figures)),
        _write_text(out / "tables.tex", latex_tables(result)),
    ]
    return written
