import logging
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import yaml

from artefix.cli import main
from artefix.training.engine import FitResult

CLI = [sys.executable, "-c", "from artefix.cli import main; main()"]
QUIET = ["--set", "trainer.progress_bar=none", "--set", "trainer.val_metrics=[mse]"]


def run(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["artefix", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


@pytest.fixture()
def tiny():
    return Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def test_help_lists_train_and_tune_without_importing_torch():
    result = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True)
    assert "train" in result.stdout and "tune" in result.stdout
    for command in ("train", "tune"):
        text = subprocess.run([*CLI, command, "--help"], capture_output=True, text=True, check=True).stdout
        assert "--set" in text and "--data-root" in text
    check = "import sys; from artefix.cli import app; print('torch' in sys.modules, 'lightning' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True).stdout.split() == [
        "False",
        "False",
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "config file not found"),
        ("trainer: {max_epochs: [\n", "invalid YAML"),
        ("trainer: {max_epoch: 3}\n", "did you mean 'max_epochs'"),
        ("data: {source: sample, matrix: [64]}\n", "data.matrix must be [H, W]"),
    ],
)
def test_config_errors_exit_2_with_one_line(tmp_path, monkeypatch, capsys, content, message):
    path = tmp_path / "c.yaml"
    if content is not None:
        path.write_text(content)
    for command in ("train", "tune"):
        extra = ["--trials", "1"] if command == "tune" else []
        code, out, err = run([command, path, *extra, "--out", tmp_path / "o"], monkeypatch, capsys)
        assert code == 2
        assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not (tmp_path / "o").exists()


def test_bad_override_and_empty_data(tmp_path, monkeypatch, capsys, tiny):
    code, _, err = run(["train", tiny, "--set", "trainer.max_epochs"], monkeypatch, capsys)
    assert code == 2 and "KEY=VALUE" in err
    (tmp_path / "empty").mkdir()
    args = ["train", tiny, "--set", "data.source=files", "--set", f"data.roots=[{tmp_path / 'empty'}]"]
    code, _, err = run([*args, "--out", tmp_path / "o"], monkeypatch, capsys)
    assert code == 2 and "no scans found" in err


def test_check_prints_the_resolved_config(tmp_path, monkeypatch, capsys, tiny):
    code, out, _ = run(
        ["train", tiny, "--check", "--set", "trainer.max_epochs=3", "--data-root", tmp_path], monkeypatch, capsys
    )
    assert code == 0
    doc = yaml.safe_load(out)
    assert doc["trainer"]["max_epochs"] == 3 and doc["data"]["base"] == str(tmp_path)


@pytest.mark.slow
def test_train_then_refuse_overwrite_then_resume(tmp_path, monkeypatch, capsys, tiny):
    out = tmp_path / "run"
    # a single-task denoising model learns fast: validation MSE must fall clearly within three epochs
    args = ["train", tiny, "--out", out, *QUIET, "--set", "trainer.max_epochs=3"]
    args += ["--set", "model.heads=[noise]", "--set", "data.artefacts=[noise]"]
    args += ["--set", "optimizer.log10_lr=-2", "--set", "loss.alpha=0.01"]
    import lightning  # noqa: F401 (its handlers write to the stderr of import time: point them at the captured one)

    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        for handler in logging.getLogger(name).handlers:
            monkeypatch.setattr(handler, "stream", sys.stderr)
    with warnings.catch_warnings(record=True) as caught:  # what a terminal would show on stderr
        warnings.simplefilter("always")
        code, stdout, err = run(args, monkeypatch, capsys)
    assert code == 0, err
    assert "finished: 3 epochs" in stdout and str(out / "best.safetensors") in stdout
    # neither Lightning's advertisements nor the LeafSpec deprecation it triggers (recent torch) reach the user
    shown = [str(w.message) for w in caught]
    assert "Tip:" not in stdout + err and "litlogger" not in stdout + err, err
    assert not [m for m in shown if "LeafSpec" in m], shown
    assert "GPU available" in err  # Lightning's other info lines are kept
    result = FitResult.read(out)
    mses = [h["val/mse"] for h in result.history]
    assert mses[-1] < 0.8 * mses[0], mses
    code, _, err = run(args, monkeypatch, capsys)
    assert code == 2 and "already holds a training run; pass --resume" in err
    code, stdout, _ = run([*args, "--resume", "--set", "trainer.max_epochs=4"], monkeypatch, capsys)
    assert code == 0 and "finished: 4 epochs" in stdout
    assert [h["epoch"] for h in FitResult.read(out).history] == [0, 1, 2, 3]


def write_pipeline(folder, tiny, **second):
    doc = {"name": "pipe", "stages": [{"name": "a", "config": str(tiny)}, {"name": "b", "config": str(tiny), **second}]}
    path = folder / "pipe.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


@pytest.mark.slow
def test_train_runs_a_pipeline_of_stages_in_one_command(tmp_path, monkeypatch, capsys, tiny):
    pipe = write_pipeline(tmp_path, tiny, init="a")
    args = ["train", pipe, "--out", tmp_path / "run", *QUIET, "--set", "trainer.max_epochs=1"]
    code, out, err = run(args, monkeypatch, capsys)
    assert code == 0, err
    assert "a: finished, 1 epochs" in out and "b: finished, 1 epochs" in out
    assert f"weights: {tmp_path / 'run' / 'b' / 'best.safetensors'}" in out
    code, _, err = run(args, monkeypatch, capsys)
    assert code == 2 and "already holds a training pipeline; pass --resume" in err and err.count("\n") == 1
    code, out, _ = run([*args, "--resume"], monkeypatch, capsys)
    assert code == 0 and "b: finished, 1 epochs" in out


def test_train_check_prints_every_stage_of_a_pipeline(tmp_path, monkeypatch, capsys, tiny):
    pipe = write_pipeline(tmp_path, tiny, init="a")
    code, out, _ = run(["train", pipe, "--check", "--set", "trainer.max_epochs=4"], monkeypatch, capsys)
    assert code == 0
    doc = yaml.safe_load(out)
    assert doc["name"] == "pipe" and [s["stage"] for s in doc["stages"]] == ["a", "b"]
    assert doc["stages"][1]["model"]["init"] == str(Path("runs", "pipe", "a", "best.safetensors").absolute())
    assert {s["trainer"]["max_epochs"] for s in doc["stages"]} == {4}


def test_a_bad_pipeline_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys, tiny):
    pipe = write_pipeline(tmp_path, tiny, init="later")
    code, _, err = run(["train", pipe, "--out", tmp_path / "run"], monkeypatch, capsys)
    assert code == 2 and "starts from 'later', which is not an earlier stage" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists()


def test_a_missing_train_extra_is_a_one_line_error(tmp_path, monkeypatch, capsys, tiny):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "lightning" else real(name, *a))
    for command in (
        ["train", tiny, "--out", tmp_path / "run"],
        ["tune", tiny, "--trials", "1", "--out", tmp_path / "tune"],
    ):
        code, _, err = run(command, monkeypatch, capsys)
        assert code == 2 and "'.[train]'" in err and err.count("\n") == 1
    assert not (tmp_path / "run").exists() and not (tmp_path / "tune").exists()
