import dataclasses
import json

import pytest
import torch

from artefix.artefacts.base import Artefact
from artefix.errors import ArtefixError
from artefix.models import (
    ALL_HEADS,
    PAPER_PARAMETERS,
    PRESETS,
    ModelConfig,
    UnknownPresetError,
    build_model,
    build_single_task_model,
    count_parameters,
    get_config,
)


def _meta(preset, **overrides):
    with torch.device("meta"):
        return build_model(preset, **overrides)


def test_preset_names():
    assert list(PRESETS) == ["paper", "compact", "tiny"]
    assert all(isinstance(c, ModelConfig) for c in PRESETS.values())
    with pytest.raises(TypeError):
        PRESETS["mine"] = ModelConfig()  # read-only mapping


def test_paper_preset_is_built_on_cpu_with_the_papers_parameter_count():
    model = build_model("paper")
    n = count_parameters(model)
    assert n == 75_532_236
    assert abs(n - PAPER_PARAMETERS) / PAPER_PARAMETERS < 0.10  # the tolerance; actually 0.2 %
    assert model.config.base_width == 64 and model.config.depth == 5 and model.config.convs_per_block == 3
    assert model.head_names == ALL_HEADS
    assert next(model.parameters()).device.type == "cpu"
    with torch.no_grad():
        out = model.eval()(torch.randn(1, 1, 32, 32, generator=torch.Generator().manual_seed(0)))
    assert out.output.shape == (1, 1, 32, 32) and out.residuals.shape == (1, 4, 32, 32)


@pytest.mark.parametrize(("preset", "expected"), [("compact", 1_184_004), ("tiny", 8_280)])
def test_small_preset_parameter_counts(preset, expected):
    model = build_model(preset)
    assert count_parameters(model) == expected
    assert model.config.branches == ("image", "kspace") and model.head_names == ALL_HEADS


@pytest.mark.parametrize("artefact", list(Artefact))
def test_single_task_variants_have_one_head(artefact):
    paper = _meta("paper", heads=(artefact.value,))
    assert paper.head_names == (artefact.value,)
    # only the 1x1 heads shrink: 3 fewer outputs on the image branch, 6 on the k-space branch (64 -> 1)
    assert count_parameters(paper) == 75_532_236 - (3 + 6) * (64 + 1)
    model = build_single_task_model(artefact, "tiny")
    assert model.head_names == (artefact.value,)
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 1, 8, 8)).residuals.shape == (1, 1, 8, 8)


def test_config_dict_roundtrip_rebuilds_the_same_architecture():
    config = get_config("tiny", heads=("noise", "bias"), pad_mode="replicate")
    d = config.to_dict()
    assert d["heads"] == ["bias", "noise"]  # Artefact order, JSON lists
    restored = ModelConfig.from_dict(json.loads(json.dumps(d)))
    assert restored == config
    a, b = build_model(config, seed=1), build_model(restored)
    b.load_state_dict(a.state_dict())  # same keys and shapes
    assert {k: v.shape for k, v in a.state_dict().items()} == {k: v.shape for k, v in b.state_dict().items()}


def test_overrides_and_frozen_config():
    model = build_model("tiny", depth=3, base_width=2)
    assert model.config.depth == 3 and model.stride == 8 and model.config.base_width == 2
    assert get_config("compact") is PRESETS["compact"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        model.config.depth = 1
    with pytest.raises(ValueError, match="unknown ModelConfig field"):
        build_model("tiny", widht=3)
    with pytest.raises(ValueError, match="unknown ModelConfig field"):
        ModelConfig.from_dict({"depth": 2, "colour": "red"})


def test_unknown_preset_is_a_user_error():
    with pytest.raises(UnknownPresetError, match="'huge'.*paper, compact, tiny") as info:
        build_model("huge")
    assert isinstance(info.value, ArtefixError) and isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("changes", "match"),
    [
        ({"base_width": 0}, "base_width"),
        ({"depth": 2.5}, "depth"),
        ({"convs_per_block": True}, "convs_per_block"),
        ({"negative_slope": -0.1}, "negative_slope"),
        ({"heads": ("bias", "blur")}, "unknown head 'blur'"),
        ({"heads": ("bias", "bias")}, "listed twice"),
        ({"heads": ()}, "at least one head"),
        ({"branches": ("image", "wavelet")}, "branches"),
        ({"pad_mode": "circular"}, "pad_mode"),
    ],
)
def test_config_validation(changes, match):
    with pytest.raises(ValueError, match=match):
        ModelConfig(**changes)
