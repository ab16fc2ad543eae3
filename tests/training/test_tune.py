import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from artefix.errors import InputError
from artefix.losses import KERNEL_NAMES
from artefix.training.config import load_config
from artefix.training.tune import (
    LR_RANGE,
    _pruning_callback,
    _sampler,
    config_from_params,
    default_storage,
    make_storage,
    searches_deltas,
    suggest_config,
    tune,
)

REPO = Path(__file__).resolve().parents[2]
CONFIGS = REPO / "configs"

TINY = CONFIGS / "tiny.yaml"
SMALL = ["tune.max_epochs=1", "data.repeats=2", "data.val_repeats=2", "trainer.val_metrics=[mse]"]
CLI = [sys.executable, "-c", "from artefix.cli import main; main()"]
PARAMS = {"optimizer": "adam", "log10_lr": -5.5, "alpha": 0.25}


def test_search_space_of_lc_and_mse_configs():
    lc = load_config(CONFIGS / "mt_lc_brain.yaml")
    mse = load_config(CONFIGS / "mt_brain.yaml")
    assert searches_deltas(lc) and not searches_deltas(mse)
    deltas = {f"delta_{k}": i / 10 for i, k in enumerate(KERNEL_NAMES)}
    trial_config = suggest_config(optuna.trial.FixedTrial({**PARAMS, **deltas}), lc)
    assert trial_config.optimizer.name == "adam" and trial_config.optimizer.lr == pytest.approx(10**-5.5)
    assert trial_config.loss.alpha == 0.25
    assert trial_config.loss.delta_values == {k: i / 10 for i, k in enumerate(KERNEL_NAMES)}
    # the trial budget comes from the tune section; one device per trial
    assert trial_config.trainer.max_epochs == lc.tune.max_epochs and trial_config.trainer.devices == 1
    assert trial_config.data == lc.data and trial_config.model == lc.model
    # MSE models search only optimiser, learning rate and alpha; their deltas stay identity-only
    trial_config = suggest_config(optuna.trial.FixedTrial(PARAMS), mse)
    assert trial_config.loss.is_mse and trial_config.loss.alpha == 0.25
    # the exported config keeps the full training settings of the base config
    best = config_from_params(lc, {**PARAMS, **deltas})
    assert best.trainer == lc.trainer and best.loss.delta_values["L5"] == 0.8
    assert best.optimizer.log10_lr == -5.5 and LR_RANGE == (-7.0, -2.0)


def test_search_space_is_drawn_inside_the_paper_ranges():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    lc = load_config(CONFIGS / "mt_lc_pelvis.yaml")
    for _ in range(20):
        trial = study.ask()
        config = suggest_config(trial, lc)
        assert -7 <= config.optimizer.log10_lr <= -2 and 0 <= config.loss.alpha <= 1
        assert config.optimizer.name in ("adam", "rmsprop")
        assert all(0 <= v <= 1 for v in config.loss.delta_values.values())
        assert len(trial.params) == 3 + 9
        study.tell(trial, 0.0)


def test_pruning_callback_reports_each_epoch_and_stops_hopeless_trials():
    reports = []

    class Trial:
        def report(self, value, step):
            reports.append((step, value))

        def should_prune(self):
            return len(reports) >= 2

    callback = _pruning_callback(Trial(), "val/mse")
    trainer = SimpleNamespace(sanity_checking=False, callback_metrics={}, current_epoch=0, should_stop=False)
    callback.on_validation_end(trainer, None)  # nothing logged yet: nothing reported
    trainer.callback_metrics = {"val/mse": 0.5}
    callback.on_validation_end(trainer, None)
    assert reports == [(0, 0.5)] and not trainer.should_stop
    trainer.current_epoch, trainer.callback_metrics = 1, {"val/mse": 0.7}
    callback.on_validation_end(trainer, None)
    assert trainer.should_stop and callback.pruned_at == 1
    trainer.sanity_checking = True
    callback.on_validation_end(trainer, None)
    assert len(reports) == 2


@pytest.mark.parametrize(("name", "cls"), [("tpe", "TPESampler"), ("gp", "GPSampler"), ("random", "RandomSampler")])
def test_samplers(name, cls):
    config = load_config(TINY, [f"tune.sampler={name}"])
    sampler = _sampler(config, seed=0)
    assert type(sampler).__name__ == cls
    study = optuna.create_study(sampler=sampler)
    study.optimize(lambda t: (t.suggest_float("log10_lr", *LR_RANGE) + 4) ** 2, n_trials=3)
    assert len(study.trials) == 3


def test_storage_urls(tmp_path):
    assert default_storage(tmp_path) == f"sqlite:///{tmp_path}/study.db"
    journal = make_storage(f"journal:{tmp_path}/j/study.log")
    assert type(journal).__name__ == "JournalStorage"
    with pytest.raises(InputError, match="cannot open the study storage"):
        make_storage("nosuchdb://host/x")


@pytest.mark.slow
def test_two_workers_share_one_sqlite_study_and_it_resumes(tmp_path):
    out = tmp_path / "tune"
    out.mkdir()
    command = [*CLI, "tune", str(TINY), "--trials", "2", "--out", str(out), "--study", "shared"]
    for item in SMALL:
        command += ["--set", item]
    workers = [
        subprocess.Popen([*command, "--seed", str(seed)], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for seed in (1, 2)
    ]
    outputs = [w.communicate(timeout=300) for w in workers]
    for worker, (_, err) in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, err.decode()[-3000:]
    storage = default_storage(out)
    study = optuna.load_study(study_name="shared", storage=storage)
    trials = study.get_trials()
    assert len(trials) == 4  # the sum of both workers' trials
    assert sorted(t.number for t in trials) == [0, 1, 2, 3]
    assert all(t.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED) for t in trials)
    run_dirs = {t.user_attrs["run_dir"] for t in trials}
    assert len(run_dirs) == 4
    # an interrupted or finished study continues where it stopped
    config = load_config(TINY, SMALL)
    result = tune(config, out, 1, study_name="shared", seed=3)
    assert result.n_trials == 5 and result.storage == storage
    best = load_config(result.best_config)
    complete = [t for t in optuna.load_study(study_name="shared", storage=storage).get_trials() if t.value is not None]
    winner = min(complete, key=lambda t: t.value)
    assert result.best_value == pytest.approx(winner.value)
    assert best.optimizer.log10_lr == pytest.approx(winner.params["log10_lr"])
    assert best.loss.alpha == pytest.approx(winner.params["alpha"])
    assert best.trainer == config.trainer  # ready to train with the full budget
    assert (out / "trials.csv").read_text().count("\n") == 6
    assert not list(out.rglob("*.lock"))  # the study file is its own set-up lock
