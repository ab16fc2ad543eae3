"""Multi-stage training: several ``artefix train`` configurations run in order, one command.

A shipped model is often trained in stages (pre-training, fine-tuning on a wider distribution, refitting
its artefact detector), each stage starting from the weights of an earlier one. A *pipeline file* names
the stages, so regenerating the model is one command::

    artefix train configs/release/pipelines/mt-lc-brain.yaml --out runs/mt-lc-brain-release

The file is YAML with a ``stages`` list (paths relative to the file)::

    name: mt-lc-brain                  # default run folder: runs/NAME
    stages:
      - name: stage1                   # the stage's run folder: OUT/stage1
        config: mt_lc_brain_stage1.yaml
      - name: stage2
        config: mt_lc_brain.yaml
        init: stage1                   # model.init = OUT/stage1/best.safetensors
        set: [trainer.max_epochs=38]   # optional overrides of this stage's config

Each stage is an ordinary run folder (:func:`artefix.training.engine.fit`); ``OUT/pipeline.json`` records
the stages, their status and the final weights (the last stage's ``best.safetensors``). With ``resume``
finished stages are kept as they are (their configuration must still match, and so must the weights they
started from, by sha256) and an interrupted stage continues from its checkpoint, so a pipeline longer
than a session is trained by re-running its command with ``--resume``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from artefix.atomic import atomic_file
from artefix.training.config import ConfigError, TrainConfig, load_config, read_yaml

if TYPE_CHECKING:
    from artefix.training.engine import FitResult

__all__ = ["PIPELINE_FILE", "Pipeline", "Stage", "is_pipeline_file", "load_pipeline", "run_pipeline", "stage_configs"]

PIPELINE_FILE = "pipeline.json"
"""Summary written into a pipeline's run folder."""

_STAGE_KEYS = ("name", "config", "init", "set")


@dataclass(frozen=True)
class Stage:
    """One stage of a :class:`Pipeline`.

    Attributes:
        name: Unique name; also the stage's run folder inside the pipeline's folder.
        config: Absolute path of the stage's training configuration (YAML).
        init: Name of an earlier stage whose ``best.safetensors`` becomes this stage's ``model.init``.
        overrides: ``KEY=VALUE`` overrides of the stage's configuration (before the pipeline-wide ones).
    """

    name: str
    config: Path
    init: str | None = None
    overrides: tuple[str, ...] = ()


@dataclass(frozen=True)
class Pipeline:
    """An ordered list of training stages read from a pipeline file.

    Attributes:
        name: Pipeline name (default run folder ``runs/NAME``).
        stages: The stages, in training order.
        source: The file it was read from.
    """

    name: str
    stages: tuple[Stage, ...]
    source: str


def is_pipeline_file(path: str | Path) -> bool:
    """Whether ``path`` is a YAML mapping with a ``stages`` key (False for anything unreadable)."""
    try:
        raw = read_yaml(Path(path).expanduser())
    except ConfigError:
        return False
    return isinstance(raw, dict) and "stages" in raw


def _stage(raw: Any, index: int, folder: Path, earlier: Sequence[str], where: str) -> Stage:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: stages[{index}] must be a mapping with name and config")
    unknown = sorted(set(raw) - set(_STAGE_KEYS))
    if unknown:
        raise ConfigError(f"{where}: stages[{index}] has unknown keys {unknown} (allowed: {', '.join(_STAGE_KEYS)})")
    name, config = raw.get("name"), raw.get("config")
    if not isinstance(name, str) or not name or Path(name).name != name or name.startswith("."):
        raise ConfigError(f"{where}: stages[{index}].name must be a plain folder name, got {name!r}")
    if name in earlier:
        raise ConfigError(f"{where}: stage name {name!r} is used twice")
    if not isinstance(config, str) or not config:
        raise ConfigError(f"{where}: stage {name!r} needs a config (a YAML path relative to the pipeline file)")
    init = raw.get("init")
    if init is not None and init not in earlier:
        raise ConfigError(f"{where}: stage {name!r} starts from {init!r}, which is not an earlier stage")
    overrides = raw.get("set") or []
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{where}: stage {name!r}: set must be a list of KEY=VALUE strings")
    return Stage(name, Path(os.path.normpath(folder / Path(config).expanduser())), init, tuple(overrides))


def load_pipeline(path: str | Path) -> Pipeline:
    """Read and check a pipeline file (stage configurations are read by :func:`stage_configs`).

    Raises:
        ConfigError: Unreadable file, no stages, unknown keys, duplicate names, an ``init`` that names no
            earlier stage.
    """
    path = Path(path).expanduser()
    raw = read_yaml(path)
    if not isinstance(raw, dict) or not isinstance(raw.get("stages"), list) or not raw["stages"]:
        raise ConfigError(f"{path}: a pipeline file needs a non-empty 'stages' list")
    unknown = sorted(set(raw) - {"name", "stages"})
    if unknown:
        raise ConfigError(f"{path}: unknown keys {unknown} in a pipeline file (allowed: name, stages)")
    name = raw.get("name", path.stem)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{path}: name must be a non-empty string, got {name!r}")
    stages: list[Stage] = []
    for index, item in enumerate(raw["stages"]):
        stages.append(_stage(item, index, path.parent.absolute(), [s.name for s in stages], str(path)))
    return Pipeline(name, tuple(stages), str(path))


