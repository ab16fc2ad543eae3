"""What a file correction is asked to do, as three small immutable values.

:func:`artefix.correction.files.correct_file` takes its choices in three groups, each validated where it is
built, in the library's words (a parameter in backticks; the command line shows it as its flag):

* :class:`InferenceOptions`: how the model is applied (heads, strengths, self-ensemble, priors, gates, SNR
  scope). They are the user's side of an :class:`~artefix.models.policy.InferencePolicy`: laid over the
  model card's policy (:meth:`InferenceOptions.policy`), so the card keeps what the user does not change.
* :class:`OutputSpec`: what is written besides the corrected scan (residual volumes, the QC report and its
  JSON summary) and whether existing outputs are replaced.
* :class:`ExecutionSettings`: how the work runs (device, batch size, runtime, a progress callback); none of
  them changes what is computed.

Example:
    >>> from artefix.correction.options import InferenceOptions, OutputSpec
    >>> from artefix.models.policy import InferencePolicy
    >>> options = InferenceOptions(only=["noise"], strength={"noise": 0.5})
    >>> options.policy(InferencePolicy(ensemble=2)).strength, options.policy(InferencePolicy(ensemble=2)).ensemble
    ((('noise', 0.5),), 2)
    >>> OutputSpec(report="qc.html").summary.name
    'qc.json'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from artefix.errors import InputError, OutputError
from artefix.models.policy import SNR_SCOPES, InferencePolicy

RUNTIMES: tuple[str, ...] = ("torch", "onnx")
"""What runs the model (``artefix correct --runtime``): PyTorch, or ONNX Runtime
(:class:`artefix.models.onnx_runtime.OnnxModel`)."""
REPORT_SUFFIXES: tuple[str, ...] = (".html", ".htm")
"""Suffixes a QC report path may have."""


def _check_flag(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise InputError(f"`{name}` must be true or false, got {value!r}")


@dataclass(frozen=True)
class InferenceOptions:
    """The user's inference choices, laid over a model card's :class:`InferencePolicy`.

    Attributes:
        only: Heads to apply (None: the card's, all of the model's heads for the shipped cards); a single
            name or ``[]`` (no head) are accepted and kept as a tuple.
        strength: Head -> factor in ``[0, 1]`` scaling that head's residual (a partial correction); kept as
            sorted ``(head, factor)`` pairs. None keeps the card's.
        ensemble: Self-ensemble size, 1, 2, 4 or 8 dihedral transforms per slice; None keeps the card's.
        priors: False turns the card's physics priors off (the heads as trained).
        gates: False applies each residual in full instead of weighting it by the detector's score (the
            scores are still reported).
        snr_scope: Where the noise gate reads the SNR: ``"scan"`` (the median of the slices) or ``"slice"``.

    A head the model lacks, and a strength for a head that ``only`` leaves out, are refused where the options
    meet the model (:meth:`policy`); everything else when the options are built.

    Raises:
        InputError: A value outside the ranges above.
    """

    only: tuple[str, ...] | None = None
    strength: tuple[tuple[str, float], ...] | None = None
    ensemble: int | None = None
    priors: bool = True
    gates: bool = True
    snr_scope: str = "scan"

    def __post_init__(self) -> None:
        _check_flag("priors", self.priors)
        _check_flag("gates", self.gates)
        if self.snr_scope not in SNR_SCOPES:
            raise InputError(f"`snr_scope` must be one of {', '.join(SNR_SCOPES)}, got {self.snr_scope!r}")
        if self.ensemble is not None:
            try:
                InferencePolicy(ensemble=self.ensemble)
            except ValueError as exc:
                raise InputError(f"`ensemble`: {exc}") from None
        if self.only is not None:
            object.__setattr__(self, "only", (self.only,) if isinstance(self.only, str) else tuple(self.only))
        if self.strength is not None:  # the policy's own checks and normalisation (sorted pairs)
            pairs = self.strength.items() if isinstance(self.strength, Mapping) else self.strength
            try:
                object.__setattr__(self, "strength", InferencePolicy(strength=tuple(pairs)).strength)
            except (TypeError, ValueError) as exc:
                raise InputError(str(exc)) from None
        try:
            InferencePolicy(only=self.only)
        except ValueError as exc:
            raise InputError(str(exc)) from None

    @property
    def strengths(self) -> dict[str, float] | None:
        """``strength`` as a mapping (head -> factor), or None."""
        return None if self.strength is None else dict(self.strength)

    def policy(self, base: InferencePolicy) -> InferencePolicy:
        """The policy these options make of ``base`` (a model card's): :meth:`InferencePolicy.with_options`.

        Raises:
            InputError: A strength for a head that ``only`` leaves out.
        """
        try:
            return base.with_options(
                ensemble=self.ensemble,
                priors=self.priors,
                gates=self.gates,
                only=self.only,
                strength=self.strengths,
                snr_scope=self.snr_scope,
            )
        except ValueError as exc:
            raise InputError(str(exc)) from None


@dataclass(frozen=True)
class OutputSpec:
    """What a file correction writes besides the corrected scan.

    Attributes:
        residuals: Folder for one residual volume per model head, in the input's units (created if missing;
            its parent must exist); None writes none.
        report: ``.html`` QC report path; its JSON summary goes next to it (:attr:`summary`). None: neither.
        overwrite: Replace existing outputs.

    Paths may be given as strings; ``~`` is expanded. Whether the paths are safe to write is checked when the
    correction starts (the files may change in between).

    Raises:
        OutputError: A report path that is not an ``.html`` file.
        InputError: ``overwrite`` not true or false.
    """

    residuals: Path | None = None
    report: Path | None = None
    overwrite: bool = False

    def __post_init__(self) -> None:
        for name in ("residuals", "report"):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, Path(value).expanduser())
        if self.report is not None and self.report.suffix.lower() not in REPORT_SUFFIXES:
            raise OutputError(f"{self.report}: the report must be an .html file")
        _check_flag("overwrite", self.overwrite)

    @property
    def summary(self) -> Path | None:
        """The JSON summary written next to the report, or None."""
        return None if self.report is None else self.report.with_suffix(".json")


@dataclass(frozen=True)
class ExecutionSettings:
    """How a correction runs; none of these change what it computes.

    Attributes:
        device: ``cpu`` or ``cuda`` (``cuda:1``, ...); checked when the correction starts.
        batch_size: Slices per model call (None: :func:`~artefix.correction.volume.auto_batch_size`).
        runtime: ``"torch"`` or ``"onnx"`` (:data:`RUNTIMES`): the model runs in ONNX Runtime, exported once
            per slice size (needs ``pip install 'artefix[export]'``).
        progress: ``progress(done, total)`` callback, in slices.

    Raises:
        InputError: An unknown runtime.
    """

    device: str = "cpu"
    batch_size: int | None = None
    runtime: str = "torch"
    progress: Callable[[int, int], None] | None = None

    def __post_init__(self) -> None:
        if self.runtime not in RUNTIMES:
            raise InputError(f"`runtime` must be one of {', '.join(RUNTIMES)}, got {self.runtime!r}")


_GROUPS: tuple[tuple[str, type], ...] = (
    ("inference", InferenceOptions),
    ("outputs", OutputSpec),
    ("execution", ExecutionSettings),
)


def grouped_options(
    keywords: Mapping[str, Any],
    *,
    inference: InferenceOptions | None = None,
    outputs: OutputSpec | None = None,
    execution: ExecutionSettings | None = None,
    caller: str = "correct_file",
) -> tuple[InferenceOptions, OutputSpec, ExecutionSettings]:
    """The three option values, from the objects given and the older one-keyword-per-choice form.

    ``correct_file(..., only=["noise"], report="qc.html", device="cpu")`` still works: each keyword is the
    attribute of the same name of one of the three values, which is built from them.

    Args:
        keywords: Keywords named like attributes of :class:`InferenceOptions`, :class:`OutputSpec` or
            :class:`ExecutionSettings`.
        inference: The inference options, or None to build them from ``keywords`` (or take the defaults).
        outputs: The output choices, likewise.
        execution: The execution settings, likewise.
        caller: The function's name, for the errors.

    Raises:
        TypeError: An unknown keyword, or a keyword given beside the object it belongs to.
        InputError: A value out of range (:class:`InferenceOptions`, :class:`ExecutionSettings`).
        OutputError: A report path that is not an ``.html`` file.
    """
    given = {"inference": inference, "outputs": outputs, "execution": execution}
    left = dict(keywords)
    built: list[Any] = []
    for group, cls in _GROUPS:
        picked = {name: left.pop(name) for name in cls.__dataclass_fields__ if name in left}
        if picked and given[group] is not None:
            raise TypeError(f"{caller}() got {', '.join(picked)} beside `{group}`; set them in `{group}`")
        built.append(given[group] if given[group] is not None else cls(**picked))
    if left:
        raise TypeError(f"{caller}() got an unexpected keyword argument {next(iter(left))!r}")
    return built[0], built[1], built[2]


__all__ = ["REPORT_SUFFIXES", "RUNTIMES", "ExecutionSettings", "InferenceOptions", "OutputSpec", "grouped_options"]
