"""``artefix models``: list the shipped models and their cards."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """List the installed (shipped) models with their model cards.

    Models are NAME.safetensors + NAME.json pairs in the package's weights folder, or in the folder named by
    the environment variable ARTEFIX_WEIGHTS_DIR when it is set.
    """
    from artefix.models.registry import DEFAULT_MODEL, WEIGHTS_ENV, list_models, weights_dir

    infos = list_models()
    folder = weights_dir()
    if as_json:
        data = {"weights_dir": str(folder), "default": DEFAULT_MODEL, "models": [m.to_dict() for m in infos]}
        typer.echo(json.dumps(data))
        return
    if not infos:
        typer.echo(
            f"No models are installed in {folder} (the default model {DEFAULT_MODEL} included). "
            f"Pass --model PATH/TO/MODEL.safetensors to 'artefix correct', or set {WEIGHTS_ENV} to a folder "
            "holding NAME.safetensors + NAME.json."
        )
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"artefix models in {folder}", caption="sha256, training and validation: artefix models --json")
    table.add_column("name", no_wrap=True)
    table.add_column("heads", no_wrap=True)
    table.add_column("parameters", no_wrap=True)
    table.add_column("description", overflow="fold", ratio=1)
    table.add_column("size", no_wrap=True)
    for info in infos:
        card = info.card
        table.add_row(
            f"{info.name} (default)" if info.name == DEFAULT_MODEL else info.name,
            "all four" if len(info.heads) == 4 else ", ".join(info.heads),
            f"{card['parameters'] / 1e6:.2f} M" if isinstance(card.get("parameters"), int) else "?",
            info.description or "-",
            f"{info.weights.stat().st_size / 1e6:.1f} MB",
        )
    Console().print(table)
