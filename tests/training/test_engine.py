import csv
import json
import math
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from lightning.pytorch import Callback

from artefix.errors import ArtefixError, InputError, OutputError
from artefix.models.checkpoint import load_model
from artefix.training.config import ConfigError, load_config
from artefix.training.engine import FitResult, fit

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"

TINY = CONFIGS / "tiny.yaml"
QUIET = ["trainer.progress_bar=none"]
CLI = [sys.executable, "-c", "from artefix.cli import main; main()"]


def tiny(*overrides):
    return load_config(TINY, [*QUIET, *overrides])


def val_rows(path):
    rows = list(csv.DictReader(open(path / "logs" / "metrics.csv", newline="")))
    return {int(r["epoch"]): float(r["val/mse"]) for r in rows if r.get("val/mse")}


class EpochProbe(Callback):
    """Records which corruption epoch the training set serves during each trainer epoch."""

    def __init__(self):
        self.seen = set()

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.seen.add((trainer.current_epoch, trainer.datamodule.train_set.copies[0].epoch))


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny") / "run"
    config = tiny("trainer.max_epochs=5")
    probe = EpochProbe()
    result = fit(config, out, command="artefix train configs/tiny.yaml", callbacks=[probe])
    assert probe.seen == {(e, e) for e in range(5)}  # fresh, replayable corruptions every epoch
    return config, result


@pytest.mark.slow
def test_tiny_training_reduces_the_validation_loss(tiny_run):
    config, result = tiny_run
    assert result.status == "finished" and result.epochs == 5 and not result.stopped_early
    losses = [h["val/loss"] for h in result.history]
    assert losses[-1] < 0.9 * losses[0], losses
    assert [h["epoch"] for h in result.history] == list(range(5))
    mses = [h["val/mse"] for h in result.history]
    assert result.best_score == min(mses) and mses[result.best_epoch] == result.best_score
    for h in result.history:
        assert h["val/slices"] == 16
        assert 0 < h["val/ssim"] <= 1 and 0 < h["val/vif"] <= 1.5
        # per-artefact means weighted by their slice counts give the overall mean
        counts = {a: h[f"val/slices/{a}"] for a in config.data.artefacts if f"val/slices/{a}" in h}
        assert sum(counts.values()) == 16
        for metric in ("mse", "ssim", "vif"):
            weighted = sum(n * h[f"val/{metric}/{a}"] for a, n in counts.items()) / 16
            assert weighted == pytest.approx(h[f"val/{metric}"], rel=1e-5)


@pytest.mark.slow
def test_run_folder_contents(tiny_run):
    config, result = tiny_run
    out = result.out_dir
    for name in ("best.safetensors", "best.json", "last.safetensors", "last.json", "last.ckpt", "config.yaml"):
        assert (out / name).is_file(), name
    assert list((out / "tensorboard").glob("events.out.tfevents.*"))
    assert sorted(val_rows(out)) == list(range(5))
    assert val_rows(out)[result.best_epoch] == pytest.approx(result.best_score)
    assert load_config(out / "config.yaml") == config
    best, card = load_model(result.best_path)
    assert card["kind"] == "best" and card["epochs"] == result.best_epoch + 1
    assert card["preset"] == "tiny" and card["parameters"] == sum(p.numel() for p in best.parameters())
    assert card["val_metrics"]["val/mse"] == pytest.approx(result.best_score)
    assert card["training_config"] == config.to_dict()
    assert card["seed"] == 0 and card["command"] == "artefix train configs/tiny.yaml"
    assert card["hardware"]["cpu"] and card["hardware"]["world_size"] == 1
    assert card["data"]["train_files"] and card["data"]["val_patients"] == ["brain-t2"]
    assert card["wall_time_s"] > 0
    last, last_card = load_model(result.last_path)
    assert last_card["epochs"] == 5
    x = torch.randn(2, 1, 64, 64)
    with torch.no_grad():  # the exported weights are the trained ones: best and last differ unless equal epochs
        same = torch.allclose(best(x).output, last(x).output)
    assert same == (result.best_epoch == 4)


