"""Bayesian hyper-parameter search with Optuna: :func:`tune`.

The search space is the paper's ("Training and hyper-parameter search"):

==============  ==============================  ============================================
parameter       range                           searched
==============  ==============================  ============================================
``optimizer``   {adam, rmsprop}                 always
``log10_lr``    uniform [-7, -2] (lr = 10^g)    always
``alpha``       uniform [0, 1]                  always
``delta_<k>``   uniform [0, 1], nine kernels    LC configurations (``tune.search_deltas``)
==============  ==============================  ============================================

Each trial is a short training run (:func:`artefix.training.engine.fit` with ``tune.max_epochs`` and
early-stopping patience ``tune.patience``) whose objective is the best validation MSE (``trainer.monitor``).
A callback reports it after every epoch, and trials that the pruner (median rule) finds hopeless stop early.
Trials run in one process each (``trainer.devices`` is set to 1 for trials); to search faster, start more
workers, on one machine or many: they share the study through its storage.

Storage: by default ``DIR/study.db`` (SQLite, no server). Workers on several machines share one study
through a database URL (``postgresql://user:pass@host/db``, ``mysql+pymysql://...``) or an Optuna journal
file on a shared file system (``journal:/shared/study.log``). ``postgresql://`` uses whichever driver is
installed: psycopg 3 (``pip install 'artefix[postgres]'``) or psycopg2; passwords in URLs are masked in
every message. A study is created on first use and
continued afterwards (interrupted studies resume; trials of killed workers are marked failed after
their heartbeat stops, RDB storages only). The best trial so far is written as a ready-to-train
configuration ``DIR/best_config.yaml`` after every worker finishes.
"""

from __future__ import annotations

import csv
import importlib
import json
import logging
import math
import os
import re
import socket
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artefix.atomic import atomic_file, one_line
from artefix.errors import InputError, OutputError
from artefix.training.config import TrainConfig, save_config

log = logging.getLogger(__name__)

__all__ = [
    "LR_RANGE",
    "OPTIMIZER_CHOICES",
    "TuneResult",
    "default_storage",
    "make_storage",
    "mask_url",
    "storage_url",
    "suggest_config",
    "tune",
]

OPTIMIZER_CHOICES: tuple[str, ...] = ("adam", "rmsprop")
LR_RANGE: tuple[float, float] = (-7.0, -2.0)
ALPHA_RANGE: tuple[float, float] = (0.0, 1.0)
DELTA_RANGE: tuple[float, float] = (0.0, 1.0)
HEARTBEAT_S = 60
GRACE_S = 180
STORAGE_ATTEMPTS = 5
POSTGRES_MISSING = "`storage` postgresql://... needs a PostgreSQL driver: pip install 'artefix[postgres]'"
# scheme://user:PASSWORD@ (greedy up to the last "@": an unescaped "@" in a password is still masked).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][\w+.-]*://[^:/@\s'\"]*):(?P<password>[^\s'\"]*)@")
_QUERY_PASSWORD = re.compile(r"(?P<head>[?&]password=)[^&\s'\"]*", re.IGNORECASE)


@dataclass(frozen=True)
class TuneResult:
    """Outcome of one :func:`tune` call (the whole study, all workers so far).

    Attributes:
        study_name: The study.
        storage: Its storage URL as given (it may hold a password: print :func:`mask_url` of it).
        n_trials: Trials in the study (all states).
        n_complete: Completed trials.
        n_pruned: Pruned trials.
        best_value: Best validation MSE (``None`` without a completed trial).
        best_params: Parameters of the best trial.
        best_config: ``best_config.yaml`` (``None`` without a completed trial).
    """

    study_name: str
    storage: str
    n_trials: int
    n_complete: int
    n_pruned: int
    best_value: float | None
    best_params: dict[str, Any]
    best_config: Path | None


def default_storage(out_dir: Path) -> str:
    """The SQLite URL of ``out_dir/study.db``."""
    return f"sqlite:///{(Path(out_dir).absolute() / 'study.db').as_posix()}"


def mask_url(text: str) -> str:
    """``text`` (a URL, or a message that quotes one) with the password of every URL in it as ``***``."""
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}:***@", text)
    return _QUERY_PASSWORD.sub(lambda m: f"{m['head']}***", text)


