"""The top-level :class:`TrainConfig`: the six sections, validated together.

Its YAML layout is described in :mod:`artefix.training.config`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from artefix.atomic import one_line
from artefix.errors import ArtefixError
from artefix.training.config.checks import ConfigError, _int, _unknown_keys
from artefix.training.config.model_sections import LossSection, ModelSection, OptimizerSection
from artefix.training.config.run_sections import DataSection, TrainerSection, TuneSection

_SECTIONS: dict[str, type] = {
    "model": ModelSection,
    "loss": LossSection,
    "optimizer": OptimizerSection,
    "data": DataSection,
    "trainer": TrainerSection,
    "tune": TuneSection,
}


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class TrainConfig:
    """A complete, validated training configuration (see the module docstring for the YAML layout).

    Attributes:
        name: Run name, written to the model card.
        seed: Global seed of a run (``lightning.seed_everything``) and default of the other seeds.
        model, loss, optimizer, data, trainer, tune: The sections.
        source: The file the configuration came from (not part of :meth:`to_dict`).
    """

    name: str = "artefix"
    seed: int = 0
    model: ModelSection = field(default_factory=ModelSection)
    loss: LossSection = field(default_factory=LossSection)
    optimizer: OptimizerSection = field(default_factory=OptimizerSection)
    data: DataSection = field(default_factory=DataSection)
    trainer: TrainerSection = field(default_factory=TrainerSection)
    tune: TuneSection = field(default_factory=TuneSection)
    source: str | None = field(default=None, compare=False)

    KEYS: ClassVar[tuple[str, ...]] = ("name", "seed", *_SECTIONS)

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        _int(self.seed, "seed", 0)
        heads = set(self.model.head_names)
        from artefix.artefacts.sampler import get_spec

        missing = [a for a in self.data.artefacts if get_spec(a).head.value not in heads]
        if missing:
            raise ValueError(
                f"data.artefacts {missing} have no matching model head (model.heads: {list(self.model.head_names)})"
            )
        from artefix.evaluation.metrics import VIF_MIN_SIZE

        if "vif" in self.trainer.val_metrics and min(self.data.matrix) < VIF_MIN_SIZE:
            raise ValueError(
                f"data.matrix {list(self.data.matrix)} is too small for the vif validation metric "
                f"(>= {VIF_MIN_SIZE} a side); enlarge it or drop vif from trainer.val_metrics"
            )

    @property
    def model_seed(self) -> int:
        """Seed of the initial weights."""
        return self.model.seed if self.model.seed is not None else self.seed

    @property
    def data_seed(self) -> int:
        """Seed of the corruptions."""
        return self.data.seed if self.data.seed is not None else self.seed

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, source: str | None = None) -> TrainConfig:
        """Validate a nested mapping (as read from YAML).

        Raises:
            ConfigError: Unknown keys, wrong types or bad values, with the file name and the key.
        """
        where = f"{source}: " if source else ""
        try:
            if not isinstance(data, Mapping):
                raise ValueError(f"a configuration must be a mapping, got {type(data).__name__}")
            _unknown_keys(data, cls.KEYS, "")
            raws = {key: data.get(key) or {} for key in _SECTIONS}
            for key, raw in raws.items():  # all unknown keys first: the likeliest mistake
                if not isinstance(raw, Mapping):
                    raise ValueError(f"section {key!r} must be a mapping, got {raw!r}")
                _unknown_keys(raw, [f.name for f in dataclasses.fields(_SECTIONS[key])], f"{key}.")
            sections = {key: _SECTIONS[key](**raw) for key, raw in raws.items()}
            top = {k: data[k] for k in ("name", "seed") if k in data}
            return cls(**top, **sections, source=source)
        except ArtefixError as exc:
            raise ConfigError(f"{where}{exc}") from None
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"{where}{one_line(exc)}") from None

    def to_dict(self) -> dict[str, Any]:
        """Plain nested dict (lists, no tuples), the inverse of :meth:`from_dict`."""
        out: dict[str, Any] = {"name": self.name, "seed": self.seed}
        for key in _SECTIONS:
            out[key] = _plain(dataclasses.asdict(getattr(self, key)))
        return out

    def replace(self, **sections: Mapping[str, Any] | Any) -> TrainConfig:
        """A copy with some keys changed, validated again.

        Args:
            **sections: Top-level keys; a mapping for a section is merged into it, e.g.
                ``config.replace(trainer={"max_epochs": 3}, seed=1)``.
        """
        data = self.to_dict()
        for key, value in sections.items():
            if key in _SECTIONS and isinstance(value, Mapping):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        return TrainConfig.from_dict(data, source=self.source)
