from pathlib import Path

import pytest
import torch

from artefix.models import build_model
from artefix.models.checkpoint import load_model, read_card, save_model
from artefix.release.inference import parse_setting, set_inference

ROOT = Path(__file__).resolve().parents[2]


def test_set_inference_changes_the_setting_and_keeps_every_tensor(tmp_path):
    weights = tmp_path / "m.safetensors"
    save_model(build_model("tiny", seed=2, gates=True, consistency=True), weights, {"name": "m", "notes": "trained"})
    before, _ = load_model(weights)
    card = set_inference(weights, {"truncation_gate": True, "ensemble": 2}, "why", root=ROOT)
    after, _ = load_model(weights)  # verifies the new checksum
    assert after.config == before.config
    assert after.policy == before.policy.replace(truncation_gate=True, ensemble=2)
    old, new = before.state_dict(), after.state_dict()
    assert old.keys() == new.keys() and all(torch.equal(old[k], new[k]) for k in old)
    assert card["inference"]["truncation_gate"] is True and card["name"] == "m"
    assert card["notes"].startswith("trained\n") and "truncation_gate: False -> True" in card["notes"]
    assert card["notes"].endswith(": why") and read_card(weights) == card


def test_only_inference_fields_and_json_values_are_accepted():
    assert parse_setting("noise_snr=[9, 11]") == ("noise_snr", [9, 11])
    with pytest.raises(SystemExit, match="NAME one of"):
        parse_setting("base_width=16")
    with pytest.raises(SystemExit, match="must be JSON"):
        parse_setting("truncation_gate=yes")
