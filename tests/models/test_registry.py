"""Model registry: weights folder override, listing cards, name/path resolution, checksum verification."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from artefix.errors import InputError
from artefix.models import build_model
from artefix.models.checkpoint import save_model
from artefix.models.registry import (
    DEFAULT_MODEL,
    WEIGHTS_ENV,
    list_models,
    load_named_model,
    resolve_model,
    weights_dir,
)


@pytest.fixture()
def empty_dir(tmp_path, monkeypatch):
    folder = tmp_path / "weights"
    folder.mkdir()
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    return folder


def _install(folder: Path, name: str, seed: int = 0, **card) -> Path:
    return save_model(build_model("tiny", seed=seed), folder / f"{name}.safetensors", card={"name": name, **card})


def test_default_folder_is_the_package_weights(monkeypatch):
    monkeypatch.delenv(WEIGHTS_ENV, raising=False)
    assert weights_dir() == Path(__import__("artefix.weights").weights.__file__).parent


def test_nothing_installed(empty_dir):
    assert list_models() == []
    with pytest.raises(InputError) as exc:
        resolve_model(DEFAULT_MODEL)
    message = str(exc.value)
    assert "default model 'mt-lc-brain' is not installed" in message and "`model` PATH" in message
    assert "--model PATH" in exc.value.cli_message()
    assert "\n" not in message


def test_list_resolve_and_load(empty_dir):
    _install(empty_dir, "noise-brain", seed=1, description="single task", matrix=[320, 320])
    path = _install(empty_dir, DEFAULT_MODEL, seed=2)
    (empty_dir / "orphan.safetensors").write_bytes(b"no card")  # ignored: no card next to it
    infos = list_models()
    assert [m.name for m in infos] == [DEFAULT_MODEL, "noise-brain"]  # default first
    assert infos[1].description == "single task" and infos[1].heads == ("bias", "subsampling", "motion", "noise")
    assert len(infos[0].sha256) == 64
    json.dumps([m.to_dict() for m in infos])
    assert resolve_model(DEFAULT_MODEL) == path
    assert resolve_model(str(path)) == path
    model, card = load_named_model(DEFAULT_MODEL)
    reference = build_model("tiny", seed=2)
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not model.training and card["name"] == DEFAULT_MODEL and card["weights_path"] == str(path)
    with pytest.raises(InputError, match="installed: mt-lc-brain, noise-brain"):
        resolve_model("motion-brain")


def test_checksum_mismatch_is_refused(empty_dir):
    path = _install(empty_dir, DEFAULT_MODEL)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match="checksum"):
        load_named_model(DEFAULT_MODEL)


def test_shipped_card_without_checksum_is_refused(empty_dir):
    path = _install(empty_dir, DEFAULT_MODEL)
    card_file = path.with_suffix(".json")
    card = json.loads(card_file.read_text())
    del card["sha256"]
    card_file.write_text(json.dumps(card))
    with pytest.raises(InputError, match="sha256"):
        load_named_model(DEFAULT_MODEL)


def test_a_link_in_the_weights_folder_is_a_shipped_model_too(empty_dir, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    target = _install(elsewhere, "linked")
    (empty_dir / "linked.safetensors").symlink_to(target)
    card = json.loads(target.with_suffix(".json").read_text())
    del card["sha256"]
    (empty_dir / "linked.json").write_text(json.dumps(card))
    with pytest.raises(InputError, match="sha256"):
        load_named_model("linked")


def test_paths_must_be_safetensors(empty_dir, tmp_path):
    pickle_like = tmp_path / "model.pt"
    pickle_like.write_bytes(b"\x80\x04")
    with pytest.raises(InputError, match="safetensors"):
        resolve_model(pickle_like)
    with pytest.raises(InputError, match="not found"):
        resolve_model(tmp_path / "missing.safetensors")
    bad = empty_dir / "broken.json"
    bad.write_text("{not json")
    (empty_dir / "broken.safetensors").write_bytes(b"x")
    with pytest.raises(InputError, match="unreadable model card"):
        list_models()
