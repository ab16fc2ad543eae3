"""Training configuration: typed sections, YAML loading with validation, command-line overrides.

A configuration file is a YAML mapping with the sections below; every key is optional and unknown keys
are errors (with a "did you mean" hint). ``configs/`` in the repository holds the paper's models.

.. code-block:: yaml

    name: mt_lc_brain          # run name (model card)
    seed: 0                    # seed_everything at the start of a run; default of model.seed / data.seed
    model:     {preset: compact, heads: null, seed: null}
    loss:      {deltas: {E: 0.30, PT: 0.83, ...}, alpha: 0.87}   # Table 2; deltas may be a preset name
    optimizer: {name: rmsprop, log10_lr: -3.91, weight_decay: 0.0}   # lr = 10 ** log10_lr
    data:      {source: files, base: ../../shared/data, roots: [...], split: null, matrix: [320, 320], ...}
    trainer:   {max_epochs: 200, patience: 10, devices: auto, strategy: auto, precision: 32-true, ...}
    tune:      {max_epochs: 20, patience: 3, sampler: tpe, ...}

Paths: ``data.base`` and ``data.split`` are relative to the folder of the file that gives them (the config
file, or the current folder for a ``--set`` override); ``data.roots`` are relative to ``data.base`` when it
is set, else resolved like ``data.base``. The resolved configuration written next to a run holds absolute
paths, so it trains again from any folder.

Overrides (``--set KEY=VALUE``, repeatable) use dotted keys and YAML values:
``--set trainer.max_epochs=3 --set data.roots=[/data/a,/data/b] --set model.heads=[noise]``.

Modules: ``checks`` (validation helpers, :class:`ConfigError`), ``model_sections`` and ``run_sections``
(the six sections), ``train_config`` (:class:`TrainConfig`) and ``loading`` (YAML files, overrides,
relative paths, saving); every name they define is re-exported here.
"""

# Re-exports: every name of the former single module (submodules' private helpers and module imports
# included) stays importable from here.
# ruff: noqa: F401

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import yaml

from artefix.artefacts.names import HEADS
from artefix.atomic import atomic_file, one_line
from artefix.errors import ArtefixError
from artefix.training.config.checks import (
    ConfigError,
    _choice,
    _float,
    _int,
    _is_int,
    _limit,
    _names,
    _unknown_keys,
)
from artefix.training.config.loading import (
    PATH_KEYS,
    _looks_like_path,
    _resolve,
    _resolve_paths,
    apply_overrides,
    load_config,
    read_yaml,
    save_config,
)
from artefix.training.config.model_sections import (
    FREEZABLE,
    GATE_CRITERIA,
    OPTIMIZERS,
    LossSection,
    ModelSection,
    OptimizerSection,
)
from artefix.training.config.run_sections import (
    KEEPS,
    MONITORS,
    OUTPUTS,
    PRECISIONS,
    PROGRESS_BARS,
    PRUNERS,
    SAMPLERS,
    SOURCES,
    VAL_METRICS,
    DataSection,
    TrainerSection,
    TuneSection,
)
from artefix.training.config.train_config import _SECTIONS, TrainConfig, _plain

__all__ = [
    "ConfigError",
    "DataSection",
    "LossSection",
    "ModelSection",
    "OptimizerSection",
    "TrainConfig",
    "TrainerSection",
    "TuneSection",
    "apply_overrides",
    "load_config",
    "save_config",
]
