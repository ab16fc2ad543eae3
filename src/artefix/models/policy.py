"""How a trained network is applied at inference: one immutable, validated value.

The weights of a :class:`~artefix.models.dual_domain.DualDomainModel` fix its architecture
(:class:`~artefix.models.dual_domain.ModelConfig`); everything that only changes how its outputs are used
lives here, in an :class:`InferencePolicy`: whether the detector's scores gate the residuals, the k-space
data consistency of the subsampling head and its truncation gate, the self-ensemble and the physics priors.
A model card stores the two as separate sections (``config`` and ``inference``); ``artefix correct``,
``evaluate``, ``qc`` and the demo build one policy from the card and the user's options, validate it once,
and pass it down, so the loaded model is never switched in place.

Example:
    >>> from artefix.models.policy import InferencePolicy
    >>> policy = InferencePolicy(consistency=True, noise_snr=(9, 11))
    >>> policy.replace(ensemble=8).ensemble, policy.without_priors().noise_snr
    (8, None)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

SNR_SCOPES: tuple[str, ...] = ("scan", "slice")
"""Where the noise gate reads the SNR: the scan's (the median of its slices') or each slice's own."""
ENSEMBLES: tuple[int, ...] = (1, 2, 4, 8)
"""Self-ensemble sizes: the first ``n`` of the image's dihedral transforms
(:func:`artefix.models.dual_domain.dihedral`)."""


def _is_number(value: Any) -> bool:
    return not isinstance(value, bool) and isinstance(value, (int, float))


