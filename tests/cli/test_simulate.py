import json
import subprocess
import sys
import time

import nibabel as nib
import numpy as np
import pytest

from artefix.cli import main

CLI = [sys.executable, "-c", "from artefix.cli import main; main()"]


def run(args, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["artefix", "simulate", *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


@pytest.fixture()
def nifti(tmp_path):
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:40, :36]
    blob = 100 * np.exp(-(((yy - 20) / 9.0) ** 2 + ((xx - 18) / 7.0) ** 2))
    data = (blob[..., None] * np.linspace(0.5, 1, 5) + rng.random((40, 36, 5))).astype(np.int16)
    affine = np.diag([0.9, 0.8, 3.0, 1.0])
    affine[:3, 3] = [-10, 20, 5]
    path = tmp_path / "scan.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), path)
    return path


def test_help_is_fast():
    t0 = time.perf_counter()
    result = subprocess.run([*CLI, "--help"], capture_output=True, text=True, check=True)
    assert "simulate" in result.stdout
    # not a timing assertion on the work itself: --help must not import torch
    check = "import sys; from artefix.cli import app; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", check], capture_output=True, text=True).stdout.strip() == "False"
    assert time.perf_counter() - t0 > 0


def test_simulate_nifti_keeps_geometry_and_is_reproducible(nifti, tmp_path, monkeypatch, capsys):
    out1, out2 = tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"
    params = tmp_path / "p.json"
    preview = tmp_path / "p.png"
    code, _, err = run(
        [
            nifti,
            out1,
            "--artefact",
            "motion",
            "--severity",
            "0.125",
            "--seed",
            "3",
            "--params",
            params,
            "--preview",
            preview,
        ],
        monkeypatch,
        capsys,
    )
    assert code == 0, err
    run([nifti, out2, "--artefact", "motion", "--severity", "0.125", "--seed", "3"], monkeypatch, capsys)
    src, a, b = nib.load(nifti), nib.load(out1), nib.load(out2)
    assert a.shape == src.shape
    np.testing.assert_array_equal(a.affine, src.affine)
    assert a.get_data_dtype() == np.float32
    np.testing.assert_array_equal(a.get_fdata(), b.get_fdata())  # bit for bit under the same seed
    assert not np.allclose(a.get_fdata(), src.get_fdata(), atol=1)
    record = json.loads(params.read_text())
    assert len(record["slices"]) == 5 and record["slices"][0][0]["artefact"] == "motion"
    assert preview.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_simulate_axis_and_npy(tmp_path, monkeypatch, capsys):
    vol = np.random.default_rng(1).random((6, 30, 28)).astype(np.float32) + 1
    src = tmp_path / "v.npy"
    np.save(src, vol)
    out = tmp_path / "o.npy"
    code, _, err = run(
        [src, out, "--artefact", "noise", "--severity", "5", "--axis", "0", "--seed", "1"], monkeypatch, capsys
    )
    assert code == 0, err
    result = np.load(out)
    assert result.shape == vol.shape and result.dtype == np.float32


def test_simulate_builtin_sample(tmp_path, monkeypatch, capsys):
    out = tmp_path / "s.npy"
    code, _, err = run(["sample:pelvis-t2", out, "--artefact", "periodic-motion", "--seed", "0"], monkeypatch, capsys)
    assert code == 0, err
    assert np.load(out).shape == (384, 384)


