"""Noise simulator: k-space SNR, complex white Gaussian statistics, API conventions."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from artefix.artefacts.base import params_to_dict, torch_generator
from artefix.artefacts.noise import (
    NoiseParams,
    apply_noise,
    measure_snr_db,
    noise_params_for_severity,
    sample_noise_params,
)
from artefix.fft import fft2c, fourier_resize

SNRS = [-12.0, -5.0, 0.0, 5.0, 10.0]


def _phantom(n: int = 320) -> np.ndarray:
    """Synthetic 'head': a bright ellipse with a darker interior ellipse and a smooth gradient."""
    y, x = np.mgrid[-1 : 1 : n * 1j, -1 : 1 : n * 1j]
    outer = (x / 0.8) ** 2 + (y / 0.9) ** 2 < 1
    inner = ((x - 0.1) / 0.4) ** 2 + (y / 0.5) ** 2 < 1
    return outer * (1.0 + 0.3 * x) - 0.4 * inner


@pytest.fixture(scope="module")
def real_slice(shared_data: Path) -> np.ndarray:
    nib = pytest.importorskip("nibabel")
    path = shared_data / "open_ms_data_ljubljana_longitudinal" / "patient01" / "study1_T1W.nii.gz"
    volume = nib.load(path)
    middle = volume.shape[2] // 2
    slice_ = np.asarray(volume.dataobj[:, :, middle], dtype=np.float64)
    return fourier_resize(slice_, (320, 320))


def _check_snr_and_statistics(image: np.ndarray, snr_db: float, seed: int) -> None:
    clean_k = fft2c(image)
    noisy = apply_noise(image, NoiseParams(snr_db=snr_db, seed=seed))
    noise_k = fft2c(noisy) - clean_k
    assert measure_snr_db(clean_k, fft2c(noisy)) == pytest.approx(snr_db, abs=0.25)
    # the noise std is N = mean|K| 10^(-SNR/20) for the real and the imaginary part alike
    sigma = np.mean(np.abs(clean_k)) * 10 ** (-snr_db / 20)
    re, im = noise_k.real.ravel(), noise_k.imag.ravel()
    assert np.std(re) / sigma == pytest.approx(1.0, abs=0.02)
    assert np.std(im) / sigma == pytest.approx(1.0, abs=0.02)
    assert abs(np.mean(re)) < 0.02 * sigma and abs(np.mean(im)) < 0.02 * sigma
    assert abs(np.corrcoef(re, im)[0, 1]) < 0.02


@pytest.mark.shared_data
@pytest.mark.parametrize("snr_db", SNRS)
def test_snr_on_real_brain_slice(real_slice: np.ndarray, snr_db: float) -> None:
    assert real_slice.shape == (320, 320) and real_slice.max() > 0
    _check_snr_and_statistics(real_slice, snr_db, seed=int(snr_db) + 100)


@pytest.mark.parametrize("snr_db", SNRS)
def test_snr_on_synthetic_slice(snr_db: float) -> None:
    _check_snr_and_statistics(_phantom(), snr_db, seed=int(snr_db) + 7)


def test_noise_is_white_in_kspace_and_image_space() -> None:
    image = _phantom()
    noisy = apply_noise(image, NoiseParams(snr_db=0.0, seed=3))
    noise_k = fft2c(noisy) - fft2c(image)
    noise_img = noisy - image
    for noise in (noise_k, noise_img):
        power = np.mean(np.abs(noise) ** 2)
        lag_x = np.mean(noise[:, 1:] * np.conj(noise[:, :-1])) / power
        lag_y = np.mean(noise[1:, :] * np.conj(noise[:-1, :])) / power
        assert abs(lag_x) < 0.015 and abs(lag_y) < 0.015
    # orthonormal FFT: the image-space noise has the k-space noise's power
    assert np.mean(np.abs(noise_img) ** 2) == pytest.approx(np.mean(np.abs(noise_k) ** 2), rel=1e-9)


def test_infinite_snr_is_exact_identity() -> None:
    params = NoiseParams(snr_db=math.inf, seed=0)
    x = _phantom(33)
    out = apply_noise(x, params)
    assert out.dtype == np.complex128
    np.testing.assert_array_equal(out.real, x)
    np.testing.assert_array_equal(out.imag, 0)
    xt = torch.rand(2, 16, 20)
    out_t = apply_noise(xt, params)
    assert out_t.dtype == torch.complex64 and torch.equal(out_t.real, xt)
    assert measure_snr_db(fft2c(x), fft2c(out)) == math.inf


def test_deterministic_under_seed_and_seeds_differ() -> None:
    x = _phantom(48)
    a = apply_noise(x, NoiseParams(snr_db=0.0, seed=1))
    b = apply_noise(x, NoiseParams(snr_db=0.0, seed=1))
    c = apply_noise(x, NoiseParams(snr_db=0.0, seed=2))
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(a - c)) > 1e-3


def test_batch_slices_get_own_noise_at_own_snr() -> None:
    base = _phantom(64)
    x = np.stack([base, 10 * base, base])
    out = apply_noise(x, NoiseParams(snr_db=5.0, seed=4))
    assert out.shape == (3, 64, 64)
    noise = out - x
    assert np.max(np.abs(noise[0] - noise[2])) > 1e-3  # same image, different realisation
    for i in range(3):
        assert measure_snr_db(fft2c(x[i]), fft2c(out[i])) == pytest.approx(5.0, abs=0.6)
    assert np.std(noise[1]) / np.std(noise[0]) == pytest.approx(10.0, rel=0.1)  # S is per slice


@pytest.mark.parametrize("shape", [(33, 47), (47, 33), (3, 33, 47), (2, 31, 31)])
def test_odd_and_non_square_shapes(shape: tuple[int, ...]) -> None:
    x = np.random.default_rng(0).random(shape)
    out = apply_noise(x, NoiseParams(snr_db=2.0, seed=8))
    assert out.shape == shape and np.iscomplexobj(out)
    assert measure_snr_db(fft2c(x), fft2c(out)) == pytest.approx(2.0, abs=1.0)


@pytest.mark.parametrize(
    ("np_dtype", "out_np", "out_torch"),
    [
        (np.float32, np.complex64, torch.complex64),
        (np.float64, np.complex128, torch.complex128),
        (np.complex64, np.complex64, torch.complex64),
        (np.complex128, np.complex128, torch.complex128),
        (np.uint16, np.complex64, torch.complex64),
    ],
)
def test_numpy_and_torch_agree_and_dtypes(np_dtype: type, out_np: type, out_torch: torch.dtype) -> None:
    x = (np.random.default_rng(1).random((2, 24, 30)) * 100).astype(np_dtype)
    params = NoiseParams(snr_db=-3.0, seed=12)
    a = apply_noise(x, params)
    b = apply_noise(torch.from_numpy(x.astype(np.int32) if np_dtype is np.uint16 else x.copy()), params)
    assert isinstance(a, np.ndarray) and a.dtype == out_np
    assert isinstance(b, torch.Tensor) and b.dtype == out_torch
    np.testing.assert_allclose(a, b.numpy(), rtol=0, atol=1e-9 if out_np is np.complex128 else 1e-3)


def test_zero_image_stays_zero() -> None:
    out = apply_noise(np.zeros((16, 16)), NoiseParams(snr_db=0.0, seed=1))
    np.testing.assert_array_equal(out, 0)


def test_global_rng_state_untouched() -> None:
    np_state = np.random.get_state()  # noqa: NPY002 (checking the legacy global state)
    torch_state = torch.get_rng_state()
    rng = np.random.default_rng(0)
    apply_noise(_phantom(32), sample_noise_params(rng, (32, 32)))
    apply_noise(torch.ones(2, 32, 32), noise_params_for_severity(-5, (32, 32), rng))
    after = np.random.get_state()  # noqa: NPY002 (checking the legacy global state)
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:]
    assert torch.equal(torch_state, torch.get_rng_state())


def test_sampler_range_and_severity() -> None:
    rng = np.random.default_rng(99)
    draws = [sample_noise_params(rng, (320, 320)) for _ in range(500)]
    snrs = np.array([p.snr_db for p in draws])
    assert snrs.min() >= -12 and snrs.max() <= 10 and snrs.min() < -11 and snrs.max() > 9
    assert len({p.seed for p in draws}) == 500
    assert all(type(p.snr_db) is float and type(p.seed) is int for p in draws)
    assert sample_noise_params(3, (8, 8)) == sample_noise_params(3, (8, 8))
    for level in (5, 0, -5):
        params = noise_params_for_severity(level, (320, 320), rng)
        assert params.snr_db == float(level) and type(params.snr_db) is float


@pytest.mark.parametrize("snr_db", [float("nan"), -math.inf])
def test_invalid_params_raise(snr_db: float) -> None:
    with pytest.raises(ValueError, match="snr_db"):
        NoiseParams(snr_db=snr_db, seed=0)


def test_invalid_inputs_raise() -> None:
    with pytest.raises(ValueError, match="shape"):
        apply_noise(np.ones(8), NoiseParams(snr_db=0.0, seed=0))
    with pytest.raises(ValueError, match="shape"):
        sample_noise_params(np.random.default_rng(0), (1, 8))
    with pytest.raises(ValueError, match="shape"):
        sample_noise_params(np.random.default_rng(0), (8, 1))
    assert isinstance(sample_noise_params(np.random.default_rng(0), (2, 2)), NoiseParams)  # the smallest image
    for shape in ((8,), (8, 8, 8)):
        with pytest.raises(ValueError, match="shape"):
            sample_noise_params(np.random.default_rng(0), shape)
    with pytest.raises(ValueError, match="shapes differ"):
        measure_snr_db(np.ones((4, 5)), np.ones((4, 4)))
    with pytest.raises(ValueError, match="shapes differ"):
        measure_snr_db(np.ones((4, 4)), np.ones((4, 5)))


def test_params_are_plain_scalars_and_json_serialisable() -> None:
    params = NoiseParams(snr_db=np.float32(-2.5), seed=np.int64(4))
    assert json.loads(json.dumps(params_to_dict(params))) == {"snr_db": -2.5, "seed": 4, "artefact": "noise"}
    assert type(params.snr_db) is float and type(params.seed) is int


def test_the_paper_evaluation_snrs_and_measure_snr_db_edges():
    from artefix.artefacts.noise import SEVERITY_LEVELS, measure_snr_db

    assert SEVERITY_LEVELS == (5.0, 0.0, -5.0)  # PAPER_SPEC: SNR 5, 0, -5 dB
    noise = np.random.default_rng(1).normal(size=(8, 8))
    assert measure_snr_db(np.zeros((8, 8)), noise) == -math.inf
    ones = np.ones((8, 8))  # mean |K| exactly 1: an ordinary signal, not the zero-signal edge
    assert measure_snr_db(ones, ones + noise) == pytest.approx(20 * math.log10(1 / noise.std()))
    assert measure_snr_db(ones, ones) == math.inf


def test_the_noise_realisation_is_the_seeds_documented_one():
    # replay contract: K + sigma n with n the complex white noise of torch_generator(seed) (real, imaginary
    # interleaved), added in image space; a sign or order change would alter every logged corruption
    x = torch.from_numpy(_phantom(16)).to(torch.complex128)
    params = NoiseParams(snr_db=3.0, seed=42)
    sigma = fft2c(x).abs().mean() * 10.0 ** (-3.0 / 20.0)
    white = torch.randn((16, 16, 2), generator=torch_generator(42), dtype=torch.float64)
    expected = x + sigma * torch.view_as_complex(white)
    torch.testing.assert_close(apply_noise(x, params), expected, rtol=1e-12, atol=1e-12)
