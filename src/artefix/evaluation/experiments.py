"""The paper's evaluation protocol (Tables 3-7) on any dataset: corrupt, correct, score, test.

:func:`evaluate` runs every experiment on the foreground slices of the given scans:

1. **Slices** are taken as in training: a volume's slices pass the :class:`ForegroundFilter`, are
   scaled by the volume's 99th percentile (non-negative magnitudes, what the simulators expect) and kept
   at their native in-plane size (``matrix=None``; the Fourier resize is then the identity) or
   Fourier-resized to ``matrix x matrix`` after zero-padding to a square field of view (``fit="pad"``, the
   training preprocessing; the paper used 320). ``max_slices`` keeps the centres of ``max_slices`` equal
   bins of the ordered (file, slice) list, so a small run still spans every file.
2. **Corruption**: each slice is corrupted at each evaluation severity of
   :data:`artefix.artefacts.sampler.REGISTRY` (bias 5/10/20 %, centred subsampling x2/x3/x4, motion with
   25/12.5/5 % of central k-space clean, noise 5/0/-5 dB) and the magnitude image is kept. The
   generator of one corruption is seeded with the SHA-256 of ``(seed, stream, experiment, severity,
   "folder/file", slice index)``, so numbers do not depend on where the data lives, on ``jobs``, on the
   other experiments or on the methods. The multi-artefact scenarios apply one documented level of each
   artefact in a random order per slice (:data:`SCENARIOS`): ``subsampling+motion`` = centred x3 +
   motion 12.5 %, ``noise+bias`` = 0 dB + 10 % (the paper gives no levels; these are the middle ones).
3. **Methods** (:func:`plan_methods`): ``input`` (the corrupted image), the classical baselines of the
   experiment (:data:`artefix.evaluation.baselines.BASELINES`; the ones whose optional package is
   missing are skipped and the report says so), the single-task model of the artefact and every
   multi-task model. The scenarios compare the input, each single-task model of the two artefacts alone,
   both sequential orders ``A>B`` (A first) and the multi-task models.
4. **Scores**: :func:`artefix.evaluation.metrics.compute_metrics` of ``Znorm(output)`` against
   ``Znorm(clean)``: every output is z-normalised (zero mean, unit standard deviation) before it is
   compared with the z-normalised clean slice, as in the paper, so a global gain or offset is never
   penalised.
5. **Statistics** (:func:`summarise_rows`): per experiment x severity x metric, the slices x methods
   matrix goes through :func:`artefix.evaluation.stats.summarise` (Friedman, Nemenyi, bold groups).
   Slices where a method scored a non-finite value (PSNR of an exact reconstruction) are left out of
   that matrix; ``n`` says how many slices remain.

The ``tv`` weight is tuned (:func:`artefix.evaluation.baselines.tune_tv_weight`) on ``tune_slices``
slices that are **not** evaluated when the data has spare slices (the centres of equal bins of the
slices that ``max_slices`` left out), otherwise on the first evaluation slices; either way they are
corrupted at every motion severity from a separate seed stream (``"tune"``), never with the evaluation
corruptions. For a strict protocol, evaluate a test split and keep ``max_slices`` below its size.

Determinism: every computation runs with ``threads`` CPU threads in torch and SimpleITK (N4's fit and
the network's convolutions round differently with other thread counts), in this process for
``jobs == 1`` and in ``jobs`` spawned worker processes otherwise (models loaded once per worker), so the
numbers never depend on ``jobs``.

The code lives in one module per part; this module re-exports all of it:

* :mod:`artefix.evaluation.protocol`: the experiments, scenarios, severities and :func:`plan_methods`.
* :mod:`artefix.evaluation.cases`: :func:`load_slices` (:class:`EvalSlice`), :func:`corruption_rng` and
  :func:`make_case`.
* :mod:`artefix.evaluation.runner`: :func:`evaluate`, its tasks, thread guard and worker processes.
* :mod:`artefix.evaluation.summary`: :class:`EvaluationResult`, :class:`Example` and :func:`summarise_rows`.
"""

from __future__ import annotations

# Private names are re-exported for the tests and scripts that use them; the imports the module held
# before the split too, so that every `experiments.<name>` of before still resolves.
import json as json
import math as math
import time as time
from collections.abc import Callable as Callable
from collections.abc import Iterator as Iterator
from collections.abc import Mapping as Mapping
from collections.abc import Sequence as Sequence
from contextlib import contextmanager as contextmanager
from dataclasses import dataclass as dataclass
from dataclasses import field as field
from pathlib import Path as Path
from types import MappingProxyType as MappingProxyType
from typing import Any as Any

import numpy as np  # noqa: F401

from artefix.artefacts.base import HEADS as HEADS
from artefix.artefacts.base import stable_entropy as stable_entropy
from artefix.artefacts.base import to_output as to_output
from artefix.artefacts.base import znorm as znorm
from artefix.errors import InputError as InputError
from artefix.evaluation.cases import EvalSlice, corruption_rng, load_slices, make_case, select_positions
from artefix.evaluation.cases import _in_plane as _in_plane
from artefix.evaluation.methods import Case as Case
from artefix.evaluation.methods import MethodSpec as MethodSpec
from artefix.evaluation.methods import ModelPool as ModelPool
from artefix.evaluation.methods import ModelSpec as ModelSpec
from artefix.evaluation.methods import apply_method as apply_method
from artefix.evaluation.protocol import _UNITS as _UNITS
from artefix.evaluation.protocol import (
    DEFAULT_MODELS,
    EXPERIMENTS,
    METHOD_NOTES,
    SCENARIOS,
    SINGLE_EXPERIMENTS,
    TUNE_SLICES,
    plan_methods,
    resolve_experiments,
    severities_of,
)
from artefix.evaluation.runner import _WORKER as _WORKER
from artefix.evaluation.runner import ProgressFn as ProgressFn
from artefix.evaluation.runner import _assemble as _assemble
from artefix.evaluation.runner import _execute as _execute
from artefix.evaluation.runner import _init_worker as _init_worker
from artefix.evaluation.runner import _optional as _optional
from artefix.evaluation.runner import _Plan as _Plan
from artefix.evaluation.runner import _run_task as _run_task
from artefix.evaluation.runner import _set_threads as _set_threads
from artefix.evaluation.runner import _Task as _Task
from artefix.evaluation.runner import _TaskResult as _TaskResult
from artefix.evaluation.runner import _threads as _threads
from artefix.evaluation.runner import _tune as _tune
from artefix.evaluation.runner import _worker_task as _worker_task
from artefix.evaluation.runner import evaluate
from artefix.evaluation.summary import EvaluationResult, Example, summarise_rows
from artefix.evaluation.summary import _finite as _finite

__all__ = [
    "DEFAULT_MODELS",
    "EXPERIMENTS",
    "METHOD_NOTES",
    "SCENARIOS",
    "SINGLE_EXPERIMENTS",
    "TUNE_SLICES",
    "EvalSlice",
    "EvaluationResult",
    "Example",
    "corruption_rng",
    "evaluate",
    "load_slices",
    "make_case",
    "plan_methods",
    "resolve_experiments",
    "select_positions",
    "severities_of",
    "summarise_rows",
]