def _redact(text: str, url: str) -> str:
    """``text`` without the password of ``url``: in every URL, and anywhere else (a driver may quote it alone).

    Passwords shorter than four characters are masked in URLs only (replacing every "a" would garble the text).
    """
    from urllib.parse import unquote

    text = mask_url(text)
    found = _URL_PASSWORD.match(url)
    if found:
        for secret in {found["password"], unquote(found["password"])}:
            if len(secret) >= 4:
                text = text.replace(secret, "***")
    return text


def _importable(module: str) -> bool:
    """Whether ``module`` imports (psycopg 3 without a libpq, for one, is installed but does not)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def storage_url(url: str) -> str:
    """The SQLAlchemy URL that opens ``url`` with the installed PostgreSQL driver.

    SQLAlchemy reads ``postgresql://`` as psycopg2; where only psycopg 3 is installed (the ``postgres``
    extra), the URL becomes ``postgresql+psycopg://``. Other URLs, and those that name a driver
    (``postgresql+psycopg2://``), stay as they are.

    Raises:
        InputError: A ``postgresql://`` URL without psycopg 3 or psycopg2 installed.
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() != "postgresql":
        return url
    if _importable("psycopg2"):
        return url
    if _importable("psycopg"):
        return f"postgresql+psycopg://{rest}"
    raise InputError(POSTGRES_MISSING)


def make_storage(url: str) -> Any:
    """An Optuna storage for ``url``.

    Args:
        url: ``journal:PATH`` (journal file, e.g. on NFS), or an SQLAlchemy URL (``sqlite:///file.db``,
            ``postgresql://...`` (see :func:`storage_url`), ``mysql+pymysql://...``).

    Returns:
        A ``JournalStorage`` or an ``RDBStorage`` with a heartbeat (trials of killed workers fail after
        :data:`GRACE_S` seconds instead of staying "running"); SQLite waits up to 60 s for a lock.

    Raises:
        InputError: The storage cannot be opened, or a ``postgresql://`` URL lacks a driver (``pip install
            'artefix[postgres]'``). Messages never show the URL's password.
    """
    import optuna

    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url[len("journal:") :]).expanduser()
        path.parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(str(path)))
    given, url = url, storage_url(url)
    kwargs: dict[str, Any] = {}
    if url.startswith("sqlite:"):
        kwargs["engine_kwargs"] = {"connect_args": {"timeout": 60}}
    attempt = 0
    while True:
        try:
            with _init_lock(url), warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)  # heartbeat: long-standing
                return optuna.storages.RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, **kwargs)
        except Exception as exc:  # SQLAlchemy raises many kinds (bad URL, missing driver, unreachable server)
            attempt += 1
            # Workers that start together on a new database race to create its tables; another attempt
            # finds them (SQLite files are also locked during the set-up, see _init_lock; PostgreSQL says
            # 'type "studydirection" already exists', a ProgrammingError).
            kind = type(exc).__name__
            racing = kind in ("IntegrityError", "OperationalError") or (
                kind == "ProgrammingError" and "already exists" in str(exc)
            )
            if racing and attempt < STORAGE_ATTEMPTS:
                time.sleep(0.2 * attempt)
                continue
            message = f"cannot open the study storage {given!r}: {type(exc).__name__}: {one_line(exc)}"
            raise InputError(_redact(message, given)) from None


@contextmanager
def _init_lock(url: str) -> Iterator[None]:
    """Serialise the set-up of a local SQLite study file between processes (POSIX ``flock`` on the file itself).

    The database file is the lock (created empty if need be, which SQLite takes as an empty database), so no
    ``.lock`` file is left beside it; ``flock`` locks are independent of the ``fcntl`` locks SQLite takes.
    """
    prefix = "sqlite:///"
    if not url.startswith(prefix) or url == prefix or ":memory:" in url:
        yield
        return
    try:
        import fcntl
    except ImportError:  # not POSIX: rely on the retries
        yield
        return
    path = Path(url[len(prefix) :])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def searches_deltas(config: TrainConfig) -> bool:
    """Whether the nine kernel weights are searched (``tune.search_deltas``, default: LC configurations)."""
    if config.tune.search_deltas is not None:
        return config.tune.search_deltas
    return not config.loss.is_mse