@pytest.mark.parametrize(
    ("make", "args", "message"),
    [
        (None, ["missing.nii.gz", "o.nii.gz"], "not found|does not exist|No such"),
        ("txt", ["in.txt", "o.nii.gz"], "unsupported|extension"),
        ("1d", ["in.npy", "o.npy"], "shape|1D|dimension"),
        ("nan", ["in.npy", "o.npy"], "NaN"),
        ("ok", ["in.npy", "o.txt"], "unsupported"),
        ("ok", ["in.npy", "in.npy"], "input"),
        ("ok", ["in.npy", "o.npy", "--severity", "-3"], "level|severity|deviation"),
        ("ok", ["sample:knee", "o.npy"], "unknown sample"),
        ("ok", ["in.npy", "o.npy", "--params", "o.npy"], "same path"),
        ("ok", ["in.npy", "o.npy", "--params", "p.json", "--preview", "p.json"], "same path"),
        ("dir", ["in.npy", "o.npy", "--params", "folder", "--overwrite"], "is a folder"),
    ],
)
def test_errors_are_one_line_exit_2(tmp_path, monkeypatch, capsys, make, args, message):
    if make == "txt":
        (tmp_path / "in.txt").write_text("hello")
    elif make == "1d":
        np.save(tmp_path / "in.npy", np.ones(10))
    elif make == "nan":
        np.save(tmp_path / "in.npy", np.full((8, 8), np.nan))
    elif make in ("ok", "dir"):
        np.save(tmp_path / "in.npy", np.ones((8, 8)))
    if make == "dir":
        (tmp_path / "folder").mkdir()
    monkeypatch.chdir(tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    code, _, err = run([*args, "--artefact", "bias"], monkeypatch, capsys)
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), err
    import re

    assert re.search(message, lines[0], re.I), lines[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written, not even a temp file


def test_existing_output_needs_overwrite(tmp_path, monkeypatch, capsys):
    np.save(tmp_path / "in.npy", np.ones((8, 8)))
    (tmp_path / "o.npy").write_bytes(b"keep")
    code, _, err = run([tmp_path / "in.npy", tmp_path / "o.npy", "--artefact", "bias"], monkeypatch, capsys)
    assert code == 2 and "exists" in err
    assert (tmp_path / "o.npy").read_bytes() == b"keep"
    code, _, _ = run(
        [tmp_path / "in.npy", tmp_path / "o.npy", "--artefact", "bias", "--overwrite"], monkeypatch, capsys
    )
    assert code == 0 and np.load(tmp_path / "o.npy").shape == (8, 8)


def test_installed_script_exit_code(tmp_path):
    np.save(tmp_path / "in.npy", np.ones(10))
    r = subprocess.run(
        [*CLI, "simulate", str(tmp_path / "in.npy"), str(tmp_path / "o.npy"), "-a", "noise"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and "Traceback" not in r.stderr and r.stderr.startswith("error:")


def test_a_failed_later_write_puts_the_replaced_output_back(tmp_path, monkeypatch, capsys):
    """All or nothing: with --overwrite, a preview that cannot be written leaves the old OUTPUT as it was."""
    import artefix.viz as viz

    np.save(tmp_path / "in.npy", np.ones((8, 8)))
    (tmp_path / "o.npy").write_bytes(b"keep")

    def full_disk(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(viz, "simulation_preview", full_disk)
    args = [tmp_path / "in.npy", tmp_path / "o.npy", "-a", "bias", "--preview", tmp_path / "p.png", "--overwrite"]
    with pytest.raises(OSError, match="disk full"):
        run(args, monkeypatch, capsys)
    assert (tmp_path / "o.npy").read_bytes() == b"keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.npy", "o.npy"]


@pytest.mark.parametrize("shape", [(40, 36, 1), (1, 40, 36)])
def test_a_single_slice_stored_as_3d_is_simulated_and_corrected_along_its_length_1_axis(
    shape, tmp_path, monkeypatch, capsys
):
    """simulate once refused (H, W, 1) that correct accepted, and (1, H, W) was sliced along its last axis."""
    yy, xx = np.mgrid[:40, :36]
    image = (100 * np.exp(-(((yy - 20) / 9.0) ** 2 + ((xx - 18) / 7.0) ** 2)) + 1).astype(np.float32)
    src, out = tmp_path / "one.npy", tmp_path / "noisy.npy"
    np.save(src, image.reshape(shape))
    code, _, err = run([src, out, "--artefact", "noise", "--severity", "0", "--seed", "1"], monkeypatch, capsys)
    assert code == 0, err
    noisy = np.load(out)
    assert noisy.shape == shape and not np.allclose(noisy.reshape(40, 36), image)
    corrected = tmp_path / "corrected.npy"
    monkeypatch.setattr(sys, "argv", ["artefix", "correct", str(out), str(corrected), "-q"])
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code in (0, None), capsys.readouterr().err
    assert np.load(corrected).shape == shape
    monkeypatch.setattr(
        sys, "argv", ["artefix", "simulate", str(src), str(tmp_path / "x.npy"), "--artefact", "noise", "--axis", "1"]
    )
    with pytest.raises(SystemExit) as exc:
        main()
    assert exc.value.code == 2 and "slices must be at least 2x2" in capsys.readouterr().err
