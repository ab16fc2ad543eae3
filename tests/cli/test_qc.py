"""``artefix qc`` end to end: BIDS discovery, the tables' values against the model, failures, the dashboard."""

from __future__ import annotations

import csv
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
import torch

from artefix.cli import main
from artefix.models import build_model
from artefix.models.checkpoint import load_model, save_model
from artefix.models.priors import estimated_snr_db
from artefix.models.snr import noise_corrected_snr_db

HEADS = ("bias", "subsampling", "motion", "noise")


def run(args, monkeypatch, capsys, command="qc"):
    monkeypatch.setattr(sys, "argv", ["artefix", command, *map(str, args)])
    with pytest.raises(SystemExit) as exc:
        main()
        raise SystemExit(0)
    out = capsys.readouterr()
    return exc.value.code or 0, out.out, out.err


@pytest.fixture(scope="module")
def model_path(tmp_path_factory) -> Path:
    """A tiny model with a detector whose scores vary between scans, a noise gate and data consistency."""
    net = build_model("tiny", seed=5, gates=True, consistency=True, noise_snr=(12.0, 20.0))
    gen = torch.Generator().manual_seed(7)
    with torch.no_grad():
        net.detector.score.weight.copy_(torch.randn(net.detector.score.weight.shape, generator=gen) * 3.0)
        net.detector.score.bias.zero_()
    return save_model(net, tmp_path_factory.mktemp("model") / "qc-tiny.safetensors", card={"description": "qc test"})


def _volume(seed: int, noise: float, n: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:40, :36]
    blob = 300 * np.exp(-(((yy - 20) / 9.0) ** 2 + ((xx - 18) / 7.0) ** 2))
    return (blob[..., None] * np.linspace(0.6, 1.0, n) + rng.random((40, 36, n)) * noise).astype(np.float32)


