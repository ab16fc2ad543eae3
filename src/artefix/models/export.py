"""Export a trained model to TorchScript or ONNX for deployment without artefix.

The exported graph computes the model in evaluation mode with **all heads applied** and returns the
tuple ``(output (B, 1, H, W), residuals (B, K, H, W))``; other head selections can be re-combined from
the residuals (``artefix.models.apply_residuals``). Height and width are fixed to those of
``example_shape`` (the padding to a multiple of the network stride is computed from them); the batch
size may vary.

* TorchScript: :func:`export_torchscript` traces with ``torch.jit.trace`` (deprecated by PyTorch in
  favour of ``torch.export`` but still the most portable C++/mobile format). Load with
  ``torch.jit.load(path)``.
* ONNX: :func:`export_onnx` uses the ``torch.export``-based exporter, which needs the ``onnxscript``
  package; the FFT layers become ONNX ``DFT`` operators (opset >= 20). The legacy TorchScript-based
  ONNX exporter cannot export the model (no ``fft_ifftshift``/``fft_fft2`` support).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from artefix.models.dual_domain import DualDomainModel


class ExportWrapper(nn.Module):
    """``x (B, 1, H, W) -> (output, residuals)`` as a plain tuple, all heads applied."""

    def __init__(self, model: DualDomainModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the wrapped model with every head enabled."""
        out = self.model(x)
        return out.output, out.residuals


def _example(model: nn.Module, example_shape: Sequence[int]) -> torch.Tensor:
    shape = tuple(int(s) for s in example_shape)
    if len(shape) != 4 or shape[1] != 1 or min(shape) < 1:
        raise ValueError(f"example_shape must be (B, 1, H, W) with positive sizes, got {tuple(example_shape)}")
    param = next(model.parameters())
    g = torch.Generator(device="cpu").manual_seed(0)
    return torch.randn(shape, generator=g).to(device=param.device, dtype=param.dtype)


def export_torchscript(
    model: DualDomainModel, path: str | Path, example_shape: Sequence[int] = (1, 1, 320, 320)
) -> Path:
    """Trace ``model`` (in eval mode) to a TorchScript file.

    Args:
        model: The model; its training flag is restored afterwards.
        path: Output file (conventionally ``.pt``); parent folders must exist.
        example_shape: ``(B, 1, H, W)`` of the example input used for tracing.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    example = _example(model, example_shape)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            # torch.jit's deprecation notices and the tracer's "shape as constant" notes are expected.
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", torch.jit.TracerWarning)
            with torch.no_grad():
                traced = torch.jit.trace(ExportWrapper(model), example, check_trace=False)
            torch.jit.save(traced, str(path))
    finally:
        model.train(was_training)
    return path


def export_onnx(
    model: DualDomainModel,
    path: str | Path,
    example_shape: Sequence[int] = (1, 1, 320, 320),
    opset_version: int = 20,
) -> Path:
    """Export ``model`` (in eval mode) to ONNX with a dynamic batch axis.

    Args:
        model: The model; its training flag is restored afterwards.
        path: Output file (``.onnx``); parent folders must exist.
        example_shape: ``(B, 1, H, W)`` of the example input; ``H`` and ``W`` are fixed in the graph (the
            batch axis is dynamic; a batch of 1 is traced as 2).
        opset_version: ONNX opset (>= 20 for the ``DFT`` operator with the layout used).

    Returns:
        ``path`` as a :class:`~pathlib.Path`. Inputs are named ``"image"``, outputs ``"output"`` and
        ``"residuals"``.

    Raises:
        ImportError: When ``onnxscript`` (needed by PyTorch's ONNX exporter) is not installed.
    """
    try:
        import onnxscript  # noqa: F401
    except ImportError as exc:
        raise ImportError("ONNX export needs the 'onnxscript' package: pip install onnxscript") from exc
    path = Path(path)
    shape = tuple(int(v) for v in example_shape)
    # torch.export specialises a batch of 1 and then refuses the dynamic batch axis: trace with 2 or more
    example = _example(model, (max(shape[0], 2), *shape[1:]) if len(shape) == 4 else shape)
    was_training = model.training
    model.eval()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                ExportWrapper(model),
                (example,),
                str(path),
                input_names=["image"],
                output_names=["output", "residuals"],
                dynamic_shapes={"x": {0: torch.export.Dim("batch")}},
                opset_version=opset_version,
                dynamo=True,
                verbose=False,
            )
    finally:
        model.train(was_training)
    return path
