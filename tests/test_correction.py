"""Correction core: intensity mapping back to input units, head selection algebra, streaming, QC record."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from artefix.correction import (
    CorrectionRecord,
    correct_volume,
    slice_moments,
    working_shape,
)
from artefix.data.io import Volume
from artefix.errors import InputError
from artefix.fft import fourier_resize
from artefix.models import ModelOutput, build_model

HEADS = ("bias", "subsampling", "motion", "noise")


def _volume(shape=(40, 36, 7), seed=0, scale=300.0, offset=50.0, axis=None) -> Volume:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = np.exp(-(((yy - shape[0] / 2) / 9.0) ** 2 + ((xx - shape[1] / 2) / 7.0) ** 2))
    data = blob[..., None] * np.linspace(0.5, 1.5, shape[2]) * scale + offset + rng.random(shape) * 10
    return Volume(data.astype(np.float32), meta={"slice_axis": axis})


def _renorm(z: np.ndarray, like: np.ndarray) -> np.ndarray:
    """Re-standardise each slice (axis 0 = slices) of ``z`` to the mean/std of ``like``'s slice."""
    z = z.astype(np.float64)
    zn = (z - z.mean(axis=(1, 2), keepdims=True)) / z.std(axis=(1, 2), keepdims=True)
    return like.mean(axis=(1, 2), keepdims=True) + like.std(axis=(1, 2), keepdims=True) * zn


class Stub(nn.Module):
    """A 'model' with known residuals: p_k = factors[k] * u + offsets[k]; records the input shapes."""

    def __init__(self, factors=(0.0, 0.0, 0.0, 0.0), offsets=(0.0, 0.0, 0.0, 0.0), heads=HEADS):
        super().__init__()
        self.head_names = tuple(heads)
        self.factors = torch.tensor(factors, dtype=torch.float32)
        self.offsets = torch.tensor(offsets, dtype=torch.float32)
        self.seen: list[tuple[int, ...]] = []
        self.weight = nn.Parameter(torch.zeros(()))

    def forward(self, x, heads=None):
        self.seen.append(tuple(x.shape))
        p = self.factors[None, :, None, None] * x + self.offsets[None, :, None, None]
        return ModelOutput(x, p)


@pytest.fixture(scope="module")
def tiny():
    return build_model("tiny", seed=3).eval()


def test_no_head_selected_is_identity_in_input_units(tiny):
    vol = _volume()
    res = correct_volume(vol, tiny, only=[], batch_size=3)
    # y = mu + sigma * Znorm(u) with u = (x - mu) / sigma: the input, up to float32 round-off
    np.testing.assert_allclose(res.volume.array, vol.array, rtol=0, atol=1e-5 * float(np.abs(vol.array).max()))
    assert res.record.applied == ()
    assert res.volume.array.dtype == np.float32 and res.volume.array.shape == vol.array.shape


def test_selection_differs_exactly_by_excluded_residuals(tiny):
    vol = _volume(seed=1)
    full = correct_volume(vol, tiny, keep_residuals=True, batch_size=4)
    x = np.moveaxis(vol.array, -1, 0).astype(np.float64)
    r = {h: np.moveaxis(full.residuals[h].array, -1, 0).astype(np.float64) for h in HEADS}
    for only in (["bias", "noise"], ["motion"], list(HEADS)):
        out = correct_volume(vol, tiny, only=only, batch_size=4)
        expected = _renorm(x + sum(r[h] for h in only), x)
        got = np.moveaxis(out.volume.array, -1, 0)
        np.testing.assert_allclose(got, expected, atol=2e-4 * float(x.std()))
        assert out.record.applied == tuple(only)
    # the default (None) applies every head
    np.testing.assert_array_equal(full.volume.array, correct_volume(vol, tiny, batch_size=4).volume.array)