@pytest.mark.slow
def test_run_folder_guards(tiny_run, tmp_path):
    config, result = tiny_run
    with pytest.raises(OutputError, match="already holds a training run; pass `resume`"):
        fit(config, result.out_dir)
    again = fit(config, result.out_dir, resume=True)  # a finished run is not trained again
    assert again.epochs == result.epochs and again.history == result.history
    assert result.trained_now and result.resumed_from_epoch is None
    assert result.time_text() == f"{result.wall_time_s:.1f} s"
    assert not again.trained_now and again.time_text().startswith("no time now: the run had already finished")
    with pytest.raises(ConfigError, match="differs from the saved one in loss.alpha"):
        fit(config.replace(loss={"alpha": 0.5}), result.out_dir, resume=True)
    with pytest.raises(InputError, match="nothing to resume"):
        fit(config, tmp_path / "fresh", resume=True)
    # killed before its first checkpoint: --resume starts again instead of refusing
    early = tmp_path / "early"
    early.mkdir()
    (early / "run.json").write_text(json.dumps({"status": "running", "completed_epochs": 0}))
    with pytest.raises(OutputError):
        fit(config, early)
    quick = tiny("trainer.max_epochs=1", "data.repeats=1", "data.val_repeats=1", "trainer.val_metrics=[mse]")
    assert fit(quick, early, resume=True).epochs == 1
    assert issubclass(ConfigError, ArtefixError)


def test_a_missing_init_fails_before_the_run_folder_is_made(tmp_path):
    with pytest.raises(InputError, match="model file not found"):
        fit(tiny(f"model.init={tmp_path / 'none' / 'best.safetensors'}"), tmp_path / "run")
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_resume_after_sigkill_loses_at_most_the_epoch_in_progress(tmp_path, wait_for):
    out = tmp_path / "run"
    overrides = ["trainer.max_epochs=3", "data.repeats=48", "trainer.val_metrics=[mse]", *QUIET]
    command = [*CLI, "train", str(TINY), "--out", str(out)]
    for item in overrides:
        command += ["--set", item]

    def training_after_a_checkpoint():
        # run.json names the epoch in progress from its start; until its validation ends, no more are complete
        try:
            status = json.loads((out / "run.json").read_text())
        except (OSError, json.JSONDecodeError):
            return False
        epoch = status.get("epoch_in_progress") or 0
        return epoch >= 1 and status.get("completed_epochs") == epoch and (out / "last.ckpt").is_file()

    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for(training_after_a_checkpoint, proc, "an epoch after the first checkpoint", timeout=180)
        proc.send_signal(signal.SIGKILL)  # an epoch lasts seconds: this lands inside the one in progress
        assert proc.wait(timeout=60) == -signal.SIGKILL
    finally:
        proc.kill()
        proc.wait()
        proc.stderr.close()
    killed = json.loads((out / "run.json").read_text())
    assert killed["status"] == "running"  # it never got to say anything else
    saved = killed["completed_epochs"]
    assert saved >= 1 and killed["epoch_in_progress"] == saved
    assert json.loads((out / "last.json").read_text())["epochs"] == saved
    result = fit(load_config(TINY, overrides), out, resume=True)
    status = json.loads((out / "run.json").read_text())
    assert status["resumed_from_epoch"] == saved
    assert result.status == "finished" and result.epochs == 3
    # the resumed segment reports its own time beside the whole run's (which includes the killed segment's)
    assert result.resumed_from_epoch == saved and 0 < result.segment_wall_time_s < result.wall_time_s
    assert f"resumed after epoch {saved}" in result.time_text()
    assert [h["epoch"] for h in result.history] == [0, 1, 2]
    assert sorted(val_rows(out)) == [0, 1, 2]  # the log of the killed segment survives
    assert all(math.isfinite(h["val/mse"]) for h in result.history)


