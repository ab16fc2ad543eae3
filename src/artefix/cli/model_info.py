"""``artefix model-info``: describe a model preset (parameters, heads, architecture)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer


def describe_preset(preset: str, heads: list[str] | None = None) -> dict[str, Any]:
    """Facts about a preset, as printed by ``artefix model-info PRESET --json``.

    The model is built on PyTorch's ``meta`` device, so even the 75 M-parameter ``paper`` preset is
    described instantly without allocating its weights.

    Args:
        preset: A name in :data:`artefix.models.PRESETS`.
        heads: Optional subset of heads (a single-task variant when one name).

    Returns:
        ``{"preset", "parameters", "heads", "branches", "stride", "parameters_per_branch", "config"}``.

    Raises:
        artefix.models.UnknownPresetError: For an unknown preset.
        artefix.errors.InputError: For an invalid head name.
    """
    import torch

    from artefix.errors import InputError
    from artefix.models import DualDomainModel, count_parameters, get_config

    config = get_config(preset)
    if heads:
        try:
            config = config.replace(heads=tuple(heads))
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    with torch.device("meta"):
        model = DualDomainModel(config)
    per_branch = {
        name: count_parameters(branch)
        for name, branch in (("image", model.image_branch), ("kspace", model.kspace_branch))
        if branch is not None
    }
    return {
        "preset": preset,
        "parameters": count_parameters(model),
        "heads": list(config.heads),
        "branches": list(config.branches),
        "stride": config.stride,
        "parameters_per_branch": per_branch,
        "config": config.to_dict(),
    }


def model_info_command(
    preset: Annotated[str, typer.Argument(help="Model preset: paper, compact or tiny.")],
    heads: Annotated[
        str | None,
        typer.Option("--heads", help="Comma-separated subset of heads, e.g. 'bias' for a single-task model."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")] = False,
) -> None:
    """Show a model preset's parameter count, residual heads and architecture."""
    head_list = [h.strip() for h in heads.split(",") if h.strip()] if heads else None
    info = describe_preset(preset, head_list)
    if as_json:
        typer.echo(json.dumps(info))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"artefix model preset '{preset}'", show_header=False)
    table.add_column("field", style="bold")
    table.add_column("value")
    table.add_row("parameters", f"{info['parameters']:,}")
    for name, count in info["parameters_per_branch"].items():
        table.add_row(f"  {name} branch", f"{count:,}")
    table.add_row("heads (residual order)", ", ".join(info["heads"]))
    cfg = info["config"]
    table.add_row("base width", str(cfg["base_width"]))
    table.add_row("depth (strided blocks)", str(cfg["depth"]))
    table.add_row("convs per block", str(cfg["convs_per_block"]))
    table.add_row("LeakyReLU slope", str(cfg["negative_slope"]))
    table.add_row("padding", f"{cfg['pad_mode']} to a multiple of {info['stride']} px")
    Console().print(table)
