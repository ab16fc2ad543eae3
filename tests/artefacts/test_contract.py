"""The contract every registered artefact keeps, parametrised over the registry (deepinv's operator tests).

A new artefact added to :data:`artefix.artefacts.sampler.REGISTRY` is held to all of it without a new test.
"""

import dataclasses

import numpy as np
import pytest
import torch

from artefix.artefacts import HEADS, Artefact
from artefix.artefacts.base import params_to_dict
from artefix.artefacts.sampler import REGISTRY, apply_params, head_of, make_params

NAMES = sorted(REGISTRY)
ODD = (37, 50)


def _image(shape=ODD, seed=0):
    """A smooth positive blob plus texture: non-trivial in every part of k-space."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[: shape[0], : shape[1]]
    blob = np.exp(-(((y - shape[0] / 2) / (shape[0] / 3)) ** 2 + ((x - shape[1] / 2) / (shape[1] / 3)) ** 2))
    return (blob + 0.1 * rng.random(shape)).astype(np.float32)


def _params(name, severity=None, seed=3, shape=ODD):
    return make_params(name, np.random.default_rng(seed), shape, severity)


def test_the_heads_are_the_artefact_enum_in_order():
    assert HEADS == tuple(a.value for a in Artefact) == ("bias", "subsampling", "motion", "noise")
    assert [Artefact(h).index for h in HEADS] == [0, 1, 2, 3]
    assert [Artefact(h).label for h in HEADS] == ["bias field", "k-space subsampling", "motion", "noise"]


@pytest.mark.parametrize("name", NAMES)
def test_each_artefact_names_its_head_and_three_severities(name):
    spec = REGISTRY[name]
    assert spec.name == name and spec.head.value in HEADS
    assert len(spec.severities) == 3 and len(set(spec.severities)) == 3 and spec.severity_unit
    lo, hi = spec.level_range
    assert lo < hi and all(lo <= s <= hi for s in spec.severities)
    assert head_of(_params(name)) == spec.head


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("severity_index", [None, 0, 2])
def test_parameters_are_frozen_replayable_and_determined_by_the_seed(name, severity_index):
    severity = None if severity_index is None else REGISTRY[name].severities[severity_index]
    params = _params(name, severity)
    assert dataclasses.is_dataclass(params)
    with pytest.raises(dataclasses.FrozenInstanceError):
        setattr(params, dataclasses.fields(params)[0].name, None)
    assert params == _params(name, severity)  # same generator state, same corruption
    assert params != _params(name, severity, seed=4) or name == "bias" and severity is not None
    assert params_to_dict(params)["artefact"]
    image = _image()
    np.testing.assert_array_equal(apply_params(image, params), apply_params(image, params))


@pytest.mark.parametrize("name", NAMES)
def test_apply_keeps_odd_shapes_batches_and_agrees_between_numpy_and_torch(name):
    image = _image()
    params = _params(name, REGISTRY[name].severities[1])
    out = apply_params(image, params)
    assert isinstance(out, np.ndarray) and out.shape == ODD and np.isfinite(out).all()
    tout = apply_params(torch.from_numpy(image), params)
    assert isinstance(tout, torch.Tensor) and tuple(tout.shape) == ODD
    np.testing.assert_allclose(tout.numpy(), out, rtol=1e-5, atol=1e-5 * float(np.abs(out).max()))
    bout = apply_params(np.stack([image, _image(seed=1)]), params)
    assert bout.shape == (2, *ODD)
    if "seed" in {f.name for f in dataclasses.fields(params)}:
        # a random realisation (noise) drawn for the whole batch: torch's sampler fills the tail of a tensor
        # in blocks, so slice 0 of a batch need not equal the slice alone; its strength must
        changed, alone = np.abs(bout[0] - image).std(), np.abs(out - image).std()
        assert abs(changed - alone) < 0.1 * alone
    else:
        np.testing.assert_allclose(bout[0], out, rtol=1e-5, atol=1e-5 * float(np.abs(out).max()))


@pytest.mark.parametrize("name", NAMES)
def test_every_artefact_changes_the_image(name):
    image = _image()
    out = np.abs(apply_params(image, _params(name, REGISTRY[name].severities[-1])))
    assert np.abs(out - image).mean() > 1e-3 * image.mean()
