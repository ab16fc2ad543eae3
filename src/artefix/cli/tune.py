"""``artefix tune``: Bayesian hyper-parameter search (Optuna) over the paper's search space."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from artefix.cli.train import DATA_ROOT_HELP, SET_HELP

STORAGE_HELP = (
    "Study storage shared by all workers: sqlite:///study.db (default: DIR/study.db), "
    "postgresql://user:pw@host/db (pip install 'artefix[postgres]'), mysql+pymysql://..., "
    "or journal:/shared/path/study.log."
)


def tune_command(
    config: Annotated[Path, typer.Argument(help="Base training configuration (YAML); its tune section applies.")],
    trials: Annotated[int, typer.Option("--trials", "-n", min=1, help="Trials this worker runs.")],
    storage: Annotated[str | None, typer.Option("--storage", help=STORAGE_HELP)] = None,
    study: Annotated[str | None, typer.Option("--study", help="Study name (default: the config's name).")] = None,
    out: Annotated[Path | None, typer.Option("--out", "-o", help="Output folder (default: runs/tune-NAME).")] = None,
    seed: Annotated[
        int | None, typer.Option("--seed", help="Sampler seed; give each worker its own (default: random).")
    ] = None,
    timeout: Annotated[
        float | None, typer.Option("--timeout", min=0, help="Start no new trial after this many seconds.")
    ] = None,
    max_total: Annotated[
        int | None,
        typer.Option("--max-total", min=1, help="Stop when the study (all workers) has this many finished trials."),
    ] = None,
    overrides: Annotated[list[str] | None, typer.Option("--set", help=SET_HELP)] = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", help=DATA_ROOT_HELP)] = None,
) -> None:
    """Search optimiser, learning rate, alpha (and the LC deltas); write the best trial as a config."""
    import logging

    from artefix.cli.train import require_training_extra

    require_training_extra("lightning", "tensorboard", "optuna")
    import lightning  # noqa: F401 (configures its loggers on import; quieten them afterwards)

    from artefix.training.config import load_config
    from artefix.training.tune import mask_url, tune

    cfg = load_config(config, overrides or (), data_root=data_root)
    out_dir = out if out is not None else Path("runs") / f"tune-{cfg.name}"
    for name in ("lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    result = tune(
        cfg, out_dir, trials, storage=storage, study_name=study, seed=seed, timeout=timeout, max_total=max_total
    )
    best = f"{result.best_value:.6g}" if result.best_value is not None else "n/a"
    typer.echo(
        f"study {result.study_name!r}: {result.n_trials} trials ({result.n_complete} complete, "
        f"{result.n_pruned} pruned), best {cfg.trainer.monitor} {best}\n"
        f"best configuration: {result.best_config}\nstorage: {mask_url(result.storage)}"
    )
