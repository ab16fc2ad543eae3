"""The artefact simulators: one module per artefact, the registry in :mod:`artefix.artefacts.sampler`.

:data:`HEADS` (the names, in the order of a model's residual heads) and :class:`Artefact` are the vocabulary
every other part of artefix imports; :data:`artefix.artefacts.sampler.REGISTRY` adds, per artefact, how it
is sampled, built at an evaluation severity and applied.
"""

from artefix.artefacts.names import HEADS, Artefact

__all__ = ["HEADS", "Artefact"]
