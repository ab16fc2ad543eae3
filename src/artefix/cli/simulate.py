"""``artefix simulate``: corrupt a NIfTI/NumPy slice or volume with one of the paper's artefacts."""

from __future__ import annotations


def simulate_command() -> None:
    """Simulate an MRI artefact (being written)."""
    raise NotImplementedError
