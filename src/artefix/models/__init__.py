"""Artefact-correction models: the paper's multi-task dual-domain U-Net and its presets.

>>> from artefix.models import build_model, PRESETS
>>> sorted(PRESETS)
['compact', 'paper', 'tiny']
>>> model = build_model("tiny")          # (B, 1, H, W) -> ModelOutput(output, residuals)
"""

from artefix.models.dual_domain import (
    ALL_HEADS,
    DualDomainModel,
    HeadSelection,
    ModelConfig,
    ModelOutput,
    apply_residuals,
    head_weights,
)
from artefix.models.presets import (
    PAPER_PARAMETERS,
    PRESETS,
    UnknownPresetError,
    build_model,
    build_single_task_model,
    count_parameters,
    get_config,
)

__all__ = [
    "ALL_HEADS",
    "PAPER_PARAMETERS",
    "PRESETS",
    "DualDomainModel",
    "HeadSelection",
    "ModelConfig",
    "ModelOutput",
    "UnknownPresetError",
    "apply_residuals",
    "build_model",
    "build_single_task_model",
    "count_parameters",
    "get_config",
    "head_weights",
]