@dataclass(frozen=True)
class InferencePolicy:
    """The inference steps applied around the network's residuals (none of them change the weights).

    All but ``consistency`` act in eval mode only; training sees the residuals as the loss needs them.

    Attributes:
        gated: Multiply each residual by the detector's score for its artefact (models with a detector,
            ``ModelConfig.gates``; not in the paper). False applies every residual in full (the scores are
            still computed and reported): for a scan known to have an artefact the detector scores low.
        consistency: Project the subsampling residual onto the k-space lines the input was not measured
            with, where a truncated k-space is found (:mod:`artefix.models.consistency`; not in the paper):
            the measured data stay as they are.
        truncation_gate: Needs ``consistency``: the subsampling residual is applied only to slices whose
            k-space is found truncated, and dropped (with its detector score) on slices measured edge to
            edge. A physical test that does not depend on what the image shows, where the detector's score
            does: a subsampling head opening on a small clean slice of another scanner otherwise adds
            texture (the 64x64 ``MR_small.dcm`` lost VIF 0.98 -> 0.76). Leave it off for zero-filled,
            randomly or equispaced undersampled inputs, which no edge reveals.
        ensemble: Self-ensemble (not in the paper): the residuals and the detector's scores are averaged
            over this many dihedral transforms of the input (1 none; 2 adds the left-right flip; 4 all
            flips; 8 flips and transposes), each mapped back. Costs ``ensemble`` network passes.
        bias_smooth: Replace the bias residual by the smooth multiplicative field nearest to it, Gaussian
            ``sigma`` this fraction of the larger image side
            (:func:`artefix.models.priors.smooth_bias_residual`); 0 turns it off.
        noise_snr: ``(lo, hi)`` in dB; the noise residual (and the detector's noise score) is weighted by
            :func:`artefix.models.priors.snr_gate` of the input's estimated SNR: full below ``lo``, off
            above ``hi``. None turns it off.
        only: The heads whose residuals are added (the paper's selective correction, ``--only``); None adds
            every head of the model. A head the model lacks is refused where the policy meets the model.
        strength: ``(head, factor)`` pairs, factor in ``[0, 1]``, that scale a head's residual
            (``--strength``, a partial correction); heads not named keep 1. A head named with a factor above 0
            must be among ``only``.
        snr_scope: Where the noise gate reads the SNR of a volume's slices: ``"scan"`` (the median of the
            slices' estimates, the same for every slice of a scan) or ``"slice"`` (each slice's own).
        motion_open: ``(score, gate)``, each in ``(0, 1]``, or None: opens the motion gate on slices whose
            k-space is not found truncated. It rises linearly with the detector's motion score ``s`` from 0
            to ``gate`` at ``score`` and stays there, never below the score itself:
            ``max(s, min(gate, gate * s / score))``. For a model whose motion scores stay low on moved scans
            (gates fitted to leave clean scans alone); a ``gate`` below 1 keeps the full correction for the
            slices the detector is sure of, as a full one costs mildly moved slices detail. Truncated slices
            keep their score: the ringing of a truncated k-space is what the motion head mistakes for
            ghosts, and there the subsampling head acts.

    Raises:
        ValueError: On construction, for any value outside the ranges above.
    """

    gated: bool = True
    consistency: bool = False
    truncation_gate: bool = False
    ensemble: int = 1
    bias_smooth: float = 0.0
    noise_snr: tuple[float, float] | None = None
    only: tuple[str, ...] | None = None
    strength: tuple[tuple[str, float], ...] = ()
    snr_scope: str = "scan"
    motion_open: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        for name in ("gated", "consistency", "truncation_gate"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be true or false, got {getattr(self, name)!r}")
        if self.truncation_gate and not self.consistency:
            raise ValueError("truncation_gate needs consistency (the truncation is found by the data-consistency step)")
        if isinstance(self.ensemble, bool) or not isinstance(self.ensemble, int) or self.ensemble not in ENSEMBLES:
            raise ValueError(f"ensemble must be one of {list(ENSEMBLES)}, got {self.ensemble!r}")
        if not _is_number(self.bias_smooth) or not (0 <= self.bias_smooth <= 1):
            raise ValueError(f"bias_smooth must be a number in [0, 1], got {self.bias_smooth!r}")
        object.__setattr__(self, "bias_smooth", float(self.bias_smooth))
        if self.motion_open is not None:
            pair = tuple(self.motion_open) if isinstance(self.motion_open, (list, tuple)) else ()
            if len(pair) != 2 or not all(_is_number(v) and 0 < v <= 1 for v in pair):
                raise ValueError(f"motion_open must be None or (score, gate) in (0, 1], got {self.motion_open!r}")
            object.__setattr__(self, "motion_open", (float(pair[0]), float(pair[1])))
        if self.noise_snr is not None:
            snr = tuple(self.noise_snr) if isinstance(self.noise_snr, (list, tuple)) else ()
            if len(snr) != 2 or not all(_is_number(v) for v in snr) or not (snr[0] < snr[1]):
                raise ValueError(f"noise_snr must be None or two numbers lo < hi (dB), got {self.noise_snr!r}")
            object.__setattr__(self, "noise_snr", (float(snr[0]), float(snr[1])))
        self._check_selection()

    def _check_selection(self) -> None:
        """Validate and normalise ``only``, ``strength`` and ``snr_scope`` (in the words of their options)."""
        if self.only is not None:
            only = (self.only,) if isinstance(self.only, str) else tuple(self.only)
            if not all(isinstance(h, str) for h in only):
                raise ValueError(f"`only` must name heads, got {self.only!r}")
            object.__setattr__(self, "only", only)
        pairs = self.strength.items() if isinstance(self.strength, Mapping) else self.strength
        factors: dict[str, float] = {}
        for pair in pairs:
            head, value = pair
            if not isinstance(head, str):
                raise ValueError(f"`strength` must map head names to factors, got {self.strength!r}")
            if not _is_number(value) or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"`strength`: {head}={value!r} must be a number from 0 to 1")
            factors[head] = float(value)
        for head, value in factors.items():
            if value > 0 and self.only is not None and head not in self.only:
                raise ValueError(f"`strength` names {head}, which `only` leaves out")
        object.__setattr__(self, "strength", tuple(sorted(factors.items())))
        if self.snr_scope not in SNR_SCOPES:
            raise ValueError(f"snr_scope must be one of {', '.join(SNR_SCOPES)}, got {self.snr_scope!r}")

    @property
    def has_priors(self) -> bool:
        """Whether a physics prior (``bias_smooth`` or ``noise_snr``) is on."""
        return self.bias_smooth > 0 or self.noise_snr is not None

    def steps(self) -> list[str]:
        """The steps this policy adds around the network, in words (empty: the residuals as trained, gated)."""
        steps = [] if self.gated else ["every residual applied in full (detector scores not applied)"]
        if self.consistency:
            steps.append("k-space data consistency of the subsampling head")
        if self.truncation_gate:
            steps.append("subsampling head only where a truncated k-space is found")
        if self.motion_open is not None:
            score, gate = self.motion_open
            steps.append(f"motion gate opened to {gate:g} from a detector score of {score:g} (k-space not truncated)")
        if self.bias_smooth:
            steps.append(f"smooth bias field (sigma {self.bias_smooth:g} of the field of view)")
        if self.noise_snr is not None:
            lo, hi = self.noise_snr
            steps.append(f"noise head faded out from {lo:g} to {hi:g} dB estimated SNR")
        if self.noise_snr is not None and self.snr_scope == "slice":
            steps.append("the noise gate reads each slice's own SNR")
        if self.ensemble > 1:
            steps.append(f"self-ensemble of {self.ensemble}")
        if self.only is not None:
            steps.append("only " + (", ".join(self.only) or "no head") + " applied")
        steps += [f"{head} residual at {factor:.0%}" for head, factor in self.strength if factor != 1.0]
        return steps

    def replace(self, **changes: Any) -> InferencePolicy:
        """A copy with some fields changed (validated like the constructor).

        Raises:
            ValueError: For an unknown field or an invalid value.
        """
        unknown = sorted(set(changes) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown inference setting(s) {unknown}; expected some of {list(FIELDS)}")
        return dataclasses.replace(self, **changes)

    def without_priors(self) -> InferencePolicy:
        """The same policy with the physics priors off (the heads as trained)."""
        return self.replace(bias_smooth=0.0, noise_snr=None)

    def with_options(
        self,
        *,
        ensemble: int | None = None,
        priors: bool = True,
        gates: bool = True,
        only: Sequence[str] | str | None = None,
        strength: Mapping[str, float] | None = None,
        snr_scope: str | None = None,
    ) -> InferencePolicy:
        """The policy a user's options make of this one (a card's): the command line's switches.

        Args:
            ensemble: Self-ensemble size instead of this policy's (None keeps it).
            priors: False turns the physics priors off.
            gates: False applies every residual in full.
            only: The heads to apply instead of this policy's (None keeps them).
            strength: Head -> factor instead of this policy's (None keeps them).
            snr_scope: ``"scan"`` or ``"slice"`` instead of this policy's (None keeps it).

        Raises:
            ValueError: For an invalid value, in the words of its option.
        """
        changes: dict[str, Any] = {}
        if ensemble is not None:
            changes["ensemble"] = ensemble
        if only is not None:
            changes["only"] = (only,) if isinstance(only, str) else tuple(only)
        if strength is not None:
            changes["strength"] = tuple(strength.items())
        if snr_scope is not None:
            changes["snr_scope"] = snr_scope
        policy = self.replace(**changes) if changes else self
        policy = policy if priors else policy.without_priors()
        return policy if gates else policy.replace(gated=False)

    def around_network(self) -> InferencePolicy:
        """This policy without the head selection, strengths and SNR scope.

        What is left are the steps a network pass applies (what an exported graph fixes), which the three
        correction-level settings do not change.
        """
        return self.replace(only=None, strength=(), snr_scope="scan")

    @property
    def strengths(self) -> dict[str, float]:
        """``strength`` as a mapping (head -> factor)."""
        return dict(self.strength)

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly dict (tuples become lists, ``strength`` a mapping), the inverse of :meth:`from_dict`."""
        d = {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
        d["strength"] = dict(self.strength)
        return d

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> InferencePolicy:
        """Rebuild a policy from :meth:`to_dict` output (missing fields take their defaults).

        Raises:
            ValueError: On unknown keys or invalid values.
        """
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown inference setting(s) {unknown}; expected some of {list(FIELDS)}")
        kwargs = {k: tuple(v) if isinstance(v, list) else v for k, v in data.items()}
        if isinstance(kwargs.get("strength"), Mapping):
            kwargs["strength"] = tuple(kwargs["strength"].items())
        return cls(**kwargs)


FIELDS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(InferencePolicy))
"""The settings of an :class:`InferencePolicy`, in order."""
