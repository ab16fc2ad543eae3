"""The QC report's parts on hand-built runs (no model): figures, the JSON summary, the HTML's facts, the write."""

from __future__ import annotations

import base64
import html
import json
import re
import struct
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from matplotlib.colors import to_rgba

import artefix
from artefix.correction import report
from artefix.correction.files import CorrectionRun
from artefix.correction.record import CorrectionRecord, SliceSnapshot
from artefix.data.io import Volume
from artefix.errors import OutputError

HEADS = ("bias", "subsampling", "motion", "noise")
COLOURS = ("tab:orange", "tab:blue", "tab:green", "tab:red")


def _run(record: CorrectionRecord, folder: Path = Path("/data"), **kw) -> CorrectionRun:
    args = {
        "input": folder / "scan.npy",
        "output": folder / "out.npy",
        "model_card": {"name": "mt-test", "sha256": "ab12", "weights_path": "/w/mt-test.safetensors", "matrix": [6, 7]},
        "record": record,
        "timings": {"read": 0.123456, "total": 2.0},
    }
    args.update(kw)
    return CorrectionRun(**args)


def _flagged_motion(n: int = 9) -> np.ndarray:
    """Per-slice values whose motion column has one clear outlier, the last slice."""
    values = np.ones((n, 4))
    values[:, 2] = np.linspace(0.8, 1.2, n)
    values[-1, 2] = 5.0
    return values


def _snapshot(index: int, rng: np.random.Generator, scale: float = 1.0) -> SliceSnapshot:
    before = rng.random((6, 7)) * 100
    residuals = scale * rng.standard_normal((4, 6, 7))
    return SliceSnapshot(index, float(index), before, before + residuals.sum(axis=0), residuals)


def _legend(ax) -> list[str]:
    return [t.get_text() for t in ax.get_legend().get_texts()]


def test_the_profile_draws_each_heads_values_with_its_style_colour_and_label(make_record):
    values = _flagged_motion()
    strength = {"motion": 0.5, "noise": 1.0}
    record = make_record(9, values=values, applied=("bias", "motion", "noise"), strength=strength)
    ax = report.residual_profile_figure(_run(record)).axes[0]
    assert _legend(ax) == ["bias", "subsampling (not applied)", "motion (applied at 50%)", "noise"]
    lines = {line.get_label(): line for line in ax.get_lines()}
    for k, (label, colour) in enumerate(zip(_legend(ax), COLOURS, strict=True)):
        line = lines[label]
        np.testing.assert_array_equal(line.get_xdata(), np.arange(9))
        np.testing.assert_array_equal(line.get_ydata(), values[:, k])
        assert line.get_linestyle() == ("--" if k == 1 else "-")
        assert line.get_color() == colour and line.get_marker() == "."
    [circle] = [line for line in ax.get_lines() if line.get_label().startswith("_")]
    assert list(circle.get_xdata()) == [8] and list(circle.get_ydata()) == [5.0]
    assert (circle.get_marker(), circle.get_linestyle(), circle.get_mfc()) == ("o", "None", "none")
    assert circle.get_color() == "tab:green"
    assert ax.get_xlabel() == "slice index (axis 2)" and ax.get_ylabel() == "mean |residual| (input units)"


def test_partial_strength_labels_only_strictly_between_zero_and_one(make_record):
    record = make_record(3, applied=HEADS, strength={"bias": 0.0, "motion": 1.0, "noise": 0.25})
    ax = report.residual_profile_figure(_run(record)).axes[0]
    assert _legend(ax) == ["bias", "subsampling", "motion", "noise (applied at 25%)"]


def test_long_volumes_drop_the_point_markers_and_axisless_records_say_slice(make_record):
    for n, marker in ((63, "."), (64, "None"), (65, "None")):
        ax = report.residual_profile_figure(_run(make_record(n, values=np.ones((n, 4))))).axes[0]
        assert {line.get_marker() for line in ax.get_lines()} == {marker}
    ax = report.residual_profile_figure(_run(make_record(4, axis=None))).axes[0]
    assert ax.get_xlabel() == "slice"


