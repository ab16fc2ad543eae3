"""Tests of the Cartesian k-space subsampling simulator."""

from __future__ import annotations

import json
import math
from fractions import Fraction

import numpy as np
import pytest
import torch

import artefix.artefacts.subsampling as sub
from artefix.artefacts.base import params_to_dict
from artefix.artefacts.subsampling import (
    ACCELERATIONS,
    CENTER_FRACTIONS,
    KINDS,
    SubsamplingParams,
    achieved_acceleration,
    apply_subsampling,
    centre_crop_kspace_image,
    sample_subsampling_params,
    subsampling_mask,
    subsampling_params_for_severity,
)
from artefix.fft import fft2c, fourier_resize, ifft2c, kspace_crop_pad

SIZES = (31, 64, 320, 321, 368)
LINE_KINDS = ("random", "equispaced")


def half_up(x: Fraction) -> int:
    """Exact round-half-up of a rational (independent of the module's float arithmetic)."""
    return math.floor(x + Fraction(1, 2))


def expected_lines(n: int, r: int) -> int:
    return max(1, half_up(Fraction(n, r)))


def expected_band(n: int, r: int) -> int:
    return half_up(n * Fraction(str(CENTER_FRACTIONS[r])))


def line_params(kind: str, r: float, pe_axis: int = -2, seed: int = 7, cf: float | None = None):
    cf = CENTER_FRACTIONS[int(r)] if cf is None else cf
    return SubsamplingParams(kind=kind, acceleration=r, center_fraction=cf, pe_axis=pe_axis, seed=seed)


def centred_params(f: float, r: float = 2.0) -> SubsamplingParams:
    return SubsamplingParams(kind="centred", acceleration=r, center_fraction=f, pe_axis=-1, seed=0)


def image(shape, seed=0, complex_=False):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(shape)
    return x + 1j * rng.standard_normal(shape) if complex_ else x


# ---------------------------------------------------------------------------------------- line masks