def test_strength_scales_each_residual_and_is_recorded(tiny):
    vol = _volume(seed=6)
    full = correct_volume(vol, tiny, keep_residuals=True, batch_size=4)
    x = np.moveaxis(vol.array, -1, 0).astype(np.float64)
    r = {h: np.moveaxis(full.residuals[h].array, -1, 0).astype(np.float64) for h in HEADS}
    out = correct_volume(vol, tiny, only=["bias", "noise"], strength={"noise": 0.25, "bias": 1.0}, batch_size=4)
    expected = _renorm(x + r["bias"] + 0.25 * r["noise"], x)
    np.testing.assert_allclose(np.moveaxis(out.volume.array, -1, 0), expected, atol=2e-4 * float(x.std()))
    record = out.record
    assert record.applied == ("bias", "noise") and record.strength == {"noise": 0.25}
    assert [record.strength_of(h) for h in HEADS] == [1.0, 0.0, 0.0, 0.25]
    assert record.applied_text() == "bias, noise (25%)"
    summary = record.to_dict()["artefacts"]
    assert summary["noise"]["strength"] == 0.25 and summary["motion"]["strength"] == 0.0
    # strength 0 leaves the head out; strength 1 everywhere is the plain correction
    none = correct_volume(vol, tiny, strength={h: 0.0 for h in HEADS}, batch_size=4)
    np.testing.assert_allclose(none.volume.array, vol.array, atol=1e-5 * float(np.abs(vol.array).max()))
    assert none.record.applied == ()
    assert out.record.ensemble == 1 and out.record.to_dict()["ensemble"] == 1
    ones = correct_volume(vol, tiny, strength={h: 1.0 for h in HEADS}, batch_size=4)
    np.testing.assert_array_equal(ones.volume.array, full.volume.array)
    assert ones.record.strength == {}


@pytest.mark.parametrize(
    ("only", "strength", "message"),
    [
        (None, {"noise": 1.5}, "from 0 to 1"),
        (None, {"noise": -0.1}, "from 0 to 1"),
        (None, {"noise": True}, "from 0 to 1"),
        (None, {"ghost": 0.5}, "no 'ghost' head"),
        (["bias"], {"noise": 0.5}, "which `only` leaves out"),
    ],
)
def test_bad_strength_is_an_input_error(tiny, only, strength, message):
    with pytest.raises(InputError, match=message):
        correct_volume(_volume(), tiny, only=only, strength=strength)


def test_auto_batch_size_keeps_a_cpu_batch_small_for_large_slices(tiny):
    from artefix.correction import auto_batch_size

    assert [auto_batch_size((n, n), "cpu") for n in (64, 128, 256, 320, 512)] == [8, 8, 2, 1, 1]
    assert auto_batch_size((320, 320), "cuda") == 8 and auto_batch_size((1, 1), "cpu") == 8
    vol = _volume(shape=(40, 36, 7))
    seen = correct_volume(vol, tiny)  # 40 x 36 slices: all 7 in one call
    assert seen.record.batch_size == 8 and seen.record.max_batch_seen == 7
    with pytest.raises(ValueError, match="batch_size"):
        correct_volume(vol, tiny, batch_size=0)


def test_residuals_are_in_input_units():
    # p_bias = a * u  ->  r_bias = sigma * a * u = a * (x - mu); output Znorm(u (1 + a)) = u -> y = x
    vol = _volume(seed=2, scale=1000.0, offset=-200.0)
    a = 0.5
    res = correct_volume(vol, Stub(factors=(a, 0, 0, 0)), keep_residuals=True)
    x = vol.array.astype(np.float64)
    mu = x.mean(axis=(0, 1), keepdims=True)
    np.testing.assert_allclose(res.residuals["bias"].array, a * (x - mu), atol=1e-3)
    np.testing.assert_allclose(res.residuals["noise"].array, 0.0, atol=0)
    np.testing.assert_allclose(res.volume.array, x, atol=1e-3)
    per_slice = np.abs(a * (x - mu)).mean(axis=(0, 1))
    np.testing.assert_allclose(res.record.mean_abs_residual[:, 0], per_slice, rtol=1e-5)


def test_output_keeps_input_mean_and_std_per_slice():
    # p_noise = -u + 0.3: the model 'replaces' the slice by a constant plus nothing; mixed with u it rescales
    vol = _volume(seed=4)
    res = correct_volume(vol, Stub(factors=(0, 0, 0, -0.5), offsets=(0, 0, 0, 0.3)))
    x, y = vol.array.astype(np.float64), res.volume.array.astype(np.float64)
    np.testing.assert_allclose(y.mean(axis=(0, 1)), x.mean(axis=(0, 1)), rtol=1e-5)
    np.testing.assert_allclose(y.std(axis=(0, 1)), x.std(axis=(0, 1)), rtol=1e-4)


