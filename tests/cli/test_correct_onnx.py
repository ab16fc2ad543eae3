"""``artefix correct --runtime onnx``: the correction through ONNX Runtime equals the torch path."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from artefix.cli import main
from artefix.models import build_model
from artefix.models.checkpoint import save_model

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript")

pytestmark = pytest.mark.filterwarnings("ignore")  # torch.export / onnxscript notices


def run(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["artefix", "correct", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


@pytest.fixture(scope="module")
def volume(tmp_path_factory):
    """Three 64x64 slices of a real scan (brain-t2, Fourier-resized), a noisier copy among them."""
    import artefix
    from artefix.fft import fourier_resize

    base = fourier_resize(np.asarray(artefix.load_sample("brain-t2"), dtype=np.float64), (64, 64)).real
    rng = np.random.default_rng(0)
    stack = np.stack([base, base.T, base + rng.normal(0, 0.05 * base.std(), base.shape)], axis=-1)
    path = tmp_path_factory.mktemp("scan") / "scan.npy"
    np.save(path, stack.astype(np.float32))
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Tiny models, one strided level and one convolution a block: each onnx run exports its graph, in half the time."""
    folder = tmp_path_factory.mktemp("weights")
    plain = folder / "plain.safetensors"
    small = {"depth": 1, "convs_per_block": 1}
    save_model(build_model("tiny", seed=5, **small), plain, card={"description": "tiny test"})
    gated = folder / "gated.safetensors"
    model = build_model("tiny", seed=7, gates=True, consistency=True, noise_snr=(10.0, 40.0), **small)
    save_model(model, gated, card={"description": "tiny test, gates and SNR gate"})
    return {"plain": plain, "gated": gated}


@pytest.mark.parametrize(("name", "scope"), [("plain", "scan"), ("gated", "scan"), ("gated", "slice")])
def test_onnx_runtime_matches_torch(tmp_path, monkeypatch, capsys, volume, models, name, scope):
    outputs = {}
    for runtime in ("torch", "onnx"):
        out = tmp_path / f"{runtime}.npy"
        args = [volume, out, "--model", models[name], "--runtime", runtime, "--snr-scope", scope, "-q"]
        code, _, err = run(args, monkeypatch, capsys)
        assert code == 0, err
        outputs[runtime] = np.load(out)
    scale = float(np.abs(outputs["torch"]).max())
    assert not np.allclose(outputs["torch"], np.load(volume))  # the model did correct something
    np.testing.assert_allclose(outputs["onnx"] / scale, outputs["torch"] / scale, rtol=0, atol=1e-4)


def test_bad_runtime_is_a_usage_error(tmp_path, monkeypatch, capsys, volume, models):
    code, _, err = run([volume, tmp_path / "o.npy", "--model", models["plain"], "--runtime", "tf"], monkeypatch, capsys)
    assert code == 2
    assert "--runtime" in err and "tf" in err


def test_onnx_runtime_refused_for_many_scans(tmp_path, monkeypatch, capsys, volume, models):
    args = [volume, "--out-dir", tmp_path / "out", "--model", models["plain"], "--runtime", "onnx"]
    code, _, err = run(args, monkeypatch, capsys)
    assert code != 0
    assert "--runtime onnx" in err and len(err.strip().splitlines()) == 1


def test_missing_onnxruntime_is_one_line(tmp_path, monkeypatch, capsys, volume, models):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import fails
    code, _, err = run(
        [volume, tmp_path / "o.npy", "--model", models["plain"], "--runtime", "onnx"], monkeypatch, capsys
    )
    assert code != 0
    assert "artefix[export]" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.npy").exists()
