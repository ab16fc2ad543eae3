"""Callbacks of a training run: safetensors export with model cards, and the run-status file.

After every validation (not the sanity check) the rank-zero process writes

* ``last.safetensors`` + ``last.json``: the current weights and their model card;
* ``best.safetensors`` + ``best.json``: the weights of the epoch with the lowest monitored value so far
  (validation MSE by default), or with ``keep="last"`` the current ones;
* ``run.json``: status (``running``/``finished``/``interrupted``/``failed``), the epoch in progress, the
  completed epochs, the best epoch and the per-epoch validation metrics (``history``).

Weights go through :func:`artefix.models.checkpoint.save_model` (safetensors + JSON card with SHA-256,
written atomically), never through pickle. The callback's own state (best score, history, wall time) is
saved in Lightning's resumable ``last.ckpt`` so a resumed run continues the record.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import RichProgressBar, TQDMProgressBar

from artefix.atomic import atomic_file
from artefix.models.checkpoint import save_model
from artefix.training.config import KEEPS

__all__ = ["RUN_FILE", "ModelExport", "RichBar", "TqdmBar", "read_run_file"]

RUN_FILE = "run.json"
MONITOR = "val/mse"


def read_run_file(out_dir: Path) -> dict[str, Any]:
    """The run-status document of ``out_dir`` (``{}`` when there is none or it is unreadable)."""
    path = Path(out_dir) / RUN_FILE
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}


def _hardware(trainer: L.Trainer) -> dict[str, Any]:
    """CPU model, GPU names (when training on CUDA), process count."""
    import platform

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {"cpu": cpu, "accelerator": type(trainer.accelerator).__name__}
    if torch.cuda.is_available() and trainer.strategy.root_device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(trainer.strategy.root_device)
    info.update(world_size=trainer.world_size, num_nodes=trainer.num_nodes, precision=str(trainer.precision))
    return info


def _flush_logs(trainer: L.Trainer) -> None:
    """Write buffered log lines (the CSV logger keeps up to 100 steps in memory by default)."""
    for logger in trainer.loggers:
        logger.save()


class KeepPatience(L.Callback):
    """Applies the configured early-stopping ``patience`` again once a ``--resume`` restored the callbacks.

    Lightning restores ``EarlyStopping.patience`` with the rest of its state, so a resumed run with another
    ``trainer.patience`` (a change ``--resume`` allows) would silently keep the old one. The restore happens
    before ``on_fit_start``.
    """

    def __init__(self, patience: int) -> None:
        self.patience = int(patience)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        for callback in trainer.early_stopping_callbacks:
            callback.patience = self.patience


class ModelExport(L.Callback):
    """Export best/last weights as safetensors with model cards and keep ``run.json`` up to date.

    Args:
        out_dir: Run folder.
        card: Model-card fields known before training (name, preset, config, data, command, ...);
            ``epochs``, ``best_epoch``, ``wall_time_s``, ``hardware`` and ``val_metrics`` are added.
        monitor: Metric that decides the best weights (lower is better).
        keep: ``best`` (the epoch with the lowest ``monitor``) or ``last`` (every validated epoch with a
            finite ``monitor`` value replaces the kept weights: ``trainer.keep``).
    """

    def __init__(self, out_dir: Path, card: dict[str, Any], monitor: str = MONITOR, keep: str = "best") -> None:
        if keep not in KEEPS:
            raise ValueError(f"keep must be one of {', '.join(KEEPS)}, got {keep!r}")
        self.out_dir = Path(out_dir)
        self.card = dict(card)
        self.monitor = monitor
        self.keep = keep
        self.best_score = math.inf
        self.best_epoch: int | None = None
        self.history: list[dict[str, float]] = []
        self.previous_wall_time = 0.0
        self.resumed_from_epoch: int | None = None
        self._start = time.perf_counter()
        self._epoch_in_progress: int | None = None

    def state_dict(self) -> dict[str, Any]:
        """Saved in ``last.ckpt``: best score/epoch, history, wall time so far."""
        return {
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "history": list(self.history),
            "wall_time_s": self.wall_time(),
        }

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        """Restore the record of a resumed run."""
        self.best_score = float(state_dict.get("best_score", math.inf))
        self.best_epoch = state_dict.get("best_epoch")
        self.history = list(state_dict.get("history", []))
        self.previous_wall_time = float(state_dict.get("wall_time_s", 0.0))
        self.resumed_from_epoch = len(self.history)

    def wall_time(self) -> float:
        """Seconds of training so far, over all resumed segments."""
        return self.previous_wall_time + self.segment_time()

    def segment_time(self) -> float:
        """Seconds of training in this process (this segment of a resumed run)."""
        return time.perf_counter() - self._start

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Start the clock of this segment."""
        self._start = time.perf_counter()

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Record the epoch in progress."""
        self._epoch_in_progress = trainer.current_epoch
        self._write_status(trainer, "running")

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """After an epoch's validation: export last (and best) weights, update ``run.json``."""
        if trainer.sanity_checking:
            return
        metrics = {
            k: float(v) for k, v in trainer.callback_metrics.items() if k.startswith("val/") and torch.numel(v) == 1
        }
        epoch = trainer.current_epoch
        score = metrics.get(self.monitor, math.nan)
        self.history.append({"epoch": epoch, **metrics})
        improved = math.isfinite(score) and (self.keep == "last" or score < self.best_score)
        if improved:
            self.best_score, self.best_epoch = score, epoch
        if trainer.is_global_zero:
            model = pl_module.model  # type: ignore[attr-defined]
            card = self._card(trainer, epoch, metrics)
            save_model(model, self.out_dir / "last.safetensors", card={**card, "kind": "last"})
            if improved:
                save_model(model, self.out_dir / "best.safetensors", card={**card, "kind": "best"})
        self._write_status(trainer, "running")
        _flush_logs(trainer)

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Write the epoch's training metrics to the log files now, so a killed run keeps them."""
        _flush_logs(trainer)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Mark the run finished (or interrupted by Ctrl-C)."""
        self._epoch_in_progress = None
        self._write_status(trainer, "interrupted" if trainer.interrupted else "finished")

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Mark the run failed (or interrupted)."""
        status = "interrupted" if isinstance(exception, KeyboardInterrupt) else "failed"
        self._write_status(trainer, status, error=f"{type(exception).__name__}: {exception}")

    def _card(self, trainer: L.Trainer, epoch: int, metrics: dict[str, float]) -> dict[str, Any]:
        return {
            **self.card,
            "epochs": epoch + 1,
            "best_epoch": self.best_epoch,
            "wall_time_s": round(self.wall_time(), 3),
            "hardware": _hardware(trainer),
            "val_metrics": metrics,
        }

    def _write_status(self, trainer: L.Trainer, status: str, error: str | None = None) -> None:
        if not trainer.is_global_zero:
            return
        doc = {
            "status": status,
            "epoch_in_progress": self._epoch_in_progress,
            "completed_epochs": len(self.history),
            "resumed_from_epoch": self.resumed_from_epoch,
            "best_epoch": self.best_epoch,
            "best_score": self.best_score if math.isfinite(self.best_score) else None,
            "monitor": self.monitor,
            "keep": self.keep,
            "stopped_early": status == "finished" and len(self.history) < (trainer.max_epochs or 0),
            "wall_time_s": round(self.wall_time(), 3),
            "segment_wall_time_s": round(self.segment_time(), 3),
            "history": self.history,
        }
        if error:
            doc["error"] = error
        self.out_dir.mkdir(parents=True, exist_ok=True)
        with atomic_file(self.out_dir / RUN_FILE) as tmp:
            tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


class RichBar(RichProgressBar):
    """Lightning's rich progress bar without the logger-version field (meaningless here)."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """The bar's metrics minus ``v_num``."""
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


class TqdmBar(TQDMProgressBar):
    """Lightning's tqdm progress bar without the logger-version field."""

    def get_metrics(self, trainer: L.Trainer, pl_module: L.LightningModule) -> dict[str, Any]:
        """The bar's metrics minus ``v_num``."""
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items
