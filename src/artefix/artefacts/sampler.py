"""Registry of the artefact simulators, the training distribution and multi-artefact composition.

The registry maps the user-facing names (``bias``, ``subsampling``, ``motion``, ``periodic-motion``,
``noise``) to their sampler, evaluation-severity constructor and ``apply`` function, and to the model
head that corrects them (periodic motion is corrected by the motion head).

Example:
    >>> import numpy as np
    >>> from artefix.artefacts.sampler import sample_training_corruption, apply_params
    >>> rng = np.random.default_rng(0)
    >>> params = sample_training_corruption(rng, (64, 64))
    >>> corrupted = apply_params(np.ones((64, 64), np.float32), params)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from artefix.artefacts import bias_field, motion, noise, periodic_motion, subsampling
from artefix.artefacts.base import HEADS, Artefact, Output, to_output


@dataclass(frozen=True)
class ArtefactSpec:
    """How to sample, build and apply one artefact.

    Attributes:
        name: User-facing name (CLI ``--artefact`` value).
        head: The model head that corrects it.
        sample: ``(rng, shape, **options) -> params``, the training distribution.
        for_severity: ``(level, shape, rng, **options) -> params``, the evaluation levels.
        apply: ``(image, params) -> image``.
        severities: The paper's evaluation levels, mildest first.
        severity_unit: What ``level`` means, for help texts.
        options: Keyword options that ``sample`` and ``for_severity`` accept.
        level_range: Continuous range of ``for_severity`` levels that a training draw with
            ``severity_fraction`` uses (wider than ``severities`` on both sides, mild to severe).
    """

    name: str
    head: Artefact
    sample: Callable[..., Any]
    for_severity: Callable[..., Any]
    apply: Callable[[Any, Any], Any]
    severities: tuple[float, ...]
    severity_unit: str
    options: tuple[str, ...] = ()
    level_range: tuple[float, float] | None = None


REGISTRY: dict[str, ArtefactSpec] = {
    spec.name: spec
    for spec in (
        ArtefactSpec(
            "bias",
            Artefact.BIAS,
            bias_field.sample_bias_field_params,
            bias_field.bias_field_params_for_severity,
            bias_field.apply_bias_field,
            (0.05, 0.1, 0.2),
            "largest deviation of the field from 1 (0.1 -> field in [0.9, 1.1])",
            level_range=(0.02, 0.4),
        ),
        ArtefactSpec(
            "subsampling",
            Artefact.SUBSAMPLING,
            subsampling.sample_subsampling_params,
            subsampling.subsampling_params_for_severity,
            subsampling.apply_subsampling,
            (2.0, 3.0, 4.0),
            "acceleration R (centred mask: keep the central (H/R)x(W/R) of k-space)",
            ("pe_axis", "mask"),
            level_range=(1.25, 5.0),
        ),
        ArtefactSpec(
            "motion",
            Artefact.MOTION,
            motion.sample_rigid_motion_params,
            motion.rigid_motion_params_for_severity,
            motion.apply_rigid_motion,
            (0.25, 0.125, 0.05),
            "fraction of central k-space left uncorrupted (smaller is worse)",
            ("pe_axis",),
            level_range=(0.03, 0.4),
        ),
        ArtefactSpec(
            "periodic-motion",
            Artefact.MOTION,
            periodic_motion.sample_periodic_motion_params,
            periodic_motion.periodic_motion_params_for_severity,
            periodic_motion.apply_periodic_motion,
            (20.0, 70.0, 120.0),
            "breathing amplitude Delta in pixels (not a paper evaluation level)",
            ("pe_axis",),
            level_range=(5.0, 120.0),
        ),
        ArtefactSpec(
            "noise",
            Artefact.NOISE,
            noise.sample_noise_params,
            noise.noise_params_for_severity,
            noise.apply_noise,
            (5.0, 0.0, -5.0),
            "SNR in dB (smaller is worse)",
            level_range=(-10.0, 15.0),
        ),
    )
}

ARTEFACT_NAMES: tuple[str, ...] = tuple(REGISTRY)

#: The paper's brain training distribution: one of the four artefacts, uniformly.
BRAIN_TRAINING: tuple[str, ...] = HEADS
#: The pelvic training distribution adds periodic (breathing) motion. Drawn uniformly (the dataset's default
#: ``weights=None``), both kinds of motion feed the motion head, so it gets 2/5 of the slices rather than the
#: paper's 1/4 ("only one of the augmented artefacts" of four types); the shipped pelvic model was trained so.
PELVIS_TRAINING: tuple[str, ...] = ("bias", "subsampling", "motion", "periodic-motion", "noise")


def get_spec(name: str) -> ArtefactSpec:
    """Look up an artefact by name, with an error that lists the valid names."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown artefact {name!r}; choose one of {', '.join(ARTEFACT_NAMES)}") from None


