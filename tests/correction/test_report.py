"""QC report: self-contained HTML, JSON summary consistent with the residual volumes, orientation, atomicity."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import numpy as np
import pytest

import artefix
from artefix.correction import correct_file
from artefix.correction.report import orthogonal_planes, write_report
from artefix.data.io import Volume
from artefix.errors import OutputError
from artefix.models import build_model
from artefix.models.checkpoint import save_model
from artefix.models.registry import WEIGHTS_ENV

HEADS = ("bias", "subsampling", "motion", "noise")


@pytest.fixture(scope="module")
def corrected(tmp_path_factory):
    root = tmp_path_factory.mktemp("report")
    weights = root / "weights"
    weights.mkdir()
    save_model(build_model("tiny", seed=4), weights / "mt-lc-brain.safetensors", card={"description": "tiny"})
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :28]
    blob = np.exp(-(((yy - 16) / 8.0) ** 2 + ((xx - 14) / 6.0) ** 2))
    data = (blob[None] * np.linspace(50, 200, 12)[:, None, None] + rng.random((12, 32, 28)) * 5).astype(np.float32)
    data[5] += 40 * rng.standard_normal((32, 28)).astype(np.float32)  # one much noisier slice
    source = root / "scan.npy"
    np.save(source, data)
    mp = pytest.MonkeyPatch()
    mp.setenv(WEIGHTS_ENV, str(weights))
    try:
        run = correct_file(source, root / "out.npy", residuals=root / "res", report=root / "qc.html", axis=0)
    finally:
        mp.undo()
    return run, data


def test_html_is_self_contained(corrected):
    run, _ = corrected
    text = run.report.read_text()
    assert text.startswith("<!DOCTYPE html>")
    assert 'src="http' not in text and "src='http" not in text and "<script" not in text and "<link" not in text
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', text)
    assert len(images) == 3  # per-slice plot, largest corrections, orthogonal view
    for b64 in images:
        assert base64.b64decode(b64)[:8] == b"\x89PNG\r\n\x1a\n"
    assert "mt-lc-brain" in text and run.model_card["sha256"] in text
    assert not list(run.report.parent.glob(".*tmp*"))


def test_json_matches_residual_volumes(corrected):
    run, data = corrected
    summary = json.loads(run.summary.read_text())
    assert summary["input"] == str(run.input) and summary["output"] == str(run.output)
    assert summary["model"]["name"] == "mt-lc-brain" and summary["model"]["sha256"] == run.model_card["sha256"]
    assert summary["axis"] == 0 and summary["slices"] == 12 and summary["applied"] == list(HEADS)
    timings = summary["timings_s"]
    stages = [timings[k] for k in ("read", "load_model", "correct", "write")]
    assert min(stages) >= 0 and sum(stages) <= timings["total"] + 1e-3  # disjoint stages within the whole run
    for head in HEADS:
        residual = np.load(summary["residuals"][head]).astype(np.float64)
        assert residual.shape == data.shape
        info = summary["artefacts"][head]
        np.testing.assert_allclose(info["per_slice"], np.abs(residual).mean(axis=(1, 2)), rtol=1e-5)
        assert info["mean_abs_residual"] == pytest.approx(np.abs(residual).mean(), rel=1e-5)
        assert set(info["flagged_slices"]) <= set(range(12))
    assert len(summary["largest_corrections"]) == 3
    per_slice_total = sum(np.array(summary["artefacts"][h]["per_slice"]) for h in HEADS)
    assert summary["largest_corrections"] == list(np.argsort(-per_slice_total)[:3])


def test_report_refuses_existing_files_and_leaves_nothing(corrected, tmp_path, monkeypatch):
    import artefix.correction.report as report

    run, data = corrected
    before = Volume(data)
    with pytest.raises(OutputError, match="exists"):
        write_report(run, before, before)
    run2 = type(run)(**{**run.__dict__, "report": tmp_path / "r.html", "summary": tmp_path / "r.json"})
    real_atomic = report.atomic_file
    uses = []

    def failing_second(path):
        uses.append(path)
        if len(uses) == 2:
            raise OutputError(f"{path}: disk full")
        return real_atomic(path)

    monkeypatch.setattr(report, "atomic_file", failing_second)
    with pytest.raises(OutputError, match="disk full"):
        write_report(run2, before, before)
    assert [p.name for p in uses] == ["r.json", "r.html"]
    assert list(tmp_path.iterdir()) == []  # the JSON written first was removed again
    monkeypatch.setattr(report, "atomic_file", real_atomic)
    created = write_report(run2, before, before)
    assert sorted(p.name for p in created) == ["r.html", "r.json"]


def test_orthogonal_planes_follow_the_affine():
    rng = np.random.default_rng(1)
    array = rng.random((6, 8, 10)).astype(np.float32)
    spacing = (1.0, 2.0, 3.0)
    ras = Volume(array, affine=np.diag([*spacing, 1.0]), format="nifti")
    names = [p[0] for p in orthogonal_planes(ras)]
    assert names == ["axial", "coronal", "sagittal"]
    axial, coronal, sagittal = (p[1] for p in orthogonal_planes(ras))
    np.testing.assert_array_equal(axial, array[:, :, 5].T)
    np.testing.assert_array_equal(coronal, array[:, 4, :].T)
    np.testing.assert_array_equal(sagittal, array[3, :, :].T)
    assert [p[2] for p in orthogonal_planes(ras)] == [2.0, 3.0, 1.5]
    wide = Volume(array, affine=np.diag([2.0, 3.0, 4.0, 1.0]), format="nifti")
    assert [p[2] for p in orthogonal_planes(wide)] == [1.5, 2.0, 4.0 / 3.0]  # row over column spacing
    # the same anatomy stored LPS (first two voxel axes flipped) gives the same planes
    lps = np.array([[-1.0, 0, 0, 5], [0, -2, 0, 14], [0, 0, 3, 0], [0, 0, 0, 1]])  # voxel (i, j) -> (5 - i, 7 - j)
    flipped = Volume(array[::-1, ::-1].copy(), affine=lps, format="nifti")
    for (n1, p1, a1), (n2, p2, a2) in zip(orthogonal_planes(ras), orthogonal_planes(flipped), strict=True):
        assert n1 == n2 and a1 == a2
        np.testing.assert_array_equal(p1, p2)
    # a slice axis stored first (sagittal acquisition): axes permuted by the affine
    perm = Volume(np.ascontiguousarray(np.moveaxis(array, 2, 0)), affine=np.eye(4)[[2, 0, 1, 3]].T, format="nifti")
    np.testing.assert_array_equal(orthogonal_planes(perm)[0][1], array[:, :, 5].T)


def test_gated_model_reports_its_detection_scores(tmp_path, monkeypatch):
    weights = tmp_path / "weights"
    weights.mkdir()
    save_model(build_model("tiny", seed=2, gates=True), weights / "mt-lc-brain.safetensors", card={})
    data = np.random.default_rng(1).random((5, 32, 28)).astype(np.float32) + 1
    np.save(tmp_path / "scan.npy", data)
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    run = correct_file(tmp_path / "scan.npy", tmp_path / "out.npy", report=tmp_path / "qc.html", axis=0)
    summary = json.loads(run.summary.read_text())
    scores = [summary["artefacts"][h]["detection_mean"] for h in HEADS]
    assert all(0 < s < 1 for s in scores)
    text = run.report.read_text()
    assert "<th>detection</th>" in text and f"<td>{scores[0]:.2f}</td>" in text


def test_difference_and_residual_maps_have_a_colour_scale(corrected):
    from artefix.correction.report import largest_corrections_figure

    run, _ = corrected
    fig = largest_corrections_figure(run)
    labels = [ax.get_ylabel() for ax in fig.axes]
    rows = len(run.record.snapshots)
    assert labels.count("change (input units)") == rows and labels.count("intensity") == rows


def test_a_single_slice_gets_bars_and_one_plane_not_a_point_and_slivers(tmp_path, monkeypatch):
    from artefix.correction.report import residual_profile_figure

    weights = tmp_path / "weights"
    weights.mkdir()
    save_model(build_model("tiny", seed=4), weights / "mt-lc-brain.safetensors", card={"description": "tiny"})
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    yy, xx = np.mgrid[:32, :28]
    image = (100 * np.exp(-(((yy - 16) / 8.0) ** 2 + ((xx - 14) / 6.0) ** 2)))[..., None].astype(np.float32)
    np.save(tmp_path / "one.npy", image)  # (H, W, 1): one slice stored as 3D
    run = correct_file(tmp_path / "one.npy", tmp_path / "out.npy", report=tmp_path / "qc.html")
    fig = residual_profile_figure(run)
    assert len(fig.axes[0].patches) == len(HEADS) and not fig.axes[0].lines  # bars, no one-point profile
    planes = orthogonal_planes(Volume(image))
    assert len(planes) == 1 and planes[0][1].shape == (32, 28)
    html_text = run.report.read_text()
    assert html_text.count("data:image/png;base64,") == 3


def test_the_model_card_is_summarised_in_words_with_the_json_folded_away(corrected):
    from artefix.correction.report import card_facts

    run, _ = corrected
    text = run.report.read_text()
    facts = dict(card_facts(run.model_card))
    assert facts["name"] == "mt-lc-brain" and facts["what it does"] == "tiny"
    assert facts["heads"] == ", ".join(HEADS) and facts["size"].endswith("parameters (preset n/a)")
    assert "<th>what it does</th><td>tiny</td>" in text
    assert text.index("<details><summary>Full model card (JSON)</summary>") > text.index("<th>heads</th>")
    shipped = json.loads((Path(artefix.__file__).parent / "weights" / "mt-lc-brain.json").read_text())
    steps = dict(card_facts(shipped))["at inference"]
    assert "k-space data consistency" in steps and "noise head faded out from 9 to 11 dB" in steps


def test_planes_of_images_one_slice_volumes_and_volumes_without_geometry():
    from artefix.correction.report import _window

    image = np.arange(12.0).reshape(3, 4)
    [(name, plane, aspect)] = orthogonal_planes(Volume(image, spacing=(2.0, 0.5)))
    assert name == "slice" and aspect == 4.0
    np.testing.assert_array_equal(plane, image[::-1])
    for one in (image[None], image[:, None], image[:, :, None]):  # one slice stored as 3D, on any axis
        [(name, plane, _)] = orthogonal_planes(Volume(one))
        assert name == "slice" and plane.shape == image.shape
    [(name, plane, _)] = orthogonal_planes(Volume(image[:1]))  # a 2D image of one row stays an image
    assert name == "slice" and plane.shape == (1, 4)
    [(_, _, aspect)] = orthogonal_planes(Volume(image[:, None], spacing=(2.0, 7.0, 0.5)))
    assert aspect == 4.0  # the spacing of the one-slice axis is dropped with it
    array = np.random.default_rng(2).random((5, 6, 7)).astype(np.float32)
    planes = orthogonal_planes(Volume(array, spacing=(1.0, 2.0, 4.0), format="npy"))
    assert [p[0] for p in planes] == ["axis 0 centre", "axis 1 centre", "axis 2 centre"]
    np.testing.assert_array_equal(planes[0][1], array[2][::-1])
    np.testing.assert_array_equal(planes[1][1], array[:, 3][::-1])
    np.testing.assert_array_equal(planes[2][1], array[:, :, 3][::-1])
    assert [p[2] for p in planes] == [0.5, 0.25, 0.5]
    # a spacing that does not match the array (changed after the volume was built): square pixels
    changed = Volume(array, spacing=(1.0, 2.0, 4.0), format="npz")
    changed.spacing = (1.0, 2.0)
    assert [p[2] for p in orthogonal_planes(changed)] == [1.0, 1.0, 1.0]
    changed.spacing = (1.0, 2.0, 4.0, 8.0)  # too long as well
    assert [p[2] for p in orthogonal_planes(changed)] == [1.0, 1.0, 1.0]
    flat = Volume(image, spacing=(2.0, 0.5))
    flat.spacing = (2.0, 0.5, 9.0)
    assert orthogonal_planes(flat)[0][2] == 1.0
    assert _window(np.full((4, 4), 3.0)) == (3.0, 4.0)  # a flat image gets a unit window
    ramp = np.linspace(0.0, 1000.0, 1001)
    assert _window(ramp) == pytest.approx((5.0, 995.0))


def test_card_facts_in_words():
    from artefix.correction.report import card_facts, card_table

    assert card_facts({}) == [("name", "unnamed")]
    card = {
        "name": "mt-lc-brain",
        "description": "multi-task <model>",
        "heads": ["bias", "noise"],
        "parameters": 1234567,
        "preset": "paper",
        "matrix": [256, 256],
        "inference": {"ensemble": 2, "noise_snr": [9.0, 12.0]},
        "epochs": 30,
        "wall_time_s": 5400,
        "licences": {"IXI": "CC BY-SA 3.0"},
        "sha256": "ab12",
    }
    assert card_facts(card) == [
        ("name", "mt-lc-brain"),
        ("what it does", "multi-task <model>"),
        ("heads", "bias, noise"),
        ("size", "1,234,567 parameters (preset paper)"),
        ("runs at", "256 x 256 pixels per slice (the training matrix)"),
        ("at inference", "noise head faded out from 9 to 12 dB estimated SNR; self-ensemble of 2"),
        ("trained", "30 epochs, 90 min"),
        ("training data", "IXI (CC BY-SA 3.0)"),
        ("weights sha256", "ab12"),
    ]
    assert ("size", "10 parameters (preset n/a)") in card_facts({"parameters": 10})
    assert [k for k, _ in card_facts({"epochs": 3, "licences": [], "inference": {"ensemble": 3}})] == ["name"]
    assert card_table({"name": "a<b"}) == "<table><tr><th>name</th><td>a&lt;b</td></tr></table>"
