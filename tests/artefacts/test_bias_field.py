"""Bias-field simulator: exact range, Gaussian covariance of the random field, API conventions."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from artefix.artefacts import bias_field as bias_module
from artefix.artefacts.base import params_to_dict
from artefix.artefacts.bias_field import (
    SEVERITY_LEVELS,
    BiasFieldParams,
    apply_bias_field,
    bias_field,
    bias_field_params_for_severity,
    coarse_grid_shape,
    gaussian_random_field,
    sample_bias_field_params,
)
from artefix.artefacts.sampler import get_spec


def _image(shape: tuple[int, ...], dtype: np.dtype = np.float64, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).random(shape) + 0.5).astype(dtype)


def test_zero_range_is_exact_identity() -> None:
    params = BiasFieldParams(length_scale=20.0, field_range=0.0, seed=3)
    x = _image((40, 36))
    np.testing.assert_array_equal(apply_bias_field(x, params), x)
    xt = torch.from_numpy(_image((2, 40, 36), np.float32))
    assert torch.equal(apply_bias_field(xt, params), xt)
    xc = x + 1j * _image((40, 36), seed=1)
    np.testing.assert_array_equal(apply_bias_field(xc, params), xc)
    assert torch.equal(bias_field(params, (5, 7)), torch.ones(5, 7))


@pytest.mark.parametrize("level", [0.05, 0.1, 0.2, 0.45])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_field_min_max_are_exactly_the_requested_range(level: float, dtype: torch.dtype) -> None:
    params = bias_field_params_for_severity(level, (64, 64), np.random.default_rng(int(level * 100)))
    assert params.field_range == pytest.approx(2 * level)
    field = bias_field(params, (64, 64), dtype=dtype)
    assert field.dtype == dtype
    assert float(field.min()) == pytest.approx(1 - level, abs=1e-6)
    assert float(field.max()) == pytest.approx(1 + level, abs=1e-6)


def test_apply_multiplies_the_field_into_the_image() -> None:
    params = BiasFieldParams(length_scale=15.0, field_range=0.6, seed=11)
    x = _image((48, 48))
    field = bias_field(params, (48, 48), dtype=torch.float64).numpy()
    np.testing.assert_allclose(apply_bias_field(x, params), x * field, rtol=1e-12)
    # on a constant image the output is the field itself, spanning [0.7, 1.3]
    out = apply_bias_field(np.ones((48, 48)), params)
    assert out.min() == pytest.approx(0.7, abs=1e-9) and out.max() == pytest.approx(1.3, abs=1e-9)
    for b in (1.0, 1.99):  # every range but 0 gives a field: [0.5, 1.5] at b = 1
        out = apply_bias_field(np.ones((48, 48)), BiasFieldParams(length_scale=15.0, field_range=b, seed=11))
        assert out.min() == pytest.approx(1 - b / 2, abs=1e-9) and out.max() == pytest.approx(1 + b / 2, abs=1e-9)


def test_complex_input_keeps_its_phase() -> None:
    params = BiasFieldParams(length_scale=15.0, field_range=0.6, seed=11)
    x = _image((32, 32)) * np.exp(1j * _image((32, 32), seed=5))
    out = apply_bias_field(x, params)
    assert out.dtype == np.complex128
    np.testing.assert_allclose(np.angle(out), np.angle(x), atol=1e-12)


def test_random_field_has_the_gaussian_covariance() -> None:
    """Empirical covariance over 400 fields matches cov(r) = exp(-pi/4 (r/l)^2) within 0.05."""
    length_scale, n, n_fields = 6.0, 64, 400
    fields = np.stack([gaussian_random_field((n, n), length_scale, seed).numpy() for seed in range(n_fields)])
    lags = np.arange(0, 13)  # 0 .. 2 l
    expected = np.exp(-math.pi / 4 * (lags / length_scale) ** 2)
    cov_x = np.array([np.mean(fields[:, :, : n - d] * fields[:, :, d:]) for d in lags])
    cov_y = np.array([np.mean(fields[:, : n - d, :] * fields[:, d:, :]) for d in lags])
    cov_diag = np.array([np.mean(fields[:, : n - d, : n - d] * fields[:, d:, d:]) for d in range(9)])
    expected_diag = np.exp(-math.pi / 4 * (np.sqrt(2) * np.arange(9) / length_scale) ** 2)
    np.testing.assert_allclose(cov_x, expected, atol=0.05)
    np.testing.assert_allclose(cov_y, expected, atol=0.05)
    np.testing.assert_allclose(cov_diag, expected_diag, atol=0.05)
    assert abs(fields.mean()) < 0.05
    # padding before cropping: opposite edges are uncorrelated (a periodic field would give ~0.98 here)
    assert abs(np.mean(fields[:, :, 0] * fields[:, :, -1])) < 0.05
    assert abs(np.mean(fields[:, 0, :] * fields[:, -1, :])) < 0.05


def test_random_field_shape_dtype_and_validation() -> None:
    field = gaussian_random_field((20, 30), 3.0, seed=1, dtype=torch.float32)
    assert field.shape == (20, 30) and field.dtype == torch.float32
    with pytest.raises(ValueError, match="length_scale"):
        gaussian_random_field((8, 8), 0.0, seed=1)
    for grid in ((0, 8), (8, 0)):
        with pytest.raises(ValueError, match="grid_shape"):
            gaussian_random_field(grid, 2.0, seed=1)
    # one-pixel lines are grids too (each side >= 1)
    for grid in ((1, 1), (5, 1), (1, 5)):
        assert gaussian_random_field(grid, 2.0, seed=1).shape == grid


def test_fft_size_is_the_next_five_smooth_integer() -> None:
    smooth = [n for n in range(1, 200) if _is_five_smooth(n)]
    for n in range(1, 181):
        assert bias_module._fft_size(n) == min(m for m in smooth if m >= n)


def _is_five_smooth(n: int) -> bool:
    for p in (2, 3, 5):
        while n % p == 0:
            n //= p
    return n == 1


@pytest.mark.parametrize(
    ("grid", "length_scale", "synthesis"),
    [((32, 20), 10.0, (64, 50)), ((7, 9), 2.3, (15, 16))],
)
def test_synthesis_grid_is_padded_by_three_length_scales(monkeypatch, grid, length_scale, synthesis) -> None:
    """The white noise is drawn on (n + ceil(3 l)) rounded up to a 5-smooth FFT length, along each axis."""
    shapes = []
    randn = torch.randn

    def spy(size, *args, **kwargs):
        shapes.append(tuple(size))
        return randn(size, *args, **kwargs)

    monkeypatch.setattr(torch, "randn", spy)
    assert gaussian_random_field(grid, length_scale, seed=0).shape == grid
    assert shapes == [synthesis]


def test_field_is_the_coarse_random_field_upsampled_corner_to_corner() -> None:
    """With H - 1 = 4 (32 - 1), every 4th pixel is a node of the 32x32 grid: B there is affine in the SRF."""
    params = BiasFieldParams(length_scale=12.0, field_range=0.8, seed=5)
    field = bias_field(params, (125, 125), dtype=torch.float64).numpy()
    coarse = gaussian_random_field((32, 32), 12.0, 5).numpy()
    nodes = field[::4, ::4]
    design = np.stack([coarse.ravel(), np.ones(coarse.size)], axis=1)
    coef, *_ = np.linalg.lstsq(design, nodes.ravel(), rcond=None)
    np.testing.assert_allclose(design @ coef, nodes.ravel(), atol=1e-10)
    assert coef[0] > 0


def test_coarse_grid_keeps_aspect_ratio() -> None:
    assert coarse_grid_shape((320, 320)) == (32, 32)
    assert coarse_grid_shape((33, 47)) == (32, 46)
    assert coarse_grid_shape((47, 33)) == (46, 32)
    assert coarse_grid_shape((512, 256), 16) == (32, 16)


def test_deterministic_under_seed_and_seeds_differ() -> None:
    x = _image((40, 40))
    a = apply_bias_field(x, BiasFieldParams(length_scale=20.0, field_range=0.5, seed=1))
    b = apply_bias_field(x, BiasFieldParams(length_scale=20.0, field_range=0.5, seed=1))
    c = apply_bias_field(x, BiasFieldParams(length_scale=20.0, field_range=0.5, seed=2))
    np.testing.assert_array_equal(a, b)
    assert np.max(np.abs(a - c)) > 1e-3


def test_odd_non_square_and_batch_share_one_field() -> None:
    params = BiasFieldParams(length_scale=10.0, field_range=0.4, seed=9)
    x = _image((3, 33, 47))
    out = apply_bias_field(x, params)
    assert out.shape == (3, 33, 47)
    ratio = out / x
    np.testing.assert_allclose(ratio[1], ratio[0], rtol=1e-12)
    np.testing.assert_allclose(ratio[2], ratio[0], rtol=1e-12)
    np.testing.assert_allclose(ratio[0], apply_bias_field(x[0], params) / x[0], rtol=1e-12)
    assert ratio.min() == pytest.approx(0.8, abs=1e-9) and ratio.max() == pytest.approx(1.2, abs=1e-9)


@pytest.mark.parametrize(
    ("np_dtype", "torch_dtype"),
    [
        (np.float32, torch.float32),
        (np.float64, torch.float64),
        (np.complex64, torch.complex64),
        (np.complex128, torch.complex128),
    ],
)
def test_numpy_and_torch_agree_and_dtypes_are_preserved(np_dtype: type, torch_dtype: torch.dtype) -> None:
    params = BiasFieldParams(length_scale=25.0, field_range=0.7, seed=4)
    x = _image((2, 30, 34)).astype(np_dtype)
    out_np = apply_bias_field(x, params)
    out_t = apply_bias_field(torch.from_numpy(x.copy()), params)
    assert isinstance(out_np, np.ndarray) and out_np.dtype == np_dtype
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch_dtype
    np.testing.assert_array_equal(out_np, out_t.numpy())


def test_integer_input_becomes_float32() -> None:
    params = BiasFieldParams(length_scale=25.0, field_range=0.7, seed=4)
    out = apply_bias_field(np.full((16, 16), 100, dtype=np.uint16), params)
    assert out.dtype == np.float32
    assert out.min() == pytest.approx(65.0, rel=1e-5) and out.max() == pytest.approx(135.0, rel=1e-5)


def test_global_rng_state_untouched() -> None:
    np_state = np.random.get_state()  # noqa: NPY002 (checking the legacy global state)
    torch_state = torch.get_rng_state()
    rng = np.random.default_rng(0)
    params = sample_bias_field_params(rng, (32, 32))
    apply_bias_field(_image((32, 32)), params)
    apply_bias_field(torch.ones(2, 32, 32), bias_field_params_for_severity(0.1, (32, 32), rng))
    after = np.random.get_state()  # noqa: NPY002 (checking the legacy global state)
    assert np_state[0] == after[0] and np.array_equal(np_state[1], after[1]) and np_state[2:] == after[2:]
    assert torch.equal(torch_state, torch.get_rng_state())


def test_length_scales_below_one_coarse_pixel_are_valid() -> None:
    # any positive length scale is a field (the paper's range starts at 10; a user may want finer ones)
    for length_scale in (0.25, 1.0):
        params = BiasFieldParams(length_scale=length_scale, field_range=0.4, seed=2, grid_size=4)
        field = bias_field(params, (16, 16))
        assert field.shape == (16, 16)
        assert float(field.min()) == pytest.approx(0.8) and float(field.max()) == pytest.approx(1.2)


def test_length_scale_is_drawn_over_the_papers_whole_range() -> None:
    # paper: 10 < l < 50, uniform; 3000 seeded draws of each sampler reach within 0.1 of either end
    rng = np.random.default_rng(5)
    for draw in (sample_bias_field_params, lambda r, s: bias_field_params_for_severity(0.1, s, r)):
        ls = np.array([draw(rng, (64, 64)).length_scale for _ in range(3000)])
        assert 10.0 <= ls.min() < 10.1 and 49.9 < ls.max() <= 50.0


@pytest.mark.parametrize("length_scale", [-5.0, -0.5, math.inf, math.nan])
def test_random_field_refuses_negative_and_non_finite_length_scales(length_scale) -> None:
    with pytest.raises(ValueError, match="length_scale must be a finite number > 0"):
        gaussian_random_field((8, 8), length_scale, seed=1)


def test_a_flat_random_field_gives_a_flat_bias_field(monkeypatch) -> None:
    # the min-max scaling divides by the field's span: a field without any (all samples equal) is flat.
    # The image is the coarse grid's size, so the interpolation is exact and the span exactly 0.
    monkeypatch.setattr(bias_module, "gaussian_random_field", lambda shape, *a, **k: torch.full(shape, 0.3))
    params = BiasFieldParams(length_scale=20.0, field_range=0.6, seed=3, grid_size=4)
    assert coarse_grid_shape((4, 4), 4) == (4, 4)
    assert torch.equal(bias_field(params, (4, 4)), torch.ones(4, 4))


def test_sampler_ranges_and_reproducibility() -> None:
    rng = np.random.default_rng(123)
    draws = [sample_bias_field_params(rng, (320, 320)) for _ in range(500)]
    ls = np.array([p.length_scale for p in draws])
    bs = np.array([p.field_range for p in draws])
    assert ls.min() >= 10 and ls.max() <= 50 and ls.min() < 12 and ls.max() > 48
    assert bs.min() >= 0.1 and bs.max() <= 1.0 and bs.min() < 0.15 and bs.max() > 0.95
    assert len({p.seed for p in draws}) == 500
    assert all(type(p.length_scale) is float and type(p.seed) is int for p in draws)
    assert sample_bias_field_params(7, (64, 64)) == sample_bias_field_params(7, (64, 64))


def test_severity_draws_length_scale_from_training_range() -> None:
    rng = np.random.default_rng(5)
    params = [bias_field_params_for_severity(0.2, (320, 320), rng) for _ in range(50)]
    assert all(10 <= p.length_scale <= 50 and p.field_range == pytest.approx(0.4) for p in params)
    for bad in (0.0, 1.0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="severity"):
            bias_field_params_for_severity(bad, (32, 32), rng)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"length_scale": 0.0, "field_range": 0.5},
        {"length_scale": -3.0, "field_range": 0.5},
        {"length_scale": float("nan"), "field_range": 0.5},
        {"length_scale": 1e6, "field_range": 0.5},
        {"length_scale": 20.0, "field_range": -0.1},
        {"length_scale": 20.0, "field_range": 2.0},
        {"length_scale": 20.0, "field_range": 2.5},
        {"length_scale": 20.0, "field_range": float("inf")},
        {"length_scale": 20.0, "field_range": 0.5, "grid_size": 1},
    ],
)
def test_invalid_params_raise(kwargs: dict) -> None:
    with pytest.raises(ValueError, match="length_scale|field_range|grid_size"):
        BiasFieldParams(seed=0, **kwargs)


def test_params_bounds_are_inclusive_where_documented() -> None:
    # 0 < l <= 8 * grid_size, 0 <= b < 2, grid_size an integer >= 2, seed an integer
    assert BiasFieldParams(length_scale=256.0, field_range=1.99, seed=0).length_scale == 256.0
    assert BiasFieldParams(length_scale=16.0, field_range=0.5, seed=0, grid_size=2).grid_size == 2
    for kwargs in (
        {"length_scale": 256.5},
        {"length_scale": 16.5, "grid_size": 2},
        {"grid_size": 2.0},
        {"seed": 1.5},
        {"seed": "1"},
    ):
        with pytest.raises(ValueError, match="length_scale|grid_size|seed"):
            BiasFieldParams(**{"length_scale": 20.0, "field_range": 0.5, "seed": 0, **kwargs})


def test_module_levels_are_the_registry_levels() -> None:
    assert SEVERITY_LEVELS == get_spec("bias").severities == (0.05, 0.1, 0.2)


def test_smallest_image_is_two_by_two() -> None:
    params = BiasFieldParams(length_scale=20.0, field_range=0.5, seed=0)
    field = bias_field(params, (2, 2), dtype=torch.float64)
    assert float(field.min()) == pytest.approx(0.75) and float(field.max()) == pytest.approx(1.25)
    assert sample_bias_field_params(0, (2, 2)).field_range > 0
    for shape in ((1, 8), (8, 1), (8, 8, 8)):
        with pytest.raises(ValueError, match="shape"):
            bias_field(params, shape)
        with pytest.raises(ValueError, match="shape"):
            bias_field_params_for_severity(0.1, shape, 0)


def test_invalid_images_and_shapes_raise() -> None:
    params = BiasFieldParams(length_scale=20.0, field_range=0.5, seed=0)
    with pytest.raises(ValueError, match="shape"):
        apply_bias_field(np.ones((2, 2, 8, 8)), params)
    with pytest.raises(ValueError, match="shape"):
        bias_field(params, (1, 8))
    with pytest.raises(ValueError, match="shape"):
        sample_bias_field_params(np.random.default_rng(0), (8,))


def test_params_are_plain_scalars_and_json_serialisable() -> None:
    params = BiasFieldParams(length_scale=np.float32(20.5), field_range=np.float64(0.3), seed=np.int64(4))
    d = params_to_dict(params)
    assert json.loads(json.dumps(d)) == {
        "length_scale": 20.5,
        "field_range": pytest.approx(0.3),
        "seed": 4,
        "grid_size": 32,
        "artefact": "bias",
    }
    assert type(params.length_scale) is float and type(params.seed) is int


def test_bias_field_takes_device_and_dtype_by_keyword() -> None:
    params = BiasFieldParams(length_scale=4.0, field_range=0.5, seed=2)
    by_keyword = bias_field(params=params, shape=(6, 7), device="cpu", dtype=torch.float64)
    assert by_keyword.shape == (6, 7) and by_keyword.dtype == torch.float64
    torch.testing.assert_close(by_keyword, bias_field(params, (6, 7), dtype=torch.float64), rtol=0, atol=0)
    with pytest.raises(TypeError):
        bias_field(params, (6, 7), "cpu")


def test_grid_size_must_be_an_integer_of_at_least_two() -> None:
    # length_scale 4 is within 8 * grid_size for each, so only the grid size itself can be refused.
    for grid_size in (1, 2.0, 3.5, np.float64(4.0)):
        with pytest.raises(ValueError, match="grid_size must be an integer >= 2"):
            BiasFieldParams(length_scale=4.0, field_range=0.5, seed=0, grid_size=grid_size)
    assert BiasFieldParams(length_scale=4.0, field_range=0.5, seed=0, grid_size=np.int64(2)).grid_size == 2