def _spec_of(params: Any) -> ArtefactSpec:
    return get_spec(type(params).name)


def head_of(params: Any) -> Artefact:
    """The model head that corrects the artefact described by ``params``."""
    return _spec_of(params).head


def make_params(
    name: str,
    rng: np.random.Generator,
    shape: tuple[int, int],
    severity: float | None = None,
    **options: Any,
) -> Any:
    """Parameters of one corruption: a training draw, or the given evaluation severity.

    Args:
        name: Artefact name (see :data:`ARTEFACT_NAMES`).
        rng: Source of all randomness.
        shape: Image shape ``(H, W)``.
        severity: Evaluation level in the artefact's unit (see ``ArtefactSpec.severity_unit``);
            None draws from the training distribution.
        **options: Artefact options (``pe_axis``; ``mask`` for subsampling severities).

    Returns:
        A frozen parameter dataclass.
    """
    spec = get_spec(name)
    unknown = set(options) - set(spec.options)
    if unknown:
        raise ValueError(f"artefact {name!r} does not take option(s) {', '.join(sorted(unknown))}")
    if severity is None:
        options.pop("mask", None)
        return spec.sample(rng, shape, **options)
    return spec.for_severity(severity, shape, rng, **options)


def sample_training_corruption(
    rng: np.random.Generator,
    shape: tuple[int, int],
    artefacts: Sequence[str] = BRAIN_TRAINING,
    weights: Sequence[float] | None = None,
    severity_fraction: float = 0.0,
    level_ranges: Mapping[str, tuple[float, float]] | None = None,
) -> Any:
    """Draw exactly one artefact (uniformly unless ``weights``) and its training parameters.

    With ``severity_fraction = 0`` (the paper) the parameters come from the artefact's training sampler.
    With ``severity_fraction = q > 0`` a fraction ``q`` of the draws instead takes the artefact's
    evaluation family (:attr:`ArtefactSpec.for_severity`: the paper's test-time settings, e.g. centred
    super-resolution masks and gentle motion) at a level uniform over :attr:`ArtefactSpec.level_range`,
    which spans mild to severe: the paper's training ranges stop short of the mild, realistic artefacts
    that scanners deliver (no field weaker than [0.95, 1.05], no SNR above 10 dB, no x2 resolution loss).

    Args:
        rng: Source of all randomness.
        shape: Image shape ``(H, W)``.
        artefacts: Names to draw from (:data:`BRAIN_TRAINING` or :data:`PELVIS_TRAINING`).
        weights: Optional probabilities, same length as ``artefacts``.
        severity_fraction: Probability ``q`` in ``[0, 1]`` of a draw from the evaluation family.
        level_ranges: Per-artefact ``(low, high)`` that replaces :attr:`ArtefactSpec.level_range` for
            these draws, e.g. ``{"noise": (-10.0, 10.0)}`` so that no added noise is milder than the
            paper's 10 dB (:func:`check_level_ranges`).

    Returns:
        The parameter dataclass; :func:`head_of` gives the head (target index) it trains.

    Raises:
        ValueError: On a ``severity_fraction`` outside ``[0, 1]`` or bad ``level_ranges``.
    """
    if not 0.0 <= float(severity_fraction) <= 1.0:
        raise ValueError(f"severity_fraction must be in [0, 1], got {severity_fraction!r}")
    ranges = check_level_ranges(level_ranges)
    p = None if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    name = artefacts[int(rng.choice(len(artefacts), p=p))]
    spec = get_spec(name)
    level_range = ranges.get(name, spec.level_range)
    if severity_fraction > 0 and level_range is not None and rng.random() < severity_fraction:
        return spec.for_severity(float(rng.uniform(*level_range)), shape, rng)
    return make_params(name, rng, shape)


