"""Classical baselines: each improves its own artefact on a small real slice; grids, models, registry."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from skimage.transform import resize

import artefix
from artefix.artefacts.base import znorm
from artefix.artefacts.bias_field import BiasFieldParams, apply_bias_field
from artefix.artefacts.subsampling import centre_crop_kspace_image
from artefix.evaluation import baselines as bl
from artefix.evaluation.baselines import (
    BASELINES,
    CAD_CONDUCTANCE,
    CAD_ITERATIONS,
    CAD_TIME_STEP,
    available,
    bicubic,
    bm3d,
    bm3d_paper,
    cad,
    fourier_grid_coordinates,
    n4,
    n4_paper,
    tune_tv_weight,
    tv,
    tv_paper,
    tv_sr,
    zero_filled,
)
from artefix.fft import fourier_resize


def _toy(n: int, name: str = "brain-t1") -> np.ndarray:
    """A built-in slice resampled to n x n by k-space cropping (non-negative, scanner units)."""
    return np.abs(fourier_resize(artefix.load_sample(name).astype(np.float64), (n, n)))


@pytest.fixture(scope="module")
def toy96() -> np.ndarray:
    return _toy(96)


def _err(clean: np.ndarray, img: np.ndarray) -> float:
    """The paper's MSE: on z-normalised images."""
    return float(np.mean((znorm(clean) - znorm(img)) ** 2))


def _cosine(shape: tuple[int, int], k: tuple[int, int], phase: float = 0.3) -> np.ndarray:
    """cos(2 pi (k_y y + k_x x) / L + phase) sampled on the centred grid x(i) = (i - n // 2) L / n."""
    i = np.arange(shape[0])[:, None] - shape[0] // 2
    j = np.arange(shape[1])[None, :] - shape[1] // 2
    return np.cos(2 * np.pi * (k[0] * i / shape[0] + k[1] * j / shape[1]) + phase)


# ---------------------------------------------------------------------------------------- subsampling


def test_fourier_grid_coordinates():
    u = fourier_grid_coordinates(320, 160)
    assert u[160] == 80  # the DC index (field-of-view centre) maps onto the DC index
    np.testing.assert_allclose(np.diff(u), 0.5)
    u = fourier_grid_coordinates(64, 21)
    assert u[32] == 10
    np.testing.assert_allclose(np.diff(u), 21 / 64)
    # pixel-area alignment (library resizers) differs by half a high-resolution pixel for even sizes
    area = (np.arange(320) + 0.5) * 0.5 - 0.5
    np.testing.assert_allclose(fourier_grid_coordinates(320, 160) - area, 0.25)


@pytest.mark.parametrize(
    ("shape", "factor", "k"),
    [((64, 64), 2, (3, 5)), ((64, 48), 2, (4, 3)), ((96, 90), 3, (3, 2)), ((63, 63), 3, (2, 4))],
)
def test_bicubic_is_aligned_with_the_kspace_crop(shape, factor, k):
    high = _cosine(shape, k)
    low = centre_crop_kspace_image(high, factor)
    # the k-space crop of a band-limited cosine is the same cosine on the coarse centred grid
    np.testing.assert_allclose(low, _cosine(low.shape, k), atol=1e-12)
    up = bicubic(low.real, shape)
    rmse = np.sqrt(np.mean((up - high) ** 2))
    assert up.shape == shape
    assert rmse < 0.01
    if shape[0] % 2 == 0:  # even sizes: pixel-area alignment is off by half a pixel
        rmse_resize = np.sqrt(np.mean((resize(low.real, shape, order=3) - high) ** 2))
        assert rmse_resize > 20 * rmse


def test_bicubic_and_tv_sr_on_a_real_slice(toy96):
    low = centre_crop_kspace_image(toy96, 2)
    assert np.iscomplexobj(low)
    up = bicubic(low, toy96.shape)  # complex input -> magnitude
    np.testing.assert_allclose(up, bicubic(np.abs(low), toy96.shape))
    e_bicubic = _err(toy96, up)
    e_resize = _err(toy96, resize(np.abs(low), toy96.shape, order=3))
    e_nearest = _err(toy96, np.repeat(np.repeat(np.abs(low), 2, axis=0), 2, axis=1))
    assert e_bicubic < 0.7 * e_resize
    assert e_bicubic < 0.5 * e_nearest


def test_tv_sr_beats_bicubic_and_zero_filled_on_a_piecewise_smooth_slice():
    clean = _toy(64, "brain-flair")
    low = centre_crop_kspace_image(clean, 2)
    sr = tv_sr(np.abs(low), clean.shape)
    e_sr = _err(clean, sr)
    assert e_sr < 0.8 * _err(clean, bicubic(low, clean.shape))
    assert e_sr < 0.8 * _err(clean, np.abs(fourier_resize(low, clean.shape)))  # zero-filled
    # and it stays consistent with the measured low-resolution data
    relres = np.linalg.norm(centre_crop_kspace_image(sr, 2).real - np.abs(low)) / np.linalg.norm(low)
    assert relres < 0.05


