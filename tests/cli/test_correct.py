"""``artefix correct`` and ``artefix models`` end to end: formats, geometry, selection, errors, atomicity."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from PIL import Image
from pydicom.uid import generate_uid

from artefix.cli import main
from artefix.data.io import read_volume
from artefix.errors import InputError, OutputError
from artefix.models import build_model
from artefix.models.checkpoint import save_model
from artefix.models.registry import WEIGHTS_ENV

HEADS = ("bias", "subsampling", "motion", "noise")


def run(args, monkeypatch, capsys, command="correct"):
    monkeypatch.setattr(sys, "argv", ["artefix", command, *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("weights")
    save_model(build_model("tiny", seed=5), folder / "mt-lc-brain.safetensors", card={"description": "tiny test"})
    return folder


@pytest.fixture()
def env(weights, monkeypatch):
    monkeypatch.setenv(WEIGHTS_ENV, str(weights))
    return weights


def _phantom(shape=(40, 36, 6), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[: shape[0], : shape[1]]
    blob = 300 * np.exp(-(((yy - shape[0] / 2) / 9.0) ** 2 + ((xx - shape[1] / 2) / 7.0) ** 2))
    return blob[..., None] * np.linspace(0.5, 1.0, shape[2]) + rng.random(shape) * 20


@pytest.fixture()
def nifti(tmp_path):
    affine = np.array([[0, -0.8, 0, 40], [0.9, 0, 0, -30], [0, 0, 3.0, 5], [0, 0, 0, 1]])
    img = nib.Nifti1Image(_phantom().astype(np.int16), affine)
    img.header.set_dim_info(slice=2)
    img.header.set_qform(affine, code=1)
    img.header.set_sform(affine, code=2)
    img.header.set_xyzt_units("mm", "sec")
    path = tmp_path / "scan.nii.gz"
    nib.save(img, path)
    return path


def _write_dicom_series(mr_slice, folder: Path, n: int = 4) -> np.ndarray:
    folder.mkdir()
    rng = np.random.default_rng(1)
    stored = (_phantom((24, 20, n), seed=2) + rng.random((24, 20, n))).astype(np.uint16)
    series = generate_uid()
    for k in range(n):
        ds = mr_slice(stored[:, :, k], series_uid=series, number=k + 1, position=(-20.0, 30.0, 10.0 + 2.5 * k))
        ds.save_as(folder / f"{k:03d}.dcm", enforce_file_format=True)
    return stored.astype(np.float32)


def _files(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in folder.rglob("*")}


def test_nifti_keeps_geometry_and_header(env, nifti, tmp_path, monkeypatch, capsys):
    out, res, report = tmp_path / "out.nii.gz", tmp_path / "res", tmp_path / "qc.html"
    code, stdout, err = run([nifti, out, "--residuals", res, "--report", report], monkeypatch, capsys)
    assert code == 0, err
    src, dst = nib.load(nifti), nib.load(out)
    assert dst.shape == src.shape and dst.get_data_dtype() == np.float32
    np.testing.assert_array_equal(dst.affine, src.affine)
    for getter in ("get_qform", "get_sform"):
        (a, ca), (b, cb) = getattr(src.header, getter)(coded=True), getattr(dst.header, getter)(coded=True)
        np.testing.assert_allclose(a, b)
        assert ca == cb
    assert dst.header.get_dim_info() == src.header.get_dim_info()
    assert dst.header.get_zooms() == src.header.get_zooms() and dst.header.get_xyzt_units() == ("mm", "sec")
    for head in HEADS:
        r = nib.load(res / f"{head}.nii.gz")
        assert r.shape == src.shape
        np.testing.assert_array_equal(r.affine, src.affine)
    summary = json.loads(report.with_suffix(".json").read_text())
    assert summary["axis"] == 2  # the header's slice axis (dim_info)
    assert "mean |residual|" in stdout and report.is_file()


def test_only_none_returns_the_input(env, nifti, tmp_path, monkeypatch, capsys):
    out = tmp_path / "same.nii"
    code, _, err = run([nifti, out, "--only", "none", "-q"], monkeypatch, capsys)
    assert code == 0, err
    x = np.asarray(nib.load(nifti).dataobj, dtype=np.float64)
    np.testing.assert_allclose(nib.load(out).get_fdata(), x, atol=1e-4 * np.abs(x).max())


@pytest.mark.slow
def test_strength_gives_a_partial_correction_and_reports_it(env, nifti, tmp_path, monkeypatch, capsys):
    full, half, none = tmp_path / "full.nii", tmp_path / "half.nii", tmp_path / "none.nii"
    report = tmp_path / "qc.html"
    assert run([nifti, full, "--only", "noise", "-q"], monkeypatch, capsys)[0] == 0
    assert run([nifti, none, "--only", "none", "-q"], monkeypatch, capsys)[0] == 0
    code, out, err = run(
        [nifti, half, "--only", "noise", "--strength", "noise=0.5", "--report", report], monkeypatch, capsys
    )
    assert code == 0, err
    y_full, y_half, x = (nib.load(p).get_fdata() for p in (full, half, none))
    # half the residual lands between the input and the full correction
    assert 0 < np.abs(y_half - x).mean() < np.abs(y_full - x).mean()
    assert "50%" in out
    summary = json.loads(report.with_suffix(".json").read_text())
    assert summary["artefacts"]["noise"]["strength"] == 0.5 and summary["applied"] == ["noise"]
    assert "noise (50%)" in report.read_text()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("noise", "is not HEAD=FACTOR"),
        ("noise=2", "factor from 0 to 1"),
        ("noise=abc", "factor from 0 to 1"),
        ("ghost=0.5", "unknown artefact 'ghost'"),
        ("noise=0.5,noise=0.2", "listed twice"),
        (",", "give HEAD=FACTOR"),
    ],
)
def test_bad_strength_is_a_one_line_error(env, nifti, tmp_path, monkeypatch, capsys, value, message):
    out = tmp_path / "out.nii"
    code, _, err = run([nifti, out, "--strength", value], monkeypatch, capsys)
    assert code != 0 and message in err and "Traceback" not in err
    assert not out.exists()


@pytest.mark.slow
def test_ensemble_option_overrides_the_model_and_is_recorded(env, nifti, tmp_path, monkeypatch, capsys):
    one, four, report = tmp_path / "one.nii", tmp_path / "four.nii", tmp_path / "qc.html"
    assert run([nifti, one, "--ensemble", "1", "-q"], monkeypatch, capsys)[0] == 0
    code, out, err = run([nifti, four, "--ensemble", "4", "--report", report], monkeypatch, capsys)
    assert code == 0, err
    assert "self-ensemble of 4" in out
    assert json.loads(report.with_suffix(".json").read_text())["ensemble"] == 4
    assert not np.allclose(nib.load(one).get_fdata(), nib.load(four).get_fdata())
    code, _, err = run([nifti, tmp_path / "bad.nii", "--ensemble", "3"], monkeypatch, capsys)
    assert code != 0 and "--ensemble" in err and "Traceback" not in err
    assert not (tmp_path / "bad.nii").exists()


def test_npy_axis_and_batch(env, tmp_path, monkeypatch, capsys):
    data = np.moveaxis(_phantom((32, 28, 9)), -1, 0).astype(np.float32)
    src = tmp_path / "stack.npy"
    np.save(src, data)
    out, res = tmp_path / "out.npy", tmp_path / "res"
    code, _, err = run([src, out, "--axis", "0", "--batch-size", "4", "--residuals", res, "-q"], monkeypatch, capsys)
    assert code == 0, err
    y = np.load(out)
    assert y.shape == data.shape and y.dtype == np.float32
    # per slice along axis 0 the output keeps the input's mean and standard deviation
    np.testing.assert_allclose(y.mean(axis=(1, 2)), data.mean(axis=(1, 2)), rtol=1e-4)
    np.testing.assert_allclose(y.std(axis=(1, 2)), data.std(axis=(1, 2)), rtol=1e-4)
    assert sorted(p.name for p in res.iterdir()) == sorted(f"{h}.npy" for h in HEADS)


def test_png_slice(env, tmp_path, monkeypatch, capsys):
    src = tmp_path / "slice.png"
    Image.fromarray(np.clip(_phantom((40, 36, 1))[..., 0] * 0.7, 0, 255).astype(np.uint8)).save(src)
    out, res = tmp_path / "out.png", tmp_path / "res"
    code, _, err = run([src, out, "--residuals", res, "-q"], monkeypatch, capsys)
    assert code == 0, err
    with Image.open(out) as img:
        assert img.size == (36, 40) and np.asarray(img).dtype == np.uint8
    # a PNG cannot hold signed values in input units: the residuals are .npy
    assert np.load(res / "noise.npy").shape == (40, 36)


def test_dicom_series_becomes_a_new_derived_series(env, tmp_path, monkeypatch, capsys, mr_slice):
    src = tmp_path / "series"
    _write_dicom_series(mr_slice, src)
    out, res = tmp_path / "corrected", tmp_path / "res"
    code, _, err = run([src, out, "--residuals", res, "-q"], monkeypatch, capsys)
    assert code == 0, err
    before = {int(d.InstanceNumber): d for d in (pydicom.dcmread(p) for p in src.glob("*.dcm"))}
    after = {int(d.InstanceNumber): d for d in (pydicom.dcmread(p) for p in out.glob("*.dcm"))}
    assert sorted(after) == sorted(before)
    assert len({d.SeriesInstanceUID for d in after.values()}) == 1
    new_series = next(iter(after.values())).SeriesInstanceUID
    assert new_series != next(iter(before.values())).SeriesInstanceUID
    for k, d in after.items():
        assert d.SOPInstanceUID != before[k].SOPInstanceUID and d.ImageType[0] == "DERIVED"
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "StudyInstanceUID"):
            assert d.get(tag) == before[k].get(tag)
    v_in, v_out = read_volume(src), read_volume(out)
    np.testing.assert_allclose(v_out.affine, v_in.affine)
    assert v_out.array.shape == v_in.array.shape
    assert sorted(p.name for p in res.iterdir()) == sorted(HEADS)
    assert read_volume(res / "bias").array.shape == v_in.array.shape


def test_a_built_in_sample_is_an_input_as_for_simulate(env, tmp_path, monkeypatch, capsys):
    from artefix.data.samples import load_sample

    out = tmp_path / "t1.npy"
    code, stdout, err = run(["sample:brain-t1", out, "--only", "none"], monkeypatch, capsys)
    assert code == 0, err
    assert "sample:brain-t1 -> t1.npy" in " ".join(stdout.split())
    x = load_sample("brain-t1")
    np.testing.assert_allclose(np.load(out), x, atol=1e-4 * np.abs(x).max())
    for args, message in (
        (["sample:knee", tmp_path / "k.npy"], "unknown sample 'knee'"),
        (["sample:brain-t1", tmp_path / "k.npy", "--key", "a"], "--key does not apply to a built-in sample"),
        (["sample:brain-t1", tmp_path / "dicom_out"], "needs a DICOM input"),
    ):
        code, _, err = run(args, monkeypatch, capsys)
        assert code == 2 and err.startswith("error: ") and message in err and err.count("\n") == 1, err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t1.npy"]


def test_a_folder_of_two_series_names_the_key_option(env, tmp_path, monkeypatch, capsys, mr_slice):
    src = tmp_path / "mixed"
    _write_dicom_series(mr_slice, src, n=2)
    _write_dicom_series(mr_slice, tmp_path / "other", n=2)
    for k, path in enumerate(sorted((tmp_path / "other").glob("*.dcm"))):
        path.rename(src / f"other{k}.dcm")
    code, _, err = run([src, tmp_path / "out"], monkeypatch, capsys)
    assert code == 2 and err.count("\n") == 1 and "holds 2 series; choose one with --key UID" in err, err
    assert "key=" not in err
    uid = str(pydicom.dcmread(src / "other0.dcm").SeriesInstanceUID)
    code, _, err = run([src, tmp_path / "out", "--key", uid, "-q"], monkeypatch, capsys)
    assert code == 0, err
    assert len(list((tmp_path / "out").glob("*.dcm"))) == 2


def test_overwrite(env, nifti, tmp_path, monkeypatch, capsys):
    out = tmp_path / "out.nii.gz"
    out.write_bytes(b"old")
    code, _, err = run([nifti, out, "-q"], monkeypatch, capsys)
    assert code == 2 and "--overwrite" in err and out.read_bytes() == b"old"
    code, _, err = run([nifti, out, "-q", "--overwrite"], monkeypatch, capsys)
    assert code == 0, err
    assert nib.load(out).shape == nib.load(nifti).shape


def _truncated_nifti(folder: Path) -> Path:
    path = folder / "cut.nii"
    nib.save(nib.Nifti1Image(_phantom().astype(np.float32), np.eye(4)), path)
    path.write_bytes(path.read_bytes()[:2000])
    return path


def _npy(folder: Path, name: str, array: np.ndarray) -> Path:
    np.save(folder / name, array)
    return folder / name


def _constant(folder: Path) -> Path:
    return _npy(folder, "flat.npy", np.full((16, 16, 3), 5.0, np.float32))


def _nan(folder: Path) -> Path:
    data = _phantom((16, 16, 3)).astype(np.float32)
    data[3, 4, 1] = np.nan
    return _npy(folder, "nan.npy", data)


ERROR_CASES = {
    "missing input": (lambda d: d / "nope.nii.gz", "out.nii.gz", [], "no such file"),
    "truncated nifti": (_truncated_nifti, "out.nii", [], "cut.nii"),
    "4D array": (lambda d: _npy(d, "four.npy", np.ones((4, 4, 4, 4), np.float32)), "out.npy", [], "4"),
    "1D array": (lambda d: _npy(d, "one.npy", np.ones(16, np.float32)), "out.npy", [], "1"),
    "NaN voxels": (_nan, "out.npy", [], "NaN"),
    "constant volume": (_constant, "out.npy", [], "constant"),
    "unknown --only": (lambda d: _npy(d, "a.npy", _phantom()), "out.npy", ["--only", "blur"], "blur"),
    "empty --only": (lambda d: _npy(d, "a.npy", _phantom()), "out.npy", ["--only", ""], "--only: no artefact"),
    "--only of commas": (lambda d: _npy(d, "a.npy", _phantom()), "out.npy", ["--only", " , "], "--only: no artefact"),
    "DICOM output for npy input": (lambda d: _npy(d, "a.npy", _phantom()), "dicom_out", [], "DICOM"),
    "bad extension": (lambda d: _npy(d, "a.npy", _phantom()), "out.tiff", [], "unsupported"),
    "report not html": (lambda d: _npy(d, "a.npy", _phantom()), "out.npy", ["--report", "r.txt"], "html"),
    "bad device": (lambda d: _npy(d, "a.npy", _phantom()), "out.npy", ["--device", "tpu"], "device"),
}


@pytest.mark.parametrize("case", sorted(ERROR_CASES))
def test_errors_are_one_line_exit_2_and_leave_nothing(case, env, tmp_path, monkeypatch, capsys):
    make, out_name, extra, needle = ERROR_CASES[case]
    src = make(tmp_path)
    monkeypatch.chdir(tmp_path)
    before = _files(tmp_path)
    code, _, err = run([src, tmp_path / out_name, "--residuals", tmp_path / "res", *extra], monkeypatch, capsys)
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
    assert _files(tmp_path) == before


def test_output_equal_to_input(env, nifti, tmp_path, monkeypatch, capsys):
    before = nifti.read_bytes()
    code, _, err = run([nifti, nifti, "--overwrite"], monkeypatch, capsys)
    assert code == 2 and "input" in err and err.count("\n") == 1
    assert nifti.read_bytes() == before and _files(tmp_path) == {"scan.nii.gz"}


def test_default_model_not_installed(nifti, tmp_path, monkeypatch, capsys):
    empty = tmp_path / "none"
    empty.mkdir()
    monkeypatch.setenv(WEIGHTS_ENV, str(empty))
    code, _, err = run([nifti, tmp_path / "out.nii.gz"], monkeypatch, capsys)
    assert code == 2 and "default model 'mt-lc-brain' is not installed" in err and "--model PATH" in err
    assert err.count("\n") == 1 and not (tmp_path / "out.nii.gz").exists()


def test_model_checksum_mismatch(weights, nifti, tmp_path, monkeypatch, capsys):
    model = tmp_path / "m.safetensors"
    data = bytearray((weights / "mt-lc-brain.safetensors").read_bytes())
    data[-1] ^= 0x01
    model.write_bytes(bytes(data))
    (tmp_path / "m.json").write_text((weights / "mt-lc-brain.json").read_text())
    before = _files(tmp_path)
    code, _, err = run([nifti, tmp_path / "out.nii.gz", "--model", model], monkeypatch, capsys)
    assert code == 2 and "checksum" in err and err.count("\n") == 1
    assert _files(tmp_path) == before


def test_failure_during_inference_leaves_no_output(env, nifti, tmp_path, monkeypatch, capsys):
    import artefix.correction.volume as volume_module

    real = volume_module.correct_batch
    calls = []

    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise InputError("simulated failure in batch 2")
        return real(*args, **kwargs)

    monkeypatch.setattr(volume_module, "correct_batch", failing)
    before = _files(tmp_path)
    args = [nifti, tmp_path / "out.nii.gz", "--residuals", tmp_path / "res", "--report", tmp_path / "r.html"]
    code, _, err = run([*args, "--batch-size", "2"], monkeypatch, capsys)
    assert code == 2 and "batch 2" in err and len(calls) == 2
    assert _files(tmp_path) == before


def test_failure_while_writing_removes_what_the_run_wrote(env, nifti, tmp_path, monkeypatch, capsys):
    import artefix.correction.files as files_module

    real = files_module.write_volume
    calls = []

    def failing(volume, path, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise OutputError(f"{path}: disk full")
        return real(volume, path, **kwargs)

    monkeypatch.setattr(files_module, "write_volume", failing)
    before = _files(tmp_path)
    code, _, err = run([nifti, tmp_path / "out.nii.gz", "--residuals", tmp_path / "res"], monkeypatch, capsys)
    assert code == 2 and "disk full" in err
    assert len(calls) == 3  # output and one residual were written, then removed again with the folder
    assert _files(tmp_path) == before


@pytest.mark.slow
def test_a_failed_overwrite_puts_every_replaced_output_back(env, nifti, tmp_path, monkeypatch, capsys):
    import artefix.correction.report as report_module

    args = [nifti, tmp_path / "out.nii.gz", "--residuals", tmp_path / "res", "--report", tmp_path / "r.html"]
    assert run(args, monkeypatch, capsys)[0] == 0
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()}

    def disk_full(*args, **kwargs):
        raise OutputError("r.html: disk full")

    monkeypatch.setattr(report_module, "render_report", disk_full)
    code, _, err = run([*args, "--only", "noise", "--overwrite"], monkeypatch, capsys)
    assert code == 2 and "disk full" in err
    assert {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file()} == before  # nothing changed


def test_a_folder_is_never_replaced_by_a_file(env, nifti, tmp_path, monkeypatch, capsys):
    (tmp_path / "r.json").mkdir()
    args = [nifti, tmp_path / "out.nii.gz", "--report", tmp_path / "r.html", "--overwrite"]
    code, _, err = run(args, monkeypatch, capsys)
    assert code == 2 and "is a folder" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json", "scan.nii.gz"]


@pytest.mark.parametrize(("device", "message"), [("mps", "cpu or cuda, not mps"), ("gpu0", "not a device")])
def test_devices_other_than_cpu_and_cuda_are_one_line_errors(
    env, nifti, tmp_path, monkeypatch, capsys, device, message
):
    code, _, err = run([nifti, tmp_path / "out.nii.gz", "--device", device], monkeypatch, capsys)
    assert code == 2 and message in err and err.count("\n") == 1
    code, _, err = run(["--out", tmp_path / "demo", "--device", device], monkeypatch, capsys, command="demo")
    assert code == 2 and message in err and not (tmp_path / "demo").exists()


def test_main_routes_sigterm_to_the_unwinding_handler_only_while_a_command_runs(monkeypatch, capsys):
    """What an interrupted run does is in test_interrupt.py; afterwards the process's own handler is back."""
    import signal

    import artefix.cli as cli
    import artefix.models.registry as registry

    during = []

    def list_models(*args, **kwargs):
        during.append(signal.getsignal(signal.SIGTERM))
        return []

    monkeypatch.setattr(registry, "list_models", list_models)
    previous = signal.signal(signal.SIGTERM, signal.SIG_DFL)  # as in a fresh process
    try:
        assert run([], monkeypatch, capsys, command="models")[0] == 0
    finally:
        after = signal.signal(signal.SIGTERM, previous)
    assert during == [cli._interrupt]
    assert after is signal.SIG_DFL


