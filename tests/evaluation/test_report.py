"""Evaluation outputs: JSON, CSV, Markdown and LaTeX carry the same numbers; figures; overwrite rules."""

from __future__ import annotations

import csv
import json
import math
import re

import numpy as np
import pytest
from PIL import Image

from artefix.errors import OutputError
from artefix.evaluation.experiments import EvaluationResult, Example, summarise_rows
from artefix.evaluation.metrics import METRICS
from artefix.evaluation.report import (
    FILES,
    METRIC_TITLES,
    format_cell,
    format_number,
    latex_tables,
    markdown_report,
    severity_label,
    write_outputs,
)

METHODS = {"noise": ("input", "cad", "mt"), "noise+bias": ("input", "a>b", "mt")}
SEVERITIES = {"noise": (5.0, 0.0, -5.0), "noise+bias": (None,)}


@pytest.fixture(scope="module")
def result() -> EvaluationResult:
    """A result built from synthetic per-slice scores: method ``mt`` clearly best, 8 slices."""
    rng = np.random.default_rng(0)
    rows = []
    for exp, methods in METHODS.items():
        for sev in SEVERITIES[exp]:
            for i in range(8):
                for j, method in enumerate(methods):
                    for metric in METRICS:
                        value = float(0.5 + 0.2 * j + 0.05 * rng.standard_normal())
                        rows.append(
                            dict(
                                file="d/v.nii",
                                slice=i,
                                experiment=exp,
                                severity=sev,
                                method=method,
                                metric=metric,
                                value=value,
                            )
                        )
    summary = summarise_rows(rows, METHODS, SEVERITIES)
    img = rng.random((48, 48)).astype(np.float32)
    examples = {
        exp: [
            Example(exp, sev, "d/v.nii", 0, {"clean": img, **{m: img + 0.1 * k for k, m in enumerate(ms)}})
            for sev in SEVERITIES[exp]
        ]
        for exp, ms in METHODS.items()
    }
    residuals = [
        {
            "experiment": "noise+bias",
            "severity": None,
            "model": "mt",
            "n_slices": 8,
            "mean_abs": {"bias": 0.02, "subsampling": 0.002, "motion": 0.01, "noise": 0.06},
        }
    ]
    settings = {
        "files": ["d/v.nii"],
        "n_slices": 8,
        "seed": 0,
        "matrix": None,
        "models": [],
        "seconds": 1.5,
        "seconds_per_run": {"cad": 0.01},
        "method_runs": {"cad": 24},
    }
    return EvaluationResult(
        rows, summary, residuals, dict(METHODS), dict(SEVERITIES), examples, ["Skipped bm3d: not installed."], settings
    )


def test_number_formats_and_labels():
    assert format_number(0.97349, "ssim") == "0.973"
    assert format_number(0.004512, "mse") == "0.0045"
    assert format_number(31.456, "psnr") == "31.46"
    assert format_number(None, "ssim") == "n/a" and format_number(math.inf, "psnr") == "n/a"
    assert format_cell(0.5, None, "ssim") == "0.500"
    assert format_cell(0.5, 0.01, "vif", pm="$\\pm$") == "0.500 $\\pm$ 0.010"
    assert [severity_label("bias", s) for s in (0.05, 0.1, 0.2)] == ["5%", "10%", "20%"]
    assert severity_label("subsampling", 3.0) == "x3" and severity_label("motion", 0.125) == "12.5%"
    assert severity_label("noise", -5.0) == "-5 dB"
    assert severity_label("subsampling+motion", None) == "x3 + 12.5%"
    assert severity_label("noise+bias", None) == "0 dB + 10%"


def _parse_markdown(text: str) -> dict:
    """(experiment, severity label, metric, method) -> (mean str, sem str or None, bold)."""
    titles = {v: k for k, v in METRIC_TITLES.items()}
    cells, exp, metric, labels = {}, None, None, []
    for line in text.splitlines():
        if line.startswith("## "):
            exp = line[3:].strip()
        elif line.startswith("### "):
            title = line[4:].split(": ", 1)[1].rsplit(", ", 1)[0]
            metric = titles[title]
        elif line.startswith("| method |"):
            labels = [c.strip() for c in line.strip("|").split("|")][1:]
        elif line.startswith("| ") and exp in METHODS and metric and not line.startswith("|---"):
            parts = [c.strip() for c in line.strip().strip("|").split("|")]
            for label, cell in zip(labels, parts[1:], strict=True):
                bold = cell.startswith("**") and cell.endswith("**")
                numbers = cell.strip("*").split(" ± ")
                cells[(exp, label, metric, parts[0])] = (numbers[0], numbers[1] if len(numbers) > 1 else None, bold)
    return cells