def test_streaming_calls_model_with_at_most_batch_size_slices(tiny):
    vol = _volume(shape=(24, 20, 23), seed=5)
    calls: list[int] = []
    original = tiny.forward

    def counting(x, heads=None, **options):
        calls.append(int(x.shape[0]))
        return original(x, heads, **options)

    tiny.forward = counting
    try:
        progress: list[tuple[int, int]] = []
        res = correct_volume(vol, tiny, batch_size=5, progress=lambda d, t: progress.append((d, t)))
    finally:
        del tiny.forward
    assert calls == [5, 5, 5, 5, 3]
    assert res.record.max_batch_seen == 5
    assert progress[-1] == (23, 23) and [d for d, _ in progress] == sorted(d for d, _ in progress)
    # eval-mode batch norm: the batch size does not change the result
    one = correct_volume(vol, tiny, batch_size=1)
    np.testing.assert_allclose(one.volume.array, res.volume.array, atol=1e-3)


def test_constant_slice_passes_through_and_never_reaches_the_model():
    vol = _volume(seed=6)
    vol.array[:, :, 2] = 7.0
    stub = Stub(factors=(0.2, 0.1, 0, 0), offsets=(0.5, 0, 0, 0))
    res = correct_volume(vol, stub, keep_residuals=True, batch_size=16)
    np.testing.assert_array_equal(res.volume.array[:, :, 2], 7.0)
    for h in HEADS:
        np.testing.assert_array_equal(res.residuals[h].array[:, :, 2], 0.0)
    assert res.record.constant_slices == (2,)
    assert stub.seen == [(6, 1, 40, 36)]
    assert np.all(res.record.mean_abs_residual[2] == 0)


def test_all_constant_volume_is_an_error():
    vol = Volume(np.full((8, 9, 3), 4.0, np.float32))
    with pytest.raises(InputError, match="constant"):
        correct_volume(vol, Stub())


def test_non_finite_and_bad_options(tiny):
    vol = _volume()
    bad = Volume(vol.array.copy())
    bad.array[0, 0, 0] = np.nan
    with pytest.raises(InputError, match="NaN"):
        correct_volume(bad, tiny)
    with pytest.raises(InputError, match="`only`"):
        correct_volume(vol, tiny, only=["blur"])
    with pytest.raises(InputError, match="out of range"):
        correct_volume(vol, tiny, axis=3)
    with pytest.raises(ValueError, match="batch_size"):
        correct_volume(vol, tiny, batch_size=0)
    single = Stub(heads=("noise",))
    single.factors, single.offsets = torch.zeros(1), torch.zeros(1)
    with pytest.raises(InputError, match="bias"):
        correct_volume(vol, single, only=["bias"])
    res = correct_volume(vol, single, keep_residuals=True)
    assert list(res.residuals) == ["noise"] and res.record.heads == ("noise",)


def test_axis_choice_and_header_axis(tiny):
    vol = _volume(shape=(20, 24, 6), seed=7)
    moved = Volume(np.ascontiguousarray(np.moveaxis(vol.array, -1, 0)), meta={"slice_axis": 0})
    a = correct_volume(vol, tiny).volume.array
    b = correct_volume(moved, tiny).volume.array  # header axis 0 is used by default
    np.testing.assert_allclose(np.moveaxis(b, 0, -1), a, atol=1e-4)
    c = correct_volume(moved, tiny, axis=0).volume.array
    np.testing.assert_array_equal(b, c)
    assert correct_volume(moved, tiny, axis=0).record.axis == 0


def test_two_dimensional_image(tiny):
    img = Volume(_volume().array[:, :, 3].copy(), format="png")
    res = correct_volume(img, tiny, keep_residuals=True)
    assert res.volume.array.shape == img.array.shape and res.record.axis is None
    assert res.record.n_slices == 1 and res.residuals["motion"].array.shape == img.array.shape
    with pytest.raises(InputError, match="2D"):
        correct_volume(img, tiny, axis=0)


