"""``artefix demo``: figures, SSIM/VIF table and the z-space identity of the corrections, with a tiny model."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

import artefix.data.samples as samples
from artefix.artefacts.base import znorm
from artefix.cli import main
from artefix.demo import DEMO_CASES, run_demo
from artefix.errors import InputError, OutputError
from artefix.fft import fourier_resize
from artefix.models import build_model
from artefix.models.checkpoint import save_model
from artefix.models.registry import WEIGHTS_ENV

SIZE = (96, 96)  # the demo runs at 320x320; a Fourier-downsized sample keeps this test fast


@pytest.fixture()
def small_sample(monkeypatch):
    real = samples.load_sample

    def small(name="brain-t1"):
        return fourier_resize(real(name).astype(np.float64), SIZE).astype(np.float32)

    monkeypatch.setattr(samples, "load_sample", small)


@pytest.fixture()
def env(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("weights")
    save_model(build_model("tiny", seed=2), folder / "mt-lc-brain.safetensors", card={"description": "tiny"})
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    return folder


def test_demo_writes_figures_and_returns_the_table(env, small_sample, tmp_path):
    out = tmp_path / "demo"
    result = run_demo(out, seed=1)
    assert result.figure.read_bytes()[:4] == b"\x89PNG" and result.residual_figure.read_bytes()[:4] == b"\x89PNG"
    assert sorted(p.name for p in out.iterdir()) == ["demo_corrections.png", "demo_metrics.json", "demo_residuals.png"]
    assert [r.case for r in result.rows] == [c.name for c in DEMO_CASES]
    saved = json.loads(result.metrics.read_text())
    assert saved["metrics"][0]["ssim_corrupted"] == pytest.approx(result.rows[0].ssim_corrupted)
    assert saved["model"]["name"] == "mt-lc-brain" and len(saved["model"]["sha256"]) == 64
    for row in result.rows:
        assert 0 < row.ssim_corrupted < 1 and 0 < row.vif_corrupted < 1  # every case really corrupts the slice
        assert np.isfinite([row.ssim_corrected, row.vif_corrected]).all()
    # noise at 0 dB is the strongest corruption of the single-artefact cases in SSIM
    by_case = {r.case: r for r in result.rows}
    assert by_case["noise"].ssim_corrupted < by_case["bias"].ssim_corrupted
    images = result.images
    assert images["residuals"].shape == (5, 4, *SIZE) and images["corrected"].shape == (5, *SIZE)
    # z-space identity of the correction: Znorm(corrected) = Znorm(Znorm(corrupted) + sum_i p_i)
    expected = znorm(images["corrupted"] + images["residuals"].sum(axis=1))
    np.testing.assert_allclose(images["corrected"], expected, atol=1e-4)


def test_demo_refuses_to_overwrite_and_needs_a_model(env, small_sample, tmp_path, monkeypatch):
    out = tmp_path / "demo"
    out.mkdir()
    (out / "demo_corrections.png").write_bytes(b"old")
    with pytest.raises(OutputError, match="exists"):
        run_demo(out)
    assert (out / "demo_corrections.png").read_bytes() == b"old" and len(list(out.iterdir())) == 1
    monkeypatch.setenv(WEIGHTS_ENV, str(tmp_path))
    with pytest.raises(InputError, match="mt-lc-brain"):
        run_demo(tmp_path / "other")
    assert not (tmp_path / "other").exists()


def test_demo_cli_prints_the_table(env, small_sample, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "160")
    model = env / "mt-lc-brain.safetensors"
    monkeypatch.setattr(sys, "argv", ["artefix", "demo", "--out", str(tmp_path / "d"), "--model", str(model)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr().out
    assert (exc.value.code or 0) == 0
    for word in ("SSIM corrupted", "VIF corrected", "all four", "subsampling"):
        assert word in out
    assert (tmp_path / "d" / "demo_metrics.json").is_file()


def test_each_demo_case_gates_its_noise_correction_on_its_own_snr(
    tmp_path_factory, small_sample, monkeypatch, tmp_path
):
    """The five cases are unrelated slices: the clean-ish four must not switch the 0 dB case's denoising off."""
    folder = tmp_path_factory.mktemp("gated")
    model = build_model("tiny", seed=2, noise_snr=(9.0, 12.0))
    save_model(model, folder / "mt-lc-brain.safetensors", card={"description": "tiny, gated"})
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    result = run_demo(tmp_path / "demo", seed=1)
    noise = [c.name for c in DEMO_CASES].index("noise")
    assert np.abs(result.images["residuals"][noise, model.head_names.index("noise")]).max() > 0