def test_written_files_agree(result, tmp_path):
    out = tmp_path / "eval"
    written = write_outputs(result, out)
    names = {p.relative_to(out).as_posix() for p in written}
    assert set(FILES) <= names and {"figures/noise.png", "figures/noise+bias.png"} <= names

    summary = json.loads((out / "summary.json").read_text())
    assert summary == result.summary
    assert len(summary) == sum(len(METHODS[e]) * len(SEVERITIES[e]) for e in METHODS) * len(METRICS)
    # Ranks are the same on all 8 slices: the best method is bold; the worst is two mean ranks behind, more
    # than Nemenyi's critical difference 2.343 * sqrt(3 * 4 / (6 * 8)) = 1.17, so it is not.
    for row in summary:
        if row["metric"] == "ssim" and row["method"] in ("mt", "input"):
            assert row["bold"] == (row["method"] == "mt")

    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == len(summary)
    for c, j in zip(rows, summary, strict=True):
        assert (c["experiment"], c["method"], c["metric"]) == (j["experiment"], j["method"], j["metric"])
        assert (None if c["severity"] == "" else float(c["severity"])) == j["severity"]
        assert float(c["mean"]) == j["mean"] and float(c["sem"]) == j["sem"]
        assert (c["bold"] == "true") == j["bold"] and int(c["n"]) == j["n"] == 8

    md = _parse_markdown((out / "report.md").read_text())
    assert len(md) == len(summary)
    for j in summary:
        mean, sem, bold = md[
            (j["experiment"], severity_label(j["experiment"], j["severity"]), j["metric"], j["method"])
        ]
        assert bold == j["bold"]
        assert mean == format_number(j["mean"], j["metric"]) and sem == format_number(j["sem"], j["metric"])
        decimals = len(mean.split(".")[1])
        assert abs(float(mean) - j["mean"]) <= 0.5 * 10**-decimals + 1e-12

    tex = (out / "tables.tex").read_text()
    assert tex.count("\\begin{tabular}") == len(METHODS) * len(METRICS)
    assert tex.count("\\textbf{") == sum(j["bold"] for j in summary)
    assert "a$>$b" in tex and "0 dB + 10\\%" in tex

    per_slice = json.loads((out / "per_slice.json").read_text())
    assert summarise_rows(per_slice, METHODS, SEVERITIES) == summary
    assert json.loads((out / "residuals.json").read_text()) == result.residuals
    settings = json.loads((out / "evaluation.json").read_text())
    assert settings["notes"] == result.notes and settings["methods"]["noise"] == list(METHODS["noise"])

    with Image.open(out / "figures" / "noise.png") as im:
        width, height = im.size
    with Image.open(out / "figures" / "noise+bias.png") as im:
        assert im.size[1] < height  # one severity (two rows) instead of three
    assert width > height / 3


def test_markdown_mentions_notes_residuals_and_figures(result):
    text = markdown_report(result, {"noise": "figures/noise.png"})
    assert "Skipped bm3d: not installed." in text
    assert "![noise: example slice](figures/noise.png)" in text
    assert re.search(r"\| noise\+bias \| 0 dB \+ 10% \| mt \| 0\.0200 \| 0\.0020 \| 0\.0100 \| 0\.0600 \|", text)
    assert "z-normalised" in text and "Nemenyi" in text


def test_latex_escapes_special_characters(result):
    tex = latex_tables(result)
    assert "noise+bias: vif-paper" in tex
    assert "%" not in tex.replace("\\%", "").replace("% ", "").replace("%\n", "")


def test_write_outputs_refuses_a_folder_of_other_files(result, tmp_path):
    """A user's own summary.csv in a folder without an earlier evaluation is not replaced silently."""
    (tmp_path / "summary.csv").write_text("mine\n")
    (tmp_path / "notes.txt").write_text("keep\n")
    with pytest.raises(OutputError, match="holds files but no earlier evaluation .*`overwrite`"):
        write_outputs(result, tmp_path)
    assert (tmp_path / "summary.csv").read_text() == "mine\n" and not (tmp_path / "summary.json").exists()
    write_outputs(result, tmp_path, overwrite=True)
    assert (tmp_path / "summary.csv").read_text() != "mine\n" and (tmp_path / "notes.txt").read_text() == "keep\n"
    write_outputs(result, tmp_path / "new")  # a new folder, and an empty one, are fine
    (tmp_path / "empty").mkdir()
    write_outputs(result, tmp_path / "empty")


def test_write_outputs_refuses_an_earlier_run(result, tmp_path):
    write_outputs(result, tmp_path)
    with pytest.raises(OutputError, match="`overwrite`"):
        write_outputs(result, tmp_path)
    write_outputs(result, tmp_path, overwrite=True)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="not a folder"):
        write_outputs(result, tmp_path / "file")