def _tv_sr_objective(x: np.ndarray, low: np.ndarray, weight: float, factor: int) -> float:
    mean, std = low.mean(), low.std()
    z = (x - mean) / std
    y = (low - mean) / std
    data = 0.5 * np.sum(np.abs(centre_crop_kspace_image(z, factor) - y) ** 2)
    g = bl._gradient(z)
    return float(data + weight * np.sum(np.sqrt(g[0] ** 2 + g[1] ** 2)))


def test_tv_sr_minimises_its_objective():
    clean = _toy(48, "brain-flair")
    low = np.abs(centre_crop_kspace_image(clean, 3))
    w = 0.01
    x = tv_sr(low, clean.shape, weight=w, n_iter=400)
    f = _tv_sr_objective(x, low, w, 3)
    start = np.real(fourier_resize(low, clean.shape))
    assert f < _tv_sr_objective(start, low, w, 3)
    assert f < _tv_sr_objective(bicubic(low, clean.shape), low, w, 3)
    # small random perturbations never improve a (near-)minimiser of a convex objective
    rng = np.random.default_rng(0)
    for _ in range(5):
        assert f <= _tv_sr_objective(x + 1e-3 * low.std() * rng.standard_normal(x.shape), low, w, 3) + 1e-6
    # scale equivariance: the weight lives on the z-normalised scale
    np.testing.assert_allclose(
        tv_sr(3 * low + 2, clean.shape, weight=w, n_iter=50),
        3 * tv_sr(low, clean.shape, weight=w, n_iter=50) + 2,
        atol=1e-8,
    )


def test_zero_filled_is_the_identity():
    clean = _toy(32)
    sub = artefix.simulate(clean, "subsampling", severity=2, seed=0)
    out = zero_filled(sub)
    np.testing.assert_array_equal(out, sub)
    assert out is not sub and out.dtype == np.float64
    # the subsampled image is exactly the zero-filled Fourier upsampling of the low-resolution image
    np.testing.assert_allclose(out, np.abs(fourier_resize(centre_crop_kspace_image(clean, 2), clean.shape)), atol=1e-3)


def test_lowres_validation():
    with pytest.raises(ValueError, match="smaller"):
        tv_sr(np.ones((20, 20)), (10, 10))
    with pytest.raises(ValueError, match="weight"):
        tv_sr(np.ones((8, 8)), (16, 16), weight=0.0)
    with pytest.raises(ValueError, match="shape"):
        bicubic(np.ones((8, 8)), (16,))
    with pytest.raises(ValueError, match="NaN"):
        bicubic(np.full((8, 8), np.nan), (16, 16))


# ----------------------------------------------------------------------------------------------- bias


def test_n4_removes_a_strong_bias_field():
    pytest.importorskip("SimpleITK")
    clean = _toy(64)
    # field in [0.5, 1.5]: at the paper's 5-20 % N4 mostly "corrects" the slice's own inhomogeneity
    biased = apply_bias_field(clean, BiasFieldParams(length_scale=10.0, field_range=1.0, seed=3))
    e_in = _err(clean, biased)
    assert _err(clean, n4_paper(znorm(biased))) < 0.3 * e_in
    assert _err(clean, n4(znorm(biased))) < 0.6 * e_in
    # affine equivariance: the [0, 10] scaling is undone on the way out
    small = biased[::2, ::2]
    np.testing.assert_allclose(n4_paper(2 * small + 5), 2 * n4_paper(small) + 5, rtol=1e-6, atol=1e-6)
    flat = np.full((16, 16), 3.0)
    np.testing.assert_array_equal(n4_paper(flat), flat)
    np.testing.assert_array_equal(n4(flat), flat)
    with pytest.raises(ValueError, match="shrink"):
        n4(small, shrink=0)
    with pytest.raises(ValueError, match="control_points"):
        n4_paper(small, control_points=3)


# --------------------------------------------------------------------------------------------- motion


