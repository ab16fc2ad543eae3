"""The models shipped inside the package: weights match their cards, cards say what users need."""

import json
from importlib import resources

import pytest
import torch

from artefix.models.checkpoint import sha256_of
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
