"""Bulk ``artefix correct INPUT... --out-dir DIR``: layout, sidecars, resume, failures, --only-flagged, jobs."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch
from pydicom.uid import generate_uid

from artefix.cli import main
from artefix.data.io import read_volume
from artefix.models import build_model
from artefix.models.checkpoint import save_model


def run(args, monkeypatch, capsys, command="correct"):
    monkeypatch.setattr(sys, "argv", ["artefix", command, *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """A tiny model whose detector's scores differ between scans."""
    net = build_model("tiny", seed=5, gates=True)
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        net.detector.score.weight.copy_(torch.randn(net.detector.score.weight.shape, generator=gen) * 3.0)
        net.detector.score.bias.zero_()
    return save_model(net, tmp_path_factory.mktemp("model") / "bulk-tiny.safetensors", card={"description": "bulk"})


def _volume(seed: int, noise: float, n: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :36]
    blob = 300 * np.exp(-(((yy - 20) / 9.0) ** 2 + ((xx - 18) / 7.0) ** 2))
    return (blob[..., None] * np.linspace(0.6, 1.0, n) + rng.random((40, 36, n)) * noise).astype(np.float32)


def _save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(array, np.diag([0.9, 0.9, 3.0, 1.0])), path)
    return path


BROKEN = b"not a NIfTI file"


