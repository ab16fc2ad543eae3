"""``artefix evaluate`` end to end: every output file, consistent numbers, determinism, --jobs, errors."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import artefix
from artefix.cli import main
from artefix.evaluation.experiments import summarise_rows
from artefix.evaluation.metrics import METRICS
from artefix.evaluation.report import METRIC_TITLES, format_number, severity_label
from artefix.fft import fourier_resize
from artefix.models import build_model, build_single_task_model
from artefix.models.checkpoint import save_model

HEADS = ("bias", "subsampling", "motion", "noise")


def run(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["artefix", "evaluate", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, Path]:
    """A 64x64x4 NIfTI of built-in brain slices and three tiny models (multi-task, noise, bias)."""
    folder = tmp_path_factory.mktemp("inputs")
    imgs = [
        np.abs(np.asarray(fourier_resize(artefix.load_sample(n).astype(np.float64), (64, 64))))
        for n in ("brain-t1", "brain-t2", "brain-flair")
    ]
    vol = np.stack([*imgs, 0.8 * imgs[1]], axis=-1).astype(np.float32)
    nib.save(nib.Nifti1Image(vol, np.eye(4)), folder / "vol.nii.gz")
    return {
        "data": folder / "vol.nii.gz",
        "mt": save_model(build_model("tiny", seed=0), folder / "mt-tiny.safetensors"),
        "noise": save_model(build_single_task_model("noise", "tiny", seed=1), folder / "noise-tiny.safetensors"),
        "bias": save_model(build_single_task_model("bias", "tiny", seed=2), folder / "bias-tiny.safetensors"),
    }


def _models(inputs) -> str:
    return ",".join(str(inputs[k]) for k in ("mt", "noise", "bias"))


def _load(folder: Path, name: str):
    return json.loads((folder / name).read_text())


@pytest.fixture(scope="module")
def full_run(inputs, tmp_path_factory) -> Path:
    """``--experiments noise,multi --max-slices 2`` with every installed noise method (BM3D included)."""
    out = tmp_path_factory.mktemp("runs") / "full"
    mp = pytest.MonkeyPatch()
    mp.setattr(
        sys,
        "argv",
        ["artefix", "evaluate", str(inputs["data"]), "--out", str(out), "--experiments", "noise,multi",
         "--max-slices", "2", "--models", _models(inputs), "-q"],
    )  # fmt: skip
    try:
        with pytest.raises(SystemExit) as exc:
            main()
            raise SystemExit(0)
    finally:
        mp.undo()
    assert (exc.value.code or 0) == 0
    return out


def _parse_markdown(text: str) -> dict:
    titles = {v: k for k, v in METRIC_TITLES.items()}
    cells, exp, metric, labels = {}, None, None, []
    for line in text.splitlines():
        if line.startswith("## "):
            exp, metric = line[3:].strip(), None
        elif line.startswith("### "):
            metric = titles[line[4:].split(": ", 1)[1].rsplit(", ", 1)[0]]
        elif line.startswith("| method |"):
            labels = [c.strip() for c in line.strip("|").split("|")][1:]
        elif line.startswith("| ") and metric and not line.startswith("|---"):
            parts = [c.strip() for c in line.strip().strip("|").split("|")]
            for label, cell in zip(labels, parts[1:], strict=True):
                mean, _, sem = cell.strip("*").partition(" ± ")
                cells[(exp, label, metric, parts[0])] = (mean, sem, cell.startswith("**"))
    return cells


@pytest.mark.slow
def test_full_run_writes_consistent_outputs(full_run):
    out = full_run
    for name in ("report.md", "summary.json", "summary.csv", "per_slice.json", "residuals.json", "tables.tex"):
        assert (out / name).is_file(), name
    for exp in ("noise", "subsampling+motion", "noise+bias"):
        assert (out / "figures" / f"{exp}.png").stat().st_size > 1000
    summary = _load(out, "summary.json")
    settings = _load(out, "evaluation.json")
    methods = settings["methods"]
    assert methods["noise+bias"] == [
        "input", "noise-tiny", "bias-tiny", "bias-tiny>noise-tiny", "noise-tiny>bias-tiny", "mt-tiny",
    ]  # fmt: skip
    assert methods["subsampling+motion"] == ["input", "mt-tiny"]
    assert methods["noise"][:2] == ["input", "cad"] and methods["noise"][-2:] == ["noise-tiny", "mt-tiny"]
    assert {r["metric"] for r in summary} == set(METRICS)
    assert {r["severity"] for r in summary if r["experiment"] != "noise"} == {None}
    assert {r["n"] for r in summary} == {2}

    # JSON == CSV (exact) == Markdown (to the printed precision); per-slice values rebuild the summary.
    with open(out / "summary.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert [(r["method"], float(r["mean"]), r["bold"] == "true") for r in rows] == [
        (j["method"], j["mean"], j["bold"]) for j in summary
    ]
    md = _parse_markdown((out / "report.md").read_text())
    for j in summary:
        mean, sem, bold = md[
            (j["experiment"], severity_label(j["experiment"], j["severity"]), j["metric"], j["method"])
        ]
        assert (mean, sem, bold) == (
            format_number(j["mean"], j["metric"]),
            format_number(j["sem"], j["metric"]),
            j["bold"],
        )
    per_slice = _load(out, "per_slice.json")
    severities = {e: ([None] if "+" in e else [5.0, 0.0, -5.0]) for e in methods}
    assert summarise_rows(per_slice, methods, severities) == summary
    assert {(r["file"], r["slice"]) for r in per_slice} == {
        (str(settings["files"][0]), 1),
        (str(settings["files"][0]), 3),
    }

    # Residuals: every head of the multi-task model in both scenarios, finite and non-negative.
    residuals = {(r["experiment"], r["model"]): r for r in _load(out, "residuals.json")}
    for scenario in ("subsampling+motion", "noise+bias"):
        r = residuals[(scenario, "mt-tiny")]
        assert set(r["mean_abs"]) == set(HEADS) and r["n_slices"] == 2
        assert all(v >= 0 for v in r["mean_abs"].values())
    assert set(residuals[("noise+bias", "noise-tiny")]["mean_abs"]) == {"noise"}
    report = (out / "report.md").read_text()
    if "bm3d" not in methods["noise"]:
        assert "Skipped bm3d, bm3d-paper" in report


@pytest.mark.slow
def test_same_numbers_for_any_jobs_and_method_list(full_run, inputs, tmp_path, monkeypatch, capsys):
    common = [inputs["data"], "--experiments", "noise,multi", "--max-slices", "2", "--models", _models(inputs)]
    common += ["--skip-methods", "bm3d,bm3d-paper", "-q"]
    assert run([*common, "--out", tmp_path / "j1"], monkeypatch, capsys)[0] == 0
    assert run([*common, "--out", tmp_path / "j2", "--jobs", "2"], monkeypatch, capsys)[0] == 0
    assert (tmp_path / "j1" / "summary.json").read_bytes() == (tmp_path / "j2" / "summary.json").read_bytes()
    assert (tmp_path / "j1" / "per_slice.json").read_bytes() == (tmp_path / "j2" / "per_slice.json").read_bytes()
    assert (tmp_path / "j1" / "residuals.json").read_bytes() == (tmp_path / "j2" / "residuals.json").read_bytes()
    # The corruptions and scores do not depend on which other methods ran (nor on the earlier process).
    full = [r for r in _load(full_run, "per_slice.json") if not r["method"].startswith("bm3d")]
    assert full == _load(tmp_path / "j1", "per_slice.json")
    # Another seed, other corruptions.
    code, _, _ = run(
        [inputs["data"], "--experiments", "noise", "--max-slices", "2", "--models", "none", "--methods", "cad",
         "--seed", "1", "--out", tmp_path / "s1", "-q"],
        monkeypatch,
        capsys,
    )  # fmt: skip
    assert code == 0
    other = {
        (r["slice"], r["severity"], r["method"], r["metric"]): r["value"]
        for r in _load(tmp_path / "s1", "per_slice.json")
    }
    first = {(r["slice"], r["severity"], r["method"], r["metric"]): r["value"] for r in full}
    assert all(other[k] != first[k] for k in other if k[3] == "mse")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--experiments", "noise,blur"], "unknown experiment 'blur'"),
        (["--models", "no-such-model"], "'no-such-model' is not installed"),
        (["--models", "./missing.safetensors"], "model file not found"),
        (["--models", "my model=mt-lc-brain"], "a labelled model is LABEL=MODEL"),
        (["--models", "mine=./missing.safetensors"], "model file not found"),
        (["--methods", "cad,magic"], "--methods: unknown method(s) magic"),
        (["--skip-methods", "bm5d"], "--skip-methods: unknown method(s) bm5d"),
    ],
)
def test_errors_exit_2_with_one_line(inputs, tmp_path, monkeypatch, capsys, args, message):
    code, _, err = run([inputs["data"], "--out", tmp_path / "o", *args], monkeypatch, capsys)
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o" / "summary.json").exists()


@pytest.mark.slow
def test_refuses_an_earlier_run_and_missing_data(full_run, inputs, tmp_path, monkeypatch, capsys):
    code, _, err = run([inputs["data"], "--out", full_run, "--experiments", "noise"], monkeypatch, capsys)
    assert code == 2 and "--overwrite" in err
    code, _, err = run([tmp_path / "nothing-here", "--out", tmp_path / "o"], monkeypatch, capsys)
    assert code == 2 and "no such file or folder" in err


def test_refuses_a_folder_of_other_files_before_any_work(inputs, tmp_path, monkeypatch, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "summary.csv").write_text("my own table\n")
    code, _, err = run([inputs["data"], "--out", out, "--experiments", "noise"], monkeypatch, capsys)
    assert code == 2 and err.startswith("error: ") and err.count("\n") == 1
    assert "holds files but no earlier evaluation (summary.csv)" in err and "--overwrite" in err
    assert sorted(p.name for p in out.iterdir()) == ["summary.csv"]
    assert (out / "summary.csv").read_text() == "my own table\n"
    (tmp_path / "afile").write_text("x")
    code, _, err = run([inputs["data"], "--out", tmp_path / "afile"], monkeypatch, capsys)
    assert code == 2 and "exists and is not a folder" in err


def test_help_does_not_import_torch():
    code = "import sys; import artefix.cli; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_models_are_the_installed_brain_models(inputs, tmp_path, monkeypatch, capsys):
    from artefix.models.registry import WEIGHTS_ENV

    weights = tmp_path / "weights"
    weights.mkdir()
    save_model(build_model("tiny", seed=3), weights / "mt-lc-brain.safetensors")
    save_model(build_single_task_model("motion", "tiny", seed=4), weights / "motion-brain.safetensors")
    save_model(build_model("tiny", seed=5), weights / "mt-lc-pelvis.safetensors")
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    args = [inputs["data"], "--experiments", "noise", "--methods", "cad", "--max-slices", "1", "--out", tmp_path / "o"]
    code, out, _ = run(args, monkeypatch, capsys)
    assert code == 0 and "note: Model `motion-brain` (heads motion) takes part in none" in out
    settings = _load(tmp_path / "o", "evaluation.json")
    assert [m["name"] for m in settings["models"]] == ["mt-lc-brain", "motion-brain"]
    assert settings["methods"]["noise"] == ["input", "cad", "mt-lc-brain"]
    code, _, _ = run([*args[:-2], "--models", "mt-lc-pelvis", "--out", tmp_path / "p", "-q"], monkeypatch, capsys)
    assert code == 0 and _load(tmp_path / "p", "evaluation.json")["methods"]["noise"][-1] == "mt-lc-pelvis"