def test_one_slice_gets_a_bar_per_head_hatched_where_not_applied(make_record):
    record = make_record(1, values=np.array([[1.0, 2.0, 3.0, 4.0]]), applied=("bias", "noise"))
    ax = report.residual_profile_figure(_run(record)).axes[0]
    bars = ax.patches
    assert [b.get_height() for b in bars] == [1.0, 2.0, 3.0, 4.0]
    assert [b.get_hatch() for b in bars] == [None, "//", "//", None]
    assert [b.get_alpha() for b in bars] == [None, 0.5, 0.5, None]
    assert [b.get_facecolor()[:3] for b in bars] == [to_rgba(c)[:3] for c in COLOURS]
    assert [t.get_text() for t in ax.get_xticklabels()] == list(HEADS)
    assert ax.get_ylabel() == "mean |residual| (input units)" and "hatched: not applied" in ax.get_title()


def test_largest_corrections_show_before_after_difference_and_residuals_on_shared_scales(make_record):
    rng = np.random.default_rng(3)
    snaps = (_snapshot(3, rng), _snapshot(1, rng, scale=0.0))
    fig = report.largest_corrections_figure(_run(make_record(5, snapshots=snaps)))
    images = [ax for ax in fig.axes if not hasattr(ax, "_colorbar")]
    assert len(images) == 2 * 7 and all(ax.get_images() for ax in images)  # no empty panel
    names = ["before", "after", "after - before", *(f"{h} residual" for h in HEADS)]
    for r, snap in enumerate(snaps):
        row = images[7 * r : 7 * r + 7]
        assert [ax.get_title() for ax in row] == [f"slice {snap.index}: before", *names[1:]]
        expected = [snap.before, snap.after, snap.after - snap.before, *snap.residuals]
        for ax, array in zip(row, expected, strict=True):
            np.testing.assert_array_equal(ax.get_images()[0].get_array(), array)
        lo, hi = report._window(snap.before)
        changes = np.concatenate([(snap.after - snap.before).ravel(), snap.residuals.ravel()])
        d = float(np.percentile(np.abs(changes), 99.5)) or 1.0
        clims = [ax.get_images()[0].get_clim() for ax in row]
        assert clims == [(lo, hi)] * 2 + [(-d, d)] * 5
        assert [ax.get_images()[0].get_cmap().name for ax in row] == ["gray"] * 2 + ["RdBu_r"] * 5
    assert d == 1.0  # the second snapshot changed nothing: a unit scale, not an empty one
    bars = [ax._colorbar for ax in fig.axes if hasattr(ax, "_colorbar")]
    assert [(b.ax.get_ylabel(), b.mappable.get_cmap().name) for b in bars] == [
        ("intensity", "gray"),
        ("change (input units)", "RdBu_r"),
    ] * 2
    fig.canvas.draw()  # the layout places each scale right of the panels it belongs to
    (before, after, change), right = (images[0], images[1], images[2]), images[6].get_position().x1
    assert after.get_position().x1 < bars[0].ax.get_position().x0 < change.get_position().x0
    assert before.get_position().x0 < after.get_position().x0 and bars[1].ax.get_position().x0 > right
    assert report.largest_corrections_figure(_run(make_record(5))) is None
    snap = replace(snaps[0], residuals=snaps[0].residuals[:2])
    two_heads = make_record(5, values=np.ones((5, 2)), heads=HEADS[:2], applied=HEADS[:2], snapshots=(snap,))
    one_row = report.largest_corrections_figure(_run(two_heads))
    width, height = fig.get_size_inches()
    assert one_row.get_size_inches() == pytest.approx((width * 5 / 7, height / 2))  # the same size per panel