@pytest.fixture()
def dataset(tmp_path) -> Path:
    """A BIDS dataset with two good scans and a broken one."""
    root = tmp_path / "ds"
    root.mkdir()
    (root / "dataset_description.json").write_text(json.dumps({"Name": "bulk test", "BIDSVersion": "1.8.0"}))
    _save(_volume(1, 10.0), root / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    _save(_volume(2, 120.0), root / "sub-02" / "ses-1" / "anat" / "sub-02_ses-1_T2w.nii.gz")
    broken = root / "sub-03" / "anat" / "sub-03_T1w.nii.gz"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(BROKEN)
    return root


def _snapshot(folder: Path) -> dict[str, tuple[int, bytes]]:
    return {
        str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in folder.rglob("*") if p.is_file()
    }


def _statuses(summary: Path) -> dict[str, str]:
    with open(summary, newline="") as f:
        return {Path(r["path"]).name: r["status"] for r in csv.DictReader(f)}


def test_bids_dataset_to_derivatives_resumes_and_isolates_failures(dataset, model_path, tmp_path, monkeypatch, capsys):
    out = dataset / "derivatives" / "artefix"
    args = [dataset, "--out-dir", out, "--model", model_path]
    code, stdout, err = run(args, monkeypatch, capsys)
    assert code == 1  # the broken scan failed; the others were corrected
    assert [line for line in err.splitlines() if line.startswith("failed:")] == [err.strip()]
    assert "sub-03_T1w.nii.gz" in err and "corrected" in stdout
    first = out / "sub-01" / "anat" / "sub-01_desc-corrected_T1w.nii.gz"
    second = out / "sub-02" / "ses-1" / "anat" / "sub-02_ses-1_desc-corrected_T2w.nii.gz"
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(
        [
            "dataset_description.json",
            "corrections.csv",
            str(first.relative_to(out)),
            str(first.relative_to(out)).replace(".nii.gz", ".json"),
            str(second.relative_to(out)),
            str(second.relative_to(out)).replace(".nii.gz", ".json"),
        ]
    )  # nothing for the broken scan, no temporary left
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["DatasetType"] == "derivative" and description["BIDSVersion"] == "1.8.0"
    assert description["GeneratedBy"][0]["Name"] == "artefix"
    assert _statuses(out / "corrections.csv") == {
        "sub-01_T1w.nii.gz": "corrected",
        "sub-02_ses-1_T2w.nii.gz": "corrected",
        "sub-03_T1w.nii.gz": "failed",
    }
    sidecar = json.loads(first.with_name("sub-01_desc-corrected_T1w.json").read_text())
    assert sidecar["Sources"] == ["bids:raw:sub-01/anat/sub-01_T1w.nii.gz"]
    assert sidecar["artefix"]["settings"]["model"] == "bulk-tiny" and sidecar["artefix"]["correction"]["slices"] == 4
    # each output is exactly what the single-scan command writes, geometry included
    single = tmp_path / "single.nii.gz"
    assert (
        run(
            [dataset / "sub-01" / "anat" / "sub-01_T1w.nii.gz", single, "--model", model_path, "-q"],
            monkeypatch,
            capsys,
        )[0]
        == 0
    )
    np.testing.assert_array_equal(nib.load(first).get_fdata(), nib.load(single).get_fdata())
    np.testing.assert_array_equal(nib.load(first).affine, nib.load(single).affine)

    # the broken scan fixed: a rerun corrects it alone and leaves the finished ones untouched
    done = {p: _snapshot(out)[p] for p in _snapshot(out) if "sub-0" in p}
    _save(_volume(3, 30.0), dataset / "sub-03" / "anat" / "sub-03_T1w.nii.gz")
    code, stdout, err = run(args, monkeypatch, capsys)
    assert code == 0, err
    assert _statuses(out / "corrections.csv") == {
        "sub-01_T1w.nii.gz": "done before",
        "sub-02_ses-1_T2w.nii.gz": "done before",
        "sub-03_T1w.nii.gz": "corrected",
    }
    assert all(_snapshot(out)[p] == stamp for p, stamp in done.items())
    assert (out / "sub-03" / "anat" / "sub-03_desc-corrected_T1w.nii.gz").is_file()

    # everything done: a rerun writes nothing at all
    before = _snapshot(out)
    code, stdout, err = run(args, monkeypatch, capsys)
    assert code == 0 and "nothing to do" in stdout
    assert _snapshot(out) == before
    # other settings: still skipped, and said so; --overwrite corrects again
    code, stdout, _ = run([*args, "--only", "bias"], monkeypatch, capsys)
    assert code == 0 and "other settings" in stdout and _snapshot(out) == before
    code, _, err = run([*args, "--only", "bias", "--overwrite"], monkeypatch, capsys)
    assert code == 0, err
    assert json.loads(first.with_name("sub-01_desc-corrected_T1w.json").read_text())["artefix"]["settings"]["only"] == [
        "bias"
    ]


def test_only_flagged_corrects_what_qc_flagged(dataset, model_path, tmp_path, monkeypatch, capsys):
    (dataset / "sub-03" / "anat" / "sub-03_T1w.nii.gz").unlink()
    qc = tmp_path / "qc"
    assert run([dataset, "--out", qc, "--model", model_path], monkeypatch, capsys, command="qc")[0] == 0
    with open(qc / "qc.csv", newline="") as f:
        motion = {Path(r["path"]).name: float(r["motion"]) for r in csv.DictReader(f)}
    low, high = sorted(motion.values())
    assert high - low > 1e-3
    limits = f"bias=1,subsampling=1,noise=1,motion={(low + high) / 2:.6f}"
    args = [dataset, "--out", qc, "--model", model_path, "--threshold", limits, "--overwrite"]
    assert run(args, monkeypatch, capsys, command="qc")[0] == 0
    out = tmp_path / "corrected"
    code, _, err = run(
        [dataset, "--out-dir", out, "--model", model_path, "--only-flagged", qc / "qc.csv"], monkeypatch, capsys
    )
    assert code == 0, err
    worst = max(motion, key=motion.get)
    statuses = _statuses(out / "corrections.csv")
    assert statuses == {name: "corrected" if name == worst else "not flagged" for name in motion}
    assert len(list(out.rglob("*_desc-corrected_*.nii.gz"))) == 1
    bad = tmp_path / "other.csv"
    bad.write_text("a,b\n1,2\n")
    code, _, err = run([dataset, "--out-dir", out, "--model", model_path, "--only-flagged", bad], monkeypatch, capsys)
    assert code == 2 and "not a qc.csv" in err


def test_dicom_tree_and_folders_are_mirrored(model_path, tmp_path, monkeypatch, capsys, mr_slice):
    tree = tmp_path / "archive"
    study = tree / "patient1" / "study"
    study.mkdir(parents=True)
    rng = np.random.default_rng(0)
    uids = sorted([generate_uid(), generate_uid()])
    for s, uid in enumerate(uids):
        for k in range(3):
            stored = (rng.random((24, 20)) * 200 + 300 * (k + 1)).astype(np.uint16)
            ds = mr_slice(stored, series_uid=uid, number=k + 1, position=(0.0, 0.0, 2.5 * k), SeriesNumber=s + 1)
            ds.save_as(study / f"IM{s}{k}", enforce_file_format=True)
    np.save(tree / "patient2.npy", _volume(4, 10.0))
    out = tmp_path / "out"
    code, _, err = run([tree, "--out-dir", out, "--model", model_path], monkeypatch, capsys)
    assert code == 0, err
    for uid in uids:
        corrected = read_volume(out / "patient1" / "study" / uid)
        original = read_volume(study, key=uid)
        assert corrected.array.shape == original.array.shape == (24, 20, 3)
        np.testing.assert_allclose(corrected.affine, original.affine, atol=1e-6)
        assert (out / "patient1" / "study" / f"{uid}.json").is_file()
    assert np.load(out / "patient2.npy").shape == (40, 36, 4) and (out / "patient2.json").is_file()


def test_bulk_argument_errors_exit_2_and_write_nothing(dataset, model_path, tmp_path, monkeypatch, capsys):
    scan = dataset / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    folder = tmp_path / "plain"
    folder.mkdir()
    np.save(folder / "a.npy", _volume(5, 10.0))
    cases = [
        ([folder, "--out-dir", folder / "out"], "inside the input"),
        ([dataset, "--out-dir", dataset / "derivatives"], "inside the input"),
        ([dataset, "--out-dir", dataset / "derivatives" / "x", "--derivatives"], "inside the input"),
        ([scan, "--out-dir", tmp_path / "o", "--report", tmp_path / "r.html"], "--report"),
        ([scan, tmp_path / "a.nii.gz", tmp_path / "b.nii.gz"], "INPUT and OUTPUT"),
        ([scan, tmp_path / "a.nii.gz", "--jobs", "2"], "--out-dir"),
        ([tmp_path / "missing", "--out-dir", tmp_path / "o"], "no such file"),
        ([scan, "--out-dir", tmp_path / "o", "--model", tmp_path / "none.safetensors"], "none.safetensors"),
    ]
    for args, needle in cases:
        before = sorted(tmp_path.rglob("*"))
        code, _, err = run([*args, "--model", model_path] if "--model" not in args else args, monkeypatch, capsys)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and needle in err, (args, err)
        assert sorted(tmp_path.rglob("*")) == before
    # an output that a finished run did not write (no sidecar) is never replaced without --overwrite
    out = tmp_path / "o"
    (out).mkdir()
    np.save(out / "a.npy", np.zeros(3))
    code, _, err = run([folder, "--out-dir", out, "--model", model_path], monkeypatch, capsys)
    assert code == 1 and "--overwrite" in err and np.load(out / "a.npy").tolist() == [0, 0, 0]


@pytest.mark.slow
def test_two_worker_processes_write_the_same_outputs(dataset, model_path, tmp_path, monkeypatch, capsys):
    (dataset / "sub-03" / "anat" / "sub-03_T1w.nii.gz").unlink()
    one, two = tmp_path / "one", tmp_path / "two"
    assert run([dataset, "--out-dir", one, "--model", model_path], monkeypatch, capsys)[0] == 0
    assert run([dataset, "--out-dir", two, "--model", model_path, "--jobs", "2"], monkeypatch, capsys)[0] == 0
    images = sorted(p.relative_to(one) for p in one.rglob("*.nii.gz"))
    assert images == sorted(p.relative_to(two) for p in two.rglob("*.nii.gz")) and len(images) == 2
    for rel in images:  # equal up to float32 round-off (the workers run with fewer threads)
        np.testing.assert_allclose(nib.load(one / rel).get_fdata(), nib.load(two / rel).get_fdata(), rtol=1e-5)


def test_on_a_dask_cluster_the_outputs_are_those_of_a_local_run(dataset, model_path, tmp_path, monkeypatch, capsys):
    distributed = pytest.importorskip("distributed")
    (dataset / "sub-03" / "anat" / "sub-03_T1w.nii.gz").unlink()
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert run([dataset, "--out-dir", local, "--model", model_path], monkeypatch, capsys)[0] == 0
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        args = [dataset, "--out-dir", remote, "--model", model_path, "--scheduler", cluster.scheduler_address]
        code, _, err = run(args, monkeypatch, capsys)
        assert code == 0, err
        code, _, err = run([*args, "--jobs", "2"], monkeypatch, capsys)
        assert code == 2 and "exclude each other" in err
    assert sorted(p.relative_to(local) for p in local.rglob("*")) == sorted(
        p.relative_to(remote) for p in remote.rglob("*")
    )
    for image in local.rglob("*.nii.gz"):
        remote_image = remote / image.relative_to(local)
        np.testing.assert_allclose(nib.load(image).get_fdata(), nib.load(remote_image).get_fdata(), rtol=1e-5)


@pytest.mark.slow
def test_a_dask_worker_killed_mid_run_loses_nothing(model_path, tmp_path):
    """Two worker processes; one is killed while it corrects a scan: its scans are rerun, every output is whole."""
    import os
    import signal
    import threading
    import time

    distributed = pytest.importorskip("distributed")
    from artefix.correction.bulk import run_bulk
    from artefix.correction.spec import ModelSpec
    from artefix.qc.discover import discover

    data = tmp_path / "scans"
    for i in range(6):
        _save(_volume(10 + i, 20.0, n=6), data / f"scan{i}.nii.gz")
    out = tmp_path / "out"
    refs = discover([data])
    with (
        distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        distributed.Client(cluster) as client,
    ):
        pids = client.run(os.getpid)
        box = {}
        thread = threading.Thread(
            target=lambda: box.update(run=run_bulk(refs, out, spec=ModelSpec(str(model_path)), scheduler=client))
        )
        thread.start()
        deadline = time.monotonic() + 120
        while not any(client.processing().values()):  # a worker has started a scan (and is loading torch)
            assert time.monotonic() < deadline, "no task started"
            time.sleep(0.05)
        victim = next(addr for addr, keys in client.processing().items() if keys)
        os.kill(pids[victim], signal.SIGKILL)
        thread.join(timeout=300)
        assert not thread.is_alive()
        assert pids[victim] not in client.run(os.getpid).values()  # it did die (the nanny started another)
    run = box["run"]
    assert [r.status for r in run.results] == ["corrected"] * 6, [r.error for r in run.results]
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(
        [f"scan{i}.nii.gz" for i in range(6)] + [f"scan{i}.json" for i in range(6)] + ["corrections.csv"]
    )
    for i in range(6):  # every output whole: readable, the input's shape, with its sidecar
        assert nib.load(out / f"scan{i}.nii.gz").get_fdata().shape == (40, 36, 6)
        assert json.loads((out / f"scan{i}.json").read_text())["artefix"]["correction"]["slices"] == 6
