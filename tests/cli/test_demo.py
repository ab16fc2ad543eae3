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
