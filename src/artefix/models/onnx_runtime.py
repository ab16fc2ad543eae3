"""Run a loaded model's correction through ONNX Runtime (``artefix correct --runtime onnx``).

:class:`OnnxModel` wraps a :class:`~artefix.models.DualDomainModel` and an inference policy with the call
that :func:`artefix.correction.volume.correct_volume` uses: ``model(x)`` / ``model(x, snr_db=...)`` returns a
:class:`~artefix.models.ModelOutput`. The output, residuals and detector scores come from an ONNX Runtime session
of the model exported with its policy by :func:`artefix.models.export.export_onnx`-style tracing, once per working
slice size (the exported graph fixes the slice's height and width; the batch axis is dynamic) and per call form:
with ``snr_db`` given (the noise gate on the scan's SNR, ``--snr-scope scan``) the graph takes it as a second
input ``"snr_db"``. The detector alone (``detect``, for ``artefix qc``) and the attributes (``head_names``,
``policy``, ...) stay those of the torch model.
"""

from __future__ import annotations

import logging
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from artefix.errors import InputError
from artefix.models.dual_domain import ModelOutput
from artefix.models.policy import InferencePolicy

ONNX_MISSING = "--runtime onnx needs onnxruntime and onnxscript: pip install 'artefix[export]'"


class _Residuals(nn.Module):
    """``x (B, 1, H, W)`` -> ``(output, residuals (B, K, H, W)[, scores (B, K)])``, all heads.

    The noise gate uses the model's own SNR estimates; the scores come only from a model with a detector.
    """

    def __init__(self, model: nn.Module, policy: InferencePolicy) -> None:
        super().__init__()
        self.model = model
        self.policy = policy

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        out = self.model(x, policy=self.policy)
        return tuple(v for v in out if v is not None)


class _GatedResiduals(_Residuals):
    """``(x (B, 1, H, W), snr_db (B,))`` -> ``(output, residuals[, scores])``, the noise gate on the given SNRs."""

    def forward(self, x: torch.Tensor, snr_db: torch.Tensor) -> tuple[torch.Tensor, ...]:  # type: ignore[override]
        out = self.model(x, snr_db=snr_db, policy=self.policy)
        return tuple(v for v in out if v is not None)


def check_onnx_runtime() -> None:
    """Raise a one-line :class:`InputError` when onnxruntime or onnxscript (the exporter) is missing."""
    try:
        import onnxruntime  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise InputError(ONNX_MISSING) from None


class OnnxModel(nn.Module):
    """A model whose correction (``model(x)``) runs in ONNX Runtime; the detector alone stays torch's.

    Args:
        model: The loaded model.
        policy: The inference policy exported with it (None: the model's own); a call with another policy
            is refused.
        opset_version: ONNX opset of the export (>= 20 for the ``DFT`` operator).

    Raises:
        InputError: When onnxruntime or onnxscript is not installed (``pip install 'artefix[export]'``).
    """

    def __init__(self, model: nn.Module, policy: InferencePolicy | None = None, opset_version: int = 20) -> None:
        check_onnx_runtime()
        super().__init__()
        self.model = model.eval()
        self.policy: InferencePolicy = model.policy if policy is None else policy
        self.opset_version = opset_version
        self._sessions: dict[tuple[int, int, bool], Any] = {}

    # what correct_volume / qc_batch read from a model
    @property
    def head_names(self) -> tuple[str, ...]:
        """The torch model's head names."""
        return tuple(self.model.head_names)

    @property
    def detector(self) -> Any:
        """The torch model's artefact detector (None without gates)."""
        return getattr(self.model, "detector", None)

    def detect(
        self, x: torch.Tensor, snr_db: torch.Tensor | None = None, policy: InferencePolicy | None = None
    ) -> torch.Tensor | None:
        """The torch model's detection scores (``artefix qc``; a correction gets them from ONNX Runtime)."""
        return self.model.detect(x, snr_db=snr_db, policy=self._policy(policy))

    def _policy(self, policy: InferencePolicy | None) -> InferencePolicy:
        """The exported policy; a call's own may differ only in the settings applied outside the graph."""
        if policy is not None and policy.around_network() != self.policy.around_network():
            raise ValueError("this ONNX model was exported with another inference policy")
        return self.policy

    def _session(self, height: int, width: int, gated: bool, device: torch.device) -> Any:
        key = (height, width, gated)
        if key not in self._sessions:
            import onnxruntime as ort

            param = next(self.model.parameters())
            g = torch.Generator(device="cpu").manual_seed(0)
            example = torch.randn((2, 1, height, width), generator=g).to(device=param.device, dtype=param.dtype)
            batch = torch.export.Dim("batch")
            if gated:
                wrapper: nn.Module = _GatedResiduals(self.model, self.policy)
                args: tuple[torch.Tensor, ...] = (example, torch.full((2,), 20.0, device=param.device))
                names, dynamic = ["image", "snr_db"], {"x": {0: batch}, "snr_db": {0: batch}}
            else:
                wrapper, args = _Residuals(self.model, self.policy), (example,)
                names, dynamic = ["image"], {"x": {0: batch}}
            providers = ["CPUExecutionProvider"]
            if device.type == "cuda" and "CUDAExecutionProvider" in ort.get_available_providers():
                providers.insert(0, "CUDAExecutionProvider")
            with tempfile.TemporaryDirectory(prefix="artefix-onnx-") as folder:
                path = Path(folder) / "model.onnx"
                onnx_log = logging.getLogger("torch.onnx")  # "torchvision is not installed" notes
                level = onnx_log.level
                onnx_log.setLevel(logging.ERROR)
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        torch.onnx.export(
                            wrapper,
                            args,
                            str(path),
                            input_names=names,
                            output_names=self._outputs(),
                            dynamic_shapes=dynamic,
                            opset_version=self.opset_version,
                            dynamo=True,
                            verbose=False,
                        )
                finally:
                    onnx_log.setLevel(level)
                self._sessions[key] = ort.InferenceSession(str(path), providers=providers)
        return self._sessions[key]

    def forward(
        self, x: torch.Tensor, snr_db: torch.Tensor | None = None, policy: InferencePolicy | None = None
    ) -> ModelOutput:
        """The model's output, residuals (all heads) and scores for ``x (B, 1, H, W)``, from ONNX Runtime."""
        self._policy(policy)
        session = self._session(int(x.shape[-2]), int(x.shape[-1]), snr_db is not None, x.device)
        feeds = {"image": x.detach().float().cpu().numpy()}
        if snr_db is not None:
            feeds["snr_db"] = snr_db.detach().float().cpu().numpy().reshape(x.shape[0])
        names = self._outputs()
        values = [torch.from_numpy(v).to(device=x.device, dtype=x.dtype) for v in session.run(names, feeds)]
        return ModelOutput(*values)

    def _outputs(self) -> list[str]:
        return ["output", "residuals"] + (["scores"] if self.detector is not None else [])