def test_snr_line_says_when_the_noise_correction_was_left_out(env, tmp_path, monkeypatch, capsys):
    weights = tmp_path / "gated.safetensors"
    save_model(build_model("tiny", seed=5, noise_snr=(9.0, 12.0)), weights)
    noisy = np.random.default_rng(0).random((24, 20, 3)).astype(np.float32)
    np.save(tmp_path / "noisy.npy", noisy)
    args = [tmp_path / "noisy.npy", tmp_path / "out.npy", "--model", weights]
    code, stdout, err = run([*args, "--only", "bias"], monkeypatch, capsys)
    assert code == 0, err
    assert "the noise correction was not applied" in " ".join(stdout.split())


def test_models_listing(env, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("COLUMNS", "200")
    code, out, _ = run(["--json"], monkeypatch, capsys, command="models")
    data = json.loads(out)
    assert code == 0 and [m["name"] for m in data["models"]] == ["mt-lc-brain"]
    assert data["models"][0]["default"] and len(data["models"][0]["sha256"]) == 64
    code, out, _ = run([], monkeypatch, capsys, command="models")
    assert code == 0 and "mt-lc-brain" in out and "tiny test" in out
    monkeypatch.setenv("COLUMNS", "80")  # a plain terminal still shows the description
    code, out, _ = run([], monkeypatch, capsys, command="models")
    assert code == 0 and "tiny test" in out and "description" in out
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setenv(WEIGHTS_ENV, str(empty))
    code, out, _ = run([], monkeypatch, capsys, command="models")
    assert code == 0 and "No models are installed" in out and "--model" in out
    code, out, _ = run(["--json"], monkeypatch, capsys, command="models")
    assert json.loads(out)["models"] == []


def test_cuda_unavailable_is_a_one_line_error(env, nifti, tmp_path, monkeypatch, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    code, _, err = run([nifti, tmp_path / "out.nii.gz", "--device", "cuda"], monkeypatch, capsys)
    assert code == 2 and "CUDA is not available" in err and err.count("\n") == 1
    assert not (tmp_path / "out.nii.gz").exists()


@pytest.mark.slow
@pytest.mark.shared_data
def test_real_dicom_512_with_a_320_training_matrix(shared_data, tmp_path, monkeypatch, capsys):
    series = shared_data / "niivue_demo_images" / "VS-SEG-001_t1_mpr_tra_gk_subset"
    model = save_model(build_model("tiny", seed=1), tmp_path / "m.safetensors", card={"matrix": [320, 320]})
    out, report = tmp_path / "corrected", tmp_path / "qc.html"
    code, _, err = run([series, out, "--model", model, "--report", report, "-q"], monkeypatch, capsys)
    assert code == 0, err
    v_in, v_out = read_volume(series), read_volume(out)
    assert v_out.array.shape == v_in.array.shape == (512, 512, 16)
    np.testing.assert_allclose(v_out.affine, v_in.affine, atol=1e-6)
    summary = json.loads(report.with_suffix(".json").read_text())
    assert summary["work_shape"] == [320, 320] and summary["axis"] == 2
    # the output keeps each slice's mean and standard deviation (input units), up to 16-bit DICOM quantisation
    np.testing.assert_allclose(v_out.array.mean(axis=(0, 1)), v_in.array.mean(axis=(0, 1)), rtol=1e-3)
    np.testing.assert_allclose(v_out.array.std(axis=(0, 1)), v_in.array.std(axis=(0, 1)), rtol=1e-3)


def _correct_two_slices(tmp_path, monkeypatch, capsys, slices, **config):
    """``artefix correct`` of a two-slice scan with a tiny model of ``config``: (stdout, report HTML, QC JSON)."""
    scan = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.stack(slices, axis=-1), np.eye(4)), scan)
    model = tmp_path / "tiny.safetensors"
    save_model(build_model("tiny", seed=5, **config), model, card={"description": "tiny"})
    out, report = tmp_path / "out.nii.gz", tmp_path / "qc.html"
    code, stdout, err = run([scan, out, "--model", model, "--report", report], monkeypatch, capsys)
    assert code == 0, err
    return stdout, report.read_text(), json.loads(report.with_suffix(".json").read_text())