@pytest.mark.slow
def test_data_parallel_training_with_two_cpu_processes(tmp_path):
    # ddp_spawn: two fresh processes with the gloo backend; "ddp" (the GPU default) re-runs the command line.
    config = tiny(
        "trainer.max_epochs=2", "trainer.devices=2", "trainer.strategy=ddp_spawn", "trainer.val_metrics=[mse]"
    )
    result = fit(config, tmp_path / "ddp", quiet=True)
    assert isinstance(result, FitResult) and result.status == "finished" and result.epochs == 2
    card = json.loads((tmp_path / "ddp" / "last.json").read_text())
    assert card["hardware"]["world_size"] == 2
    # metric sums are reduced over both processes: all 16 validation items are counted once
    assert [h["val/slices"] for h in result.history] == [16.0, 16.0]
    # each process trained on half of the 48 items per epoch: 3 steps of 8 instead of 6
    rows = list(csv.DictReader(open(tmp_path / "ddp" / "logs" / "metrics.csv", newline="")))
    assert max(int(r["step"]) for r in rows) + 1 == 2 * 3
    model, _ = load_model(result.last_path)
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.slow
@pytest.mark.shared_data
def test_pelvis_config_trains_on_the_shared_dicom_series(shared_data, tmp_path):
    # the paper's pelvis set-up (DICOM series, periodic motion, 80/20 split) with a tiny model for a few steps
    overrides = ["model.preset=tiny", "data.matrix=[64, 64]", "trainer.max_epochs=1", "trainer.limit_train_batches=2"]
    overrides += ["trainer.limit_val_batches=2", "data.num_workers=0", "trainer.cpu_threads=1", *QUIET]
    config = load_config(CONFIGS / "mt_lc_pelvis.yaml", overrides, data_root=shared_data)
    result = fit(config, tmp_path / "pelvis", quiet=True)
    assert result.status == "finished" and math.isfinite(result.best_score)
    card = json.loads((tmp_path / "pelvis" / "best.json").read_text())
    assert card["data"]["val_patients"] and set(card["data"]["train_patients"]).isdisjoint(card["data"]["val_patients"])
    assert all(p.startswith("ProstateX-") for p in card["data"]["train_patients"])
    assert (tmp_path / "pelvis" / "split.json").is_file()


def test_failures_on_config_data_or_out_leave_no_run_folder(tmp_path):
    """Missing data, a trainer setting Lightning refuses, or --out naming a file: one error, nothing written."""
    missing = tiny("data.source=files", f"data.roots=[{tmp_path / 'no-such-scans'}]")
    with pytest.raises(InputError):
        fit(missing, tmp_path / "run")
    with pytest.raises(ConfigError, match="trainer:"):
        fit(tiny("trainer.accelerator=foo"), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        fit(tiny(), tmp_path / "afile")


def test_resume_keeps_a_changed_patience_and_refuses_a_longer_cosine(tmp_path):
    from types import SimpleNamespace

    from lightning.pytorch.callbacks import EarlyStopping

    from artefix.training.callbacks import KeepPatience
    from artefix.training.config import save_config
    from artefix.training.engine import _check_resume_config

    restored = EarlyStopping(monitor="val/mse", patience=10)  # as Lightning restores it from the checkpoint
    KeepPatience(2).on_fit_start(SimpleNamespace(early_stopping_callbacks=[restored]), None)
    assert restored.patience == 2
    saved = save_config(tiny("optimizer.schedule=cosine", "trainer.max_epochs=4"), tmp_path / "config.yaml")
    _check_resume_config(tiny("optimizer.schedule=cosine", "trainer.max_epochs=4", "trainer.patience=2"), saved)
    with pytest.raises(ConfigError, match="cosine schedule's length"):
        _check_resume_config(tiny("optimizer.schedule=cosine", "trainer.max_epochs=8"), saved)