def test_the_orthogonal_figure_shows_before_over_after_in_the_befores_window():
    rng = np.random.default_rng(4)
    before = Volume(rng.random((6, 8, 10)).astype(np.float32), affine=np.diag([1.0, 2.0, 3.0, 1.0]), format="nifti")
    after = Volume(before.array * 2, affine=before.affine, format="nifti")
    fig = report.orthogonal_figure(before, after)
    assert len(fig.axes) == 6
    lo, hi = report._window(before.array)
    for ax, (label, (name, plane, aspect)) in zip(
        fig.axes,
        [("before", p) for p in report.orthogonal_planes(before)]
        + [("after", p) for p in report.orthogonal_planes(after)],
        strict=True,
    ):
        image = ax.get_images()[0]
        assert ax.get_title() == f"{label}: {name}"
        np.testing.assert_array_equal(image.get_array(), plane)
        assert image.get_clim() == (lo, hi) and image.origin == "lower" and ax.get_aspect() == aspect
    one_plane = report.orthogonal_figure(Volume(before.array[:, :, 0]), Volume(after.array[:, :, 0]))
    assert len(one_plane.axes) == 2 and fig.get_size_inches() == pytest.approx(one_plane.get_size_inches() * [3, 1])


def test_figures_become_png_at_their_resolution_and_are_closed():
    plt = report._plt()
    for dpi, size in ((None, (160, 80)), (50, (100, 50))):
        fig = plt.figure(figsize=(2, 1))
        png = base64.b64decode(report.figure_to_base64(fig) if dpi is None else report.figure_to_base64(fig, dpi=dpi))
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and struct.unpack(">II", png[16:24]) == size
        assert not plt.fignum_exists(fig.number)


def test_the_summary_names_paths_model_record_and_rounded_timings(make_record, tmp_path):
    record = make_record(5)
    run = _run(record, tmp_path, residual_paths={"bias": tmp_path / "res" / "bias.npy"})
    summary = report.build_summary(run)
    assert summary["artefix_version"] == artefix.__version__
    assert datetime.fromisoformat(summary["created"]).utcoffset().total_seconds() == 0
    assert summary["input"] == str(tmp_path / "scan.npy") and summary["output"] == str(tmp_path / "out.npy")
    assert summary["residuals"] == {"bias": str(tmp_path / "res" / "bias.npy")} and summary["report"] is None
    assert summary["model"] == {
        "name": "mt-test",
        "sha256": "ab12",
        "weights_path": "/w/mt-test.safetensors",
        "heads": list(HEADS),
        "matrix": [6, 7],
    }
    assert summary["timings_s"] == {"read": 0.1235, "total": 2.0}
    assert {k: summary[k] for k in record.to_dict()} == record.to_dict()
    assert report.build_summary(_run(record, tmp_path, report=tmp_path / "qc.html"))["report"] == str(
        tmp_path / "qc.html"
    )
    assert report.build_summary(_run(record, model_card={}))["model"]["name"] is None


def _facts(text: str) -> dict[str, str]:
    """The report's fact table, unescaped: label -> text."""
    rows = re.findall(r"<tr><th>([^<]*)</th><td>([^<]*)</td></tr>", text)
    return {html.unescape(k): html.unescape(v) for k, v in rows}


def test_the_html_states_what_was_done_in_words(make_record):
    volume = Volume(np.random.default_rng(5).random((6, 7, 5)).astype(np.float32))
    record = make_record(5, values=_flagged_motion(5), applied=("bias", "motion"), strength={"motion": 0.5})
    text = report.render_report(_run(record, input=Path("/data/a<b.npy")), volume, volume)
    assert "<title>artefix QC: a&lt;b.npy</title>" in text and "QC report: a&lt;b.npy</h1>" in text
    facts = _facts(text)
    assert facts["input"] == "/data/a<b.npy" and facts["output"] == "/data/out.npy"
    assert facts["model"] == "mt-test (sha256 ab12)" and facts["applied corrections"] == "bias, motion (50%)"
    assert (
        facts["volume shape"] == "6 x 7 x 5"
        and facts["slice axis"] == "2"
        and facts["model matrix per slice"] == "6 x 7"
    )
    assert facts["self-ensemble"] == "1 dihedral transform(s) averaged per slice"
    assert facts["constant slices passed through"] == "none" and facts["timings (s)"] == "read 0.12, total 2.00"
    assert not {"artefact detector", "k-space", "noise level"} & set(facts)
    assert "<tr><td>motion</td><td>50%</td><td>1.76</td><td>4</td></tr>" in text
    assert "<tr><td>subsampling</td><td>no</td><td>1</td><td>none</td></tr>" in text
    assert "<th>detection</th>" not in text and "presence score" not in text
    assert "Largest corrections" not in text and text.count("data:image/png;base64,") == 2
    assert text.startswith("<!DOCTYPE html>") and text.endswith("</body></html>")


