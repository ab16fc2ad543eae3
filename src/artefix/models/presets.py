"""Named model sizes and the :func:`build_model` factory.

=========== ==== ===== ===== ========== ========================================================
preset      base depth convs parameters use
=========== ==== ===== ===== ========== ========================================================
``paper``   64   5     3     75,532,236 the paper's 320x320 model (75.4 M in the paper)
``compact`` 8    5     3     1,184,004  default shipped model, CPU-friendly (benchmarks/model.py)
``tiny``    4    2     3     8,280      unit tests and the tiny training configuration
=========== ==== ===== ===== ========== ========================================================

All presets keep both branches and the four heads; single-task variants (the paper's Bias,
Subsampling, Motion and Noise models) are the same architecture with one head:
``build_model("paper", heads=("bias",))`` or :func:`build_single_task_model`.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from artefix.artefacts.base import Artefact
from artefix.errors import ArtefixError
from artefix.models.dual_domain import DualDomainModel, ModelConfig

PAPER_PARAMETERS = 75_400_000
"""Parameter count the paper reports for its multi-task model."""

PAPER = ModelConfig(base_width=64, depth=5, convs_per_block=3)
"""The paper's model (Simko et al. 2023, "Model" section), 75,532,236 parameters (paper: 75.4 M, +0.2 %).

What the text fixes: two branches (image; k-space behind a Fourier-transform layer and followed by an
inverse one) whose residuals are summed; per branch twelve convolutional blocks, five of them strided
(downsampling) and five with upsampling layers, U-Net skip concatenations; the block at downsampling
depth ``d = 0..4`` has three 3x3 convolutions with ``64 * 2**d`` channels, each followed by batch
normalisation and LeakyReLU(0.2); four 1x1 convolutions give the residuals; 320x320 input.

What we chose, and why (see :mod:`artefix.models.unet` for the layer plan):

* twelve blocks = full-resolution stem (64 ch) + five strided blocks (64, 128, 256, 512, 1024 ch; the
  first convolution of each has stride 2, so 320 -> 10 px) + five upsampling blocks + a
  full-resolution output block (64 ch);
* the upsampling blocks (nearest neighbour x2, concatenation with the skip of that resolution) have half
  the channels of their skip, at least 64: 256, 128, 64, 64, 64. The text gives no decoder widths; a
  decoder mirroring the encoder widths (512 ... 64) would give about 95 M parameters and an extra
  1024-channel bottleneck block over 150 M, both far from 75.4 M, while this choice lands within 0.2 %;
* convolutions carry no bias (the batch normalisation's shift replaces it), the heads do;
* the k-space branch takes 2 input channels (real, imaginary) and emits 2 per head.
"""

COMPACT = ModelConfig(base_width=8, depth=5, convs_per_block=3)
"""The default shipped model: the paper's layout at 1/8 of the width (1.18 M parameters).

Measured on the 2-core development CPU (``benchmarks/model.py``, shared cores): about 3.5 GFLOP
and 45-60 ms per 320x320 slice (batch 1 is a little faster per slice than batch 8, whose activations
outgrow the caches), versus about 13 GFLOP / 140 ms for base width 16 at depth 4. The fifth
strided level costs almost no FLOPs at 10x10 px but adds most of the parameters (receptive field and
capacity for motion and subsampling, whose artefacts are global).
"""

TINY = ModelConfig(base_width=4, depth=2, convs_per_block=3)
"""A very small model (8,280 parameters) for unit tests and smoke-test training runs."""

PRESETS: Mapping[str, ModelConfig] = MappingProxyType({"paper": PAPER, "compact": COMPACT, "tiny": TINY})
"""Preset name -> :class:`ModelConfig`; ``list(PRESETS)`` lists the names."""


class UnknownPresetError(ArtefixError, ValueError):
    """A model preset name that :data:`PRESETS` does not know."""


def get_config(preset: str | ModelConfig = "compact", **overrides: Any) -> ModelConfig:
    """The :class:`ModelConfig` of a preset, with fields replaced by ``overrides``.

    Args:
        preset: A name in :data:`PRESETS` or a ready :class:`ModelConfig`.
        **overrides: :class:`ModelConfig` fields to change, e.g. ``heads=("noise",)``, ``depth=4``.

    Raises:
        UnknownPresetError: For an unknown preset name (the CLI prints it as one line, exit code 2).
        ValueError: For unknown or invalid override fields.
    """
    if isinstance(preset, ModelConfig):
        config = preset
    elif preset in PRESETS:
        config = PRESETS[preset]
    else:
        raise UnknownPresetError(f"unknown model preset {preset!r}; choose one of {', '.join(PRESETS)}")
    return config.replace(**overrides) if overrides else config


def build_model(preset: str | ModelConfig = "compact", *, seed: int | None = None, **overrides: Any) -> DualDomainModel:
    """Build a freshly initialised :class:`DualDomainModel` (input ``(B, 1, H, W)``, any ``H, W``).

    Args:
        preset: A name in :data:`PRESETS` (``"paper"``, ``"compact"``, ``"tiny"``) or a
            :class:`ModelConfig` (e.g. ``ModelConfig.from_dict(checkpoint["model_config"])``).
        seed: Seed of a private generator for the initial weights (reproducible models); ``None``
            uses PyTorch's default initialisation.
        **overrides: :class:`ModelConfig` fields to change, and
            :class:`~artefix.models.policy.InferencePolicy` fields for the model's :attr:`policy`.

    Returns:
        The model, in training mode, on the CPU, float32.

    Raises:
        UnknownPresetError: For an unknown preset name.
        ValueError: For invalid overrides.

    Example:
        >>> from artefix.models import build_model
        >>> build_model("tiny", heads=("noise",)).head_names
        ('noise',)
    """
    from artefix.models.dual_domain import split_settings
    from artefix.models.policy import InferencePolicy

    architecture, inference = split_settings(overrides)
    return DualDomainModel(get_config(preset, **architecture), seed=seed, policy=InferencePolicy(**inference))


def build_single_task_model(
    artefact: str | Artefact,
    preset: str | ModelConfig = "compact",
    *,
    seed: int | None = None,
    **overrides: Any,
) -> DualDomainModel:
    """One of the paper's single-task models: the preset's architecture with one residual head.

    Args:
        artefact: ``"bias"``, ``"subsampling"``, ``"motion"`` or ``"noise"`` (or an :class:`Artefact`).
        preset: As for :func:`build_model`.
        seed: As for :func:`build_model`.
        **overrides: Other :class:`ModelConfig` fields to change.
    """
    return build_model(preset, seed=seed, heads=(artefact,), **overrides)


def count_parameters(model: Any, trainable_only: bool = False) -> int:
    """Number of parameters of a ``torch.nn.Module`` (batch-norm running statistics are buffers, not counted)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)
