"""Tests of the piece-wise constant rigid-motion simulator."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
import scipy.ndimage as ndi
import torch

from artefix.artefacts.base import params_to_dict
from artefix.artefacts.motion import (
    SEVERITY_LEVELS,
    RigidMotionParams,
    apply_rigid_motion,
    center_band,
    rigid_motion_params_for_severity,
    rigid_transform,
    sample_rigid_motion_params,
)
from artefix.fft import fft2c


def blob(shape: tuple[int, int], centre: tuple[float, float] | None = None, width: float = 3.0) -> np.ndarray:
    """A smooth Gaussian blob, numerically zero on the border (so zero padding does not matter)."""
    h, w = shape
    cy, cx = centre if centre is not None else ((h - 1) / 2, (w - 1) / 2)
    yy, xx = np.mgrid[:h, :w]
    return np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * width**2))


def reference_move(image: np.ndarray, rotation_deg: float, translation_px: tuple[float, float]) -> np.ndarray:
    """Independent rigid move with scipy: rotate counter-clockwise about the centre, then translate.

    In (row, col) coordinates the forward map is ``q = c + R (p - c) + t`` with the standard rotation
    ``R = [[cos, -sin], [sin, cos]]`` (counter-clockwise as displayed); scipy samples ``R^-1 (q - c - t) + c``.
    """
    a = math.radians(rotation_deg)
    rot = np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    inv = rot.T
    centre = (np.array(image.shape, dtype=float) - 1) / 2
    offset = centre - inv @ (centre + np.asarray(translation_px, dtype=float))
    return ndi.affine_transform(image, inv, offset=offset, order=1, mode="grid-constant", cval=0.0)


def lines_of(k: np.ndarray, lines, pe_axis: int) -> np.ndarray:
    return np.take(k, np.asarray(lines, dtype=int), axis=pe_axis)


def make_params(pe_axis=-2, center_fraction=0.1, segments=((0, 1, 2), (30, 31)), rot=(10.0, -7.0), shift=None):
    shift = shift if shift is not None else tuple((3.0, -2.0) for _ in segments)
    return RigidMotionParams(
        pe_axis=pe_axis,
        center_fraction=center_fraction,
        segments=tuple(tuple(s) for s in segments),
        rotations_deg=tuple(rot),
        translations_px=tuple(shift),
    )


# ----------------------------------------------------------------------------- centre band, params


def test_center_band_sizes_and_position():
    assert len(center_band(320, 0.07)) == 22
    assert center_band(320, 0.25) == range(120, 200)
    assert len(center_band(320, 0.125)) == 40
    assert len(center_band(320, 0.05)) == 16
    assert len(center_band(33, 0.0)) == 0
    assert center_band(33, 1.0) == range(0, 33)
    for bad in (-0.01, 1.01, 2.0):
        with pytest.raises(ValueError, match="center_fraction"):
            center_band(33, bad)
    for n in (32, 33, 47, 320):
        for f in (0.05, 0.07, 0.25, 0.5):
            band = center_band(n, f)
            assert n // 2 in band
            assert band.start >= 0 and band.stop <= n
            # the DC line sits at offset n_band // 2 within the band
            assert n // 2 - band.start == len(band) // 2


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"pe_axis": 0}, "pe_axis"),
        ({"center_fraction": 1.0}, "center_fraction"),
        ({"center_fraction": -0.5}, "center_fraction"),
        ({"center_fraction": -1e-9}, "center_fraction"),
        ({"center_fraction": 1.5}, "center_fraction"),
        ({"rot": (1.0,)}, "one rotation"),
        ({"segments": ((0, 1), (1, 2))}, "twice"),
        ({"segments": ((0, 1), (1, 0))}, "line 0 appears twice"),
        ({"segments": ((0, 1), (2, 1))}, "line 1 appears twice"),
        ({"segments": ((0, 1), ())}, "empty"),
        ({"segments": ((0, -1), (5,))}, "non-negative"),
        ({"segments": ((0, -1, -2), (5,))}, "got -1$"),  # the first bad index
        ({"rot": (math.nan, 0.0)}, "rotations_deg"),
        ({"shift": ((0.0, 1.0), (math.inf, 0.0))}, "translations_px"),
        ({"shift": ((0.0, 1.0), (1.0,))}, "translations_px"),
        ({"shift": ((0.0, 1.0), (1.0, 2.0, 3.0))}, "translations_px"),
    ],
)
def test_params_validation(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_params(**kwargs)


def test_params_hold_more_than_256_segments():
    # one line per segment, 300 of them (equal counts above 256 are distinct int objects in CPython)
    n = 300
    params = RigidMotionParams(-2, 0.0, tuple((i,) for i in range(n)), (0.0,) * n, ((0.0, 0.0),) * n)
    assert params.n_segments == n
    img = np.random.default_rng(0).random((n, 4))
    np.testing.assert_allclose(apply_rigid_motion(img, params), img, atol=1e-12)


def test_params_json_round_trip():
    p = sample_rigid_motion_params(np.random.default_rng(0), (64, 48))
    d = json.loads(json.dumps(params_to_dict(p)))
    assert d.pop("artefact") == "motion"
    assert RigidMotionParams(**d) == p


def test_apply_checks_lines_against_shape():
    img = blob((32, 40))
    for far in (32, 33, 100):
        with pytest.raises(ValueError, match=f"segment line {far} out of range for 32 PE lines"):
            apply_rigid_motion(img, make_params(segments=((0, 1), (far,))))
    band = center_band(32, 0.1)  # three lines around the DC line 16
    for inside in (band.start, 16, band.stop - 1):
        with pytest.raises(ValueError, match="centre band"):
            apply_rigid_motion(img, make_params(segments=((0, 1), (inside,))))
    for outside in (band.start - 1, band.stop):
        assert apply_rigid_motion(img, make_params(segments=((0, 1), (outside,)))).shape == (32, 40)
    # along W (40 lines) line 32 is fine
    assert apply_rigid_motion(img, make_params(pe_axis=-1, segments=((0, 1), (32,)))).shape == (32, 40)


# ----------------------------------------------------------------------------- identity


def test_no_segments_is_identity():
    img = np.random.default_rng(0).random((33, 47))
    params = RigidMotionParams(pe_axis=-2, center_fraction=0.07, segments=(), rotations_deg=(), translations_px=())
    out = apply_rigid_motion(img, params)
    assert out.dtype == np.complex128
    np.testing.assert_allclose(out, img, atol=1e-12)


@pytest.mark.parametrize("dtype, atol", [(np.float64, 1e-12), (np.float32, 1e-5)])
@pytest.mark.parametrize("pe_axis", [-2, -1])
def test_zero_poses_reproduce_clean_kspace(dtype, atol, pe_axis):
    img = np.random.default_rng(1).random((33, 47)).astype(dtype)
    params = sample_rigid_motion_params(np.random.default_rng(2), img.shape, pe_axis)
    n = params.n_segments
    zero = RigidMotionParams(pe_axis, params.center_fraction, params.segments, (0.0,) * n, ((0.0, 0.0),) * n)
    out = apply_rigid_motion(img, zero)
    # grid_sample with an identity grid (align_corners=False) samples exactly at pixel centres
    np.testing.assert_allclose(out, img, atol=atol)
    np.testing.assert_allclose(fft2c(out), fft2c(img.astype(np.float64)), atol=atol * 10)
    np.testing.assert_allclose(rigid_transform(img, 0.0, (0.0, 0.0)), img, atol=atol)


# ----------------------------------------------------------------------------- k-space structure


@pytest.mark.parametrize("shape", [(33, 47), (40, 32)])
@pytest.mark.parametrize("pe_axis", [-2, -1])
@pytest.mark.parametrize("ordering", ["linear", "random"])
def test_clean_lines_exact_and_segments_match_reference(shape, pe_axis, ordering):
    rng = np.random.default_rng(3)
    img = blob(shape, width=5.0) + 0.3 * rng.random(shape)
    params = sample_rigid_motion_params(
        rng, shape, pe_axis, rotation_std_deg=20.0, translation_std_px=4.0, ordering=ordering
    )
    n = shape[pe_axis]
    assert params.n_segments >= 4
    k_out = fft2c(apply_rigid_motion(img, params))
    k_clean = fft2c(img)
    corrupted = set(params.corrupted_lines)
    clean_lines = [i for i in range(n) if i not in corrupted]
    assert set(center_band(n, params.center_fraction)) <= set(clean_lines)
    np.testing.assert_allclose(
        lines_of(k_out, clean_lines, pe_axis), lines_of(k_clean, clean_lines, pe_axis), atol=1e-12
    )
    for seg, rot, shift in zip(params.segments, params.rotations_deg, params.translations_px, strict=True):
        k_ref = fft2c(reference_move(img, rot, shift))
        got = lines_of(k_out, seg, pe_axis)
        np.testing.assert_allclose(got, lines_of(k_ref, seg, pe_axis), atol=1e-10)
        # and the motion really changed those lines
        assert np.abs(got - lines_of(k_clean, seg, pe_axis)).max() > 1e-3


def test_centre_band_float32_matches_clean():
    img = np.random.default_rng(4).random((48, 48)).astype(np.float32)
    params = sample_rigid_motion_params(np.random.default_rng(5), img.shape, -2, center_fraction=0.25)
    out = apply_rigid_motion(img, params)
    assert out.dtype == np.complex64
    band = list(center_band(48, 0.25))
    k_out, k_clean = fft2c(out), fft2c(img)
    scale = np.abs(k_clean).max()
    np.testing.assert_allclose(k_out[band], k_clean[band], atol=1e-6 * scale)


@pytest.mark.parametrize("pe_axis", [-2, -1])
def test_pure_integer_translation_is_linear_phase(pe_axis):
    shape = (33, 47)
    img = blob(shape, width=1.5)
    dy, dx = 3.0, -5.0
    seg = (0, 1, 2, 3, 4, 5, 28, 29, 30, 31, 32)
    params = RigidMotionParams(pe_axis, 0.2, (seg,), (0.0,), ((dy, dx),))
    k_out, k_clean = fft2c(apply_rigid_motion(img, params)), fft2c(img)
    ky = (np.arange(shape[0]) - shape[0] // 2)[:, None] / shape[0]
    kx = (np.arange(shape[1]) - shape[1] // 2)[None, :] / shape[1]
    phase = np.exp(-2j * np.pi * (ky * dy + kx * dx))
    expected = k_clean * phase
    got = lines_of(k_out, seg, pe_axis)
    np.testing.assert_allclose(np.abs(got), lines_of(np.abs(k_clean), seg, pe_axis), atol=1e-9)
    np.testing.assert_allclose(got, lines_of(expected, seg, pe_axis), atol=1e-9)


def test_complex_input_is_linear_in_real_and_imaginary_parts():
    rng = np.random.default_rng(6)
    re, im = blob((32, 36), width=4.0), rng.random((32, 36))
    params = sample_rigid_motion_params(rng, re.shape)
    out = apply_rigid_motion(re + 1j * im, params)
    np.testing.assert_allclose(out, apply_rigid_motion(re, params) + 1j * apply_rigid_motion(im, params), atol=1e-12)


# ----------------------------------------------------------------------------- rigid_transform


def test_rigid_transform_directions():
    shape = (40, 56)
    img = blob(shape, centre=(19.5, 27.5), width=2.0)
    moved = rigid_transform(img, 0.0, (3.0, 2.0))
    assert np.unravel_index(np.argmax(moved), shape) == (19 + 3, 27 + 2) or np.unravel_index(
        np.argmax(moved), shape
    ) == (20 + 3, 28 + 2)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    cy, cx = (moved * yy).sum() / moved.sum(), (moved * xx).sum() / moved.sum()
    assert cy == pytest.approx(19.5 + 3.0, abs=1e-6) and cx == pytest.approx(27.5 + 2.0, abs=1e-6)
    # +90 deg is counter-clockwise as displayed: a blob right of centre moves above it
    right = blob(shape, centre=(19.5, 27.5 + 10), width=2.0)
    rot = rigid_transform(right, 90.0, (0.0, 0.0))
    cy, cx = (rot * yy).sum() / rot.sum(), (rot * xx).sum() / rot.sum()
    assert cy == pytest.approx(19.5 - 10, abs=1e-3) and cx == pytest.approx(27.5, abs=1e-3)


@pytest.mark.parametrize("shape", [(33, 47), (47, 33), (32, 32)])
def test_rigid_transform_matches_scipy_on_non_square(shape):
    img = np.random.default_rng(7).random(shape)
    for rot, shift in [(17.0, (2.5, -4.25)), (-63.0, (0.0, 0.0)), (0.0, (-1.5, 3.0))]:
        np.testing.assert_allclose(rigid_transform(img, rot, shift), reference_move(img, rot, shift), atol=1e-10)


def test_rigid_transform_batched_poses_and_kinds():
    img = np.random.default_rng(8).random((3, 20, 24))
    rots, shifts = [5.0, -10.0, 30.0], [(1.0, 2.0), (0.0, -3.0), (2.5, 0.5)]
    out = rigid_transform(img, rots, shifts)
    for b in range(3):
        np.testing.assert_allclose(out[b], reference_move(img[b], rots[b], shifts[b]), atol=1e-10)
    same = rigid_transform(img, 12.0, (1.0, -1.0))
    for b in range(3):
        np.testing.assert_allclose(same[b], reference_move(img[b], 12.0, (1.0, -1.0)), atol=1e-10)
    t = rigid_transform(torch.from_numpy(img).float(), rots, shifts)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_allclose(t.numpy(), out, atol=1e-5)
    c = rigid_transform(img + 1j * img, rots, shifts)
    assert np.iscomplexobj(c)
    np.testing.assert_allclose(c, out + 1j * out, atol=1e-12)
    with pytest.raises(ValueError, match="poses"):
        rigid_transform(img, [1.0, 2.0], [(0.0, 0.0), (0.0, 0.0)])


# ----------------------------------------------------------------------------- samplers


def _outer_lines(n: int, fraction: float) -> list[int]:
    band = center_band(n, fraction)
    return [i for i in range(n) if i not in band]


@pytest.mark.parametrize("ordering", ["linear", "random"])
def test_sampler_ranges(ordering):
    rng = np.random.default_rng(9)
    shape = (96, 80)
    rots, shifts, n_segs, axes = [], [], [], []
    scattered = gapped = 0
    for _ in range(300):
        p = sample_rigid_motion_params(rng, shape, ordering=ordering)
        n = shape[p.pe_axis]
        outer = _outer_lines(n, 0.07)
        assert p.center_fraction == 0.07
        corrupted = p.corrupted_lines
        assert set(corrupted) <= set(outer)
        assert 0.3 * len(outer) - 0.5 <= len(corrupted) <= 0.8 * len(outer) + 0.5
        assert 4 <= p.n_segments <= 24
        # linear: each segment is a contiguous run of the outer lines in acquisition (ky) order; random: scattered
        position = {line: i for i, line in enumerate(outer)}
        runs = [[position[line] for line in seg] for seg in p.segments]
        contiguous = all(pos == list(range(pos[0], pos[0] + len(pos))) for pos in runs)
        assert contiguous or ordering == "random"
        scattered += not contiguous
        # linear: clean outer lines lie between consecutive segments (the gaps are drawn too)
        gapped += any(b[0] > a[-1] + 1 for a, b in zip(runs, runs[1:], strict=False))
        rots.extend(p.rotations_deg)
        shifts.extend(p.translations_px)
        n_segs.append(p.n_segments)
        axes.append(p.pe_axis)
    assert np.std(rots) == pytest.approx(12.0, rel=0.08)
    assert np.std(shifts) == pytest.approx(30.0, rel=0.08)
    assert abs(np.mean(rots)) < 1.0 and abs(np.mean(shifts)) < 2.5
    assert min(n_segs) <= 6 and max(n_segs) >= 22
    assert set(axes) == {-2, -1}
    assert scattered >= 290 if ordering == "random" else scattered == 0  # 299 of 300 at this seed
    assert gapped >= 290 or ordering == "random", gapped


def test_sampler_small_image_caps_segments():
    p = sample_rigid_motion_params(np.random.default_rng(10), (8, 8), -2, n_segments=(24, 24))
    assert p.n_segments <= len(p.corrupted_lines) <= 8
    apply_rigid_motion(np.ones((8, 8)), p)


def test_sampler_zero_standard_deviations_give_the_reference_pose():
    p = sample_rigid_motion_params(np.random.default_rng(0), (32, 32), rotation_std_deg=0.0, translation_std_px=0.0)
    assert p.n_segments >= 4
    assert set(p.rotations_deg) == {0.0} and set(p.translations_px) == {(0.0, 0.0)}
    for kwargs in ({"rotation_std_deg": -0.5}, {"translation_std_px": -0.5}):
        with pytest.raises(ValueError, match="standard deviations"):
            sample_rigid_motion_params(np.random.default_rng(0), (32, 32), **kwargs)


@pytest.mark.parametrize("pe_axis", [-2, -1])
def test_smallest_image_is_two_by_two(pe_axis):
    p = sample_rigid_motion_params(np.random.default_rng(0), (2, 2), pe_axis, center_fraction=0.0)
    assert apply_rigid_motion(np.ones((2, 2)), p).shape == (2, 2)
    for shape in ((1, 8), (8, 1), (2, 2, 2)):
        with pytest.raises(ValueError, match="shape"):
            sample_rigid_motion_params(np.random.default_rng(0), shape)


def test_every_evaluation_level_leaves_its_fraction_of_central_lines_clean():
    assert SEVERITY_LEVELS == (0.25, 0.125, 0.05)  # the paper's Table 5 levels, in that order (worst last)
    for level in SEVERITY_LEVELS:
        p = rigid_motion_params_for_severity(level, (64, 80), np.random.default_rng(1), pe_axis=-1)
        assert p.center_fraction == level


def test_training_pose_spread_is_the_papers_to_within_a_few_percent():
    # paper: rotations ~ N(0, 12 deg), translations ~ N(0, 30 px) per axis. About 14,000 segments: the standard
    # error of a standard deviation is then 0.6 % (rotations) and 0.4 % (translations), so 2 % is >3 SE
    rng = np.random.default_rng(3)
    draws = [sample_rigid_motion_params(rng, (64, 64)) for _ in range(1000)]
    rots = np.concatenate([p.rotations_deg for p in draws])
    shifts = np.concatenate([np.ravel(p.translations_px) for p in draws])
    assert rots.size > 10_000
    assert {p.n_segments for p in draws} == set(range(4, 25))  # paper: 4 to 24 movements, each count drawn
    assert np.std(rots) == pytest.approx(12.0, rel=0.02)
    assert np.std(shifts) == pytest.approx(30.0, rel=0.02)


def test_params_store_plain_python_scalars_and_need_exactly_one_pose_per_segment():
    p = RigidMotionParams(
        segments=((0, 1), (5,)),
        rotations_deg=(2.0, -3.0),
        translations_px=((1.0, 0.5), (0.0, -2.0)),
        pe_axis=np.int64(-2),
        center_fraction=np.float32(0.25),
    )
    assert type(p.pe_axis) is int and type(p.center_fraction) is float
    assert json.loads(json.dumps(params_to_dict(p)))["pe_axis"] == -2  # the replay log is JSON
    x = np.random.default_rng(0).random((8, 6))
    plain = dataclasses.replace(p, pe_axis=-2, center_fraction=0.25)
    np.testing.assert_array_equal(apply_rigid_motion(x, p), apply_rigid_motion(x, plain))
    for rotations in ((2.0,), (2.0, -3.0, 1.0)):
        with pytest.raises(ValueError, match="one rotation and one translation per segment"):
            dataclasses.replace(p, rotations_deg=rotations)
    for translations in (((1.0, 0.5),), ((1.0, 0.5), (0.0, -2.0), (3.0, 3.0))):
        with pytest.raises(ValueError, match="one rotation and one translation per segment"):
            dataclasses.replace(p, translations_px=translations)


def test_every_outer_line_may_be_corrupted():
    p = sample_rigid_motion_params(
        np.random.default_rng(0), (64, 64), -1, center_fraction=0.1, corrupted_fraction=(1.0, 1.0)
    )
    assert len(p.corrupted_lines) == 64 - len(center_band(64, 0.1))


def test_sampler_argument_validation():
    rng = np.random.default_rng(0)
    for fraction in ((0.8, 0.3), (-0.2, 0.5), (-1.0, 0.0), (0.5, 1.2)):
        with pytest.raises(ValueError, match="corrupted_fraction must satisfy 0 <= low <= high <= 1"):
            sample_rigid_motion_params(rng, (32, 32), corrupted_fraction=fraction)
    with pytest.raises(ValueError, match="n_segments"):
        sample_rigid_motion_params(rng, (32, 32), n_segments=(0, 4))
    with pytest.raises(ValueError, match="pe_axis"):
        sample_rigid_motion_params(rng, (32, 32), pe_axis=1)
    with pytest.raises(ValueError, match="ordering"):
        sample_rigid_motion_params(rng, (32, 32), ordering="spiral")
    with pytest.raises(ValueError, match="shape"):
        sample_rigid_motion_params(rng, (32,))


def test_severity_levels():
    rng = np.random.default_rng(11)
    rots, shifts = [], []
    for level in (0.25, 0.125, 0.05):
        for _ in range(100):
            p = rigid_motion_params_for_severity(level, (320, 320), rng)
            assert p.center_fraction == level
            assert 1 <= p.n_segments <= 8
            assert not set(p.corrupted_lines) & set(center_band(320, level))
            rots.extend(p.rotations_deg)
            shifts.extend(p.translations_px)
    # 1311 rotations and 2622 translation components: a standard error of about 2 % and 1.4 %
    assert np.std(rots) == pytest.approx(3.0, rel=0.05)
    assert np.std(shifts) == pytest.approx(10.0, rel=0.05)
    assert rigid_motion_params_for_severity(0.25, (64, 64), rng, pe_axis=-1).pe_axis == -1
    for level in (1.5, 1.0, 0.0, -0.25):
        with pytest.raises(ValueError, match="level"):
            rigid_motion_params_for_severity(level, (64, 64), rng)


# ----------------------------------------------------------------------------- kinds, batches, determinism


def test_batch_equals_slices_and_torch_agrees():
    rng = np.random.default_rng(12)
    img = rng.random((3, 33, 47)).astype(np.float32)
    params = sample_rigid_motion_params(rng, (33, 47))
    out = apply_rigid_motion(img, params)
    assert out.shape == img.shape and out.dtype == np.complex64
    for b in range(3):
        np.testing.assert_allclose(out[b], apply_rigid_motion(img[b], params), atol=1e-5)
    t = apply_rigid_motion(torch.from_numpy(img), params)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.complex64
    np.testing.assert_allclose(t.numpy(), out, atol=1e-5)
    t64 = apply_rigid_motion(torch.from_numpy(img).double(), params)
    assert t64.dtype == torch.complex128
    np.testing.assert_allclose(t64.numpy(), out, atol=1e-4)


def test_pe_axis_transpose_symmetry():
    # Transposing swaps rows and columns: the PE axis flips, a rotation changes sign, (dy, dx) swap.
    img = np.random.default_rng(13).random((33, 47))
    p = sample_rigid_motion_params(np.random.default_rng(14), (47, 33), -2, translation_std_px=5.0)
    q = RigidMotionParams(
        -1,
        p.center_fraction,
        p.segments,
        tuple(-r for r in p.rotations_deg),
        tuple((dx, dy) for dy, dx in p.translations_px),
    )
    np.testing.assert_allclose(apply_rigid_motion(img, q), apply_rigid_motion(img.T, p).T, atol=1e-10)


def test_determinism_and_global_rng_untouched():
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.random.get_rng_state().clone()
    img = blob((32, 32))
    a = sample_rigid_motion_params(np.random.default_rng(15), img.shape)
    b = sample_rigid_motion_params(np.random.default_rng(15), img.shape)
    assert a == b
    np.testing.assert_array_equal(apply_rigid_motion(img, a), apply_rigid_motion(img, b))
    rigid_motion_params_for_severity(0.05, img.shape, 16)
    assert np.array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.random.get_rng_state(), torch_state)


def test_bad_image_rejected():
    p = make_params()
    with pytest.raises(ValueError, match="shape"):
        apply_rigid_motion(np.zeros((2, 2, 32, 32)), p)


@pytest.mark.parametrize("ordering", ["linear", "random"])
def test_sampler_with_nothing_to_corrupt_draws_no_segment(ordering):
    # No line is corrupted when round(f * M) is 0 (M <= 24 lines outside the centre band here): a zero corrupted
    # fraction, or 1 %. The draw is then motion-free (no segment, no pose) and the image comes back unchanged.
    img = np.random.default_rng(5).random((24, 20))
    for fraction in ((0.0, 0.0), (0.01, 0.01)):
        params = sample_rigid_motion_params(7, img.shape, -2, corrupted_fraction=fraction, ordering=ordering)
        assert params.segments == () and params.rotations_deg == () and params.translations_px == ()
        np.testing.assert_allclose(apply_rigid_motion(img, params), img, atol=1e-12)


def test_severity_draws_one_to_eight_movements():
    # The authors' evaluation code: 1-8 movements (uniform), capped only by the corrupted line count, which is
    # far above 8 here (at level 0.05, 95 % of 64 lines).
    counts = {rigid_motion_params_for_severity(0.05, (64, 64), seed, -2).n_segments for seed in range(300)}
    assert counts == set(range(1, 9))


def test_rigid_transform_refuses_more_rotations_than_translations():
    batch = np.random.default_rng(1).random((2, 9, 9))
    with pytest.raises(ValueError, match="2 rotations and 1 translations"):
        rigid_transform(batch, (5.0, -5.0), (0.0, 1.0))
    with pytest.raises(ValueError, match="1 rotations and 2 translations"):
        rigid_transform(batch, (5.0,), ((0.0, 1.0), (1.0, 0.0)))
    with pytest.raises(ValueError, match=r"need 1 or B=2 poses, got 3 rotations"):  # B: the batch size
        rigid_transform(np.random.default_rng(1).random((2, 9, 7)), (1.0, 2.0, 3.0), ((0, 0), (0, 1), (1, 0)))


def test_ordering_is_compared_by_value():
    # An ordering read from a config file is an equal string, not the same object as the literal.
    random_ordering, linear_ordering = "".join(["ran", "dom"]), "".join(["lin", "ear"])
    assert random_ordering == "random" and id(random_ordering) != id("random")
    for built, literal in ((random_ordering, "random"), (linear_ordering, "linear")):
        a = sample_rigid_motion_params(3, (40, 40), -1, ordering=built)
        b = sample_rigid_motion_params(3, (40, 40), -1, ordering=literal)
        assert [list(s) for s in a.segments] == [list(s) for s in b.segments]
        assert a.rotations_deg == b.rotations_deg


@pytest.mark.parametrize("ordering", ["centric", "spiral"])  # sorting before and after "random"
def test_an_unknown_line_ordering_is_refused(ordering):
    with pytest.raises(ValueError, match="ordering must be 'linear' or 'random'"):
        sample_rigid_motion_params(np.random.default_rng(0), (32, 32), ordering=ordering)
