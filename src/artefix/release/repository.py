"""Where the release tooling reads and writes: a repository checkout, not an installed package."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

WEIGHTS = Path("src", "artefix", "weights")
DOCS = Path("docs")
PIPELINES = Path("configs", "release", "pipelines")


@dataclass(frozen=True)
class Repository:
    """A checkout's root, its shipped weights folder and its docs folder (the model pages go there)."""

    root: Path
    weights: Path
    docs: Path

    @classmethod
    def at(cls, root: Path) -> Repository:
        """The standard layout under ``root``."""
        return cls(root, root / WEIGHTS, root / DOCS)

    @property
    def pipelines(self) -> Path:
        """``configs/release/pipelines``: one file a model that trains every stage in order."""
        return self.root / PIPELINES


def locate(cwd: Path | None = None) -> Repository:
    """The checkout this package lies in (``src/artefix/release`` -> root), else the current directory.

    Raises:
        SystemExit: Neither has ``src/artefix/weights`` and ``docs`` (e.g. an installed package run elsewhere).
    """
    candidates = (Path(__file__).resolve().parents[3], (cwd or Path.cwd()).resolve())
    for root in candidates:
        if (root / WEIGHTS).is_dir() and (root / DOCS).is_dir():
            return Repository.at(root)
    where = " or ".join(str(root) for root in dict.fromkeys(candidates))
    raise SystemExit(f"error: no repository checkout ({WEIGHTS}/ and {DOCS}/) at {where}; run from the repository root")
