"""``artefix export MODEL OUT.onnx``: the ONNX graph runs in onnxruntime as the torch model does."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

import artefix
from artefix.artefacts.base import znorm
from artefix.cli import main
from artefix.cli.export import parse_size
from artefix.errors import InputError
from artefix.fft import fourier_resize
from artefix.models import build_model
from artefix.models.checkpoint import save_model
from artefix.models.registry import WEIGHTS_ENV

pytest.importorskip("onnxscript", reason="ONNX export needs onnxscript")
ort = pytest.importorskip("onnxruntime")

SIZE = (64, 64)


@pytest.fixture()
def tiny(tmp_path_factory, monkeypatch):
    folder = tmp_path_factory.mktemp("weights")
    path = folder / "mt-lc-brain.safetensors"
    # one strided level, one convolution a block: the command is what is tested, and its ONNX export takes half the time
    save_model(build_model("tiny", seed=2, depth=1, convs_per_block=1), path, card={"description": "tiny"})
    monkeypatch.setenv(WEIGHTS_ENV, str(folder))
    return path


def _cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["artefix", "export", *args])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exc.value.code or 0, captured.out, captured.err


def test_export_runs_in_onnxruntime_like_torch(tiny, tmp_path, monkeypatch, capsys):
    out = tmp_path / "tiny.onnx"
    code, stdout, _ = _cli(monkeypatch, capsys, "mt-lc-brain", str(out), "--size", f"{SIZE[0]}x{SIZE[1]}")
    assert code == 0 and "wrote" in stdout and out.is_file()
    assert [p.name for p in tmp_path.iterdir()] == ["tiny.onnx"]  # no temporary file left
    image = fourier_resize(artefix.load_sample("brain-t2").astype(np.float64), SIZE)
    noisy = artefix.simulate(image.astype(np.float32), "noise", severity=5, seed=1)
    x = znorm(torch.from_numpy(np.stack([noisy, image.astype(np.float32)]))[:, None].float())  # real slices
    session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    output, residuals = session.run(["output", "residuals"], {"image": x.numpy()})
    model, _ = artefix.load_model(tiny)
    with torch.no_grad():
        eager = model(x)
    torch.testing.assert_close(torch.from_numpy(output), eager.output, atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.from_numpy(residuals), eager.residuals, atol=1e-4, rtol=0)
    # an existing output is refused without --overwrite, replaced with it
    code, _, err = _cli(monkeypatch, capsys, "mt-lc-brain", str(out), "--size", "64x64")
    assert code == 2 and "exists" in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("args", "match"),
    [
        (["no-such-model", "{tmp}/m.onnx"], "'no-such-model' is not installed"),
        (["mt-lc-brain", "{tmp}/missing/m.onnx"], "does not exist"),
        (["mt-lc-brain", "{tmp}/m.pt"], "must be an .onnx file"),
        (["mt-lc-brain", "{tmp}/m.onnx", "--size", "64"], "must be HxW"),
    ],
)
def test_bad_model_or_output_is_one_line(tiny, tmp_path, monkeypatch, capsys, args, match):
    code, _, err = _cli(monkeypatch, capsys, *(a.format(tmp=tmp_path) for a in args))
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("*.onnx"))


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_folder_is_refused(tiny, tmp_path, monkeypatch, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        code, _, err = _cli(monkeypatch, capsys, "mt-lc-brain", str(folder / "m.onnx"))
    finally:
        folder.chmod(0o755)
    assert code == 2 and "not writable" in err and len(err.strip().splitlines()) == 1


def test_parse_size():
    assert parse_size("320x256") == (320, 256) and parse_size("64,48") == (64, 48)
    for bad in ("1x5", "axb", "3x4x5"):
        with pytest.raises(InputError):
            parse_size(bad)