def test_working_shape_matches_training_pixel_size():
    assert working_shape((512, 512), (0.5, 0.5), (320, 320)) == (320, 320)
    assert working_shape((448, 406), (1.0, 1.0), (320, 320)) == (320, 290)  # aspect kept: 406 * 320 / 448
    assert working_shape((256, 256), (1.0, 2.0), (320, 320)) == (160, 320)  # square pixels of 1.6 mm
    assert working_shape((37, 50)) == (37, 50)
    with pytest.raises(ValueError, match="matrix"):
        working_shape((10, 10), (1, 1), (320,))


def test_declared_matrix_runs_model_there_and_resizes_residuals_back():
    vol = _volume(shape=(40, 36, 3), seed=8)
    stub = Stub(offsets=(0, 0, 0, 0), factors=(0, 0, 0.25, 0))
    res = correct_volume(vol, stub, matrix=(64, 64), keep_residuals=True)
    assert {s[-2:] for s in stub.seen} == {(64, 58)}
    assert res.record.work_shape == (64, 58)
    # p = 0.25 * resize(u) at 64x58, Fourier-resized back to 40x36 (the round trip keeps every frequency
    # of u but halves the even-size Nyquist lines) and scaled by sigma into input units
    x = np.moveaxis(vol.array, -1, 0).astype(np.float64)
    mu, sd = x.mean(axis=(1, 2), keepdims=True), x.std(axis=(1, 2), keepdims=True)
    u = (x - mu) / sd
    back = fourier_resize(fourier_resize(u, (64, 58)), (40, 36))
    np.testing.assert_allclose(np.moveaxis(res.residuals["motion"].array, -1, 0), 0.25 * sd * back, atol=2e-3)
    assert np.abs(back - u).max() < 0.1 * np.abs(u).max()
    ident = correct_volume(vol, build_model("tiny", seed=0), only=[], matrix=(64, 64))
    np.testing.assert_allclose(ident.volume.array, vol.array, atol=1e-3)


def test_record_numbers_and_flags(tiny):
    vol = _volume(seed=9)
    res = correct_volume(vol, tiny, keep_residuals=True, top_k=2)
    rec = res.record
    for k, h in enumerate(HEADS):
        arr = res.residuals[h].array.astype(np.float64)
        np.testing.assert_allclose(rec.mean_abs_residual[:, k], np.abs(arr).mean(axis=(0, 1)), rtol=1e-5)
        assert rec.overall()[h] == pytest.approx(np.abs(arr).mean(), rel=1e-5)
    scores = rec.mean_abs_residual.sum(axis=1)
    assert [s.index for s in rec.snapshots] == list(np.argsort(-scores)[:2])
    snap = rec.snapshots[0]
    np.testing.assert_array_equal(snap.before, vol.array[:, :, snap.index])
    np.testing.assert_array_equal(snap.after, res.volume.array[:, :, snap.index])
    d = rec.to_dict()
    assert d["artefacts"]["noise"]["per_slice"] == pytest.approx(list(rec.mean_abs_residual[:, 3]))
    # robust outlier rule: one slice far above the others is flagged, nothing else
    values = np.tile(np.array([[1.0, 1, 1, 1]]), (9, 1)) + np.linspace(0, 0.01, 9)[:, None]
    values[4, 2] = 5.0
    flag = CorrectionRecord(HEADS, HEADS, 2, (4, 4, 9), (4, 4), values, np.zeros(9), np.ones(9), ()).flagged()
    assert flag == {"bias": (), "subsampling": (), "motion": (4,), "noise": ()}


def test_global_rng_untouched(tiny):
    np_state, torch_state = np.random.get_state()[1].copy(), torch.get_rng_state().clone()
    correct_volume(_volume(), tiny)
    assert np.array_equal(np.random.get_state()[1], np_state) and torch.equal(torch.get_rng_state(), torch_state)


def test_slice_moments_constant_detection():
    stack = np.stack([np.ones((3, 3)), np.arange(9.0).reshape(3, 3)])
    mean, std, constant = slice_moments(stack)
    assert mean.tolist() == [1.0, 4.0] and std[0] == 0 and constant.tolist() == [True, False]
    assert std[1] == pytest.approx(np.arange(9.0).std())


