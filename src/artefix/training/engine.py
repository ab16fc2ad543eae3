"""One training run with PyTorch Lightning: :func:`fit`.

A run folder ``DIR`` receives

=====================  ==============================================================================
``config.yaml``        the resolved configuration (absolute paths; ``artefix train DIR/config.yaml``
                       trains the same model again)
``split.json``         the patient split that was used (``source: files``)
``best.safetensors``   weights with the lowest validation MSE, ``best.json`` its model card
``last.safetensors``   weights after the last completed epoch, ``last.json`` its model card
``last.ckpt``          Lightning's resumable training state (optimizer, epoch, RNG, early stopping);
                       read only by ``--resume``; not a model file to ship
``run.json``           status, epoch in progress, best epoch, per-epoch validation metrics
``logs/metrics.csv``   Lightning CSV log; ``tensorboard/`` TensorBoard events (``tensorboard --logdir DIR``)
=====================  ==============================================================================

Multi-GPU data-parallel training is a configuration change: ``trainer.devices: 4`` and
``trainer.strategy: ddp`` (one process per GPU, gradients averaged every step, batch size per device);
mixed precision: ``trainer.precision: bf16-mixed`` or ``16-mixed``.

Global state: a run starts with ``lightning.seed_everything(config.seed, workers=True)`` (Lightning relies
on the global generators, e.g. for DDP and worker seeding) and, when ``trainer.cpu_threads`` is set,
``torch.set_num_threads``. Everything this package draws itself (weights, corruptions, training order)
comes from explicit seeds.
"""

from __future__ import annotations

import dataclasses
import datetime
import logging
import os
import shlex
import sys
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from artefix.atomic import one_line
from artefix.errors import InputError, OutputError
from artefix.training.callbacks import RUN_FILE, KeepPatience, ModelExport, read_run_file
from artefix.training.config import ConfigError, TrainConfig, save_config

log = logging.getLogger(__name__)

OUT_FLAG = {"out_dir": "--out"}
"""The command line's flag of the run folder (the library's ``out_dir``), for its error messages."""

__all__ = ["RESUMABLE_CHANGES", "FitResult", "fit", "is_secondary_process"]

CHECKPOINT = "last.ckpt"
CONFIG_FILE = "config.yaml"
SPLIT_FILE = "split.json"

RESUMABLE_CHANGES: tuple[str, ...] = (
    "trainer.max_epochs",
    "trainer.patience",
    "trainer.progress_bar",
    "trainer.accelerator",
    "trainer.devices",
    "trainer.strategy",
    "trainer.num_nodes",
    "trainer.precision",
    "data.num_workers",
    "data.base",
    "data.split",
)
"""Configuration keys that may differ between a run and its ``--resume`` (everything else must match)."""


