"""The models shipped inside the package: weights match their cards, cards say what users need."""

import json
from importlib import resources

import pytest
import torch

from artefix.models.checkpoint import sha256_of
from artefix.models.policy import FIELDS as POLICY_FIELDS
from artefix.models.policy import InferencePolicy
from artefix.models.registry import DEFAULT_MODEL, load_named_model

WEIGHTS = resources.files("artefix") / "weights"
CARDS = sorted(p for p in WEIGHTS.iterdir() if p.name.endswith(".json"))
REQUIRED = (
    "name",
    "preset",
    "parameters",
    "heads",
    "sha256",
    "training_config",
    "epochs",
    "wall_time_s",
    "hardware",
    "seed",
    "data",
    "licences",
    "release_command",
    "split_file",
    "validation",
)


def test_default_model_is_shipped_and_small():
    names = [p.name[: -len(".json")] for p in CARDS]
    assert DEFAULT_MODEL in names
    total = sum((WEIGHTS / f"{n}.safetensors").stat().st_size for n in names)
    assert total < 100 * 2**20


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.name)
def test_card_matches_weights(card_path):
    card = json.loads(card_path.read_text())
    missing = [k for k in REQUIRED if k not in card]
    assert not missing, missing
    weights = WEIGHTS / f"{card['name']}.safetensors"
    assert sha256_of(weights) == card["sha256"]
    model, loaded_card = load_named_model(card["name"])
    assert sum(p.numel() for p in model.parameters()) == card["parameters"]
    with torch.inference_mode():
        out = model(torch.randn(2, 1, 37, 45))
    assert out.output.shape == (2, 1, 37, 45) and out.residuals.shape == (2, len(card["heads"]), 37, 45)
    assert torch.isfinite(out.residuals).all()
    for stage in card.get("starts_from", []):  # the earlier stages, earliest first, each with its own record
        assert {"run", "command", "epochs", "wall_time_s", "hardware", "seed"} <= set(stage), stage
    verdicts = card["validation"]["verdicts"]
    assert verdicts and all("improves_ssim" in v for v in verdicts.values())


def _correct_with_default(image):
    import numpy as np

    from artefix.correction import correct_volume
    from artefix.data.io import Volume

    model, card = load_named_model(DEFAULT_MODEL)
    volume = Volume(np.asarray(image, np.float32)[None], meta={"slice_axis": 0})
    return correct_volume(volume, model, axis=0, matrix=card.get("matrix")).volume.array[0]


def test_the_default_model_improves_real_slices_and_leaves_a_clean_one_alone():
    """Built-in real slices (T2, FLAIR): 0 dB noise and x4 super-resolution improve; a clean slice keeps its quality.

    Margins sit well inside what the shipped default measures (noise: SSIM +0.28, VIF +0.06).
    """
    import numpy as np

    import artefix
    from artefix.evaluation.metrics import ssim, vif, znorm

    for name in ("brain-t2", "brain-flair"):
        clean = artefix.load_sample(name).astype(np.float64)
        ref = znorm(clean)

        def scores(image, ref=ref):
            z = znorm(np.asarray(image, np.float64))
            return ssim(ref, z), vif(ref, z)

        noisy = artefix.simulate(clean, "noise", severity=0.0, seed=3)
        (s0, v0), (s1, v1) = scores(noisy), scores(_correct_with_default(noisy))
        assert s1 - s0 > 0.2 and v1 - v0 > 0.04, (name, s0, s1, v0, v1)
        low = artefix.simulate(clean, "subsampling", severity=4.0, seed=3)
        (s0, v0), (s1, v1) = scores(low), scores(_correct_with_default(low))
        assert s1 > s0 and v1 > v0, (name, s0, s1, v0, v1)
        s1, v1 = scores(_correct_with_default(clean))
        assert s1 > 0.998 and v1 > 0.996, (name, s1, v1)


def test_the_default_model_runs_with_the_inference_settings_its_card_declares():
    model, card = load_named_model(DEFAULT_MODEL)
    inference = card["inference"]
    assert InferencePolicy.from_dict(inference) == model.policy
    steps = ("gated", "consistency", "truncation_gate", "ensemble", "bias_smooth")
    assert tuple(inference[k] for k in steps) == (True, True, True, 1, 0.1)
    assert inference.get("motion_open") is None  # not shipped: docs/experiments.md
    assert tuple(inference["noise_snr"]) == (9.0, 11.0) and card["config"]["gates"] is True


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.name)
def test_every_card_holds_the_architecture_and_the_inference_policy_of_its_weights(card_path):
    """The card's two sections are what the weights file rebuilds (architecture and policy, separately).

    A card written before a policy setting existed lacks it and means its default (``from_dict``).
    """
    model, card = load_named_model(card_path.stem)
    assert card["config"] == model.config.to_dict()
    assert set(card["inference"]) <= set(POLICY_FIELDS)
    assert InferencePolicy.from_dict(card["inference"]) == model.policy
    assert {k: v for k, v in model.policy.to_dict().items() if k in card["inference"]} == card["inference"]
    assert not set(card["config"]) & set(card["inference"])


def _strings(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from _strings(v)
    elif isinstance(value, str):
        yield value


@pytest.mark.parametrize("card_path", CARDS, ids=lambda p: p.name)
def test_cards_hold_no_path_of_the_machine_that_built_them(card_path):
    """Every file path in a card is relative (to the repository root, as its ``paths`` field says)."""
    card = json.loads(card_path.read_text())
    absolute = [word for text in _strings(card) for word in text.split() if word.startswith("/") and len(word) > 1]
    assert not absolute, absolute[:3]
    assert card["paths"].startswith("relative to the repository root")
    assert card["split_file"] is None or not card["split_file"].startswith(("/", "~"))
