"""``artefix export``: write a model as an ONNX graph, to run it with onnxruntime without artefix."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

DEFAULT_SIZE = (320, 320)
"""Slice size of the graph when neither ``--size`` nor the model card's ``matrix`` gives one."""


def parse_size(text: str) -> tuple[int, int]:
    """``"320x320"`` -> ``(320, 320)``.

    Raises:
        InputError: Not two integers >= 2 joined by ``x``.
    """
    from artefix.errors import InputError

    parts = text.lower().replace(",", "x").split("x")
    try:
        size = tuple(int(p) for p in parts)
    except ValueError:
        size = ()
    if len(size) != 2 or min(size) < 2:
        raise InputError(f"--size {text!r} must be HxW with two integers >= 2, e.g. 320x320")
    return size[0], size[1]


def export_model(
    model: str | Path, output: str | Path, *, size: tuple[int, int] | None = None, overwrite: bool = False
) -> tuple[Path, tuple[int, int]]:
    """Export a shipped model (by name) or a ``.safetensors`` checkpoint to ONNX, atomically.

    The graph takes z-normalised slices ``image (B, 1, H, W)`` (batch size free, ``H x W`` fixed) and
    returns ``output`` and ``residuals (B, K, H, W)`` with every head applied
    (:func:`artefix.models.export.export_onnx`).

    Args:
        model: Model name or ``.safetensors`` path.
        output: The ``.onnx`` file to write.
        size: ``(H, W)`` of the graph; default the model card's ``matrix``, else :data:`DEFAULT_SIZE`.
        overwrite: Replace an existing output.

    Returns:
        ``(output path, (H, W))``.

    Raises:
        InputError: Unknown or unreadable model.
        OutputError: Output not ``.onnx``, existing (without ``overwrite``), in a missing or unwritable folder.
    """
    import os
    import tempfile

    from artefix.atomic import atomic_file, check_output_path
    from artefix.errors import InputError, OutputError

    try:
        import onnx
        import onnxscript  # noqa: F401 - PyTorch's ONNX exporter needs it
    except ImportError as exc:
        raise InputError(
            f"artefix export needs onnx and onnxscript ({exc.name} is missing): pip install onnxscript"
        ) from None
    from artefix.models.export import export_onnx
    from artefix.models.registry import load_named_model

    target = Path(os.fspath(output)).expanduser()
    if target.suffix.lower() != ".onnx":
        raise OutputError(f"{target}: the output must be an .onnx file")
    check_output_path(target, overwrite=overwrite)
    net, card = load_named_model(model)
    if size is None:
        matrix = card.get("matrix")
        size = (int(matrix[0]), int(matrix[1])) if matrix else DEFAULT_SIZE
    # PyTorch's exporter may put the weights in a side file named after the graph file: export to a scratch
    # folder, then write one self-contained file (the weights inside) in place atomically
    with tempfile.TemporaryDirectory(prefix=".artefix-export-", dir=target.parent) as scratch:
        graph = onnx.load(export_onnx(net, Path(scratch) / "model.onnx", example_shape=(1, 1, *size)))
        with atomic_file(target) as tmp:
            onnx.save_model(graph, str(tmp), save_as_external_data=False)
    return target, size


def export_command(
    model: Annotated[str, typer.Argument(help="Shipped model name (see 'artefix models') or a .safetensors path.")],
    output: Annotated[Path, typer.Argument(help="The .onnx file to write.")],
    size: Annotated[
        str | None,
        typer.Option(help="Slice size HxW of the graph (default: the model card's matrix, else 320x320)."),
    ] = None,
    overwrite: Annotated[bool, typer.Option(help="Replace an existing OUTPUT.")] = False,
) -> None:
    """Export MODEL to ONNX: z-normalised slices (B, 1, H, W) in, 'output' and 'residuals' out (all heads)."""
    from rich.console import Console

    path, (h, w) = export_model(model, output, size=parse_size(size) if size is not None else None, overwrite=overwrite)
    Console().print(f"wrote {path} (input 'image' (B, 1, {h}, {w}), outputs 'output' and 'residuals')")