@pytest.mark.slow
def test_zero_filled_scan_is_reported_by_a_model_with_data_consistency(tmp_path, monkeypatch, capsys):
    from artefix.artefacts.subsampling import centre_crop_kspace_image
    from artefix.data.samples import load_sample
    from artefix.fft import fourier_resize

    image = load_sample("brain-t2")
    zero_filled = np.abs(fourier_resize(centre_crop_kspace_image(image, 2.0), image.shape)).astype(np.float32)
    stdout, report, summary = _correct_two_slices(
        tmp_path, monkeypatch, capsys, [zero_filled, 0.8 * zero_filled], consistency=True
    )
    assert "k-space truncated (zero-filled) in 2 of 2 slices" in " ".join(stdout.split())
    assert "k-space truncated" in report
    assert summary["kspace_truncation"]["truncated_slices"] == [0, 1]
    assert summary["estimated_snr"] is None  # a model without the noise gate


@pytest.mark.slow
def test_noise_gate_is_reported_by_a_model_with_it(tmp_path, monkeypatch, capsys):
    from artefix.data.samples import load_sample

    image = load_sample("brain-t2").astype(np.float32)
    stdout, report, summary = _correct_two_slices(
        tmp_path, monkeypatch, capsys, [image, 0.5 * image], noise_snr=(9.0, 12.0)
    )
    assert "the noise correction fades out from 9 to 12 dB" in " ".join(stdout.split())
    assert "noise level" in report
    assert summary["estimated_snr"]["noise_gate_db"] == [9.0, 12.0] and len(summary["estimated_snr"]["per_slice"]) == 2
    plain = tmp_path / "plain.nii.gz"
    args = [tmp_path / "scan.nii.gz", plain, "--model", tmp_path / "tiny.safetensors", "--no-priors"]
    code, stdout, err = run(args, monkeypatch, capsys)
    assert code == 0, err
    assert "fades out" not in stdout  # the heads as trained: the clean scan's noise head is applied
    assert not np.allclose(nib.load(plain).get_fdata(), nib.load(tmp_path / "out.nii.gz").get_fdata())
    assert summary["estimated_snr"]["scope"] == "scan"  # the default: one SNR for the whole scan
    per_slice, report = tmp_path / "per_slice.nii.gz", tmp_path / "per_slice.html"
    args = [tmp_path / "scan.nii.gz", per_slice, "--model", tmp_path / "tiny.safetensors", "--snr-scope", "slice"]
    code, stdout, err = run([*args, "--report", report], monkeypatch, capsys)
    assert code == 0, err
    assert "per slice" in " ".join(stdout.split())
    assert json.loads(report.with_suffix(".json").read_text())["estimated_snr"]["scope"] == "slice"
    code, _, err = run([*args[:-1], "volume", "--overwrite"], monkeypatch, capsys)
    assert code == 2 and "--snr-scope" in err