@dataclass(frozen=True)
class FitResult:
    """What a training run produced (read back from ``run.json``, so it also works for spawned processes).

    Attributes:
        out_dir: The run folder.
        status: ``finished``, ``interrupted``, ``failed`` or ``running``.
        best_path: ``best.safetensors`` (``None`` if no epoch completed).
        last_path: ``last.safetensors`` (``None`` if no epoch completed).
        best_score: ``trainer.monitor`` (validation MSE by default) of the kept weights: its lowest value, or
            with ``trainer.keep: last`` the last validated epoch's.
        best_epoch: Epoch (0-based) of the kept weights (``best.safetensors``).
        epochs: Completed epochs.
        stopped_early: Whether early stopping ended the run before ``max_epochs``.
        wall_time_s: Training time over all resumed segments, seconds.
        history: Validation metrics per completed epoch.
        segment_wall_time_s: Training time of the last segment alone (the last ``fit`` call that trained),
            seconds; equal to ``wall_time_s`` for a run never resumed.
        resumed_from_epoch: Completed epochs the last segment started from (None: never resumed).
        trained_now: False when ``fit`` found the run already finished and trained nothing.
    """

    out_dir: Path
    status: str
    best_path: Path | None
    last_path: Path | None
    best_score: float | None
    best_epoch: int | None
    epochs: int
    stopped_early: bool
    wall_time_s: float
    history: list[dict[str, float]] = field(default_factory=list)
    segment_wall_time_s: float | None = None
    resumed_from_epoch: int | None = None
    trained_now: bool = True

    def time_text(self) -> str:
        """How long the training took, in words: a resumed run says this segment's and the whole run's time."""
        if not self.trained_now:
            return f"no time now: the run had already finished ({self.wall_time_s:.1f} s of training)"
        if self.resumed_from_epoch is None or self.segment_wall_time_s is None:
            return f"{self.wall_time_s:.1f} s"
        return (
            f"{self.segment_wall_time_s:.1f} s (resumed after epoch {self.resumed_from_epoch}; "
            f"{self.wall_time_s:.1f} s over all segments)"
        )

    @property
    def metrics(self) -> dict[str, float]:
        """Validation metrics of the last completed epoch."""
        return dict(self.history[-1]) if self.history else {}

    @classmethod
    def read(cls, out_dir: Path) -> FitResult:
        """Summarise the run in ``out_dir`` from its ``run.json``."""
        out_dir = Path(out_dir)
        doc = read_run_file(out_dir)
        best, last = out_dir / "best.safetensors", out_dir / "last.safetensors"
        return cls(
            out_dir=out_dir,
            status=str(doc.get("status", "unknown")),
            best_path=best if best.is_file() else None,
            last_path=last if last.is_file() else None,
            best_score=doc.get("best_score"),
            best_epoch=doc.get("best_epoch"),
            epochs=int(doc.get("completed_epochs", 0)),
            stopped_early=bool(doc.get("stopped_early", False)),
            wall_time_s=float(doc.get("wall_time_s", 0.0)),
            history=list(doc.get("history", [])),
            segment_wall_time_s=doc.get("segment_wall_time_s"),
            resumed_from_epoch=doc.get("resumed_from_epoch"),
        )


