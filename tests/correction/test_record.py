"""The QC record on hand-built numbers: strengths and labels, the outlier rule, k-space, SNR and detector summaries."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from artefix.correction.record import FLAG_MADS, FLAG_MIN_FRACTION, SliceSnapshot
from artefix.models.priors import snr_gate

HEADS = ("bias", "subsampling", "motion", "noise")


def test_flag_constants_are_the_documented_rule():
    assert (FLAG_MADS, FLAG_MIN_FRACTION) == (3.0, 0.01)


def test_strengths_labels_and_the_applied_text(make_record):
    record = make_record(applied=("bias", "motion", "noise"), strength={"motion": 0.5, "noise": 0.25})
    assert [record.strength_of(h) for h in HEADS] == [1.0, 0.0, 0.5, 0.25]
    assert all(type(record.strength_of(h)) is float for h in HEADS)
    assert [record.applied_label(h) for h in HEADS] == ["yes", "no", "50%", "25%"]
    assert record.applied_text() == "bias, motion (50%), noise (25%)"
    assert make_record(applied=()).applied_text() == ""
    # a strength recorded for a head that was left out does not count
    assert make_record(applied=("bias",), strength={"noise": 0.5}).strength_of("noise") == 0.0


def test_slice_count_and_overall_means(make_record):
    values = np.array([[1.0, 2.0, 3.0, 4.0], [3.0, 6.0, 9.0, 0.0], [2.0, 1.0, 0.0, 2.0]])
    record = make_record(3, values=values)
    assert record.n_slices == 3 and type(record.n_slices) is int
    assert record.overall() == {"bias": 2.0, "subsampling": 3.0, "motion": 4.0, "noise": 2.0}


def _flag_values(outlier: float) -> np.ndarray:
    """Nine slices whose motion column has median 1 and MAD 0.1 (so the limit is 1 + 3 * 1.4826 * 0.1)."""
    column = np.array([0.8, 0.9, 0.9, 1.0, 1.0, 1.1, 1.1, 1.2, outlier])
    values = np.ones((9, 4))
    values[:, 2] = column
    return values


def test_the_outlier_rule_is_median_plus_mads_strictly_above(make_record):
    limit = 1.0 + FLAG_MADS * 1.4826 * 0.1
    above = make_record(9, values=_flag_values(limit + 1e-6)).flagged()
    assert above == {"bias": (), "subsampling": (), "motion": (8,), "noise": ()}
    assert make_record(9, values=_flag_values(limit - 1e-6)).flagged()["motion"] == ()
    # n_mads and the MAD's normal-consistency factor enter the limit as written
    assert make_record(9, values=_flag_values(1.0 + 2 * 1.4826 * 0.1 + 1e-6)).flagged(n_mads=2.0)["motion"] == (8,)
    assert make_record(9, values=_flag_values(1.0 + 2 * 1.4826 * 0.1 - 1e-6)).flagged(n_mads=2.0)["motion"] == ()
    assert make_record(9, values=_flag_values(1.0 + 2 * 0.1 + 1e-3)).flagged(n_mads=2.0)["motion"] == ()


def test_a_flag_needs_a_material_correction(make_record):
    values = _flag_values(5.0)
    std = np.full(9, 100.0)  # 1 % of it is 1.0: the outlier is material (>=), at exactly 5 % too
    assert make_record(9, values=values, slice_std=std).flagged()["motion"] == (8,)
    assert make_record(9, values=values, slice_std=std).flagged(min_fraction=0.05)["motion"] == (8,)
    assert make_record(9, values=values, slice_std=std).flagged(min_fraction=0.0501)["motion"] == ()
    # a slice whose own contrast is high is not flagged, the others' contrast does not matter
    std = np.full(9, 100.0)
    std[8] = 1000.0
    assert make_record(9, values=values, slice_std=std).flagged()["motion"] == ()


def test_a_zero_correction_is_never_flagged(make_record):
    values = np.zeros((9, 4))
    values[8, 1] = 1e-9  # the median and the MAD are 0: only the non-zero slice stands out
    flags = make_record(9, values=values, slice_std=np.zeros(9)).flagged(min_fraction=0.0)
    assert flags == {"bias": (), "subsampling": (8,), "motion": (), "noise": ()}


def test_a_slice_at_the_limit_is_not_flagged(make_record):
    # equal corrections: the MAD is 0 and every slice lies exactly at the limit
    assert make_record(9, values=np.ones((9, 4))).flagged() == dict.fromkeys(HEADS, ())


def test_constant_slices_are_left_out_of_the_statistics_and_the_flags(make_record):
    values = _flag_values(5.0)
    values[[0, 1], 2] = 50.0  # huge, but constant slices: neither flagged nor lifting the median
    assert make_record(9, values=values, constant_slices=(0, 1)).flagged()["motion"] == (8,)
    # fewer than three slices left: nothing is flagged
    assert make_record(9, values=values, constant_slices=tuple(range(7))).flagged()["motion"] == ()
    three = make_record(9, values=_flag_values(5.0), constant_slices=(0, 1, 2, 3, 4, 5))  # 1.1, 1.2, 5: median 1.2
    assert three.flagged()["motion"] == (8,)
    assert make_record(3, values=np.array([[1.0] * 4, [1.0] * 4, [9.0] * 4])).flagged()["bias"] == (2,)
    assert make_record(2, values=np.array([[1.0] * 4, [9.0] * 4])).flagged() == dict.fromkeys(HEADS, ())
    assert make_record(2, values=np.array([[1.0] * 4, [9.0] * 4])).flagged(n_mads=0.0) == dict.fromkeys(HEADS, ())


def test_detection_means_skip_the_constant_slices(make_record):
    assert make_record().detection_mean(0) is None
    detection = np.array([[0.2, 0.9, np.nan, 0.0], [0.4, 0.1, np.nan, 1.0], [np.nan] * 4])
    record = make_record(3, detection=detection)
    assert record.detection_mean(0) == pytest.approx(0.3) and record.detection_mean(1) == pytest.approx(0.5)
    assert record.detection_mean(2) is None and record.detection_mean(3) == 0.5


def test_truncated_slices_and_the_kspace_summary(make_record):
    assert make_record().truncated_slices() == () and make_record().kspace_summary() is None
    window = np.array([[1.0, 1.0], [0.5, 1.0], [np.nan, np.nan], [1.0, 0.75], [0.25, 0.5], [1.0, 1.0]])
    record = make_record(6, kspace_window=window)
    assert record.truncated_slices() == (1, 3, 4) and all(type(z) is int for z in record.truncated_slices())
    summary = record.kspace_summary()
    assert summary["truncated_slices"] == [1, 3, 4]
    assert summary["median_rows_measured"] == 0.5 and summary["median_columns_measured"] == 0.75
    assert summary["per_slice"] == [[1.0, 1.0], [0.5, 1.0], None, [1.0, 0.75], [0.25, 0.5], [1.0, 1.0]]
    complete = make_record(2, kspace_window=np.ones((2, 2))).kspace_summary()
    assert complete["truncated_slices"] == [] and complete["median_rows_measured"] == 1.0
    assert complete["median_columns_measured"] == 1.0


def test_the_kspace_sentence(make_record):
    assert make_record().kspace_sentence() == ""
    assert make_record(2, kspace_window=np.ones((2, 2))).kspace_sentence() == ""
    window = np.array([[0.5, 1.0], [1.0, 1.0], [0.5, 0.75], [1.0, 1.0]])
    assert make_record(4, kspace_window=window).kspace_sentence() == (
        "k-space truncated (zero-filled) in 2 of 4 slices, median 50% of the rows x 88% of the columns measured: "
        "the subsampling correction only fills the missing lines"
    )


def test_the_gate_snr_in_either_scope(make_record):
    snr = np.array([20.0, np.nan, 5.0])
    assert make_record(3, snr_db=snr).gate_snr_db() is None  # no gate
    assert make_record(3, noise_snr=(9.0, 12.0)).gate_snr_db() is None  # no estimate
    assert make_record(3, noise_snr=(9.0, 12.0)).noise_gate_weights() is None
    own = make_record(3, snr_db=snr, noise_snr=(9.0, 12.0), snr_scope="slice", scan_snr=11.0)
    np.testing.assert_array_equal(own.gate_snr_db(), snr)
    scan = make_record(3, snr_db=snr, noise_snr=(9.0, 12.0), snr_scope="scan", scan_snr=11.0)
    np.testing.assert_array_equal(scan.gate_snr_db(), [11.0, np.nan, 11.0])
    no_scan_value = make_record(3, snr_db=snr, noise_snr=(9.0, 12.0), snr_scope="scan", scan_snr=None)
    np.testing.assert_array_equal(no_scan_value.gate_snr_db(), snr)


def test_noise_gate_weights_are_the_gate_of_the_snr_it_read(make_record):
    snr = np.array([20.0, 10.0, np.nan, 9.0, 11.5])
    assert make_record(5, snr_db=snr).noise_gate_weights() is None
    record = make_record(5, snr_db=snr, noise_snr=(9.0, 12.0), snr_scope="slice")
    weights = record.noise_gate_weights()
    np.testing.assert_allclose(weights, [0.0, 2 / 3, np.nan, 1.0, 1 / 6])
    np.testing.assert_array_equal(weights, snr_gate(torch.from_numpy(snr), 9.0, 12.0).numpy())
    scan = make_record(5, snr_db=snr, noise_snr=(9.0, 12.0), snr_scope="scan", scan_snr=10.5)
    np.testing.assert_allclose(scan.noise_gate_weights(), [0.5, 0.5, np.nan, 0.5, 0.5])


def test_the_snr_summary(make_record):
    assert make_record().snr_summary() is None
    snr = np.array([20.0, 10.0, np.nan, 14.0])
    summary = make_record(4, snr_db=snr, noise_snr=(9.0, 12.0), snr_scope="slice").snr_summary()
    assert summary == {
        "median_db": 14.0,
        "scope": "slice",
        "scan_db": None,
        "noise_gate_db": [9.0, 12.0],
        "noise_off_slices": [0, 3],
        "per_slice": [20.0, 10.0, None, 14.0],
    }
    json.dumps(summary)
    nothing = make_record(2, snr_db=np.array([np.nan, np.nan]), noise_snr=(9.0, 12.0)).snr_summary()
    assert nothing["median_db"] is None and nothing["per_slice"] == [None, None]


def test_the_gates_sentence(make_record):
    assert make_record().gates_sentence() == "" and make_record(gated=False).gates_sentence() == ""
    detection = np.full((5, 4), 0.5)
    assert make_record(detection=detection).gates_sentence() == ""
    assert make_record(detection=detection, gated=False).gates_sentence() == (
        "detection scores shown, not applied (--no-gates): each applied correction in full"
    )


def test_the_snr_sentence_per_slice_and_when_left_out(make_record):
    assert make_record().snr_sentence() == ""
    assert make_record(2, snr_db=np.array([np.nan, np.nan]), noise_snr=(9.0, 12.0)).snr_sentence() == ""
    snr = np.array([20.0, 10.0, np.nan, 14.5])
    fade = "the noise correction fades out from 9 to 12.5 dB (a scan's own noise is kept)"
    record = make_record(4, snr_db=snr, noise_snr=(9.0, 12.5), snr_scope="slice")
    assert record.snr_sentence() == f"noise gate's SNR median 14.5 dB, per slice; {fade}: off in 2 of 4 slices"
    left_out = make_record(4, snr_db=snr, noise_snr=(9.0, 12.5), applied=("bias",))
    assert left_out.snr_sentence() == "noise gate's SNR median 14.5 dB; the noise correction was not applied"
    zero = make_record(4, snr_db=snr, noise_snr=(9.0, 12.5), strength={"noise": 0.0})
    assert zero.snr_sentence().endswith("the noise correction was not applied")


@pytest.mark.parametrize(
    ("scan_snr", "state"),
    [
        (20.0, "off"),
        (12.49, "off"),
        (12.48, "at 1%"),
        (5.0, "full"),
        (9.01, "full"),
        (9.1, "at 97%"),
        (10.75, "at 50%"),
    ],
)
def test_the_snr_sentence_of_the_scan_scope(make_record, scan_snr, state):
    snr_db = np.array([20.0, 7.0, 14.0])
    record = make_record(3, snr_db=snr_db, noise_snr=(9.0, 12.5), snr_scope="scan", scan_snr=scan_snr)
    fade = "the noise correction fades out from 9 to 12.5 dB (a scan's own noise is kept)"
    expected = f"noise gate's SNR {scan_snr:.1f} dB (median of the slices, used for the whole scan); {fade}: {state}"
    assert record.snr_sentence() == expected


def test_to_dict_is_the_whole_summary_and_json(make_record):
    values = np.array([[1.0, 0.0, 2.0, 0.5], [0.0, 0.0, 0.0, 0.0], [3.0, 1.0, 2.0, 0.5]])
    snap = SliceSnapshot(2, 6.5, np.zeros((2, 2)), np.ones((2, 2)), np.zeros((4, 2, 2)))
    record = make_record(
        3,
        values=values,
        applied=("bias", "noise"),
        strength={"noise": 0.5},
        constant_slices=(1,),
        snapshots=(snap,),
        batch_size=4,
        device="cpu",
        seconds=1.25,
        ensemble=2,
    )
    d = record.to_dict()
    json.dumps(d)
    assert d["heads"] == list(HEADS) and d["applied"] == ["bias", "noise"]
    assert (d["axis"], d["shape"], d["slices"], d["work_shape"]) == (2, [6, 7, 3], 3, [6, 7])
    assert (d["batch_size"], d["device"], d["ensemble"], d["detector_applied"]) == (4, "cpu", 2, None)
    assert d["units"] == "input intensity units"
    assert d["kspace_truncation"] is None and d["estimated_snr"] is None
    assert d["constant_slices"] == [1] and d["largest_corrections"] == [2] and d["correction_seconds"] == 1.25
    assert d["artefacts"]["bias"] == {
        "applied": True,
        "strength": 1.0,
        "mean_abs_residual": pytest.approx(4 / 3),
        "per_slice": [1.0, 0.0, 3.0],
        "flagged_slices": [],
    }
    assert d["artefacts"]["motion"]["applied"] is False and d["artefacts"]["motion"]["strength"] == 0.0
    assert d["artefacts"]["noise"]["strength"] == 0.5
    assert list(d["artefacts"]) == list(HEADS)


def test_to_dict_of_a_gated_record_with_every_summary(make_record):
    detection = np.array([[0.2, 0.5, 0.1, 0.9], [np.nan] * 4, [0.4, 0.5, 0.3, 0.7]])
    record = make_record(
        3,
        detection=detection,
        gated=False,
        kspace_window=np.array([[0.5, 1.0], [np.nan, np.nan], [1.0, 1.0]]),
        snr_db=np.array([8.0, np.nan, 13.0]),
        noise_snr=(9.0, 12.0),
        constant_slices=(1,),
    )
    d = record.to_dict()
    json.dumps(d)
    assert d["detector_applied"] is False and make_record(3, detection=detection).to_dict()["detector_applied"] is True
    assert d["artefacts"]["bias"]["detection_mean"] == pytest.approx(0.3)
    assert d["artefacts"]["noise"]["detection_per_slice"] == [pytest.approx(0.9), None, pytest.approx(0.7)]
    assert d["kspace_truncation"]["truncated_slices"] == [0]
    assert d["estimated_snr"]["noise_off_slices"] == [2] and d["estimated_snr"]["median_db"] == 10.5


def test_the_defaults_of_a_hand_builtmake_record(make_record):
    record = make_record()
    assert (record.batch_size, record.device, record.seconds, record.max_batch_seen) == (8, "cpu", 0.0, 0)
    assert (record.ensemble, record.snr_scope, record.gated, record.strength, record.snapshots) == (
        1,
        "slice",
        True,
        {},
        (),
    )
    assert record.detection is record.kspace_window is record.snr_db is record.noise_snr is record.scan_snr is None
    assert record.to_dict()["correction_seconds"] == 0.0


def test_the_scan_scope_is_read_by_value(make_record):
    scope = "".join(["sc", "an"])  # equal to "scan", as read from a file, not the same object
    record = make_record(3, snr_db=np.array([20.0, 7.0, 14.0]), noise_snr=(9.0, 12.0), snr_scope=scope, scan_snr=14.0)
    np.testing.assert_array_equal(record.gate_snr_db(), [14.0, 14.0, 14.0])
    assert "used for the whole scan" in record.snr_sentence()


def test_a_snapshot_is_frozen():
    snap = SliceSnapshot(0, 1.0, np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((4, 2, 2)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        snap.index = 1


def test_the_snr_sentence_is_per_slice_unless_the_scan_scope_has_a_scan_snr(make_record):
    snr = np.array([20.0, 10.0, 14.5])
    per_slice = "noise gate's SNR median 14.5 dB, per slice;"
    # each slice's own SNR: a scan value recorded beside it is not what the gate read
    assert (
        make_record(3, snr_db=snr, noise_snr=(9.0, 12.5), snr_scope="slice", scan_snr=11.0)
        .snr_sentence()
        .startswith(per_slice)
    )
    # the scan scope without a scan value falls back to each slice's own
    assert make_record(3, snr_db=snr, noise_snr=(9.0, 12.5), snr_scope="scan").snr_sentence().startswith(per_slice)


@pytest.mark.parametrize(("scan_snr", "weight"), [(995.0, 0.005), (5.0, 0.995)])
def test_the_scan_gates_state_at_its_thresholds_is_a_percentage(make_record, scan_snr, weight):
    record = make_record(2, snr_db=np.array([1.0, 2.0]), noise_snr=(0.0, 1000.0), snr_scope="scan", scan_snr=scan_snr)
    assert record.noise_gate_weights()[0] == weight  # exactly the threshold: neither off nor full
    assert record.snr_sentence().endswith(f": at {weight:.0%}")