def _record(detection, snr_db=None, noise_snr=None, heads=("bias", "subsampling", "motion", "noise")):
    from artefix.correction.record import CorrectionRecord

    n = len(detection)
    return CorrectionRecord(
        heads=heads,
        applied=heads,
        axis=0,
        shape=(n, 8, 8),
        work_shape=(8, 8),
        mean_abs_residual=np.zeros((n, len(heads))),
        slice_mean=np.zeros(n),
        slice_std=np.ones(n),
        constant_slices=(),
        detection=np.asarray(detection, dtype=float),
        snr_db=None if snr_db is None else np.asarray(snr_db, dtype=float),
        noise_snr=noise_snr,
    )


def test_case_notes_say_which_gate_held_a_correction_back_and_why():
    from artefix.demo import DemoCase, DemoRow, case_note

    motion, noise = DemoCase("motion", ("motion",), (0.125,)), DemoCase("noise", ("noise",), (0.0,))
    flat = DemoRow("x", 0.7, 0.701, 0.3, 0.3)
    better = DemoRow("x", 0.7, 0.8, 0.3, 0.35)
    record = _record([[0.0, 0.0, 0.03, 0.0], [0.0, 0.0, 0.9, 0.2]], snr_db=[30.0, 16.0], noise_snr=(14.0, 18.0))
    held = case_note(record, 0, motion, flat)
    assert "motion held back (gate 0.03)" in held and held.count("--no-gates") == 1 and "barely changed" in held
    assert case_note(record, 1, motion, better) == "motion found (0.90)"
    noisy = case_note(record, 1, noise, flat)
    assert "noise held back (gate 0.20; SNR 16.0 dB, the gate fades out from 14 to 18 dB" in noisy
    assert "SNR" not in case_note(_record([[0.0, 0.0, 0.0, 0.1]]), 0, noise, flat)  # no SNR gate: none named
    single = _record([[0.9]], heads=("bias",))
    assert case_note(single, 0, motion, better) == "motion: the model has no motion head"


def test_case_notes_say_when_no_truncated_kspace_was_found():
    from dataclasses import replace

    from artefix.demo import DemoCase, DemoRow, case_note

    sub = DemoCase("subsampling", ("subsampling",), (2.0,))
    flat = DemoRow("x", 0.9, 0.9, 0.5, 0.5)
    window = np.array([[1.0, 1.0], [0.5, 1.0]])  # slice 1 truncated to half of its rows
    record = replace(_record([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]]), kspace_window=window)
    assert case_note(record, 0, sub, flat).startswith("subsampling not applied: no truncated k-space found")
    assert "--no-gates" not in case_note(record, 0, sub, flat)
    assert "subsampling held back (gate 0.00)" in case_note(record, 1, sub, flat)
    assert "held back" in case_note(replace(record, kspace_window=None), 0, sub, flat)  # nobody looked


def test_demo_says_for_every_case_what_happened_to_each_artefact(small_sample, tmp_path):
    weights = tmp_path / "gated.safetensors"
    save_model(build_model("tiny", seed=2, gates=True), weights, card={"description": "tiny, gated"})
    result = run_demo(tmp_path / "demo", model=str(weights))
    for case, row in zip(DEMO_CASES, result.rows, strict=True):
        for artefact in case.artefacts:
            assert f"{artefact} found" in row.note or f"{artefact} held back" in row.note, row.note
    saved = json.loads(result.metrics.read_text())
    assert [m["note"] for m in saved["metrics"]] == [row.note for row in result.rows]
