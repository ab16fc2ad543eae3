"""The artefacts' names: the vocabulary every part of artefix imports (no torch, cheap to import).

:data:`HEADS` lists the residual heads in the order of a model's residual channels, ``qc.csv``'s columns and
the paper's tables.
"""

from __future__ import annotations

from enum import Enum

__all__ = ["HEADS", "Artefact"]


class Artefact(str, Enum):
    """The four artefacts of the paper, in the fixed order of the model's residual heads."""

    BIAS = "bias"
    SUBSAMPLING = "subsampling"
    MOTION = "motion"
    NOISE = "noise"

    @property
    def index(self) -> int:
        """Position of this artefact's residual head (0..3)."""
        return list(Artefact).index(self)

    @property
    def label(self) -> str:
        """What the artefact is called in reports and figures ("bias field", "k-space subsampling", ...)."""
        return _LABELS[self.value]


_LABELS = {"bias": "bias field", "subsampling": "k-space subsampling", "motion": "motion", "noise": "noise"}

HEADS: tuple[str, ...] = tuple(a.value for a in Artefact)
"""The residual heads' names in the order of every model's residual channels, ``qc.csv``'s columns and the
paper's tables: the one list that every module imports."""
