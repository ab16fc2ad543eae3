"""``artefix train``: train a correction model from a YAML configuration (PyTorch Lightning)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

SET_HELP = (
    "Override a configuration value, KEY=VALUE with a dotted key and a YAML value; repeatable. "
    "E.g. --set trainer.max_epochs=3 --set data.roots=/data/brain --set trainer.devices=4 (lists in YAML flow style)."
)
DATA_ROOT_HELP = "Folder the config's data.roots are relative to (overrides data.base), e.g. a copy of shared/data."


def require_training_extra(*modules: str) -> None:
    """Refuse with one line (the install command) when a package of the ``train`` extra is missing."""
    import importlib.util

    from artefix.errors import InputError

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise InputError(
            f"training needs {', '.join(missing)} (the 'train' extra): pip install -c constraints.txt -e '.[train]'"
        )


def train_command(
    config: Annotated[
        Path,
        typer.Argument(
            help="Training configuration (YAML), e.g. configs/tiny.yaml, or a pipeline file of several stages "
            "(a 'stages' list), e.g. configs/release/pipelines/mt-lc-brain.yaml."
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Run folder (default: runs/NAME, NAME from the config or pipeline)."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            "--resume",
            help="Continue the run in --out from its last checkpoint (last.ckpt); for a pipeline, keep its "
            "finished stages and continue the interrupted one.",
        ),
    ] = False,
    overrides: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", help=DATA_ROOT_HELP)] = None,
    check: Annotated[
        bool, typer.Option("--check", help="Validate the configuration, print it resolved, and stop.")
    ] = False,
) -> None:
    """Train a model; DIR receives best/last weights (safetensors + model card), logs and the resolved config.

    A pipeline file trains its stages in order, each in DIR/STAGE, each starting from an earlier stage's weights.
    """
    import yaml

    from artefix.training.config import load_config
    from artefix.training.pipeline import is_pipeline_file

    if is_pipeline_file(config):
        _train_pipeline(config, out, resume, overrides or [], data_root, check)
        return
    cfg = load_config(config, overrides or (), data_root=data_root)
    if check:
        typer.echo(yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None, width=120), nl=False)
        return
    require_training_extra("lightning", "tensorboard")
    from artefix.training.engine import fit, is_secondary_process

    out_dir = out if out is not None else Path("runs") / cfg.name
    result = fit(cfg, out_dir, resume=resume)
    if is_secondary_process():
        return
    best = f"{result.best_score:.6g} (epoch {result.best_epoch})" if result.best_score is not None else "n/a"
    typer.echo(
        f"{result.status}: {result.epochs} epochs in {result.time_text()}, best {cfg.trainer.monitor} {best}\n"
        f"weights: {result.best_path}\nrun folder: {result.out_dir}"
    )


def _train_pipeline(
    path: Path, out: Path | None, resume: bool, overrides: list[str], data_root: Path | None, check: bool
) -> None:
    """``artefix train PIPELINE.yaml``: every stage in order (see :mod:`artefix.training.pipeline`)."""
    import yaml

    from artefix.training.pipeline import load_pipeline, run_pipeline, stage_configs

    pipeline = load_pipeline(path)
    out_dir = out if out is not None else Path("runs") / pipeline.name
    if check:
        stages = stage_configs(pipeline, out_dir, overrides, data_root=data_root)
        doc = {"name": pipeline.name, "stages": [{"stage": s.name, "out": str(d), **c.to_dict()} for s, c, d in stages]}
        typer.echo(yaml.safe_dump(doc, sort_keys=False, default_flow_style=None, width=120), nl=False)
        return
    require_training_extra("lightning", "tensorboard")
    from artefix.training.engine import is_secondary_process

    results = run_pipeline(pipeline, out_dir, overrides, data_root=data_root, resume=resume)
    if is_secondary_process():
        return
    for stage, result in zip(pipeline.stages, results, strict=True):
        typer.echo(f"{stage.name}: {result.status}, {result.epochs} epochs in {result.time_text()}")
    typer.echo(f"weights: {results[-1].best_path}\nrun folder: {Path(out_dir).absolute()}")