def test_detection_scores_are_recorded_for_a_gated_model_only(tiny):
    from artefix.correction.core import qc_batch

    vol = _volume(seed=4)
    assert correct_volume(vol, tiny).record.detection is None
    gated = build_model("tiny", seed=0, gates=True).eval()
    with torch.no_grad():
        gated.detector.score.weight.normal_(0, 0.3, generator=torch.Generator().manual_seed(0))
    rec = correct_volume(vol, gated, batch_size=3).record
    assert rec.detection.shape == (7, 4) and bool(((rec.detection > 0) & (rec.detection < 1)).all())
    stack = torch.from_numpy(np.moveaxis(vol.array, -1, 0).astype(np.float32))
    mean, std = stack.mean(dim=(1, 2)), stack.std(dim=(1, 2), correction=0)
    with torch.no_grad():
        expected = qc_batch(gated, stack, mean, std).detection.numpy()
    np.testing.assert_allclose(rec.detection, expected, rtol=1e-4, atol=1e-5)  # the correction's own pass
    info = rec.to_dict()["artefacts"]["bias"]
    assert info["detection_mean"] == pytest.approx(float(expected[:, 0].mean()), rel=1e-4)
    assert len(info["detection_per_slice"]) == 7


def test_kspace_truncation_is_recorded_for_a_model_with_data_consistency(tiny):
    from artefix.artefacts.subsampling import centre_crop_kspace_image
    from artefix.data.samples import load_sample

    image = load_sample("brain-t2")
    zero_filled = np.abs(fourier_resize(centre_crop_kspace_image(image, 2.0), image.shape)).astype(np.float32)
    volume = Volume(np.stack([zero_filled, image, 0.5 * zero_filled, np.full_like(image, 3.0)], axis=-1))
    assert correct_volume(volume, tiny).record.kspace_window is None  # no data-consistency step
    assert correct_volume(volume, tiny).record.kspace_sentence() == ""
    model = build_model("tiny", seed=3, consistency=True).eval()
    record = correct_volume(volume, model, batch_size=3).record
    assert record.kspace_window.shape == (4, 2)
    assert record.truncated_slices() == (0, 2)  # the constant slice 3 is passed through, slice 1 is complete
    np.testing.assert_allclose(record.kspace_window[[0, 2]], 0.5, atol=3 / 406)
    np.testing.assert_array_equal(record.kspace_window[1], [1.0, 1.0])
    assert np.isnan(record.kspace_window[3]).all()
    summary = record.to_dict()["kspace_truncation"]
    assert summary["truncated_slices"] == [0, 2] and summary["per_slice"][3] is None
    assert "2 of 4 slices" in record.kspace_sentence() and "50%" in record.kspace_sentence()


def test_estimated_snr_is_recorded_for_a_model_with_the_noise_gate(tiny):
    from artefix.data.samples import load_sample
    from artefix.models.priors import estimated_snr_db

    image = load_sample("brain-t2").astype(np.float32)
    noisy = image + np.random.default_rng(0).normal(0, 0.3 * image.std(), image.shape).astype(np.float32)
    volume = Volume(np.stack([image, noisy, np.full_like(image, 2.0)], axis=-1))
    assert correct_volume(volume, tiny).record.snr_db is None  # no gate, no estimate, no sentence
    assert correct_volume(volume, tiny).record.snr_sentence() == ""
    model = build_model("tiny", seed=3, noise_snr=(9.0, 12.0)).eval()
    record = correct_volume(volume, model, batch_size=2, snr_scope="slice").record
    u = torch.from_numpy(np.stack([image, noisy]))
    u = (u - u.mean(dim=(1, 2), keepdim=True)) / u.std(dim=(1, 2), keepdim=True, correction=0)
    np.testing.assert_allclose(record.snr_db[:2], estimated_snr_db(u).numpy(), atol=1e-3)
    assert record.snr_db[0] >= 12.0 > 9.0 >= record.snr_db[1] and np.isnan(record.snr_db[2])
    summary = record.to_dict()["estimated_snr"]
    assert summary["noise_gate_db"] == [9.0, 12.0] and summary["noise_off_slices"] == [0]
    assert summary["per_slice"][2] is None
    assert "off in 1 of 3 slices" in record.snr_sentence() and summary["scope"] == "slice"


