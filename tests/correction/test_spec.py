"""ModelSpec: what a many-scan worker loads, and the one model per process that loaded_model keeps."""

from __future__ import annotations

import os
import pickle

import pytest
import torch

from artefix.correction.options import InferenceOptions
from artefix.correction.spec import ModelSpec, clear_model_cache, loaded_model
from artefix.errors import InputError
from artefix.models import build_model, registry
from artefix.models.checkpoint import save_model
from artefix.models.registry import DEFAULT_MODEL, WEIGHTS_ENV


@pytest.fixture
def weights(tmp_path, monkeypatch):
    """A folder of two tiny checkpoints, the default model's name among them; the cache empty before and after."""
    folder = tmp_path / "weights"
    folder.mkdir()
    save_model(build_model("tiny", seed=1), folder / f"{DEFAULT_MODEL}.safetensors", card={"description": "default"})
    save_model(build_model("tiny", seed=2), folder / "other.safetensors", card={"description": "other"})
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    clear_model_cache()
    yield folder
    clear_model_cache()


def test_defaults_fields_and_pickling():
    spec = ModelSpec()
    assert (spec.model, spec.device, spec.ensemble, spec.priors, spec.gates) == (None, "cpu", None, True, True)
    assert spec.to_dict() == {"model": None, "device": "cpu", "ensemble": None, "priors": True, "gates": True}
    assert pickle.loads(pickle.dumps(ModelSpec("m", "cpu", 2, False, False))) == ModelSpec("m", "cpu", 2, False, False)
    with pytest.raises(AttributeError):
        spec.model = "x"  # frozen


def test_of_takes_the_load_options_of_the_inference_options():
    inference = InferenceOptions(ensemble=4, priors=False, gates=True)
    assert ModelSpec.of("m", "cpu", inference) == ModelSpec("m", "cpu", 4, False, True)


def test_load_returns_the_model_in_eval_mode_with_its_card_and_policy(weights):
    model, card, policy = ModelSpec(str(weights / "other.safetensors"), ensemble=2, gates=False).load()
    assert not model.training and card["description"] == "other"
    assert policy == model.policy.with_options(ensemble=2, gates=False)
    assert (policy.ensemble, policy.gated) == (2, False)
    _, _, plain = ModelSpec(str(weights / "other.safetensors"), priors=False).load()
    assert plain == model.policy.without_priors() and plain.gated
    reference = build_model("tiny", seed=2).state_dict()
    assert all(torch.equal(v, reference[k]) for k, v in model.state_dict().items())


def test_no_model_named_loads_the_default(weights):
    _, card, _ = ModelSpec().load()
    assert card["description"] == "default"
    assert loaded_model(ModelSpec())[1]["description"] == "default"


def test_a_bad_ensemble_size_is_an_input_error_naming_the_option(weights):
    with pytest.raises(InputError, match="^`ensemble`: "):
        ModelSpec(ensemble=3).load()


def test_loaded_model_loads_once_per_spec_and_keeps_one(weights):
    spec = ModelSpec("other")
    first = loaded_model(spec)
    assert loaded_model(ModelSpec("other")) is first  # an equal spec reuses it
    default = loaded_model(ModelSpec())
    assert default is not first and default[1]["description"] == "default"
    again = loaded_model(spec)  # only the latest is kept: the first was dropped
    assert again is not first and again[1]["description"] == "other"
    assert loaded_model(ModelSpec("other", ensemble=2)) is not again  # options are part of the key
    clear_model_cache()
    assert loaded_model(ModelSpec("other", ensemble=2)) is not again


def test_loaded_model_reloads_a_changed_weights_file(weights):
    spec = ModelSpec("other")
    first = loaded_model(spec)
    path = weights / "other.safetensors"
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert loaded_model(spec) is not first
    assert loaded_model(ModelSpec(str(path))) is loaded_model(spec)  # a name and its path are one key


def test_a_weights_file_that_cannot_be_examined_has_no_stamp(weights, monkeypatch):
    gone = weights / "gone.safetensors"
    monkeypatch.setattr(registry, "resolve_model", lambda name: gone)  # removed after it was found
    assert ModelSpec("other")._key() == (str(gone.resolve()), None, "cpu", None, True, True)