def suggest_config(trial: Any, config: TrainConfig) -> TrainConfig:
    """Draw one point of the search space from ``trial`` and apply it to ``config``.

    Args:
        trial: An ``optuna.Trial`` (or ``FixedTrial``).
        config: The base configuration.

    Returns:
        The trial's configuration: the drawn optimiser, ``log10_lr``, ``alpha`` (and deltas), with
        ``trainer.max_epochs`` / ``patience`` from the ``tune`` section, one device, no progress bar.
    """
    from artefix.losses import KERNEL_NAMES

    optimizer = trial.suggest_categorical("optimizer", list(OPTIMIZER_CHOICES))
    log10_lr = trial.suggest_float("log10_lr", *LR_RANGE)
    alpha = trial.suggest_float("alpha", *ALPHA_RANGE)
    loss: dict[str, Any] = {"alpha": alpha}
    if searches_deltas(config):
        loss["deltas"] = {k: trial.suggest_float(f"delta_{k}", *DELTA_RANGE) for k in KERNEL_NAMES}
    t = config.tune
    return config.replace(
        optimizer={"name": optimizer, "log10_lr": log10_lr},
        loss=loss,
        trainer={
            "max_epochs": t.max_epochs,
            "patience": t.patience,
            "devices": 1,
            "strategy": "auto",
            "num_nodes": 1,
            "progress_bar": "none",
        },
    )


def config_from_params(config: TrainConfig, params: dict[str, Any]) -> TrainConfig:
    """``config`` with a trial's parameters (the training settings of ``config`` are kept)."""
    loss: dict[str, Any] = {"alpha": params["alpha"]}
    deltas = {k[len("delta_") :]: v for k, v in params.items() if k.startswith("delta_")}
    if deltas:
        loss["deltas"] = deltas
    return config.replace(optimizer={"name": params["optimizer"], "log10_lr": params["log10_lr"]}, loss=loss)


def _sampler(config: TrainConfig, seed: int | None) -> Any:
    import optuna

    t = config.tune
    if t.sampler == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=t.n_startup_trials)
    if t.sampler == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    # constant_liar: parallel workers treat running trials as bad results, so they explore different points.
    return optuna.samplers.TPESampler(
        n_startup_trials=t.n_startup_trials, multivariate=True, constant_liar=True, seed=seed
    )


def _pruner(config: TrainConfig) -> Any:
    import optuna

    t = config.tune
    if t.pruner == "none":
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=max(1, t.n_startup_trials), n_warmup_steps=t.warmup_epochs)


def _pruning_callback(trial: Any, monitor: str) -> Any:
    import lightning as L

    class PruningCallback(L.Callback):
        """Report the monitored metric to the trial after each epoch; stop the run when the pruner says so."""

        def __init__(self) -> None:
            self.pruned_at: int | None = None

        def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
            if trainer.sanity_checking:
                return
            value = trainer.callback_metrics.get(monitor)
            if value is None:
                return
            score = float(value)
            trial.report(score if math.isfinite(score) else math.inf, step=trainer.current_epoch)
            if not math.isfinite(score) or trial.should_prune():
                self.pruned_at = trainer.current_epoch
                trainer.should_stop = True

    return PruningCallback()


def _write_trials(study: Any, path: Path) -> None:
    """One CSV row per trial: number, state, value, duration, parameters."""
    trials = study.get_trials(deepcopy=False)
    keys = sorted({k for t in trials for k in t.params})
    with atomic_file(path) as tmp, open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["number", "state", "value", "duration_s", *keys])
        for t in trials:
            duration = t.duration.total_seconds() if t.duration is not None else ""
            writer.writerow([t.number, t.state.name, t.value, duration, *(t.params.get(k, "") for k in keys)])


def _export_best(study: Any, config: TrainConfig, out_dir: Path) -> Path | None:
    import optuna

    complete = [t for t in study.get_trials(deepcopy=False) if t.state == optuna.trial.TrialState.COMPLETE]
    finite = [t for t in complete if t.value is not None and math.isfinite(t.value)]
    if not finite:
        return None
    best = min(finite, key=lambda t: t.value)
    best_config = config_from_params(config, best.params)
    header = (
        f"best trial {best.number} of study {study.study_name!r}: validation MSE {best.value:.6g} "
        f"after {best.user_attrs.get('epochs', '?')} epochs ({len(complete)} trials completed)\n"
        f"train it fully with: artefix train {out_dir / 'best_config.yaml'}"
    )
    path = save_config(best_config, out_dir / "best_config.yaml", header=header)
    doc = {"number": best.number, "value": best.value, "params": best.params, "user_attrs": best.user_attrs}
    with atomic_file(out_dir / "best_trial.json") as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return path