def test_tv_reduces_motion_artefacts_and_tuning_picks_the_grid_minimiser(toy96):
    clean_val = _toy(64, "brain-flair")
    val = [(artefix.simulate(clean_val, "motion", severity=0.125, seed=s), clean_val) for s in (1, 2)]
    grid = (0.01, 0.05, 0.2)
    w = tune_tv_weight(val, weights=grid)
    scores = [np.mean([_err(c, tv(m, weight=g)) for m, c in val]) for g in grid]
    assert w == grid[int(np.argmin(scores))]

    moved = artefix.simulate(toy96, "motion", severity=0.125, seed=0)
    e_in = _err(toy96, moved)
    assert _err(toy96, tv_paper(moved)) < e_in
    assert _err(toy96, tv(moved, weight=w)) < e_in
    np.testing.assert_allclose(tv_paper(4 * moved - 1), 4 * tv_paper(moved) - 1, atol=1e-8)
    with pytest.raises(TypeError):
        tv(moved)  # no default weight: tune it on validation data
    with pytest.raises(ValueError, match="at least one"):
        tune_tv_weight([])


# ---------------------------------------------------------------------------------------------- noise


def test_cad_denoises_with_simpleitk_defaults(toy96):
    sitk = pytest.importorskip("SimpleITK")
    noisy = artefix.simulate(toy96, "noise", severity=0, seed=0)
    out = cad(noisy)
    assert _err(toy96, out) < 0.5 * _err(toy96, noisy)
    # the paper's numbers are SimpleITK's defaults, conductance included
    default = sitk.GetArrayFromImage(sitk.CurvatureAnisotropicDiffusion(sitk.GetImageFromArray(noisy.astype(float))))
    np.testing.assert_allclose(out, default)
    assert (CAD_TIME_STEP, CAD_ITERATIONS, CAD_CONDUCTANCE) == (0.0625, 5, 3.0)
    # the conductance is relative to the mean squared gradient: affine intensity maps commute
    np.testing.assert_allclose(cad(3 * noisy + 1), 3 * out + 1, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="iterations"):
        cad(noisy, iterations=0)


def test_bm3d_denoises(toy96):
    pytest.importorskip("bm3d")
    clean = toy96[16:80, 16:80]
    noisy = artefix.simulate(clean, "noise", severity=0, seed=1)
    state = np.random.get_state()[1].copy()
    e_in = _err(clean, noisy)
    tuned = bm3d(noisy)
    paper = bm3d_paper(noisy)
    np.testing.assert_array_equal(np.random.get_state()[1], state)  # global RNG untouched
    assert _err(clean, tuned) < 0.5 * e_in
    assert _err(clean, paper) < 0.7 * e_in  # sigma 50/255 is far too strong: over-smoothed
    np.testing.assert_allclose(bm3d_paper(2 * noisy + 1), 2 * paper + 1, rtol=1e-6, atol=1e-6)
    flat = np.full((16, 16), 2.0)
    np.testing.assert_array_equal(bm3d(flat), flat)


# ------------------------------------------------------------------------------------------- registry


def test_registry():
    assert list(BASELINES) == [
        "n4",
        "n4-paper",
        "bfc",
        "zero-filled",
        "bicubic",
        "tv-sr",
        "tv",
        "tv-paper",
        "cad",
        "bm3d",
        "bm3d-paper",
    ]
    experiments = {name: b.experiment for name, b in BASELINES.items()}
    assert experiments == {
        "n4": "bias",
        "n4-paper": "bias",
        "bfc": "bias",
        "zero-filled": "subsampling",
        "bicubic": "subsampling",
        "tv-sr": "subsampling",
        "tv": "motion",
        "tv-paper": "motion",
        "cad": "noise",
        "bm3d": "noise",
        "bm3d-paper": "noise",
    }
    assert {n for n, b in BASELINES.items() if b.needs == "lowres"} == {"bicubic", "tv-sr"}
    assert all(b.needs in ("corrupted", "lowres") for b in BASELINES.values())
    assert {n: b.extra for n, b in BASELINES.items() if b.extra} == {
        "n4": "eval",
        "n4-paper": "eval",
        "cad": "eval",
        "bm3d": "bm3d",
        "bm3d-paper": "bm3d",
    }
    assert BASELINES["tv-paper"].func is tv_paper and BASELINES["tv"].func is tv
    assert [n for n, b in BASELINES.items() if b.tune] == ["tv"]
    for name in ("bfc", "zero-filled", "bicubic", "tv-sr", "tv", "tv-paper"):
        assert available(name)
    with pytest.raises(ValueError, match="unknown baseline"):
        available("unires")


def test_missing_optional_dependency_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "SimpleITK", None)  # makes `import SimpleITK` raise ImportError
    monkeypatch.setitem(sys.modules, "bm3d", None)
    x = np.random.default_rng(0).random((16, 16))
    with pytest.raises(ImportError, match=r"artefix\[eval\]"):
        cad(x)
    with pytest.raises(ImportError, match=r"artefix\[eval\]"):
        n4_paper(x)
    with pytest.raises(ImportError, match=r"artefix\[bm3d\]"):
        bm3d_paper(x)
    assert not available("cad") and not available("n4") and not available("bm3d")
    assert available("bicubic")