def is_secondary_process() -> bool:
    """Whether this is a DDP process other than global rank 0 (set by Lightning's launcher / torchrun)."""
    return any(int(os.environ.get(k, "0") or 0) > 0 for k in ("LOCAL_RANK", "NODE_RANK", "RANK"))


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and k != "deltas":
            out.update(_flatten(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


_LIGHTNING_TIP = "💡 Tip:"
"""How Lightning's advertisements start (``💡 Tip: ... try installing litlogger / litmodels``)."""

_LIGHTNING_INFO_LOGGERS = ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero")
"""The loggers of Lightning's ``rank_zero_info``, through which the tips are logged."""


class _DropLightningTips(logging.Filter):
    """Drop Lightning's advertising tips from its info log; every other message passes."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(_LIGHTNING_TIP)


@contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Leave out, while a Trainer is built and fitted, what is noise to an ``artefix train``/``tune`` user.

    That is Lightning's advertising tips (info log lines) and the ``FutureWarning`` that recent torch
    raises when Lightning builds a ``LeafSpec`` (Lightning's code, nothing a user can act on). Both are
    matched narrowly; every other log line and warning is kept.
    """
    tips = _DropLightningTips()
    loggers = [logging.getLogger(name) for name in _LIGHTNING_INFO_LOGGERS]
    for logger in loggers:
        logger.addFilter(tips)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings(
                "ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated", category=FutureWarning
            )
            yield
    finally:
        for logger in loggers:
            logger.removeFilter(tips)


def _trainer(**settings: Any) -> Any:
    """``lightning.Trainer(**settings)``, its refusals of the trainer section as one-line errors."""
    import lightning as L
    from lightning.fabric.utilities.exceptions import MisconfigurationException

    try:
        with _quiet_lightning():
            return L.Trainer(**settings)
    except (MisconfigurationException, ValueError, TypeError, RuntimeError) as exc:
        raise ConfigError(f"trainer: {one_line(exc)}") from None


def _check_resume_config(config: TrainConfig, saved_path: Path) -> None:
    from artefix.training.config import load_config

    saved = _flatten(load_config(saved_path).to_dict())
    now = _flatten(config.to_dict())
    changed = sorted(k for k in saved.keys() | now.keys() if saved.get(k) != now.get(k) and k not in RESUMABLE_CHANGES)
    if changed:
        raise ConfigError(
            f"cannot resume {saved_path.parent}: the configuration differs from the saved one in {', '.join(changed)}"
            f" (only {', '.join(RESUMABLE_CHANGES)} may change)"
        )
    key = "trainer.max_epochs"
    if now.get("optimizer.schedule") == "cosine" and saved.get(key) != now.get(key):
        raise ConfigError(
            f"cannot resume {saved_path.parent} with {key} {now.get(key)} (was {saved.get(key)}): the cosine "
            "schedule's length was fixed when the run started; start a new run from its weights (model.init)"
        )


def _data_sources(config: TrainConfig) -> list[dict[str, str]]:
    """Where the training data came from, with the attribution files found next to it."""
    if config.data.source == "sample":
        return [{"root": "artefix built-in sample", "sources": "artefix/data/sample/LICENSE.md"}]
    base = Path(config.data.base) if config.data.base else None
    out = []
    for root in config.data.roots:
        path = base / root if base is not None else Path(root)
        folder = path if path.is_dir() else path.parent
        sources = folder / "SOURCES.md"
        out.append({"root": str(path), "sources": str(sources) if sources.is_file() else ""})
    return out


def _card(config: TrainConfig, plan: Any, out_dir: Path, command: str) -> dict[str, Any]:
    import lightning
    import torch

    import artefix

    split_file = out_dir / SPLIT_FILE if config.data.source == "files" else None
    return {
        "name": config.name,
        "preset": config.model.preset,
        "artefix_version": getattr(artefix, "__version__", "unknown"),
        "torch_version": torch.__version__,
        "lightning_version": lightning.__version__,
        "training_config": config.to_dict(),
        "seed": config.seed,
        "model_seed": config.model_seed,
        "data_seed": config.data_seed,
        "data": {
            "source": config.data.source,
            "split_file": str(split_file) if split_file is not None and split_file.is_file() else config.data.split,
            "attribution": _data_sources(config),
            **plan.describe(),
        },
        "command": command,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }


def _progress_bar(kind: str) -> Any:
    from artefix.training.callbacks import RichBar, TqdmBar

    return RichBar() if kind == "rich" else TqdmBar() if kind == "tqdm" else None


def fit(
    config: TrainConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    callbacks: Sequence[Any] = (),
    command: str | None = None,
    quiet: bool = False,
) -> FitResult:
    """Train ``config`` into ``out_dir`` (see the module docstring for the files).

    Args:
        config: The validated configuration.
        out_dir: Run folder; created. A folder that already holds a run needs ``resume=True``.
        resume: Continue the run in ``out_dir`` from ``last.ckpt`` (at most the epoch in progress when it
            stopped is lost). A finished run is trained further only when ``trainer.max_epochs`` grew and
            it did not stop early; a run stopped before its first checkpoint starts again.
        callbacks: Extra Lightning callbacks (e.g. the pruning callback of :mod:`artefix.training.tune`).
        command: The command line to record in the model card (default: ``sys.argv``, the program by its name).
        quiet: No progress bar and no model summary (tuning trials).

    Returns:
        The :class:`FitResult`.

    Raises:
        OutputError: ``out_dir`` holds a run and ``resume`` is false.
        InputError: ``resume`` without a checkpoint; unusable data; a ``model.init`` that is neither a weights
            file nor a shipped model (raised before ``out_dir`` is made).
        ConfigError: ``resume`` with a configuration that differs from the saved one in a key outside
            :data:`RESUMABLE_CHANGES`.
    """
    import lightning as L
    import torch
    from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
    from lightning.pytorch.loggers import TensorBoardLogger

    from artefix.training.data import ArtefactDataModule, plan_data
    from artefix.training.logs import ResumableCSVLogger
    from artefix.training.module import ArtefactCorrectionModule

    out_dir = Path(out_dir).expanduser().absolute()
    if out_dir.exists() and not out_dir.is_dir():
        raise OutputError(f"{out_dir}: is a file; `out_dir` names the run folder", flags=OUT_FLAG)
    checkpoint = out_dir / CHECKPOINT
    secondary = is_secondary_process()  # reads the same files as rank 0, writes nothing here
    if resume and not checkpoint.is_file():
        if not (out_dir / RUN_FILE).is_file() or FitResult.read(out_dir).epochs > 0:
            raise InputError(f"{out_dir}: nothing to resume (no {CHECKPOINT}); run without `resume`")
        log.info("%s: stopped before its first checkpoint; starting again", out_dir)
        resume = False
    elif resume:
        if (out_dir / CONFIG_FILE).is_file():
            _check_resume_config(config, out_dir / CONFIG_FILE)
        done = FitResult.read(out_dir)
        if done.status == "finished" and (done.stopped_early or done.epochs >= config.trainer.max_epochs):
            log.info("%s: the run already finished; nothing to resume", out_dir)
            return dataclasses.replace(done, trained_now=False)
    elif not secondary and (checkpoint.exists() or (out_dir / RUN_FILE).exists()):
        raise OutputError(
            f"{out_dir}: already holds a training run; pass `resume` or choose another `out_dir`", flags=OUT_FLAG
        )
    if config.model.init is not None:
        from artefix.models.registry import resolve_model

        resolve_model(config.model.init)  # a missing init fails here, before the run folder is made
    saved_config = config
    if resume and config.data.split is None and (out_dir / SPLIT_FILE).is_file():
        config = dataclasses.replace(config, data=dataclasses.replace(config.data, split=str(out_dir / SPLIT_FILE)))

    # Everything that can fail on the configuration or the data runs before the run folder is written.
    L.seed_everything(config.seed, workers=True, verbose=False)
    if config.trainer.cpu_threads is not None:
        torch.set_num_threads(config.trainer.cpu_threads)
    write_split = not secondary and config.data.split is None
    plan = plan_data(config.data)
    datamodule = ArtefactDataModule(config.data, plan, config.data_seed)
    module = ArtefactCorrectionModule(config)
    t = config.trainer
    command = command or shlex.join([Path(sys.argv[0]).name, *sys.argv[1:]])
    export = ModelExport(out_dir, _card(config, plan, out_dir, command), monitor=t.monitor, keep=t.keep)
    all_callbacks: list[Any] = [
        export,
        EarlyStopping(monitor=t.monitor, patience=t.patience, min_delta=t.min_delta, mode="min"),
        KeepPatience(t.patience),
        ModelCheckpoint(dirpath=out_dir, filename="last", save_top_k=1, monitor=None, enable_version_counter=False),
        *callbacks,
    ]
    bar = None if quiet else _progress_bar(t.progress_bar)
    if bar is not None:
        all_callbacks.append(bar)
    trainer = _trainer(
        default_root_dir=out_dir,
        max_epochs=t.max_epochs,
        accelerator=t.accelerator,
        devices=list(t.devices) if isinstance(t.devices, tuple) else t.devices,
        strategy=t.strategy,
        num_nodes=t.num_nodes,
        precision=t.precision,  # type: ignore[arg-type]
        limit_train_batches=t.limit_train_batches,
        limit_val_batches=t.limit_val_batches,
        log_every_n_steps=t.log_every_n_steps,
        gradient_clip_val=t.gradient_clip_val,
        accumulate_grad_batches=t.accumulate_grad_batches,
        num_sanity_val_steps=t.num_sanity_val_steps,
        deterministic=t.deterministic,
        logger=[
            ResumableCSVLogger(out_dir, name="", version="logs"),
            TensorBoardLogger(out_dir, name="", version="tensorboard", default_hp_metric=False),
        ],
        callbacks=all_callbacks,
        enable_progress_bar=bar is not None,
        enable_model_summary=not quiet,
        reload_dataloaders_every_n_epochs=1,
    )
    if not secondary:
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(f"{out_dir}: cannot create the run folder ({one_line(exc)})") from exc
        save_config(saved_config, out_dir / CONFIG_FILE, header=f"resolved configuration of the run in {out_dir}")
        if write_split and plan.split is not None:
            plan.split.save(out_dir / SPLIT_FILE)
    with _quiet_lightning(), warnings.catch_warnings():
        # The run folder holds config.yaml, logs and weights next to last.ckpt on purpose.
        warnings.filterwarnings("ignore", message=r".*Checkpoint directory .* exists and is not empty")
        trainer.fit(module, datamodule=datamodule, ckpt_path=checkpoint if resume else None, weights_only=False)
    return FitResult.read(out_dir)