def tune(
    config: TrainConfig,
    out_dir: str | Path,
    n_trials: int,
    *,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int | None = None,
    timeout: float | None = None,
    max_total: int | None = None,
    callbacks: Sequence[Any] = (),
) -> TuneResult:
    """Run ``n_trials`` trials of a (possibly shared) study and export the best configuration.

    Args:
        config: Base configuration (its ``tune`` section sets the trial budget and the sampler).
        out_dir: Folder for ``study.db`` (default storage), ``trials/<study>/trial-NNNN/`` (one training
            run per trial), ``trials.csv``, ``best_trial.json`` and ``best_config.yaml``.
        n_trials: Trials this call runs (every worker runs its own ``n_trials``).
        storage: Storage URL (see :func:`make_storage`); default :func:`default_storage`.
        study_name: Study name; default ``config.name``.
        seed: Seed of the sampler. Give each worker a different seed (or none): workers with equal seeds
            propose the same random start-up points.
        timeout: Stop starting new trials after this many seconds.
        max_total: Stop once the study holds this many finished (complete or pruned) trials, whichever
            worker ran them.
        callbacks: Extra Lightning callbacks for every trial.

    Returns:
        The :class:`TuneResult`.

    Raises:
        ValueError: ``n_trials < 1``.
        InputError: Unusable storage or data.
    """
    import optuna

    from artefix.training.data import plan_data
    from artefix.training.engine import fit

    if n_trials < 1:
        raise ValueError(f"n_trials must be >= 1, got {n_trials}")
    out_dir = Path(out_dir).expanduser().absolute()
    plan_data(config.data)  # fail before the first trial (and before --out is made) when the data is unusable
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OutputError(f"{out_dir}: cannot create the study folder ({one_line(exc)})") from exc
    url = storage or default_storage(out_dir)
    name = study_name or config.name
    study = optuna.create_study(
        study_name=name,
        storage=make_storage(url),
        direction="minimize",
        sampler=_sampler(config, seed),
        pruner=_pruner(config),
        load_if_exists=True,
    )
    trials_dir = out_dir / "trials" / name

    def objective(trial: optuna.Trial) -> float:
        trial_config = suggest_config(trial, config)
        run_dir = trials_dir / f"trial-{trial.number:04d}"
        pruning = _pruning_callback(trial, config.trainer.monitor)
        trial.set_user_attr("run_dir", str(run_dir))
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")
        result = fit(trial_config, run_dir, callbacks=[pruning, *callbacks], quiet=True)
        trial.set_user_attr("epochs", result.epochs)
        trial.set_user_attr("best_epoch", result.best_epoch)
        if pruning.pruned_at is not None:
            raise optuna.TrialPruned(f"pruned after epoch {pruning.pruned_at}")
        score = result.best_score
        return float(score) if score is not None and math.isfinite(score) else math.inf

    stop = []
    if max_total is not None:
        states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
        stop.append(optuna.study.MaxTrialsCallback(max_total, states=states))
    study.optimize(objective, n_trials=n_trials, timeout=timeout, callbacks=stop, gc_after_trial=True)
    _write_trials(study, out_dir / "trials.csv")
    best_path = _export_best(study, config, out_dir)
    trials = study.get_trials(deepcopy=False)
    states = [t.state for t in trials]
    best_value = None
    best_params: dict[str, Any] = {}
    if best_path is not None:
        doc = json.loads((out_dir / "best_trial.json").read_text(encoding="utf-8"))
        best_value, best_params = doc["value"], doc["params"]
    return TuneResult(
        study_name=name,
        storage=url,
        n_trials=len(trials),
        n_complete=states.count(optuna.trial.TrialState.COMPLETE),
        n_pruned=states.count(optuna.trial.TrialState.PRUNED),
        best_value=best_value,
        best_params=best_params,
        best_config=best_path,
    )
