"""``artefix.correct`` and ``artefix.load_model``: the Python API of correction on arrays and tensors."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

import artefix
from artefix.artefacts.base import znorm
from artefix.correction import correct_volume
from artefix.data.io import Volume
from artefix.errors import InputError
from artefix.fft import fourier_resize
from artefix.models import build_model
from artefix.models.checkpoint import save_model
from artefix.models.registry import WEIGHTS_ENV

HEADS = ["bias", "motion", "noise", "subsampling"]


@pytest.fixture()
def tiny(tmp_path_factory, monkeypatch):
    """A tiny model installed as the default ``mt-lc-brain``; returns its weights path."""
    folder = tmp_path_factory.mktemp("weights")
    path = folder / "mt-lc-brain.safetensors"
    save_model(build_model("tiny", seed=2), path, card={"description": "tiny"})
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    return path


def _image(shape=(40, 48), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[-2], : shape[-1]]
    blob = 100.0 * np.exp(-((yy - shape[-2] / 2) ** 2 + (xx - shape[-1] / 2) ** 2) / 200.0)
    return (blob + rng.normal(0, 5, shape)).astype(np.float32)


def test_exported_from_the_package():
    assert {"correct", "load_model"} <= set(dir(artefix)) and {"correct", "load_model"} <= set(artefix.__all__)


def test_numpy_2d(tiny):
    image = _image()
    result = artefix.correct(image)
    assert isinstance(result.image, np.ndarray) and result.image.shape == image.shape
    assert result.image.dtype == np.float32 and np.isfinite(result.image).all()
    assert sorted(result.residuals) == HEADS and all(r.shape == image.shape for r in result.residuals.values())
    assert result.applied == result.heads and result.scores is None and result.snr_db is None  # tiny: no detector
    assert not np.allclose(result.image, image)
    with pytest.raises(dataclasses.FrozenInstanceError):
        result.image = image  # type: ignore[misc]


def test_numpy_3d_matches_correct_volume(tiny):
    volume = np.stack([_image(seed=s) for s in range(3)], axis=-1)  # (H, W, 3): slices on the last axis
    result = artefix.correct(volume, only=["noise", "bias"], strength={"bias": 0.5})
    model, card = artefix.load_model(tiny)
    expected = correct_volume(
        Volume(volume), model, only=["noise", "bias"], strength={"bias": 0.5}, keep_residuals=True
    )
    assert result.image.shape == volume.shape
    np.testing.assert_allclose(result.image, expected.volume.array, atol=1e-5)
    for head in HEADS:
        np.testing.assert_allclose(result.residuals[head], expected.residuals[head].array, atol=1e-5)
    assert set(result.applied) == {"bias", "noise"}
    # a slice-first volume with axis=0 gives the same slices
    first = artefix.correct(np.moveaxis(volume, -1, 0), only=["noise", "bias"], strength={"bias": 0.5}, axis=0)
    np.testing.assert_allclose(np.moveaxis(first.image, 0, -1), result.image, atol=1e-5)


def test_only_applies_that_residual_alone(tiny):
    image = _image()
    result = artefix.correct(image, only=["noise"])
    assert result.applied == ("noise",)
    # z-space identity: Znorm(corrected) = Znorm(input + noise residual), the other heads left out
    np.testing.assert_allclose(znorm(result.image), znorm(image + result.residuals["noise"]), atol=1e-4)
    assert not np.allclose(znorm(result.image), znorm(image + sum(result.residuals.values())), atol=1e-3)
    assert np.array_equal(artefix.correct(image, only="noise").image, result.image)


def test_torch_tensor_in_tensor_out(tiny):
    image = _image()
    tensor = torch.from_numpy(image).double()
    result = artefix.correct(tensor, only=["noise"])
    assert isinstance(result.image, torch.Tensor) and result.image.dtype == torch.float64
    assert result.image.shape == tensor.shape and result.image.device == tensor.device
    assert all(isinstance(r, torch.Tensor) for r in result.residuals.values())
    np.testing.assert_allclose(result.image.numpy(), artefix.correct(image, only=["noise"]).image, atol=1e-5)
    volume = torch.from_numpy(np.stack([image, _image(seed=1)]))  # (2, H, W) with axis=0
    out = artefix.correct(volume, axis=0).image
    assert isinstance(out, torch.Tensor) and out.dtype == torch.float32 and out.shape == volume.shape
    assert artefix.correct(torch.from_numpy(image).requires_grad_()).image.shape == image.shape


def test_single_slice_volume_uses_its_singleton_axis(tiny):
    image = _image()
    single = artefix.correct(image[None]).image  # (1, H, W): one slice, not H slices of 1 x W
    np.testing.assert_allclose(single[0], artefix.correct(image).image, atol=1e-5)


def test_ensemble_leaves_a_loaded_model_as_it_was(tiny):
    loaded = artefix.load_model(tiny)
    assert loaded.name == "mt-lc-brain" and loaded.heads == ("bias", "subsampling", "motion", "noise")
    image = _image()
    plain = artefix.correct(image, loaded).image
    ens = artefix.correct(image, loaded, ensemble=4)
    assert ens.record.ensemble == 4 and loaded.model.policy.ensemble == 1
    assert not np.allclose(ens.image, plain)
    np.testing.assert_array_equal(artefix.correct(image, loaded).image, plain)
    with pytest.raises(InputError, match="ensemble"):
        artefix.correct(image, loaded, ensemble=3)
    assert loaded.model.policy.ensemble == 1


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"image_or_volume": np.zeros((2, 3, 4, 5), np.float32)}, r"2D image or a 3D volume, got shape \(2, 3, 4, 5\)"),
        ({"image_or_volume": np.ones(7, np.float32)}, r"got shape \(7,\)"),
        ({"image_or_volume": [[1.0, 2.0], [3.0, 4.0]]}, "NumPy array or a torch tensor, not list"),
        ({"image_or_volume": np.ones((8, 8), np.complex64)}, "real image"),
        ({"only": ["ghosting"]}, "`only`: .*ghosting"),
        ({"only": []}, "applies no head"),
        ({"strength": {"noise": 2.0}}, "`strength`: noise=2.0 must be a number from 0 to 1"),
        ({"axis": 0}, "`axis` 0 does not apply to a 2D image"),
        ({"ensemble": 3}, "ensemble"),
        ({"snr_scope": "nope"}, "snr_scope"),
        ({"model": "no-such-model"}, "'no-such-model' is not installed"),
    ],
)
def test_bad_inputs_raise_input_error(tiny, kwargs, match):
    args = {"image_or_volume": _image(), **kwargs}
    with pytest.raises(InputError, match=match):
        artefix.correct(**args)


def test_nan_and_constant_inputs(tiny):
    image = _image()
    image[3, 4] = np.nan
    with pytest.raises(InputError, match="NaN or infinite"):
        artefix.correct(image)
    with pytest.raises(InputError, match="constant"):
        artefix.correct(np.ones((16, 16), np.float32))


def test_shipped_default_on_a_real_slice():
    image = fourier_resize(artefix.load_sample("brain-t2").astype(np.float64), (96, 96)).astype(np.float32)
    noisy = artefix.simulate(image, "noise", severity=5, seed=1)
    result = artefix.correct(noisy, only=["noise"])
    assert result.image.shape == (96, 96) and np.isfinite(result.image).all()
    assert result.scores is not None and sorted(result.scores) == HEADS
    assert all(s.shape == (1,) and 0 <= s[0] <= 1 for s in result.scores.values())
    assert result.snr_db is not None and result.snr_db.shape == (1,) and np.isfinite(result.snr_db).all()
    np.testing.assert_allclose(znorm(result.image), znorm(noisy + result.residuals["noise"]), atol=1e-4)
    # the correction brings the noisy slice closer to the clean one
    assert np.abs(znorm(result.image) - znorm(image)).mean() < np.abs(znorm(noisy) - znorm(image)).mean()
