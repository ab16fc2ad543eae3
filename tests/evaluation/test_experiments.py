"""The evaluation runner: slice choice, seeds, corruptions, method plans, statistics, end to end."""

from __future__ import annotations

import math
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

import artefix
from artefix.artefacts.base import znorm
from artefix.artefacts.subsampling import centre_crop_kspace_image
from artefix.errors import InputError
from artefix.evaluation import experiments as ex
from artefix.evaluation.experiments import (
    SCENARIOS,
    corruption_rng,
    evaluate,
    load_slices,
    make_case,
    plan_methods,
    resolve_experiments,
    select_positions,
    severities_of,
    summarise_rows,
)
from artefix.evaluation.methods import MethodSpec, ModelPool, ModelSpec, apply_method, model_spec
from artefix.evaluation.metrics import METRICS, compute_metrics
from artefix.evaluation.stats import summarise
from artefix.fft import fourier_resize
from artefix.models import build_model, build_single_task_model
from artefix.models.checkpoint import save_model


def _slice(name: str, n: int = 64) -> np.ndarray:
    return np.abs(np.asarray(fourier_resize(artefix.load_sample(name).astype(np.float64), (n, n))))


@pytest.fixture(scope="module")
def volume(tmp_path_factory) -> Path:
    """A 64x64x4 NIfTI of the built-in brain slices (all pass the foreground filter)."""
    imgs = [_slice(n) for n in ("brain-t1", "brain-t2", "brain-flair")]
    vol = np.stack([*imgs, 0.8 * imgs[0]], axis=-1).astype(np.float32)
    path = tmp_path_factory.mktemp("data") / "vol.nii.gz"
    nib.save(nib.Nifti1Image(vol, np.diag([0.9, 0.9, 3.0, 1.0])), path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("models")
    return {
        "mt": save_model(build_model("tiny", seed=0), folder / "mt-tiny.safetensors"),
        "noise": save_model(build_single_task_model("noise", "tiny", seed=1), folder / "noise-tiny.safetensors"),
        "bias": save_model(build_single_task_model("bias", "tiny", seed=2), folder / "bias-tiny.safetensors"),
    }


# ---------------------------------------------------------------------------------------------- units


def test_select_positions_bin_centres():
    assert select_positions(48, 2) == [12, 36]
    assert select_positions(10, 4) == [1, 3, 6, 8]
    assert select_positions(5, None) == [0, 1, 2, 3, 4]
    assert select_positions(3, 7) == [0, 1, 2]
    with pytest.raises(ValueError, match="must be >= 1"):
        select_positions(5, 0)


def test_resolve_experiments_expands_multi_and_rejects_unknown():
    assert resolve_experiments(["multi", "noise"]) == ("noise", "subsampling+motion", "noise+bias")
    assert resolve_experiments(["Bias", "bias"]) == ("bias",)
    with pytest.raises(InputError, match="unknown experiment 'blur'"):
        resolve_experiments(["blur"])
    with pytest.raises(InputError, match="no experiment"):
        resolve_experiments([])


def test_severities_are_the_simulators_evaluation_levels():
    assert severities_of("bias") == (0.05, 0.1, 0.2)
    assert severities_of("subsampling") == (2.0, 3.0, 4.0)
    assert severities_of("motion") == (0.25, 0.125, 0.05)
    assert severities_of("noise") == (5.0, 0.0, -5.0)
    assert all(severities_of(s) == (None,) for s in SCENARIOS)


def test_corruption_rng_is_stable_and_depends_on_every_field():
    state = np.random.get_state()[1].copy()
    base = (0, "eval", "noise", 5.0, "p/a.nii.gz", 3)
    first = corruption_rng(*base).integers(0, 2**62, 4)
    assert np.array_equal(first, corruption_rng(*base).integers(0, 2**62, 4))
    for k, other in enumerate((1, "tune", "bias", 0.0, "p/b.nii.gz", 4)):
        changed = list(base)
        changed[k] = other
        assert not np.array_equal(first, corruption_rng(*changed).integers(0, 2**62, 4)), k
    assert np.array_equal(state, np.random.get_state()[1])


def test_subsampling_case_is_the_zero_filled_lowres_image():
    clean = _slice("brain-t1", 60).astype(np.float32)
    case = make_case(clean, "subsampling", 3.0, np.random.default_rng(0))
    assert case.lowres.shape == (20, 20)
    low = centre_crop_kspace_image(clean, 3.0)
    tol = 1e-6 * float(clean.max())  # float32 round-off
    np.testing.assert_allclose(case.lowres, np.abs(low), atol=tol)
    # The centred mask keeps exactly the low-resolution k-space: zero-filled = |upsampled low-res|.
    np.testing.assert_allclose(case.corrupted, np.abs(fourier_resize(low, (60, 60))), atol=tol)


def test_noise_case_snr_and_scenario_order_is_random():
    clean = _slice("brain-t1", 64).astype(np.float32)
    case = make_case(clean, "noise", 0.0, np.random.default_rng(1))
    k_signal = np.mean(np.abs(np.fft.fft2(clean, norm="ortho")))
    sigma = np.std(case.corrupted[:6, :6])  # background: Rayleigh with scale = noise std
    # Rayleigh std = sigma_n sqrt(2 - pi/2); SNR = 20 log10(S / sigma_n) = 0 dB -> sigma_n = S.
    assert sigma / math.sqrt(2 - math.pi / 2) == pytest.approx(k_signal, rel=0.5)
    a = make_case(clean, "noise+bias", None, np.random.default_rng(5)).corrupted
    b = make_case(clean, "noise+bias", None, np.random.default_rng(5)).corrupted
    assert np.array_equal(a, b) and not np.allclose(a, clean)
    with pytest.raises(ValueError, match="needs a severity"):
        make_case(clean, "noise", None, np.random.default_rng(0))


def _spec(name, heads):
    return ModelSpec(name, f"/x/{name}.safetensors", heads)


def test_plan_methods_rows_chains_and_skips(monkeypatch):
    mt = _spec("mt", ("bias", "subsampling", "motion", "noise"))
    noise, bias, motion = _spec("noise-m", ("noise",)), _spec("bias-m", ("bias",)), _spec("motion-m", ("motion",))
    monkeypatch.setattr("artefix.evaluation.baselines.available", lambda name: not name.startswith("bm3d"))
    plan, notes = plan_methods(
        ["noise", "noise+bias", "bias"], [mt, noise, bias, motion], settings={"cad": {"conductance": 2.0}}
    )
    assert [m.name for m in plan["noise"]] == ["input", "cad", "noise-m", "mt"]
    assert plan["noise"][1].settings == (("conductance", 2.0),)
    assert [m.name for m in plan["bias"]] == ["input", "n4", "n4-paper", "bfc", "bias-m", "mt"]
    rows = {m.name: m for m in plan["noise+bias"]}
    assert list(rows) == ["input", "noise-m", "bias-m", "bias-m>noise-m", "noise-m>bias-m", "mt"]
    assert rows["bias-m>noise-m"].parts == ("bias-m", "noise-m")
    assert any("bm3d, bm3d-paper" in n and "artefix[bm3d]" in n for n in notes)
    assert any("motion-m" in n for n in notes)
    plan, _ = plan_methods(["noise"], [], baselines=["cad"])
    assert [m.name for m in plan["noise"]] == ["input", "cad"]


def test_method_spec_validates_parts():
    with pytest.raises(ValueError, match="needs 2 part"):
        MethodSpec("a>b", "sequential", ("a",))
    with pytest.raises(ValueError, match="kind must be"):
        MethodSpec("x", "magic")


def test_summarise_rows_matches_stats_and_drops_non_finite_slices():
    rng = np.random.default_rng(0)
    scores = rng.random((6, 3))
    scores[:, 2] += 0.5
    rows = []
    for i in range(6):
        for j, m in enumerate(("input", "a", "b")):
            for metric in METRICS:
                value = float(scores[i, j])
                if metric == "psnr" and i == 0 and m == "a":
                    value = None
                rows.append(
                    dict(file="f", slice=i, experiment="noise", severity=5.0, method=m, metric=metric, value=value)
                )
    out = summarise_rows(rows, {"noise": ("input", "a", "b")}, {"noise": (5.0,)})
    assert len(out) == 3 * len(METRICS)
    ssim = [r for r in out if r["metric"] == "ssim"]
    expected = summarise(scores, ["input", "a", "b"], False)
    for got, want in zip(ssim, expected, strict=True):
        assert got["method"] == want["method"] and got["bold"] == want["bold"]
        assert got["mean"] == pytest.approx(want["mean"]) and got["sem"] == pytest.approx(want["sem"])
        assert got["n"] == 6
    psnr = [r for r in out if r["metric"] == "psnr"]
    assert {r["n"] for r in psnr} == {5}
    assert psnr[0]["mean"] == pytest.approx(scores[1:, 0].mean())


def test_load_slices_native_and_matrix(volume):
    files = [volume]
    slices, tune, where = load_slices(files, max_slices=2, tune_slices=1)
    assert [s.index for s in slices] == [1, 3] and [s.index for s in tune] == [2]
    assert "not evaluated" in where
    assert slices[0].image.shape == (64, 64) and slices[0].image.min() >= 0
    assert slices[0].key == f"{volume.parent.name}/vol.nii.gz"
    assert slices[0].spacing == pytest.approx((0.9, 0.9))
    sized, tune, where = load_slices(files, max_slices=None, matrix=48, tune_slices=2)
    assert len(sized) == 4 and sized[0].image.shape == (48, 48)
    assert sized[0].spacing == pytest.approx((1.2, 1.2))
    assert [t.index for t in tune] == [0, 1] and "independent corruptions" in where
    with pytest.raises(InputError, match="too small for VIF"):
        load_slices(files, matrix=32)


# ---------------------------------------------------------------------------------------------- models


def test_model_method_and_chain(models):
    spec = model_spec(str(models["mt"]))
    assert spec.name == "mt-tiny" and spec.heads == ("bias", "subsampling", "motion", "noise") and spec.multi_task
    single = model_spec(str(models["noise"]))
    pool = ModelPool({spec.name: spec, single.name: single})
    clean = _slice("brain-t2", 48).astype(np.float32)
    case = make_case(clean, "noise", 0.0, np.random.default_rng(2))
    out = apply_method(MethodSpec("mt-tiny", "model", ("mt-tiny",)), case, pool)
    assert set(out.residuals) == set(spec.heads)
    u = znorm(case.corrupted.astype(np.float64))
    # The output is Znorm(u + sum of the residuals).
    np.testing.assert_allclose(out.image, znorm(u + sum(out.residuals.values())), atol=2e-4)
    chain = apply_method(MethodSpec("noise-tiny>mt-tiny", "sequential", ("noise-tiny", "mt-tiny")), case, pool)
    first, _ = pool.run("noise-tiny", case.corrupted, (1.0, 1.0))
    second, _ = pool.run("mt-tiny", first, (1.0, 1.0))
    np.testing.assert_array_equal(chain.image, second)
    with pytest.raises(ValueError, match="no ModelPool"):
        apply_method(MethodSpec("mt-tiny", "model", ("mt-tiny",)), case)


def test_a_model_can_be_labelled(models, tmp_path):
    spec = model_spec(f"mt-seed3={models['mt']}")
    assert spec.name == "mt-seed3" and spec.path == str(models["mt"]) and spec.multi_task
    for bad in (f"={models['mt']}", "mt-seed3=", f"two words={models['mt']}"):
        with pytest.raises(InputError, match="LABEL=MODEL"):
            model_spec(bad)
    odd = tmp_path / "a=b.safetensors"  # a file whose name holds '=' stays a path
    odd.write_bytes(Path(models["mt"]).read_bytes())
    assert model_spec(str(odd)).name == "a=b"


def test_model_pool_applies_the_self_ensemble(models):
    spec = model_spec(str(models["mt"]))
    plain, ensemble = ModelPool({spec.name: spec}), ModelPool({spec.name: spec}, ensemble=8)
    assert plain.get(spec.name)[1].ensemble == 1 and ensemble.get(spec.name)[1].ensemble == 8
    assert plain.get(spec.name)[0].policy.ensemble == 1  # the loaded model itself is not switched
    clean = _slice("brain-t2", 48).astype(np.float32)
    corrupted = make_case(clean, "noise", 0.0, np.random.default_rng(4)).corrupted
    one, _ = plain.run(spec.name, corrupted, (1.0, 1.0))
    eight, _ = ensemble.run(spec.name, corrupted, (1.0, 1.0))
    assert not np.allclose(one, eight, atol=1e-4)
    with pytest.raises(InputError, match="ensemble must be one of"):
        evaluate([Path("nowhere")], models=[str(models["mt"])], ensemble=3)


def test_bm3d_is_deterministic_inside_the_thread_guard():
    pytest.importorskip("bm3d")
    from artefix.evaluation.baselines import bm3d

    noisy = make_case(_slice("brain-t1", 48).astype(np.float32), "noise", 0.0, np.random.default_rng(3)).corrupted
    with ex._threads(1):
        a, b = bm3d(noisy), bm3d(noisy)
    np.testing.assert_array_equal(a, b)


# ------------------------------------------------------------------------------------------ end to end


def test_evaluate_notes_the_self_ensemble(volume, models):
    result = evaluate(
        [volume], experiments=["noise"], models=[str(models["mt"])], baselines=[], max_slices=1, ensemble=2
    )
    assert result.settings["ensemble"] == 2
    assert any("over 2 flips/transposes" in note for note in result.notes)


@pytest.mark.slow
def test_evaluate_bias_subsampling_motion_end_to_end(volume, models):
    calls = []
    result = evaluate(
        [volume],
        experiments=["bias", "subsampling", "motion"],
        models=[str(models["mt"]), str(models["bias"])],
        max_slices=2,
        tune_slices=1,
        progress=lambda d, t: calls.append((d, t)),
    )
    assert result.methods["bias"] == ("input", "n4", "n4-paper", "bfc", "bias-tiny", "mt-tiny")
    assert result.methods["subsampling"] == ("input", "zero-filled", "bicubic", "tv-sr", "mt-tiny")
    assert result.methods["motion"] == ("input", "tv", "tv-paper", "mt-tiny")
    runs = 2 * 3 * (6 + 5 + 4)
    assert calls[-1] == (runs, runs) and calls[0] == (0, runs)
    assert len(result.per_slice) == runs * len(METRICS)
    assert result.summary == summarise_rows(result.per_slice, result.methods, result.severities)
    assert result.settings["tuned"]["tv"]["weight"] > 0
    assert any("implicitly trained" in n for n in result.notes) and any("UniRes" in n for n in result.notes)
    # The corrupted image is the zero-filled reconstruction: identical scores.
    values = {(r["slice"], r["severity"], r["method"], r["metric"]): r["value"] for r in result.per_slice}
    for (sl, sev, method, metric), v in values.items():
        if method == "zero-filled":
            assert v == values[(sl, sev, "input", metric)]
    # The "input" row is exactly the seeded corruption scored against the clean slice.
    slices, _, _ = load_slices([volume], max_slices=2, tune_slices=0)
    s = slices[0]
    case = make_case(s.image, "motion", 0.05, corruption_rng(0, "eval", "motion", 0.05, s.key, s.index))
    want = compute_metrics(znorm(s.image.astype(np.float64)), znorm(case.corrupted.astype(np.float64)))
    for metric, v in want.items():
        assert values[(s.index, 0.05, "input", metric)] == pytest.approx(v, rel=1e-12)
    # Motion removes high-frequency energy and bias is mild: the input of 5 % bias beats 5 % clean motion.
    mean = {(r["experiment"], r["severity"], r["method"], r["metric"]): r["mean"] for r in result.summary}
    assert mean[("bias", 0.05, "input", "ssim")] > mean[("motion", 0.05, "input", "ssim")]
    assert {r["model"] for r in result.residuals} == {"mt-tiny", "bias-tiny"}
    assert [len(ex_.images) for ex_ in result.examples["bias"]] == [7, 7, 7]


def test_evaluate_rejects_bad_arguments(volume, models, tmp_path):
    with pytest.raises(InputError, match="unknown method"):
        evaluate([volume], experiments=["noise"], baselines=["magic"], models=[])
    with pytest.raises(InputError, match="not found"):
        evaluate([volume], experiments=["noise"], models=["./missing.safetensors"])
    with pytest.raises(InputError, match="jobs must be"):
        evaluate([volume], experiments=["noise"], models=[], jobs=0)
    with pytest.raises(InputError, match="share a name"):
        evaluate([volume], experiments=["noise"], models=[str(models["mt"]), str(models["mt"])])
    clash = save_model(build_model("tiny", seed=0), tmp_path / "cad.safetensors")
    with pytest.raises(InputError, match="clash with method names"):
        evaluate([volume], experiments=["noise"], models=[str(clash)])


@pytest.mark.shared_data
def test_evaluate_real_volume_subsampling(shared_data):
    scan = shared_data / "open_ms_data_ljubljana_longitudinal" / "patient04" / "study1_T1W.nii.gz"
    result = evaluate([scan], experiments=["subsampling"], models=[], max_slices=2, matrix=64)
    assert result.settings["n_slices"] == 2
    mean = {(r["severity"], r["method"], r["metric"]): r["mean"] for r in result.summary}
    # Each step from x2 to x4 drops more of k-space: the zero-filled error grows, its similarity falls.
    assert mean[(2.0, "input", "mse")] < mean[(3.0, "input", "mse")] < mean[(4.0, "input", "mse")]
    assert mean[(2.0, "input", "ssim")] > mean[(3.0, "input", "ssim")] > mean[(4.0, "input", "ssim")]
    assert all(mean[(s, "zero-filled", "mse")] == mean[(s, "input", "mse")] for s in (2.0, 3.0, 4.0))