@pytest.mark.parametrize("kind", LINE_KINDS)
@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("r", ACCELERATIONS)
def test_line_mask_exact_count_centre_band_and_readout(kind, n, r):
    for pe_axis, shape in ((-2, (n, 9)), (-1, (9, n))):
        mask = subsampling_mask(line_params(kind, r, pe_axis, seed=n * 10 + r), shape)
        assert mask.shape == shape and mask.dtype == bool
        lines = mask[:, 0] if pe_axis == -2 else mask[0, :]
        # constant along the readout axis: every readout position sees the same PE lines
        readout = mask.T if pe_axis == -2 else mask
        assert (readout == lines).all()
        assert int(lines.sum()) == expected_lines(n, r)
        band = expected_band(n, r)
        start = n // 2 - band // 2
        assert lines[start : start + band].all()
        assert lines[n // 2]  # DC line
        assert achieved_acceleration(mask) == pytest.approx(n / expected_lines(n, r), rel=1e-12)


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("r", ACCELERATIONS)
def test_equispaced_outer_lines_are_equally_spaced(n, r):
    band = expected_band(n, r)
    start = n // 2 - band // 2
    outer = np.r_[0:start, start + band : n]
    m = expected_lines(n, r) - band
    spacing = outer.size / m
    offsets = set()
    for seed in range(6):
        lines = subsampling_mask(line_params("equispaced", r, -2, seed=seed), (n, 3))[:, 0]
        chosen = np.flatnonzero(lines[outer])  # positions in the outer-line list (band cut out)
        assert chosen.size == m
        assert set(np.diff(chosen)) <= {math.floor(spacing), math.ceil(spacing)}
        assert 0 <= chosen[0] < math.ceil(spacing)  # random start offset within one period
        offsets.add(int(chosen[0]))
        # in k-space, on each side of the band the sampled lines are spaced floor/ceil(spacing) apart
        for side in (np.flatnonzero(lines[:start]), start + band + np.flatnonzero(lines[start + band :])):
            assert set(np.diff(side)) <= {math.floor(spacing), math.ceil(spacing)}
    if math.ceil(spacing) > 2:
        assert len(offsets) > 1  # the seed moves the start offset


def test_random_mask_deterministic_and_seed_dependent():
    a = subsampling_mask(line_params("random", 4, seed=3), (320, 8))
    b = subsampling_mask(line_params("random", 4, seed=3), (320, 8))
    c = subsampling_mask(line_params("random", 4, seed=4), (320, 8))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.sum() == c.sum() == 8 * 80


def test_random_outer_lines_uniformly_distributed():
    n, r = 64, 4
    band = expected_band(n, r)  # 5 lines
    start = n // 2 - band // 2
    outer = np.r_[0:start, start + band : n]
    m = expected_lines(n, r) - band
    counts = np.zeros(n)
    trials = 600
    for seed in range(trials):
        counts += subsampling_mask(line_params("random", r, -2, seed=seed), (n, 2))[:, 0]
    assert (counts[start : start + band] == trials).all()
    freq = counts[outer] / trials
    p = m / outer.size
    # binomial std of one line's frequency is sqrt(p(1-p)/trials) ~ 0.017: allow 5 sigma
    assert np.abs(freq - p).max() < 5 * math.sqrt(p * (1 - p) / trials)
    assert freq.mean() == pytest.approx(p, rel=1e-12)


def test_pe_axes_are_transposes():
    for kind in KINDS:
        for seed in (0, 1):
            p_rows = line_params(kind, 3, -2, seed=seed) if kind != "centred" else centred_params(0.3)
            p_cols = SubsamplingParams(
                kind=kind, acceleration=p_rows.acceleration, center_fraction=p_rows.center_fraction,
                pe_axis=-1, seed=seed,
            )  # fmt: skip
            assert np.array_equal(subsampling_mask(p_cols, (33, 47)), subsampling_mask(p_rows, (47, 33)).T)
            x = image((33, 47), seed=seed)
            np.testing.assert_allclose(
                apply_subsampling(x, p_cols), apply_subsampling(x.T, p_rows).T, rtol=0, atol=1e-12
            )


# ---------------------------------------------------------------------------------------- centred


@pytest.mark.parametrize("shape", [(33, 47), (64, 64), (31, 320), (320, 321), (2, 5)])
@pytest.mark.parametrize("f", [1 / 2, 1 / 3, 1 / 4, 1 / 8, 0.16, 0.12, 0.08, 0.04, 1.0])
def test_centred_mask_is_kspace_crop_pad_window(shape, f):
    mask = subsampling_mask(centred_params(f), shape)
    h = max(1, half_up(shape[0] * Fraction(f)))
    w = max(1, half_up(shape[1] * Fraction(f)))
    kept = kspace_crop_pad(kspace_crop_pad(np.ones(shape), (h, w)), shape) != 0
    assert np.array_equal(mask, kept)
    assert mask.sum() == h * w
    assert mask[shape[0] // 2, shape[1] // 2]  # DC
    x = image(shape, seed=1, complex_=True)
    k_expected = kspace_crop_pad(kspace_crop_pad(fft2c(x), (h, w)), shape)
    np.testing.assert_allclose(fft2c(apply_subsampling(x, centred_params(f))), k_expected, atol=1e-12)


def test_centred_evaluation_windows_320():
    for r, side in ((2, 160), (3, 107), (4, 80), (8, 40)):
        p = subsampling_params_for_severity(r, (320, 320), rng=0)
        assert (p.kind, p.center_fraction) == ("centred", 1 / r)
        mask = subsampling_mask(p, (320, 320))
        rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
        assert rows.size == cols.size == side
        assert rows[0] == 160 - side // 2 and cols[0] == 160 - side // 2
        assert achieved_acceleration(mask) == pytest.approx(320**2 / side**2)


@pytest.mark.parametrize("shape", [(33, 47), (64, 64), (320, 320), (31, 30)])
@pytest.mark.parametrize("factor", [2, 3, 4, 8])
def test_centre_crop_kspace_image_matches_centred_mask(shape, factor):
    x = image((2, *shape), seed=factor)
    low = centre_crop_kspace_image(x, factor)
    h, w = half_up(Fraction(shape[0], factor)), half_up(Fraction(shape[1], factor))
    assert low.shape == (2, h, w) and np.iscomplexobj(low)
    # its k-space is the centred window, intensity-scaled by sqrt(hw / HW)
    scale = math.sqrt(h * w / (shape[0] * shape[1]))
    np.testing.assert_allclose(fft2c(low), kspace_crop_pad(fft2c(x), (h, w)) * scale, atol=1e-12)
    # zero-padding back (with the inverse scale) is the centred-mask zero-filled image
    p = subsampling_params_for_severity(factor, shape, rng=0)
    np.testing.assert_allclose(fourier_resize(low, shape), apply_subsampling(x, p), atol=1e-12)


def test_centre_crop_preserves_intensity_and_torch():
    x = np.full((33, 47), 3.0)
    low = centre_crop_kspace_image(x, 3)
    np.testing.assert_allclose(low, 3.0, atol=1e-12)
    xt = torch.from_numpy(image((33, 47), seed=5))
    lt = centre_crop_kspace_image(xt, 4)
    assert isinstance(lt, torch.Tensor) and lt.dtype == torch.complex128
    np.testing.assert_allclose(lt.numpy(), centre_crop_kspace_image(xt.numpy(), 4), atol=1e-12)
    np.testing.assert_allclose(centre_crop_kspace_image(x, 1), x, atol=1e-12)


# ---------------------------------------------------------------------------------------- apply


@pytest.mark.parametrize("kind", KINDS)
def test_masked_kspace_is_exactly_zero(kind, monkeypatch):
    shape = (33, 47)
    p = centred_params(0.25) if kind == "centred" else line_params(kind, 4, -1, seed=11)
    mask = subsampling_mask(p, shape)
    x = image((3, *shape), seed=2, complex_=True)
    captured = []

    def spy(k):
        captured.append(k.clone())
        return ifft2c(k)

    monkeypatch.setattr(sub, "ifft2c", spy)
    out = apply_subsampling(x, p)
    (k_used,) = captured
    k_used = k_used.numpy()
    assert (k_used[:, ~mask] == 0).all()  # exact zeros, not approximately
    full = fft2c(torch.from_numpy(x)).numpy()
    assert (k_used[:, mask] == full[:, mask]).all()  # sampled entries untouched, bit for bit
    k_out = fft2c(out)  # after the round trip only round-off remains outside the mask
    assert np.abs(k_out[:, ~mask]).max() < 1e-12 * np.abs(full).max()
    # Parseval: the zero-filled image carries exactly the sampled k-space energy
    np.testing.assert_allclose((np.abs(out) ** 2).sum((1, 2)), (np.abs(full[:, mask]) ** 2).sum(1), rtol=1e-12)


@pytest.mark.parametrize(
    "params",
    [
        SubsamplingParams(kind="random", acceleration=1, center_fraction=1.0, pe_axis=-2, seed=1),
        SubsamplingParams(kind="equispaced", acceleration=1, center_fraction=0.3, pe_axis=-1, seed=1),
        SubsamplingParams(kind="centred", acceleration=4, center_fraction=1.0, pe_axis=-1, seed=1),
        subsampling_params_for_severity(1, (31, 46), rng=0, mask="random"),
        subsampling_params_for_severity(1, (31, 46), rng=0, mask="centred"),
    ],
)
def test_full_sampling_is_identity(params):
    x = image((2, 31, 46), seed=3)
    assert subsampling_mask(params, (31, 46)).all()
    out = apply_subsampling(x, params)
    np.testing.assert_allclose(out, x, atol=1e-12)


def test_numpy_torch_agreement_dtypes_and_batch():
    p = line_params("random", 3, -2, seed=5)
    x64 = image((4, 33, 47), seed=4)
    out = apply_subsampling(x64, p)
    assert isinstance(out, np.ndarray) and out.dtype == np.complex128 and out.shape == x64.shape
    out_t = apply_subsampling(torch.from_numpy(x64), p)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.complex128
    np.testing.assert_allclose(out_t.numpy(), out, atol=1e-12)
    # one shared mask: the batch equals slice-by-slice application
    for i in range(4):
        np.testing.assert_allclose(out[i], apply_subsampling(x64[i], p), atol=1e-12)
    out32 = apply_subsampling(x64.astype(np.float32), p)
    assert out32.dtype == np.complex64
    np.testing.assert_allclose(out32, out, atol=1e-4)
    assert apply_subsampling(torch.from_numpy(x64.astype(np.complex64)), p).dtype == torch.complex64
    assert apply_subsampling(np.ones((8, 9), dtype=np.int16), p).dtype == np.complex64


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_output_on_same_device_and_matches_cpu():
    x = torch.from_numpy(image((2, 33, 47), seed=8))
    for p in (line_params("equispaced", 4, -1, seed=2), centred_params(0.25)):
        out = apply_subsampling(x.cuda(), p)
        assert out.device.type == "cuda" and out.dtype == torch.complex128
        np.testing.assert_allclose(out.cpu().numpy(), apply_subsampling(x, p).numpy(), atol=1e-12)


@pytest.mark.parametrize(
    ("shape", "window_is_symmetric"),
    [((33, 45), True), ((34, 45), True), ((33, 47), False), ((36, 45), False)],
)
def test_real_image_stays_real_iff_centred_window_is_hermitian_symmetric(shape, window_is_symmetric):
    # f = 1/3: window lengths round(H/3) x round(W/3). A window of odd length is symmetric about the
    # DC index, so the Hermitian symmetry of a real image's k-space survives and the output is real;
    # an even length keeps -n/2 but not +n/2 (half-sample asymmetry) and the output is complex.
    x = image(shape, seed=6)
    out = apply_subsampling(x, centred_params(1 / 3))
    imag = np.abs(out.imag).max() / np.abs(out).max()
    assert (imag < 1e-12) == window_is_symmetric


def test_invalid_inputs_raise():
    p = line_params("random", 2)
    with pytest.raises(ValueError, match="shape"):
        apply_subsampling(np.zeros((2, 3, 4, 5)), p)
    with pytest.raises(ValueError, match="shape"):
        subsampling_mask(p, (0, 5))
    with pytest.raises(ValueError, match="factor"):
        centre_crop_kspace_image(np.zeros((8, 8)), 0.5)
    for infinite in (math.inf, float("inf"), np.float64("inf")):
        with pytest.raises(ValueError, match="factor must be a finite number"):
            centre_crop_kspace_image(np.zeros((8, 8)), infinite)
    with pytest.raises(ValueError, match="nothing"):
        achieved_acceleration(np.zeros((4, 4), dtype=bool))


@pytest.mark.parametrize(
    ("kwargs", "bad"),
    [
        ({"acceleration": 0.5}, "0.5"),
        ({"acceleration": float("nan")}, "nan"),
        ({"acceleration": float("inf")}, "inf"),
        ({"kind": "radial"}, "radial"),
        ({"center_fraction": 0.0}, "0.0"),
        ({"center_fraction": 1.5}, "1.5"),
        ({"center_fraction": -0.1}, "-0.1"),
        ({"center_fraction": 0.3, "acceleration": 4}, "0.3"),
        ({"pe_axis": 0}, "0"),
        ({"pe_axis": True}, "True"),
        ({"seed": 1.5}, "1.5"),
    ],
)
def test_invalid_params_raise_naming_value(kwargs, bad):
    base = {"kind": "random", "acceleration": 2.0, "center_fraction": 0.16, "pe_axis": -1, "seed": 0}
    with pytest.raises(ValueError, match=bad.replace(".", r"\.")):
        SubsamplingParams(**{**base, **kwargs})


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("infinity", [math.inf, float("inf"), np.float64("inf")])  # by value, parsed or NumPy
def test_an_infinite_acceleration_is_refused_by_its_own_check(kind, infinity):
    # the centre-band check would also refuse it for the line kinds, with another message; "centred" has none
    with pytest.raises(ValueError, match="acceleration must be a finite number >= 1"):
        SubsamplingParams(kind=kind, acceleration=infinity)


def test_hand_built_params_default_to_the_fastmri_centre_band_and_columns():
    p = SubsamplingParams()
    assert (p.kind, p.acceleration, p.center_fraction, p.pe_axis) == ("random", 4.0, 0.08, -1)


@pytest.mark.parametrize("shape", [(8,), (8, 8, 8), (), (8.5, 8), (8, 7.5)])
def test_mask_shapes_other_than_two_sides_are_refused(shape):
    with pytest.raises(ValueError, match="two positive integers"):
        subsampling_mask(line_params("random", 2), shape)


# ---------------------------------------------------------------------------------------- samplers


def test_training_sampler_distribution_and_determinism():
    draws = [sample_subsampling_params(np.random.default_rng(s), (64, 64)) for s in range(300)]
    again = [sample_subsampling_params(s, (64, 64)) for s in range(300)]
    assert draws == again
    assert {d.acceleration for d in draws} == {2.0, 3.0, 4.0, 8.0}
    assert {d.kind for d in draws} == set(KINDS)
    assert {d.pe_axis for d in draws} == {-2, -1}
    assert all(d.center_fraction == CENTER_FRACTIONS[int(d.acceleration)] for d in draws)
    assert len({d.seed for d in draws}) == 300
    for kind in KINDS:
        assert 60 < sum(d.kind == kind for d in draws) < 140  # uniform: 100 expected
    fixed = [sample_subsampling_params(s, (64, 64), pe_axis=-2) for s in range(20)]
    assert {d.pe_axis for d in fixed} == {-2}
    json.dumps(params_to_dict(draws[0]))
    assert params_to_dict(draws[0])["artefact"] == "subsampling"
    for d in draws[:40]:  # every training draw is valid on odd and even sizes
        m = subsampling_mask(d, (33, 64))
        if d.kind != "centred":
            n = 33 if d.pe_axis == -2 else 64
            assert m.sum() // (64 if d.pe_axis == -2 else 33) == expected_lines(n, int(d.acceleration))


def test_severity_line_masks():
    for r in ACCELERATIONS:
        for mask in LINE_KINDS:
            p = subsampling_params_for_severity(r, (320, 320), np.random.default_rng(r), mask=mask, pe_axis=-1)
            assert (p.kind, p.acceleration, p.center_fraction, p.pe_axis) == (
                mask, float(r), CENTER_FRACTIONS[r], -1
            )  # fmt: skip
            assert achieved_acceleration(subsampling_mask(p, (320, 320))) == pytest.approx(320 / expected_lines(320, r))
    with pytest.raises(ValueError, match="5"):
        subsampling_params_for_severity(5, (64, 64), 0, mask="random")
    with pytest.raises(ValueError, match="0.5"):
        subsampling_params_for_severity(0.5, (64, 64), 0)
    with pytest.raises(ValueError, match="spiral"):
        subsampling_params_for_severity(2, (64, 64), 0, mask="spiral")
    with pytest.raises(ValueError, match="pe_axis"):
        subsampling_params_for_severity(2, (64, 64), 0, pe_axis=1)
    assert subsampling_params_for_severity(6, (64, 64), 0).center_fraction == pytest.approx(1 / 6)


def test_global_rng_untouched():
    np_state = np.random.get_state()  # noqa: NPY002 (checking the legacy global state)
    torch_state = torch.get_rng_state()
    p = sample_subsampling_params(np.random.default_rng(0), (32, 32))
    for kind in KINDS:
        q = SubsamplingParams(kind=kind, acceleration=4, center_fraction=0.08, pe_axis=-2, seed=p.seed)
        apply_subsampling(image((32, 32)), q)
        apply_subsampling(torch.ones(2, 32, 32), q)
    subsampling_params_for_severity(3, (32, 32), None)
    centre_crop_kspace_image(image((32, 32)), 3)
    after = np.random.get_state()  # noqa: NPY002 (checking the legacy global state)
    assert after[0] == np_state[0] and np.array_equal(after[1], np_state[1]) and after[2:] == np_state[2:]
    assert torch.equal(torch.get_rng_state(), torch_state)


# ---------------------------------------------------------------------------------------- real MRI


@pytest.mark.shared_data
def test_real_slice_resolution_loss_grows_with_acceleration(shared_data):
    path = shared_data / "msd_brain_slices_via_openjphpy"
    files = sorted(path.glob("*.npz"))
    assert files, f"no .npz slices under {path}"
    with np.load(files[0]) as npz:
        x = np.asarray(npz["arr_0"], dtype=np.float64)
    assert x.ndim == 2
    k = fft2c(x)
    errors = []
    for r in (2, 3, 4, 8):
        for mask_kind in KINDS:
            p = subsampling_params_for_severity(r, x.shape, rng=r, mask=mask_kind, pe_axis=-1)
            mask = subsampling_mask(p, x.shape)
            out = apply_subsampling(x, p)
            # Parseval: the error energy is exactly the energy of the discarded k-space samples
            err = (np.abs(out - x) ** 2).sum()
            assert err == pytest.approx((np.abs(k[~mask]) ** 2).sum(), rel=1e-9)
            if mask_kind == "centred":
                errors.append(err / (x**2).sum())
    # real anatomy has most energy at low frequencies: a smaller centred window loses more
    assert errors == sorted(errors) and errors[0] > 0
    assert errors[-1] < 0.5


def test_mask_shapes_are_two_positive_integers_of_any_integer_type():
    params = SubsamplingParams(kind="equispaced", acceleration=2.0, center_fraction=0.08)
    shape = (np.int64(16), np.int64(12))  # NumPy integers, as array shapes and arithmetic give them
    assert subsampling_mask(params, shape).shape == (16, 12)
    assert subsampling_mask(params, (1, 12)).shape == (1, 12)  # one row is a valid (if odd) image
    with pytest.raises(ValueError, match="two positive integers"):
        subsampling_mask(params, (16, 12, 3))


def test_at_least_one_line_and_one_pixel_survive_any_acceleration():
    params = SubsamplingParams(kind="centred", acceleration=100.0, center_fraction=0.01)
    mask = subsampling_mask(params, (8, 8))
    assert mask.any()
    assert np.asarray(sub.centre_crop_kspace_image(np.ones((6, 6)), 100.0)).shape == (1, 1)


def test_centre_band_error_names_the_largest_allowed_fraction():
    with pytest.raises(ValueError, match=r"1/acceleration = 0\.25:"):
        SubsamplingParams(kind="random", acceleration=4.0, center_fraction=0.5)


def test_severity_levels_below_1_are_refused_and_mask_names_compare_by_value():
    rng = np.random.default_rng(0)
    # refused by the level's own check, before any parameter is built
    for level in (0.5, 0.0, -2.0, math.inf, float("inf"), np.float64("inf"), "2", True, None):
        with pytest.raises(ValueError, match=r"level \(acceleration\) must be a finite number >= 1"):
            sub.subsampling_params_for_severity(level, (16, 16), rng)
    name = "".join(["cen", "tred"])  # equal to "centred" but another object
    params = sub.subsampling_params_for_severity(2.0, (16, 16), rng, mask=name)
    assert params.kind == "centred" and params.center_fraction == 0.5


@pytest.mark.parametrize("kind", ["random", "equispaced"])
def test_exact_line_count_when_one_or_no_line_lies_outside_the_centre_band(kind):
    one_outer = SubsamplingParams(kind=kind, acceleration=3.2, center_fraction=0.25, pe_axis=-1, seed=3)
    assert subsampling_mask(one_outer, (8, 16))[0].sum() == 5  # round(16 / 3.2) = 5: the band of 4 and one more
    none_outer = SubsamplingParams(kind=kind, acceleration=4.0, center_fraction=0.25, pe_axis=-1, seed=3)
    lines = subsampling_mask(none_outer, (8, 16))[0]
    assert lines.sum() == 4 and lines[6:10].all()  # the centre band alone


def test_a_pe_axis_other_than_rows_or_columns_is_refused():
    rng = np.random.default_rng(0)
    for bad in (0, 1, True):
        with pytest.raises(ValueError, match="pe_axis must be -2, -1 or None"):
            sub.sample_subsampling_params(rng, (16, 16), pe_axis=bad)


@pytest.mark.parametrize("kind", ["random", "equispaced"])
def test_at_least_one_pe_line_is_sampled_whatever_the_acceleration(kind):
    params = SubsamplingParams(kind=kind, acceleration=100.0, center_fraction=0.01, pe_axis=-1, seed=1)
    assert subsampling_mask(params, (8, 8))[0].sum() == 1  # round(8 / 100) = 0 lines, raised to one


@pytest.mark.parametrize(("kind", "fraction"), [("centred", 0.25), ("random", 0.08), ("equispaced", 0.08)])
def test_a_mask_kind_read_at_run_time_gives_the_literals_mask(kind, fraction):
    def mask(k: str) -> np.ndarray:
        return subsampling_mask(SubsamplingParams(kind=k, acceleration=4.0, center_fraction=fraction, seed=3), (64, 48))

    built = "".join(list(kind))  # as read from a config file: equal to the literal, another object
    np.testing.assert_array_equal(mask(built), mask(kind))
    if kind != "centred":  # the two line kinds draw different masks, so a kind taken for the other shows
        assert not np.array_equal(mask("random"), mask("equispaced"))


@pytest.mark.parametrize(("n", "acceleration"), [(37, 3.0), (50, 4.0), (64, 8.0)])
def test_equispaced_lines_are_floor_of_offset_plus_k_spacings(n, acceleration):
    # the documented rule: the outer lines (centre band cut out) chosen are floor(o + k * spacing),
    # k = 0..m-1, spacing = outer / m, with an offset o in [0, ceil(spacing) - 1]
    offsets = set()
    for seed in range(40):
        p = SubsamplingParams(kind="equispaced", acceleration=acceleration,
                              center_fraction=CENTER_FRACTIONS[int(acceleration)], pe_axis=-1, seed=seed)  # fmt: skip
        lines = subsampling_mask(p, (4, n))[0]
        n_low = half_up(Fraction(n) * Fraction(p.center_fraction).limit_denominator(1000))
        start = n // 2 - n_low // 2
        band = np.zeros(n, bool)
        band[start : start + n_low] = True
        assert band[lines].sum() == n_low and lines[band].all()
        outer = np.flatnonzero(~band)
        chosen = np.flatnonzero(lines[outer])  # positions among the outer lines
        m, spacing = chosen.size, outer.size / chosen.size
        offset = int(chosen[0])
        assert 0 <= offset < math.ceil(spacing)
        np.testing.assert_array_equal(chosen, np.floor(offset + np.arange(m) * spacing).astype(int))
        offsets.add(offset)
    assert len(offsets) > 1  # the seed moves the offset


def test_a_centred_kind_read_at_run_time_may_have_any_centre_band():
    kind = "".join(["cen", "tred"])  # equal to "centred", not the same object
    params = SubsamplingParams(kind=kind, acceleration=4.0, center_fraction=0.5, pe_axis=-1, seed=0)
    assert params.center_fraction == 0.5
    with pytest.raises(ValueError, match="exceeds 1/acceleration"):
        SubsamplingParams(kind="equispaced", acceleration=4.0, center_fraction=0.5, pe_axis=-1, seed=0)


def test_the_centre_band_may_be_exactly_the_allowed_fraction_and_never_above_one():
    allowed = 1.0 / 4.0 + sub._ROUND_GUARD  # the largest band acceleration 4 allows (rounding guard included)
    assert SubsamplingParams(kind="random", acceleration=4.0, center_fraction=allowed).center_fraction == allowed
    for kind in KINDS:  # the centred kind too, which has no 1/acceleration bound
        for fraction in (1.5, 2.0):
            with pytest.raises(ValueError, match=r"center_fraction must be in \(0, 1\]"):
                SubsamplingParams(kind=kind, acceleration=1.0, center_fraction=fraction)
