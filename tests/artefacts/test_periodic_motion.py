"""Tests of the periodic (breathing) motion phase-error simulator."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import torch

from artefix.artefacts.base import params_to_dict
from artefix.artefacts.periodic_motion import (
    PeriodicMotionParams,
    apply_periodic_motion,
    ky_of_lines,
    periodic_motion_params_for_severity,
    periodic_phase_error,
    sample_periodic_motion_params,
)
from artefix.fft import fft2c


def image(shape=(33, 47), seed=0) -> np.ndarray:
    return np.random.default_rng(seed).random(shape)


def lines_of(k: np.ndarray, lines, pe_axis: int) -> np.ndarray:
    return np.take(k, np.asarray(lines, dtype=int), axis=pe_axis)


PARAMS = PeriodicMotionParams(delta_px=60.0, alpha=2.3, beta=0.4, ky0=0.35, pe_axis=-2)


def test_ky_grid():
    ky = ky_of_lines(8)
    np.testing.assert_allclose(ky, 2 * np.pi * np.arange(-4, 4) / 8)
    assert ky[8 // 2] == 0.0
    ky = ky_of_lines(33)
    assert ky[16] == 0.0 and ky.min() >= -np.pi and ky.max() < np.pi


@pytest.mark.parametrize("pe_axis", [-2, -1])
@pytest.mark.parametrize("shape", [(33, 47), (32, 32), (40, 25)])
def test_kspace_structure(pe_axis, shape):
    params = PeriodicMotionParams(delta_px=60.0, alpha=2.3, beta=0.4, ky0=0.35, pe_axis=pe_axis)
    img = image(shape)
    k_out, k_clean = fft2c(apply_periodic_motion(img, params)), fft2c(img)
    # magnitudes of k-space are unchanged
    np.testing.assert_allclose(np.abs(k_out), np.abs(k_clean), rtol=1e-5, atol=1e-12)
    n = shape[pe_axis]
    ky = ky_of_lines(n)
    centre = np.flatnonzero(np.abs(ky) <= params.ky0)
    outer = np.flatnonzero(np.abs(ky) > params.ky0)
    assert len(centre) >= 1 and len(outer) > n // 2
    np.testing.assert_allclose(lines_of(k_out, centre, pe_axis), lines_of(k_clean, centre, pe_axis), atol=1e-12)
    # on the corrupted lines the phase difference is -phi(ky)
    phi = ky * params.delta_px * np.sin(params.alpha * ky + params.beta)
    np.testing.assert_allclose(periodic_phase_error(params, n)[outer], phi[outer])
    shape_b = (-1, 1) if pe_axis == -2 else (1, -1)
    expected = k_clean * np.exp(-1j * np.where(np.abs(ky) > params.ky0, phi, 0.0)).reshape(shape_b)
    np.testing.assert_allclose(k_out, expected, atol=1e-10)
    ratio = lines_of(k_out, outer, pe_axis) / lines_of(k_clean, outer, pe_axis)
    wrapped = np.angle(ratio * np.exp(1j * phi[outer]).reshape(shape_b))
    np.testing.assert_allclose(wrapped, 0.0, atol=1e-8)
    assert np.abs(k_out - k_clean).max() > 1e-3


def test_constant_displacement_is_an_integer_shift():
    # alpha = 0, beta = pi/2, ky0 = 0: phi = ky * Delta on every line, i.e. a circular shift by Delta px
    for pe_axis in (-2, -1):
        params = PeriodicMotionParams(delta_px=5.0, alpha=0.0, beta=math.pi / 2, ky0=0.0, pe_axis=pe_axis)
        img = image((32, 27))
        out = apply_periodic_motion(img, params)
        np.testing.assert_allclose(out, np.roll(img, 5, axis=pe_axis), atol=1e-12)


def test_lines_at_exactly_ky0_are_protected():
    # ky of 8 lines is 2 pi (i - 4) / 8: lines 3 and 5 lie at |ky| = pi / 4 exactly, and |ky| <= ky0 is untouched
    params = PeriodicMotionParams(delta_px=3.0, alpha=1.0, beta=0.5, ky0=math.pi / 4, pe_axis=-2)
    assert np.flatnonzero(periodic_phase_error(params, 8) == 0.0).tolist() == [3, 4, 5]
    img = image((8, 6))
    k_out, k_clean = fft2c(apply_periodic_motion(img, params)), fft2c(img)
    np.testing.assert_allclose(k_out[3:6], k_clean[3:6], atol=1e-12)
    assert np.abs(k_out[[0, 1, 2, 6, 7]] - k_clean[[0, 1, 2, 6, 7]]).min() > 1e-6


@pytest.mark.parametrize("pe_axis", [-2, -1])
def test_negative_amplitude_shifts_the_other_way(pe_axis):
    params = PeriodicMotionParams(delta_px=-4.0, alpha=0.0, beta=math.pi / 2, ky0=0.0, pe_axis=pe_axis)
    img = image((32, 27))
    np.testing.assert_allclose(apply_periodic_motion(img, params), np.roll(img, -4, axis=pe_axis), atol=1e-12)


def test_zero_delta_is_identity():
    img = image()
    params = PeriodicMotionParams(delta_px=0.0, alpha=2.0, beta=0.2, ky0=0.3, pe_axis=-1)
    out = apply_periodic_motion(img, params)
    assert out.dtype == np.complex128
    np.testing.assert_array_equal(out, img)
    t = apply_periodic_motion(torch.from_numpy(img).float(), params)
    assert t.dtype == torch.complex64
    np.testing.assert_array_equal(t.numpy().real, img.astype(np.float32))


def test_batch_numpy_torch_and_dtypes():
    img = np.random.default_rng(1).random((3, 33, 47)).astype(np.float32)
    out = apply_periodic_motion(img, PARAMS)
    assert out.shape == img.shape and out.dtype == np.complex64
    for b in range(3):
        np.testing.assert_allclose(out[b], apply_periodic_motion(img[b], PARAMS), atol=1e-6)
    t = apply_periodic_motion(torch.from_numpy(img), PARAMS)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.complex64
    np.testing.assert_allclose(t.numpy(), out, atol=1e-5)
    c = apply_periodic_motion(img.astype(np.complex128), PARAMS)
    assert c.dtype == np.complex128
    np.testing.assert_allclose(c, out, atol=1e-5)


def test_pe_axis_transpose_symmetry():
    img = image()
    a = apply_periodic_motion(img, PARAMS)
    b = apply_periodic_motion(img.T, PeriodicMotionParams(60.0, 2.3, 0.4, 0.35, -1)).T
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_sampler_ranges_and_determinism():
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.random.get_rng_state().clone()
    rng = np.random.default_rng(2)
    draws = [sample_periodic_motion_params(rng, (64, 64)) for _ in range(2000)]
    delta = np.array([p.delta_px for p in draws])
    alpha = np.array([p.alpha for p in draws])
    beta = np.array([p.beta for p in draws])
    ky0 = np.array([p.ky0 for p in draws])
    assert delta.min() >= 20 and delta.max() <= 120 and delta.mean() == pytest.approx(70, abs=3)
    assert alpha.min() >= 0.1 and alpha.max() <= 5 and alpha.mean() == pytest.approx(2.55, abs=0.15)
    assert beta.min() >= 0 and beta.max() <= np.pi / 4 and beta.mean() == pytest.approx(np.pi / 8, abs=0.03)
    assert ky0.min() > np.pi / 10 and ky0.max() <= np.pi / 8
    assert ky0.mean() == pytest.approx((np.pi / 10 + np.pi / 8) / 2, abs=0.005)
    assert {p.pe_axis for p in draws} == {-2, -1}
    assert sample_periodic_motion_params(rng, (64, 64), pe_axis=-1).pe_axis == -1
    a = sample_periodic_motion_params(np.random.default_rng(3), (32, 32))
    assert a == sample_periodic_motion_params(np.random.default_rng(3), (32, 32))
    np.testing.assert_array_equal(apply_periodic_motion(image(), a), apply_periodic_motion(image(), a))
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)


def test_severity():
    rng = np.random.default_rng(4)
    for level in (20.0, 70.0, 120.0):
        p = periodic_motion_params_for_severity(level, (64, 64), rng, pe_axis=-2)
        assert p.delta_px == level and p.pe_axis == -2
        assert 0.1 <= p.alpha <= 5 and 0 <= p.beta <= np.pi / 4 and np.pi / 10 < p.ky0 <= np.pi / 8
    with pytest.raises(ValueError, match="level"):
        periodic_motion_params_for_severity(-1.0, (64, 64), rng)
    # level 0 is no motion, and levels below one pixel are levels too
    for level in (0.0, 0.5):
        assert periodic_motion_params_for_severity(level, (64, 64), rng, pe_axis=-1).delta_px == level
    img = image((32, 32))
    np.testing.assert_array_equal(
        apply_periodic_motion(img, periodic_motion_params_for_severity(0.0, (32, 32), rng)), img
    )


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"delta_px": math.nan}, "delta_px"),
        ({"alpha": math.inf}, "alpha"),
        ({"ky0": -0.1}, "ky0"),
        ({"ky0": 4.0}, "ky0"),
        ({"pe_axis": 0}, "pe_axis"),
    ],
)
def test_params_validation(kwargs, match):
    base = {"delta_px": 50.0, "alpha": 1.0, "beta": 0.1, "ky0": 0.3, "pe_axis": -2}
    with pytest.raises(ValueError, match=match):
        PeriodicMotionParams(**{**base, **kwargs})
    for shape in ((1, 32), (32, 1), (32,)):
        with pytest.raises(ValueError, match="shape"):
            sample_periodic_motion_params(np.random.default_rng(0), shape)
    for ky0 in (0.0, math.pi):
        assert PeriodicMotionParams(**{**base, "ky0": ky0}).ky0 == ky0


def test_sampled_amplitude_spans_the_papers_range():
    # Delta ~ U[20, 120] px (the paper's periodic-motion model): 3000 draws reach within 1 px of either end
    # (a draw misses [119, 120] with probability 0.99, all 3000 with about 1e-13).
    rng = np.random.default_rng(8)
    deltas = np.array([sample_periodic_motion_params(rng, (32, 32)).delta_px for _ in range(3000)])
    assert deltas.min() >= 20.0 and deltas.max() <= 120.0
    assert deltas.min() < 21.0 and deltas.max() > 119.0


def test_smallest_image_is_two_by_two():
    p = sample_periodic_motion_params(np.random.default_rng(0), (2, 2))
    assert apply_periodic_motion(np.ones((2, 2)), p).shape == (2, 2)
    periodic_motion_params_for_severity(70.0, (2, 2), np.random.default_rng(0))
    for shape in ((1, 8), (8, 1), (2, 2, 2)):
        with pytest.raises(ValueError, match="shape"):
            sample_periodic_motion_params(np.random.default_rng(0), shape)


def test_numpy_scalars_are_stored_as_plain_python_ones():
    # the replay log is JSON: a NumPy integer axis (from a draw or a config) must not break it
    p = PeriodicMotionParams(
        delta_px=np.float32(50.0),
        alpha=np.float64(0.5),
        beta=np.float32(0.25),
        ky0=np.float64(0.5),
        pe_axis=np.int64(-2),
    )
    assert [type(v) for v in dataclasses.astuple(p)] == [float, float, float, float, int]
    assert json.loads(json.dumps(params_to_dict(p)))["pe_axis"] == -2
    x = image((12, 10))
    plain = PeriodicMotionParams(delta_px=50.0, alpha=0.5, beta=0.25, ky0=0.5, pe_axis=-2)
    np.testing.assert_allclose(apply_periodic_motion(x, p), apply_periodic_motion(x, plain), rtol=1e-6)