def check_level_ranges(level_ranges: Mapping[str, Sequence[float]] | None) -> dict[str, tuple[float, float]]:
    """Validate per-artefact evaluation-family level ranges (see :func:`sample_training_corruption`).

    Args:
        level_ranges: Artefact name -> ``(low, high)`` in the artefact's severity unit, or None.

    Returns:
        The ranges as ``{name: (low, high)}`` floats (empty for None).

    Raises:
        ValueError: On an unknown artefact, a range that is not two finite numbers, ``low > high``, or an end
            the artefact refuses as a level.
    """
    out: dict[str, tuple[float, float]] = {}
    for name, bounds in (level_ranges or {}).items():
        get_spec(name)
        pair = tuple(bounds) if isinstance(bounds, (list, tuple)) else ()
        if len(pair) != 2 or not all(isinstance(b, (int, float)) and math.isfinite(b) for b in pair):
            raise ValueError(f"the level range of {name!r} must be two finite numbers [low, high], got {bounds!r}")
        low, high = float(pair[0]), float(pair[1])
        if low > high:
            raise ValueError(f"the level range of {name!r} must have low <= high, got [{low}, {high}]")
        for level in (low, high):  # the artefact's own check of an evaluation level, now rather than mid-epoch
            try:
                make_params(name, np.random.default_rng(0), (16, 16), level)
            except ValueError as exc:
                raise ValueError(f"the level range of {name!r} [{low}, {high}]: {exc}") from None
        out[name] = (low, high)
    return out


def apply_params(image: Any, params: Any) -> Any:
    """Apply one corruption described by ``params`` (dispatch on its type); see the artefact modules."""
    return _spec_of(params).apply(image, params)


def compose(image: Any, params_seq: Sequence[Any], output: Output = "complex") -> Any:
    """Apply several corruptions in the given order, staying complex in between.

    Keeping the complex image between k-space artefacts is what happens in a scanner; only the
    final image is converted with ``output`` (see :func:`artefix.artefacts.base.to_output`).
    """
    for params in params_seq:
        image = apply_params(image, params)
    return to_output(image, output)


def sample_composition(
    names: Sequence[str],
    rng: np.random.Generator,
    shape: tuple[int, int],
    severities: Sequence[float | None] | None = None,
    *,
    random_order: bool = True,
) -> tuple[Any, ...]:
    """Parameters of a multi-artefact corruption (the paper's subsampling+motion, noise+bias).

    Args:
        names: Artefacts to combine.
        rng: Source of all randomness.
        shape: Image shape ``(H, W)``.
        severities: One level per name (None entries draw training parameters).
        random_order: Shuffle the order with ``rng`` (the paper's scenarios do); else keep ``names``'s.

    Returns:
        The parameters in application order.
    """
    levels = [None] * len(names) if severities is None else list(severities)
    if len(levels) != len(names):
        raise ValueError(f"got {len(levels)} severities for {len(names)} artefacts")
    order = rng.permutation(len(names)) if random_order else np.arange(len(names))
    return tuple(make_params(names[i], rng, shape, levels[i]) for i in order)