@pytest.mark.slow
def test_no_gates_applies_each_correction_in_full_and_says_so(tmp_path, monkeypatch, capsys):
    import torch

    from artefix.data.samples import load_sample
    from artefix.models.checkpoint import load_model

    image = load_sample("brain-t2").astype(np.float32)
    stdout, report, summary = _correct_two_slices(tmp_path, monkeypatch, capsys, [image, 0.5 * image], gates=True)
    assert summary["detector_applied"] is True and "not applied (--no-gates)" not in report + stdout
    full, full_report = tmp_path / "full.nii.gz", tmp_path / "full.html"
    args = [tmp_path / "scan.nii.gz", full, "--model", tmp_path / "tiny.safetensors", "--no-gates"]
    code, stdout, err = run([*args, "--report", full_report], monkeypatch, capsys)
    assert code == 0, err
    assert "not applied (--no-gates)" in " ".join(stdout.split())
    assert "scores shown, not applied (--no-gates)" in full_report.read_text()
    full_summary = json.loads(full_report.with_suffix(".json").read_text())
    assert full_summary["detector_applied"] is False
    scores = [full_summary["artefacts"][h]["detection_per_slice"] for h in ("bias", "noise")]
    assert scores == [summary["artefacts"][h]["detection_per_slice"] for h in ("bias", "noise")]  # still reported
    # the output is the input plus every residual in full: the gated run's residuals divided by the scores
    net, _ = load_model(tmp_path / "tiny.safetensors")
    x = torch.from_numpy(np.stack([image, 0.5 * image]))
    u = ((x - x.mean(dim=(1, 2), keepdim=True)) / x.std(dim=(1, 2), keepdim=True, correction=0))[:, None]
    with torch.no_grad():
        ungated = net.eval().ungated_residuals(u)
        dropped = net.residuals(u, policy=net.policy.replace(gated=False))
    torch.testing.assert_close(dropped, ungated)
    assert not np.allclose(nib.load(full).get_fdata(), nib.load(tmp_path / "out.nii.gz").get_fdata())


@pytest.mark.parametrize("which", ["output", "report", "residuals"])
def test_an_unwritable_output_folder_is_refused_before_the_correction(env, nifti, tmp_path, monkeypatch, capsys, which):
    import os

    import artefix.correction.files as files

    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: Path(path) != locked and real_access(path, mode))
    monkeypatch.setattr(files, "read_input", lambda *a, **k: pytest.fail("the input was read before the check"))
    paths = {"output": tmp_path / "out.nii.gz", "report": tmp_path / "r.html", "residuals": tmp_path / "res"}
    paths[which] = locked / paths[which].name
    args = [nifti, paths["output"], "--report", paths["report"], "--residuals", paths["residuals"]]
    code, _, err = run(args, monkeypatch, capsys)
    assert code == 2 and f"output folder {locked} is not writable" in err and len(err.strip().splitlines()) == 1
    assert not list(tmp_path.glob("out*")) and not list(locked.iterdir())