def test_the_html_adds_the_optional_facts_the_record_has(make_record):
    rng = np.random.default_rng(6)
    volume = Volume(rng.random((6, 7, 5)).astype(np.float32))
    detection = np.full((5, 4), 0.25)
    detection[:, 3] = np.nan  # no score for the noise head on any slice
    window = np.ones((5, 2))
    window[1] = (0.5, 1.0)
    record = make_record(
        5,
        applied=(),
        detection=detection,
        gated=False,
        kspace_window=window,
        snr_db=np.full(5, 20.0),
        noise_snr=(9.0, 11.0),
        constant_slices=(0, 4),
        ensemble=8,
        snapshots=(_snapshot(3, rng), _snapshot(1, rng)),
    )
    run = _run(record, model_card={"name": "mt-test"})
    text = report.render_report(run, volume, volume)
    facts = _facts(text)
    assert facts["model"] == "mt-test (sha256 n/a)" and facts["applied corrections"] == "none (identity)"
    assert facts["artefact detector"] == record.gates_sentence() != ""
    assert facts["k-space"] == record.kspace_sentence() != ""
    assert facts["noise level"] == record.snr_sentence() != ""
    assert facts["constant slices passed through"] == "0, 4"
    assert facts["self-ensemble"] == "8 dihedral transform(s) averaged per slice"
    assert "<th>detection</th>" in text and "presence score" in text
    assert "<tr><td>bias</td><td>no</td><td>0.25</td>" in text and "<tr><td>noise</td><td>no</td><td>n/a</td>" in text
    assert "<h2>Largest corrections (slices 3, 1)</h2>" in text and text.count("data:image/png;base64,") == 3
    given = {**report.build_summary(run), "model": {"name": "given", "sha256": None}}
    assert _facts(report.render_report(run, volume, volume, given))["model"] == "given (sha256 n/a)"


def test_write_report_writes_both_files_and_says_which_it_created(make_record, tmp_path):
    volume = Volume(np.random.default_rng(7).random((6, 7, 5)).astype(np.float32))
    html_path, json_path = tmp_path / "qc.html", tmp_path / "qc.json"
    run = _run(make_record(5), tmp_path, report=html_path, summary=json_path)
    with pytest.raises(TypeError):
        report.write_report(run, volume, volume, True)  # overwrite by keyword only
    with pytest.raises(ValueError, match="must be set"):
        report.write_report(_run(make_record(5), tmp_path, report=html_path), volume, volume)
    assert report.write_report(run, volume, volume) == [json_path, html_path]
    text = json_path.read_text()
    assert text.endswith("}\n") and text.startswith('{\n  "artefix_version"')
    assert json.loads(text)["model"]["name"] == "mt-test"
    assert html_path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(OutputError, match="exists"):
        report.write_report(run, volume, volume)
    html_path.write_text("old")
    assert report.write_report(run, volume, volume, overwrite=True) == []
    assert html_path.read_text().startswith("<!DOCTYPE html>")
    json_path.unlink()
    assert report.write_report(run, volume, volume, overwrite=True) == [json_path]
    onto_input = _run(make_record(5), tmp_path, report=tmp_path / "scan.npy", summary=tmp_path / "x.json")
    (tmp_path / "scan.npy").write_bytes(b"scan")
    with pytest.raises(OutputError):
        report.write_report(onto_input, volume, volume, overwrite=True)
    assert (tmp_path / "scan.npy").read_bytes() == b"scan" and not (tmp_path / "x.json").exists()
