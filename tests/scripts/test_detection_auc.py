"""Smoke test of ``benchmarks/detection_auc.py`` (loaded by path: benchmarks/ is not a package)."""

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pytest

from artefix.evaluation.experiments import EvalSlice

PATH = Path(__file__).resolve().parents[2] / "benchmarks" / "detection_auc.py"


@pytest.fixture()
def bench():
    spec = importlib.util.spec_from_file_location("detection_auc", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_auc_counts_ties_half_and_matches_the_rank_fallback(bench, monkeypatch):
    neg, pos = [0.1, 0.2, 0.3, 0.3], [0.3, 0.4, 0.5]
    expected = (3 * 4 - 1) / 12  # every pair ordered except the two ties with 0.3, each worth one half
    assert bench.auc(neg, pos) == pytest.approx(expected)
    real = bench.importlib.util.find_spec
    monkeypatch.setattr(
        bench.importlib.util, "find_spec", lambda name, *a: None if name == "sklearn" else real(name, *a)
    )
    monkeypatch.setitem(sys.modules, "sklearn.metrics", None)  # an import would now fail
    assert bench.auc(neg, pos) == pytest.approx(expected)
    assert np.isnan(bench.auc([], pos))


def test_tables_from_the_shipped_detector_on_two_slices(bench):
    from artefix.models.registry import DEFAULT_MODEL, list_models, load_named_model

    if DEFAULT_MODEL not in {m.name for m in list_models()}:
        pytest.skip(f"{DEFAULT_MODEL} is not installed")
    model, card = load_named_model(DEFAULT_MODEL)
    yy, xx = np.mgrid[:64, :64]
    disc = ((yy - 32) ** 2 + (xx - 30) ** 2 < 24**2).astype(np.float32)
    slices = [
        EvalSlice("a/x.nii.gz", "a/x.nii.gz", k, disc * (1.0 + 0.2 * k + 0.1 * np.sin(xx / 5.0)).astype(np.float32))
        for k in range(2)
    ]
    results = bench.collect(slices, model, card, seed=1)
    assert list(results) == bench.conditions() and len(results) == 13
    assert all(rows.shape == (2, len(model.head_names) + 4) and np.isfinite(rows).all() for rows in results.values())
    text = bench.tables(results, model.head_names, model.policy.noise_snr, ["a", "a"])
    assert text.count("\n| noise | ") == 3 and "| a | 2 |" in text
    # the severity estimates: the clean disc is measured edge to edge (class x1); x2 keeps about half of each axis
    assert "| clean | 2 | acceleration | 1.00 | - | 0.00 | 100% in class x1 |" in text
    assert "| subsampling 2 | 2 | acceleration | 1.94 | - | 0.06 | 100% in class x2 |" in text
    assert "| clean | 2 | SNR dB | 240.0 | - | - | min 240.0 dB |" in text  # no noise at all: the finite cap
    # each noise level twice: the noise-corrected SNR that qc reports and the gate's, which reads higher
    assert text.count("within 1.5 dB |") == 6 and text.count("| gate SNR dB |") == 3
    assert text.count("| acceleration |") == 4
