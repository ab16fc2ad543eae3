import numpy as np
import pytest
import torch

import artefix
from artefix.errors import InputError
from artefix.fft import fft2c
from artefix.simulation import simulate_with_params


@pytest.fixture()
def image():
    return artefix.load_sample("brain-t1")[::4, ::4].copy()  # 80x80 real slice


def test_facade_returns_float_numpy_same_shape(image):
    for name in ("bias", "subsampling", "motion", "periodic-motion", "noise", "random"):
        out = artefix.simulate(image, name, seed=0)
        assert isinstance(out, np.ndarray) and out.shape == image.shape and out.dtype == np.float32


def test_same_seed_same_output_bit_for_bit(image):
    a = artefix.simulate(image, "random", seed=11)
    b = artefix.simulate(image, "random", seed=11)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, artefix.simulate(image, "random", seed=12))


def test_global_rng_untouched(image):
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    artefix.simulate(image, ["subsampling", "motion", "noise", "bias"], seed=3)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_magnitude_default_real_optional(image):
    mag = artefix.simulate(image, "motion", severity=0.05, seed=1)
    real = artefix.simulate(image, "motion", severity=0.05, seed=1, output="real")
    assert mag.min() >= 0
    assert np.all(mag >= np.abs(real) - 1e-3)
    assert not np.allclose(mag, real)


def test_subsampling_severity_is_kspace_exact(image):
    out = artefix.simulate(image, "subsampling", severity=4, seed=0, output="real")
    # the real part of a centred-window low-pass keeps a Hermitian-symmetric window except the
    # unpaired Nyquist row/column of even sizes: outside the central band, |k| vanishes
    k = np.abs(fft2c(out))
    h, w = image.shape
    outer = np.ones_like(k, bool)
    outer[h // 2 - 11 : h // 2 + 12, w // 2 - 11 : w // 2 + 12] = False
    assert k[outer].max() < 1e-3 * k.max()


def test_batch_gets_independent_draws_and_params_logged(image):
    batch = np.stack([image, image, image])
    sim = simulate_with_params(batch, "noise", seed=4)
    assert sim.image.shape == batch.shape
    assert len(sim.params) == 3
    snrs = [seq[0].snr_db for seq in sim.params]
    assert len(set(snrs)) == 3
    assert sim.to_records()[0][0]["artefact"] == "noise"


def test_znormalise(image):
    out = artefix.simulate(image, "bias", severity=0.2, seed=0, znormalise=True)
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-4


def test_composition_with_severities(image):
    out = artefix.simulate(image, ["noise", "bias"], severity=[0, 0.2], seed=0, random_order=True)
    assert out.shape == image.shape


@pytest.mark.parametrize(
    ("bad", "match"),
    [(np.zeros(5), "2D slice"), (np.zeros((2, 2, 2, 2)), "2D slice"), (np.full((4, 4), np.nan), "NaN")],
)
def test_bad_input(bad, match):
    with pytest.raises(InputError, match=match):
        artefix.simulate(bad, "noise", seed=0)


def test_bad_arguments(image):
    with pytest.raises(ValueError, match="unknown artefact"):
        artefix.simulate(image, "ghost")
    with pytest.raises(ValueError, match="output"):
        artefix.simulate(image, "noise", output="phase")
    with pytest.raises(ValueError, match="random"):
        artefix.simulate(image, "random", severity=1)
    for seed in range(4):  # whichever artefact the seed draws: options never apply to "random"
        with pytest.raises(ValueError, match="not to 'random'"):
            artefix.simulate(image, "random", seed=seed, pe_axis=-1)


def test_torch_tensors_of_any_float_type_are_accepted(image):
    expected = artefix.simulate(image, "noise", seed=3)
    for tensor in (torch.from_numpy(image).requires_grad_(True), torch.from_numpy(image).to(torch.bfloat16)):
        out = artefix.simulate(tensor, "noise", seed=3)
        assert isinstance(out, np.ndarray) and out.shape == image.shape
    np.testing.assert_array_equal(artefix.simulate(torch.from_numpy(image), "noise", seed=3), expected)