def _save(array: np.ndarray, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(array, np.diag([1.0, 1.0, 3.0, 1.0]))
    img.header.set_dim_info(slice=2)
    nib.save(img, path)
    return path


@pytest.fixture()
def dataset(tmp_path) -> Path:
    """A BIDS dataset: two good scans, one broken file, a JSON sidecar and a derivative (left out)."""
    root = tmp_path / "ds"
    root.mkdir()
    (root / "dataset_description.json").write_text(json.dumps({"Name": "qc test", "BIDSVersion": "1.9.0"}))
    _save(_volume(1, 10.0), root / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    (root / "sub-01" / "anat" / "sub-01_T1w.json").write_text("{}")
    _save(_volume(2, 120.0, n=4), root / "sub-02" / "ses-1" / "anat" / "sub-02_ses-1_T2w.nii.gz")
    broken = root / "sub-03" / "anat" / "sub-03_T1w.nii.gz"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"not a NIfTI file")
    _save(_volume(3, 5.0), root / "derivatives" / "x" / "sub-01" / "anat" / "sub-01_desc-x_T1w.nii.gz")
    return root


def _read(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        return list(reader.fieldnames or []), list(reader)


def _expected_slices(model_path: Path, scan: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-slice detector scores ``(N, 4)``, gate SNRs and estimated SNRs, computed here from the model directly."""
    net, _ = load_model(model_path)
    stack = torch.from_numpy(np.moveaxis(np.asarray(nib.load(scan).dataobj, dtype=np.float32), 2, 0).copy())
    u = (stack - stack.mean(dim=(1, 2), keepdim=True)) / stack.std(dim=(1, 2), keepdim=True, correction=0)
    with torch.no_grad():
        snr = estimated_snr_db(u)
        scores = net.eval().detect(u[:, None], snr_db=torch.full((u.shape[0],), float(snr.median())))
    return scores.numpy(), snr.numpy(), noise_corrected_snr_db(stack).numpy()


def test_qc_of_a_bids_dataset(dataset, model_path, tmp_path, monkeypatch, capsys, caplog):
    out = tmp_path / "qc"
    monkeypatch.chdir(tmp_path)
    code, stdout, err = run(["ds", "--out", out, "--model", model_path], monkeypatch, capsys)
    assert code == 1, err  # the broken scan
    failed = [line for line in err.splitlines() if line.startswith("failed:")]
    assert len(failed) == 1 and "sub-03_T1w.nii.gz" in failed[0]
    columns, rows = _read(out / "qc.csv")
    assert columns[:5] == ["path", *HEADS]
    assert [r["path"] for r in rows] == [
        str(Path("ds/sub-01/anat/sub-01_T1w.nii.gz")),
        str(Path("ds/sub-02/ses-1/anat/sub-02_ses-1_T2w.nii.gz")),
        str(Path("ds/sub-03/anat/sub-03_T1w.nii.gz")),
    ]  # as given (relative to where the command ran), derivatives left out
    bad = rows[2]
    assert "NIfTI" in bad["error"] and bad["bias"] == "" and bad["flagged"] == ""
    _, slices = _read(out / "slices.csv")
    scans = ("sub-01/anat/sub-01_T1w.nii.gz", "sub-02/ses-1/anat/sub-02_ses-1_T2w.nii.gz")
    for row, scan in zip(rows[:2], scans, strict=True):
        scores, snr, corrected = _expected_slices(model_path, dataset / scan)
        assert row["error"] == "" and int(row["slices"]) == int(row["counted_slices"]) == len(scores)
        for k, head in enumerate(HEADS):
            assert float(row[head]) == pytest.approx(np.percentile(scores[:, k], 90), rel=1e-4, abs=1e-5)
            assert row[f"{head}_flag"] == str(float(row[head]) >= 0.5)
        assert float(row["gate_snr_db"]) == pytest.approx(float(np.median(snr)), rel=1e-4)
        assert float(row["snr_db"]) == pytest.approx(float(np.median(corrected)), rel=1e-4)
        assert float(row["acceleration"]) == pytest.approx(1.0) and row["kspace_rows"] == "1"
        assert row["flags"] == ";".join(h for h in HEADS if row[f"{h}_flag"] == "True")
        worst = [int(z) for z in row["worst_slices"].split(";")]
        assert worst == list(np.argsort(-scores.max(axis=1), kind="stable")[:3])
        mine = [s for s in slices if s["path"] == row["path"]]
        assert [int(s["slice"]) for s in mine] == list(range(len(scores)))
        for k, head in enumerate(HEADS):
            np.testing.assert_allclose([float(s[head]) for s in mine], scores[:, k], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose([float(s["gate_snr_db"]) for s in mine], snr, rtol=1e-4)
        np.testing.assert_allclose([float(s["snr_db"]) for s in mine], corrected, rtol=1e-4)
    assert float(rows[0]["snr_db"]) > float(rows[1]["snr_db"])  # the second scan is much noisier
    assert float(rows[0]["gate_snr_db"]) > float(rows[1]["gate_snr_db"])
    html = (out / "index.html").read_text()
    assert html.count("data:image/png;base64,") == 6  # 3 worst slices of each scan read
    assert not re.search(r"""(?:src|href)=["']?(?:https?:)?//""", html)  # self-contained
    assert html.count("<svg") == 5  # a histogram per score and the SNR's
    assert (out / "qc.parquet").exists() == _has_pyarrow()
    if not _has_pyarrow():
        assert "qc.parquet not written: pyarrow is not installed" in caplog.text


def _has_pyarrow() -> bool:
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return False
    return True


def test_bad_arguments_are_one_line_errors_with_exit_2(dataset, model_path, tmp_path, monkeypatch, capsys):
    out = tmp_path / "qc"
    cases = [
        (["--threshold", "motion=1.5"], "from 0 to 1"),
        (["--threshold", "blur=0.5"], "blur"),
        (["--model", tmp_path / "none.safetensors"], "none.safetensors"),
    ]
    for extra, needle in cases:
        code, _, err = run([dataset, "--out", out, "--model", model_path, *extra], monkeypatch, capsys)
        assert code == 2 and err.startswith("error: ") and err.count("\n") == 1 and needle in err, err
        assert not out.exists()
    (tmp_path / "empty").mkdir()
    code, _, err = run([tmp_path / "empty", "--out", out, "--model", model_path], monkeypatch, capsys)
    assert code == 2 and "no scans found" in err
    code, _, err = run([tmp_path / "missing", "--out", out, "--model", model_path], monkeypatch, capsys)
    assert code == 2 and "no such file" in err
    # an earlier run's outputs are kept unless --overwrite
    scan = dataset / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    assert run([scan, "--out", out, "--model", model_path], monkeypatch, capsys)[0] == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    code, _, err = run([scan, "--out", out, "--model", model_path], monkeypatch, capsys)
    assert code == 2 and "--overwrite" in err
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    code, _, err = run(
        [scan, "--out", out, "--model", model_path, "--overwrite", "--threshold", "0"], monkeypatch, capsys
    )
    assert code == 0, err
    _, rows = _read(out / "qc.csv")
    assert rows[0]["flagged"] == "True" and rows[0]["flags"] == ";".join(HEADS)  # every score >= 0


@pytest.mark.slow
def test_two_worker_processes_give_the_same_tables(dataset, model_path, tmp_path, monkeypatch, capsys):
    one, two = tmp_path / "one", tmp_path / "two"
    assert run([dataset, "--out", one, "--model", model_path], monkeypatch, capsys)[0] == 1
    assert run([dataset, "--out", two, "--model", model_path, "--jobs", "2"], monkeypatch, capsys)[0] == 1
    for name in ("qc.csv", "slices.csv"):  # the same up to float32 round-off (workers run with fewer threads)
        _, a = _read(one / name)
        _, b = _read(two / name)
        assert len(a) == len(b) == (3 if name == "qc.csv" else 9)
        for x, y in zip(a, b, strict=True):
            assert x.keys() == y.keys()
            for key in x.keys() - {"seconds"}:
                if key in (*HEADS, "snr_db", "gate_snr_db") and x[key]:
                    assert float(x[key]) == pytest.approx(float(y[key]), rel=1e-4, abs=1e-6)
                else:
                    assert x[key] == y[key], key


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
@pytest.mark.skipif(_chromium() is None, reason="Chromium is not installed")
def test_dashboard_in_a_headless_browser(dataset, model_path, tmp_path, monkeypatch, capsys):
    out = tmp_path / "qc"
    args = [dataset, "--out", out, "--model", model_path, "--threshold", "bias=1,subsampling=1,noise=1,motion=0"]
    assert run(args, monkeypatch, capsys)[0] == 1
    _, rows = _read(out / "qc.csv")

    def dom(fragment: str) -> str:
        url = (out / "index.html").as_uri() + fragment
        result = subprocess.run(
            [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path / 'chrome'}",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=120, check=True,
        )  # fmt: skip
        return result.stdout

    def table(text: str) -> list[tuple[str, bool]]:
        """``(data-path, hidden)`` of the table's rows, in the order the page shows them."""
        return [
            (m.group(2), "hidden" in m.group(1) + m.group(3))
            for m in re.finditer(r"<tr([^>]*?)data-path=\"([^\"]*)\"([^>]*)>", text)
        ]

    plain = dom("")
    assert table(plain) == [(r["path"], False) for r in rows]
    assert "3 of 3 scans shown" in plain  # the script ran
    by_motion = sorted((r for r in rows if r["motion"]), key=lambda r: -float(r["motion"]))
    shown = dom("#flagged=1&sort=motion:desc")
    assert table(shown) == [(r["path"], False) for r in by_motion] + [(rows[2]["path"], True)]  # failed: not flagged
    assert "2 of 3 scans shown" in shown and 'aria-sort="descending"' in shown
    failed = dom("#failed=1")
    assert [p for p, hidden in table(failed) if not hidden] == [rows[2]["path"]]
    assert "1 of 3 scans shown" in dom("#q=ses-1")


def test_on_a_dask_cluster_the_tables_are_those_of_a_local_run(dataset, model_path, tmp_path, monkeypatch, capsys):
    distributed = pytest.importorskip("distributed")
    local, remote = tmp_path / "local", tmp_path / "remote"
    assert run([dataset, "--out", local, "--model", model_path], monkeypatch, capsys)[0] == 1
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        args = [dataset, "--out", remote, "--model", model_path, "--scheduler", cluster.scheduler_address]
        code, _, err = run(args, monkeypatch, capsys)
    assert code == 1 and "sub-03_T1w.nii.gz" in err  # the broken scan, as locally
    for name in ("qc.csv", "slices.csv"):
        _, a = _read(local / name)
        _, b = _read(remote / name)
        for row in a + b:
            row.pop("seconds", None)
        assert a == b
    code, _, err = run(
        [dataset, "--out", tmp_path / "x", "--scheduler", "tcp://127.0.0.1:1", "--jobs", "2"], monkeypatch, capsys
    )
    assert code == 2 and "exclude each other" in err


def test_a_dicom_folder_of_two_series_gives_two_rows(model_path, tmp_path, monkeypatch, capsys, mr_slice):
    from pydicom.uid import generate_uid

    folder = tmp_path / "export"
    folder.mkdir()
    rng = np.random.default_rng(0)
    uids = sorted([generate_uid(), generate_uid()])
    for s, uid in enumerate(uids):
        for k in range(3):
            stored = (rng.random((24, 20)) * 100 * (s + 1) + 400).astype(np.uint16)
            ds = mr_slice(stored, series_uid=uid, number=k + 1, position=(0.0, 0.0, 2.5 * k), SeriesDescription=f"s{s}")
            ds.save_as(folder / f"{s}_{k}", enforce_file_format=True)
    out = tmp_path / "qc"
    code, stdout, err = run([folder, "--out", out, "--model", model_path], monkeypatch, capsys)
    assert code == 0, err
    _, rows = _read(out / "qc.csv")
    assert [(r["path"], r["series"], r["series_description"], r["slices"]) for r in rows] == [
        (str(folder), uids[0], "s0", "3"),
        (str(folder), uids[1], "s1", "3"),
    ]
    assert all(r["format"] == "dicom" and r["error"] == "" for r in rows)
    _, slices = _read(out / "slices.csv")
    assert [(s["series"], s["slice"]) for s in slices] == [(u, str(z)) for u in uids for z in range(3)]


def _count_measured(monkeypatch) -> list[str]:
    """Record the scans ``artefix qc`` measures from now on (the list fills as it runs)."""
    from artefix.qc import run as qc_run

    measured: list[str] = []
    real = qc_run.qc_scan

    def counting(task):
        measured.append(task[0].given)
        return real(task)

    monkeypatch.setattr(qc_run, "qc_scan", counting)
    return measured


def test_resume_measures_only_what_changed_and_gives_the_same_tables(
    dataset, model_path, tmp_path, monkeypatch, capsys
):

    out = tmp_path / "qc"
    assert run([dataset, "--out", out, "--model", model_path], monkeypatch, capsys)[0] == 1
    first = {name: _read(out / name)[1] for name in ("qc.csv", "slices.csv")}
    kept = sorted((out / ".artefix-qc").glob("*.json"))
    assert len(kept) == 2  # the two scans measured without error; the broken one is tried again next time

    measured = _count_measured(monkeypatch)
    code, _, err = run([dataset, "--out", out, "--model", model_path], monkeypatch, capsys)
    assert code == 2 and "--overwrite" in err and not measured  # without --resume the earlier run is kept
    assert run([dataset, "--out", out, "--model", model_path, "--resume"], monkeypatch, capsys)[0] == 1
    assert [Path(g).name for g in measured] == ["sub-03_T1w.nii.gz"]  # only the scan without a kept result
    for name, rows in first.items():
        again = _read(out / name)[1]
        assert [{k: v for k, v in r.items() if k != "seconds"} for r in again] == [
            {k: v for k, v in r.items() if k != "seconds"} for r in rows
        ]

    measured.clear()  # a changed scan, and another option, are measured again
    changed = dataset / "sub-01" / "anat" / "sub-01_T1w.nii.gz"
    _save(_volume(9, 40.0), changed)
    assert run([dataset, "--out", out, "--model", model_path, "--resume"], monkeypatch, capsys)[0] == 1
    assert sorted(Path(g).name for g in measured) == ["sub-01_T1w.nii.gz", "sub-03_T1w.nii.gz"]
    measured.clear()
    args = [dataset, "--out", out, "--model", model_path, "--resume", "--snr-scope", "slice"]
    assert run(args, monkeypatch, capsys)[0] == 1
    assert len(measured) == 3


def test_resume_measures_again_what_an_older_version_kept(dataset, model_path, tmp_path, monkeypatch, capsys):
    """Entries of an earlier cache format (the gate's SNR under ``snr_db``, no ``gate_snr``) are not reused."""
    import json

    from artefix.qc import cache

    out = tmp_path / "qc"
    assert run([dataset, "--out", out, "--model", model_path], monkeypatch, capsys)[0] == 1
    first = _read(out / "qc.csv")[1]
    for entry in (out / cache.CACHE_DIR).glob("*.json"):
        doc = json.loads(entry.read_text())
        doc["format"] = 1
        doc["qc"]["snr_db"] = doc["qc"].pop("gate_snr")  # what version 1 kept
        entry.write_text(json.dumps(doc))
    measured = _count_measured(monkeypatch)
    assert run([dataset, "--out", out, "--model", model_path, "--resume"], monkeypatch, capsys)[0] == 1
    assert len(measured) == 3  # nothing taken from the old entries
    again = _read(out / "qc.csv")[1]
    assert [r["snr_db"] for r in again] == [r["snr_db"] for r in first]
    assert [r["gate_snr_db"] for r in again] == [r["gate_snr_db"] for r in first]
    assert all(r["snr_db"] != r["gate_snr_db"] for r in again[:2])


def test_an_interrupted_run_resumes_from_the_scans_it_finished(dataset, model_path, tmp_path, monkeypatch, capsys):
    from artefix.qc import run as qc_run

    out = tmp_path / "qc"
    real = qc_run.qc_scan
    calls = []

    def dies_on_the_second_scan(task):
        calls.append(task[0].given)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(task)

    monkeypatch.setattr(qc_run, "qc_scan", dies_on_the_second_scan)
    with pytest.raises(KeyboardInterrupt):
        qc_run.run_qc(qc_run_refs(dataset), out, spec=qc_run.ModelSpec(str(model_path)), options=qc_run.QCOptions())
    assert not (out / "qc.csv").exists() and len(list((out / ".artefix-qc").glob("*.json"))) == 1
    calls.clear()
    monkeypatch.setattr(qc_run, "qc_scan", lambda task: (calls.append(task[0].given), real(task))[1])
    result = qc_run.run_qc(
        qc_run_refs(dataset), out, spec=qc_run.ModelSpec(str(model_path)), options=qc_run.QCOptions(), resume=True
    )
    assert len(calls) == 2 and len(result.rows) == 3 and (out / "qc.csv").is_file()


def qc_run_refs(dataset):
    from artefix.qc.discover import discover

    return discover([str(dataset)])