def stage_configs(
    pipeline: Pipeline,
    out_dir: str | Path,
    overrides: Iterable[str] = (),
    *,
    data_root: str | Path | None = None,
) -> list[tuple[Stage, TrainConfig, Path]]:
    """Resolve every stage: its configuration and its run folder ``OUT/NAME``.

    ``overrides`` and ``data_root`` apply to every stage after the stage's own ``set`` (whose relative paths
    are taken from the pipeline file's folder); a stage's ``init``
    then sets ``model.init`` to the earlier stage's ``best.safetensors`` (which need not exist yet).

    Raises:
        ConfigError: A stage's configuration is missing or invalid (the message names the stage).
    """
    out_dir = Path(out_dir).expanduser().absolute()
    folder = Path(pipeline.source).absolute().parent  # a stage's own set is written next to the pipeline
    resolved = []
    for stage in pipeline.stages:
        extra = list(overrides)
        if stage.init is not None:
            extra.append(f"model.init={out_dir / stage.init / 'best.safetensors'}")
        try:
            config = load_config(stage.config, extra, data_root=data_root, first=stage.overrides, first_cwd=folder)
        except ConfigError as exc:
            raise ConfigError(f"stage {stage.name!r}: {exc}") from None
        resolved.append((stage, config, out_dir / stage.name))
    return resolved


def _previous_rows(out_dir: Path) -> dict[str, dict[str, Any]]:
    """The stages recorded in an earlier ``pipeline.json`` of ``out_dir``, by name (empty if none)."""
    try:
        doc = json.loads((out_dir / PIPELINE_FILE).read_text(encoding="utf-8"))
        return {row["name"]: row for row in doc.get("stages", []) if isinstance(row, dict) and "name" in row}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def _write_summary(pipeline: Pipeline, out_dir: Path, rows: list[dict[str, Any]]) -> None:
    final = rows[-1]["best"] if rows and len(rows) == len(pipeline.stages) else None
    doc = {"name": pipeline.name, "source": pipeline.source, "final_weights": final, "stages": rows}
    with atomic_file(out_dir / PIPELINE_FILE) as tmp:
        tmp.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")


def run_pipeline(
    pipeline: Pipeline,
    out_dir: str | Path,
    overrides: Iterable[str] = (),
    *,
    data_root: str | Path | None = None,
    resume: bool = False,
    command: str | None = None,
) -> list[FitResult]:
    """Train every stage in order; returns their :class:`~artefix.training.engine.FitResult`.

    Args:
        pipeline: From :func:`load_pipeline`.
        out_dir: The pipeline's folder: one run folder per stage, and ``pipeline.json``.
        overrides: ``KEY=VALUE`` overrides for every stage (e.g. ``trainer.accelerator=cpu``).
        data_root: Folder every stage's ``data.roots`` are relative to (overrides ``data.base``).
        resume: Continue in an existing folder: finished stages are kept, an interrupted one resumes.
        command: The command line recorded in each stage's model card.

    Raises:
        OutputError: ``out_dir`` already holds stages and ``resume`` is false, or (on resume) a stage was
            trained from weights of an earlier stage that have changed since (trained further).
        ConfigError: A stage's configuration is invalid, or differs from the one its folder was trained
            with (on resume).
        InputError: A stage ended without weights, so the next stage has nothing to start from.
    """
    from artefix.errors import InputError, OutputError
    from artefix.models.checkpoint import sha256_of
    from artefix.training.callbacks import RUN_FILE
    from artefix.training.engine import OUT_FLAG, fit, is_secondary_process

    out_dir = Path(out_dir).expanduser().absolute()
    stages = stage_configs(pipeline, out_dir, overrides, data_root=data_root)  # every config checked up front
    held = (out_dir / PIPELINE_FILE).exists() or any((d / RUN_FILE).exists() for _, _, d in stages)
    if held and not resume:
        raise OutputError(
            f"{out_dir}: already holds a training pipeline; pass `resume` or choose another `out_dir`",
            flags=OUT_FLAG,
        )
    secondary = is_secondary_process()
    if not secondary:
        out_dir.mkdir(parents=True, exist_ok=True)
    previous = _previous_rows(out_dir)
    results, rows = [], []
    for stage, config, stage_dir in stages:
        started = (stage_dir / RUN_FILE).exists()
        init_sha = sha256_of(Path(config.model.init)) if stage.init is not None and config.model.init else None
        recorded = previous.get(stage.name, {}).get("init_sha256")
        if started and recorded is not None and recorded != init_sha:
            raise OutputError(
                f"stage {stage.name!r} was trained from an earlier {stage.init!r}; delete {stage_dir} to train it again"
            )
        result = fit(config, stage_dir, resume=resume and started, command=command)
        if result.best_path is None:
            raise InputError(f"stage {stage.name!r} ended ({result.status}) without weights; see {stage_dir}")
        results.append(result)
        rows.append(
            {
                "name": stage.name,
                "config": str(stage.config),
                "init": stage.init,
                "init_sha256": init_sha,
                "out": str(stage_dir),
                "status": result.status,
                "epochs": result.epochs,
                "best_epoch": result.best_epoch,
                "best_score": result.best_score,
                "wall_time_s": result.wall_time_s,
                "best": str(result.best_path),
            }
        )
        if not secondary:
            _write_summary(pipeline, out_dir, rows)
    return results