def _clean_and_noisy_volume(n_clean: int, n_noisy: int) -> Volume:
    from artefix.data.samples import load_sample

    image = load_sample("brain-t2").astype(np.float32)
    rng = np.random.default_rng(1)
    noisy = [image + rng.normal(0, 0.3 * image.std(), image.shape).astype(np.float32) for _ in range(n_noisy)]
    return Volume(np.stack([image] * n_clean + noisy, axis=-1))


def test_scan_snr_scope_gates_every_slice_of_a_scan_alike():
    model = build_model("tiny", seed=3, noise_snr=(9.0, 12.0)).eval()
    n = HEADS.index("noise")
    # two clean slices and a noisy one: the scan is clean, so no slice loses its own noise...
    volume = _clean_and_noisy_volume(2, 1)
    scan = correct_volume(volume, model, keep_residuals=True)
    per_slice = correct_volume(volume, model, keep_residuals=True, snr_scope="slice")
    assert scan.record.scan_snr == pytest.approx(float(np.median(per_slice.record.snr_db)))
    np.testing.assert_array_equal(scan.record.snr_db, per_slice.record.snr_db)  # QC keeps each slice's own
    assert not scan.residuals["noise"].array.any()
    assert np.abs(per_slice.residuals["noise"].array[..., 2]).mean() > 0  # ...which the slice scope removes
    assert scan.record.mean_abs_residual[:, n].max() == 0.0
    summary = scan.record.to_dict()["estimated_snr"]
    assert summary["scope"] == "scan" and summary["scan_db"] == scan.record.scan_snr
    assert summary["noise_off_slices"] == [0, 1, 2]
    assert "used for the whole scan" in scan.record.snr_sentence() and scan.record.snr_sentence().endswith(": off")
    # ...and in a noisy scan every slice gets the full correction, the clean slice included
    noisy = correct_volume(_clean_and_noisy_volume(1, 2), model, keep_residuals=True)
    ungated = correct_volume(_clean_and_noisy_volume(1, 2), build_model("tiny", seed=3).eval(), keep_residuals=True)
    np.testing.assert_allclose(noisy.residuals["noise"].array, ungated.residuals["noise"].array, rtol=1e-4, atol=1e-3)
    assert (
        noisy.record.snr_sentence().endswith(": full")
        and noisy.record.to_dict()["estimated_snr"]["noise_off_slices"] == []
    )
    with pytest.raises(ValueError, match="snr_scope"):
        correct_volume(volume, model, snr_scope="volume")


def test_scan_snr_is_the_median_of_the_finite_slice_estimates():
    from artefix.correction import scan_snr_db

    assert scan_snr_db(np.array([20.0, np.nan, 5.0, 11.0])) == 11.0
    assert scan_snr_db(np.array([np.nan])) is None and scan_snr_db(np.array([])) is None


def test_flagging_ignores_corrections_negligible_against_the_slice_contrast():
    values = np.tile(np.array([[1.0, 1, 1, 1]]), (9, 1)) + np.linspace(0, 0.01, 9)[:, None]
    values[4, 2] = 5.0
    std = np.full(9, 1000.0)  # the outlier slice's correction is 0.5 % of its standard deviation
    record = CorrectionRecord(HEADS, HEADS, 2, (4, 4, 9), (4, 4), values, np.zeros(9), std, ())
    assert record.flagged() == dict.fromkeys(HEADS, ())
    assert record.flagged(min_fraction=0.001)["motion"] == (4,)


def test_a_policy_carries_the_head_selection_and_the_options_override_it(tiny):
    vol = _volume(seed=6)
    chosen = tiny.policy.with_options(only=["noise"], strength={"noise": 0.5}, snr_scope="slice")
    by_policy = correct_volume(vol, tiny, policy=chosen)
    by_options = correct_volume(vol, tiny, only=["noise"], strength={"noise": 0.5}, snr_scope="slice")
    np.testing.assert_array_equal(by_policy.volume.array, by_options.volume.array)
    assert by_policy.record.applied == ("noise",) and by_policy.record.strength == {"noise": 0.5}
    overridden = correct_volume(vol, tiny, policy=chosen, only=["bias"], strength={})
    assert overridden.record.applied == ("bias",) and overridden.record.strength == {}
    with pytest.raises(InputError, match="`strength` names noise, which `only` leaves out"):
        correct_volume(vol, tiny, policy=chosen, only=["bias"])
