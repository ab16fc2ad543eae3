"""Where bulk correction writes each scan, and which scans a rerun leaves alone."""

from __future__ import annotations

import dataclasses
import itertools
import json
import logging
import os
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from artefix.correction import bulk
from artefix.correction.bulk import (
    STATUSES,
    BulkResult,
    BulkRun,
    BulkTask,
    CorrectionOptions,
    bids_derived_name,
    check_out_dir,
    output_for,
    plan,
    sidecar_for,
    write_summary,
)
from artefix.correction.options import InferenceOptions
from artefix.correction.spec import ModelSpec, clear_model_cache
from artefix.errors import InputError, OutputError
from artefix.models import build_model
from artefix.models.checkpoint import save_model
from artefix.qc.discover import ScanRef


def test_bids_names_get_the_desc_entity():
    assert bids_derived_name("sub-01_ses-2_run-1_T1w.nii.gz") == "sub-01_ses-2_run-1_desc-corrected_T1w.nii.gz"
    assert bids_derived_name("sub-01_FLAIR.nii") == "sub-01_desc-corrected_FLAIR.nii"
    assert bids_derived_name("sub-01_desc-prep_T1w.nii.gz") == "sub-01_desc-prep_T1w.nii.gz"  # has one already
    assert sidecar_for(Path("d/sub-01_desc-corrected_T1w.nii.gz")) == Path("d/sub-01_desc-corrected_T1w.json")
    assert sidecar_for(Path("d/1.2.840.5")) == Path("d/1.2.840.5.json")  # a DICOM series folder named by UID


def test_outputs_mirror_the_input_tree(tmp_path):
    out = tmp_path / "out"
    folder = tmp_path / "in" / "a" / "series"
    folder.mkdir(parents=True)
    bids = ScanRef(tmp_path / "x.nii.gz", "x", PurePosixPath("sub-01/anat/sub-01_T1w.nii.gz"), bids_root=tmp_path)
    assert output_for(bids, out) == out / "sub-01" / "anat" / "sub-01_desc-corrected_T1w.nii.gz"
    series = ScanRef(folder, "in/a/series", PurePosixPath("a/series"), key="1.2.3", root=tmp_path / "in")
    assert output_for(series, out) == out / "a" / "series" / "1.2.3"
    (tmp_path / "IM1.dcm").write_bytes(b"\0" * 128 + b"DICM")
    single = ScanRef(tmp_path / "IM1.dcm", "IM1.dcm", PurePosixPath("IM1.dcm"))
    assert output_for(single, out) == out / "IM1"  # a one-image DICOM series folder
    npy = ScanRef(tmp_path / "in" / "a" / "v.npy", "in/a/v.npy", PurePosixPath("a/v.npy"), root=tmp_path / "in")
    assert output_for(npy, out) == out / "a" / "v.npy"


def test_plan_skips_finished_scans_and_refuses_two_scans_for_one_output(tmp_path):
    out = tmp_path / "out"
    (tmp_path / "in").mkdir()
    refs = []
    for name in ("a.npy", "b.npy"):
        np.save(tmp_path / "in" / name, np.ones((4, 4), np.float32))
        refs.append(ScanRef(tmp_path / "in" / name, f"in/{name}", PurePosixPath(name), root=tmp_path / "in"))
    card = {"name": "m", "sha256": "abc"}
    options = CorrectionOptions.create(strength={"noise": 0.5})
    tasks, settled = plan(refs, out, spec=ModelSpec("m"), options=options, card=card)
    assert [t.output for t in tasks] == [out / "a.npy", out / "b.npy"] and settled == []
    assert tasks[0].settings["strength"] == {"noise": 0.5} and tasks[0].settings["model_sha256"] == "abc"
    out.mkdir()
    np.save(out / "a.npy", np.ones(1))
    (out / "a.json").write_text(json.dumps({"artefix": {"settings": tasks[0].settings}}))
    tasks, settled = plan(refs, out, spec=ModelSpec("m"), options=options, card=card)
    assert [t.ref.given for t in tasks] == ["in/b.npy"] and [(i, r.status) for i, r in settled] == [(0, "done before")]
    tasks, settled = plan(refs, out, spec=ModelSpec("m"), options=CorrectionOptions(), card=card)
    assert settled[0][1].status == "done before, other settings"
    tasks, settled = plan(refs, out, spec=ModelSpec("m"), options=options, card=card, overwrite=True)
    assert len(tasks) == 2 and settled == []
    flagged = {refs[1].identity}
    tasks, settled = plan(refs, out, spec=ModelSpec("m"), options=options, card=card, flagged=flagged)
    assert [r.status for _, r in settled] == ["not flagged"] and len(tasks) == 1
    twin = ScanRef(tmp_path / "elsewhere.npy", "elsewhere/b.npy", PurePosixPath("b.npy"))
    with pytest.raises(InputError, match="both be written"):
        plan([*refs, twin], out, spec=ModelSpec("m"), options=options, card=card, overwrite=True)


@pytest.fixture
def tiny_spec(tmp_path):
    """The spec of a tiny untrained checkpoint; the process's model cache empty before and after."""
    weights = tmp_path / "tiny.safetensors"
    save_model(build_model("tiny", seed=1), weights, card={"description": "tiny"})
    clear_model_cache()
    yield ModelSpec(str(weights))
    clear_model_cache()


def _save_scan(path: Path) -> None:
    """A 16x16 slice with contrast (a constant one would be refused as nothing to correct)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.random.default_rng(0).random((16, 16)).astype(np.float32) + 1)


def _npy(folder: Path, name: str) -> ScanRef:
    _save_scan(folder / name)
    return ScanRef(folder / name, name, PurePosixPath(name), root=folder)


def _bids_refs(tmp_path: Path, names: tuple[str, ...], description: str) -> list[ScanRef]:
    """One scan in each BIDS dataset ``tmp_path/NAME``, described by ``description`` (NAME replaced)."""
    refs = []
    for name in names:
        root = tmp_path / name
        root.mkdir()
        (root / "dataset_description.json").write_text(description.replace("NAME", name))
        refs.append(ScanRef(root / "x.nii.gz", "x", PurePosixPath("sub-01/anat/sub-01_T1w.nii.gz"), bids_root=root))
    return refs


def test_options_create_and_of():
    options = CorrectionOptions.create(only=["noise", "bias"], strength={"noise": 1, "bias": 0.5}, axis=1)
    assert options == CorrectionOptions(("noise", "bias"), (("bias", 0.5), ("noise", 1.0)), 1, None, "scan")
    assert all(type(v) is float for _, v in options.strength)
    assert CorrectionOptions.create() == CorrectionOptions()
    inference = InferenceOptions(only=("motion",), strength=(("motion", 0.5),), ensemble=2, snr_scope="slice")
    assert CorrectionOptions.of(inference, axis=0, batch_size=3) == CorrectionOptions(
        ("motion",), (("motion", 0.5),), 0, 3, "slice"
    )


def test_a_run_counts_its_statuses():
    ref = ScanRef(Path("a.npy"), "a.npy", PurePosixPath("a.npy"))
    results = [
        BulkResult(ref, None, "failed", "bad"),
        BulkResult(ref, None, "corrected"),
        BulkResult(ref, None, "failed", "worse"),
    ]
    run = BulkRun(results, Path("out"))
    assert (run.count("failed"), run.count("corrected"), run.count("not flagged")) == (2, 1, 0)
    assert [r.error for r in run.failed] == ["bad", "worse"]
    assert set(STATUSES) == {"corrected", "done before", "done before, other settings", "failed", "not flagged"}


def test_scan_suffixes_are_matched_whatever_their_case_and_kept_as_given():
    assert bids_derived_name("sub-01_T1w.NII.GZ") == "sub-01_desc-corrected_T1w.NII.GZ"
    assert bids_derived_name("sub-01_T2w") == "sub-01_desc-corrected_T2w"  # no suffix
    assert bids_derived_name("T1w.nii.gz") == "T1w.nii.gz"  # no entities: left alone
    assert bids_derived_name("sub-01_desc-a_run-1_T1w.nii") == "sub-01_desc-a_run-1_T1w.nii"
    assert bids_derived_name("sub-01_mydesc-a_T1w.nii") == "sub-01_mydesc-a_desc-corrected_T1w.nii"
    for name, sidecar in [
        ("x.NII", "x.json"),
        ("x.nii", "x.json"),
        ("x.npz", "x.json"),
        ("x.h5", "x.json"),
        ("x.hdf5", "x.json"),
        ("x.png", "x.json"),
        ("x.npy", "x.json"),
        ("x.gz", "x.gz.json"),
        ("x.tar.nii.gz", "x.tar.json"),
    ]:
        assert sidecar_for(Path("d") / name) == Path("d") / sidecar


def test_the_output_folder_may_not_lie_inside_an_input(tmp_path):
    ref = _npy(tmp_path / "in", "a.npy")
    check_out_dir([ref], tmp_path / "out", derivatives=False)
    check_out_dir([ScanRef(ref.path, "a.npy", PurePosixPath("a.npy"))], tmp_path / "in" / "out", derivatives=False)
    for inside in (tmp_path / "in", tmp_path / "in" / "out", tmp_path / "in" / "a" / "b"):
        with pytest.raises(InputError, match="is inside the input"):
            check_out_dir([ref], inside, derivatives=False)
    (tmp_path / "link").symlink_to(tmp_path / "in")
    with pytest.raises(InputError, match="is inside the input"):
        check_out_dir([ref], tmp_path / "link" / "out", derivatives=False)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="exists and is not a folder"):
        check_out_dir([ref], tmp_path / "file", derivatives=False)


def test_a_bids_output_may_lie_in_the_datasets_derivatives(tmp_path):
    root = tmp_path / "ds"
    (root / "sub-01" / "anat").mkdir(parents=True)
    relative = PurePosixPath("sub-01/anat/sub-01_T1w.nii.gz")
    ref = ScanRef(root / relative, "x", relative, bids_root=root, root=root)
    check_out_dir([ref], root / "derivatives" / "artefix", derivatives=False)
    check_out_dir([ref], root / "derivatives" / "artefix" / "deeper", derivatives=False)
    for refused, derivatives in [
        (root / "derivatives" / "artefix", True),  # derivatives searched: the outputs would be read back
        (root / "derivatives", False),  # the derivatives folder itself
        (root / "sub-01", False),
        (root, False),
    ]:
        with pytest.raises(InputError, match="DATASET/derivatives/NAME"):
            check_out_dir([ref], refused, derivatives=derivatives)


def test_a_dicom_series_with_another_output_below_it_moves_into_a_series_folder(tmp_path):
    series = tmp_path / "in" / "a"
    series.mkdir(parents=True)
    inner = _npy(series / "b", "v.npy")
    refs = [
        ScanRef(series, "in/a", PurePosixPath("a"), root=tmp_path / "in"),
        ScanRef(inner.path, "in/a/b/v.npy", PurePosixPath("a/b/v.npy"), root=tmp_path / "in"),
        ScanRef(tmp_path / "in" / "c", "in/c", PurePosixPath("c"), root=tmp_path / "in"),
    ]
    (tmp_path / "in" / "c").mkdir()
    out = tmp_path / "out"
    assert bulk._outputs(refs, out) == [out / "a" / "series", out / "a" / "b" / "v.npy", out / "c"]


def test_plan_records_sources_settings_and_refuses_an_unknown_output(tmp_path):
    out = tmp_path / "out"
    plain = _npy(tmp_path / "in", "a.npy")
    root = tmp_path / "ds"
    (root / "sub-01" / "anat").mkdir(parents=True)
    np.save(root / "sub-01" / "anat" / "b.npy", np.ones((4, 4), np.float32))
    bids = ScanRef(root / "sub-01" / "anat" / "b.npy", "b", PurePosixPath("sub-01/anat/sub-01_T1w.npy"), bids_root=root)
    card = {"name": "m", "sha256": "abc"}
    spec = ModelSpec("m", ensemble=2, priors=False, gates=True)
    options = CorrectionOptions.create(only=["noise"], axis=0)
    tasks, settled = plan([plain, bids], out, spec=spec, options=options, card=card)
    assert settled == []
    assert tasks[0].sources == (str(plain.path.absolute().resolve()),)
    assert tasks[1].sources == ("bids:raw:sub-01/anat/sub-01_T1w.npy",)
    assert tasks[1].output == out / "sub-01" / "anat" / "sub-01_desc-corrected_T1w.npy"
    assert tasks[1].sidecar == out / "sub-01" / "anat" / "sub-01_desc-corrected_T1w.json"
    assert all(t.overwrite and t.spec == spec and t.options == options for t in tasks)
    assert tasks[0].settings == {
        "model": "m",
        "model_sha256": "abc",
        "ensemble": 2,
        "priors": False,
        "gates": True,
        "only": ["noise"],
        "strength": None,
        "axis": 0,
        "batch_size": None,
        "snr_scope": "scan",
    }
    out.mkdir()
    np.save(out / "a.npy", np.ones(1))  # an output no finished run wrote: never replaced without overwrite
    tasks, settled = plan([plain], out, spec=spec, options=options, card=card)
    assert tasks == [] and [(i, r.status) for i, r in settled] == [(0, "failed")]
    assert (
        settled[0][1].error
        == f"{out / 'a.npy'}: exists but has no sidecar a.json of a finished run; `overwrite` replaces it"
    )
    (out / "a.json").write_text("{not json")  # a sidecar that cannot be read: other settings, still not replaced
    assert plan([plain], out, spec=spec, options=options, card=card)[1][0][1].status == "done before, other settings"
    (out / "a.json").write_text(json.dumps({"artefix": {}}))
    assert plan([plain], out, spec=spec, options=options, card=card)[1][0][1].status == "done before, other settings"
    with pytest.raises(InputError, match="would both be written"):
        plan([plain, plain], out, spec=spec, options=options, card=card, overwrite=True)


def test_the_derivatives_description_names_the_first_raw_dataset(tmp_path):
    refs = _bids_refs(tmp_path, ("b-ds", "a-ds"), json.dumps({"Name": "raw NAME", "BIDSVersion": "1.8.0"}))
    out = tmp_path / "out"
    out.mkdir()
    bulk._write_dataset_description(out, refs)
    description = json.loads((out / "dataset_description.json").read_text())
    assert description["Name"] == "artefix corrections of raw a-ds" and description["BIDSVersion"] == "1.8.0"
    assert description["DatasetType"] == "derivative" and len(description["SourceDatasets"]) == 2
    assert description["DatasetLinks"] == {"raw": (tmp_path / "a-ds").resolve().as_uri()}
    (out / "dataset_description.json").write_text("{}")
    bulk._write_dataset_description(out, refs)  # written once: an existing description is kept
    assert (out / "dataset_description.json").read_text() == "{}"


def test_a_run_removes_the_temporaries_interrupted_writes_left_and_nothing_else(tmp_path, caplog):
    ref = _npy(tmp_path / "in", "a.npy")
    tasks, _ = plan([ref], tmp_path / "out", spec=ModelSpec("m"), options=CorrectionOptions(), card={})
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".a.npy.3f9a_x.tmp.npy", out / ".a.json.0c1d.old", out / ".a.npy.k2.tmp"]
    kept = [out / ".a.npy.backup", out / "a.npy", out / ".b.npy.3f9a.tmp", out / ".a.npy.3F9A.tmp"]
    for path in stale + kept:
        path.write_text("x")
    (out / ".a.json.77.tmpdir.tmp").mkdir()
    (out / ".a.json.77.tmpdir.tmp" / "inside").write_text("x")
    with caplog.at_level("WARNING", logger="artefix.correction.bulk"):
        bulk._remove_temporaries(tasks)
    assert not any(p.exists() for p in stale) and not (out / ".a.json.77.tmpdir.tmp").exists()
    assert all(p.exists() for p in kept)
    assert "removed 4 temporaries" in caplog.text


def test_a_plain_input_holding_a_bids_dataset_refuses_an_output_in_its_derivatives(tmp_path):
    data = tmp_path / "data"
    dataset = data / "ds"
    (dataset / "sub-01" / "anat").mkdir(parents=True)
    plain = ScanRef(data / "x.npy", "data/x.npy", PurePosixPath("x.npy"), root=data)
    bids = ScanRef(dataset / "y.npy", "y", PurePosixPath("sub-01/anat/sub-01_T1w.npy"), bids_root=dataset, root=dataset)
    out = dataset / "derivatives" / "artefix"
    check_out_dir([bids], out, derivatives=False)
    with pytest.raises(InputError, match=f"is inside the input {data}:"):  # searching data/ would read it back
        check_out_dir([bids, plain], out, derivatives=False)


def test_plan_goes_on_after_an_output_it_may_not_replace(tmp_path):
    refs = [_npy(tmp_path / "in", name) for name in ("a.npy", "b.npy")]
    out = tmp_path / "out"
    out.mkdir()
    np.save(out / "a.npy", np.ones(1))  # no sidecar: not replaced, and b is still planned
    tasks, settled = plan(refs, out, spec=ModelSpec("m"), options=CorrectionOptions(), card={})
    assert [(i, r.status) for i, r in settled] == [(0, "failed")] and [t.output for t in tasks] == [out / "b.npy"]


def test_a_bulk_run_times_each_scan_and_the_whole_run(tmp_path, monkeypatch, tiny_spec):
    ref = _npy(tmp_path / "in", "a.npy")
    clock = itertools.count(1000.0, 1.0)  # every reading one second later: the durations are whole seconds
    monkeypatch.setattr(bulk.time, "perf_counter", lambda: next(clock))
    run = bulk.run_bulk([ref], tmp_path / "out", spec=tiny_spec)
    [result] = run.results
    assert result.status == "corrected", result.error
    assert result.seconds.is_integer() and run.seconds.is_integer() and 0 < result.seconds < run.seconds < 1000
    (tmp_path / "in" / "bad.npy").write_bytes(b"not an array")
    bad = ScanRef(tmp_path / "in" / "bad.npy", "in/bad.npy", PurePosixPath("bad.npy"), root=tmp_path / "in")
    [failed] = bulk.run_bulk([bad], tmp_path / "out", spec=tiny_spec).results
    assert failed.status == "failed" and failed.seconds.is_integer() and 0 < failed.seconds < 1000
    with pytest.raises(TypeError):
        bulk.run_bulk([ref], tmp_path / "out", tiny_spec)  # the options are keyword-only


def test_an_unexpected_failure_is_one_line_for_the_user_and_a_traceback_in_the_log(
    tmp_path, monkeypatch, caplog, tiny_spec
):
    ref = _npy(tmp_path / "in", "a.npy")
    [task], _ = plan([ref], tmp_path / "out", spec=tiny_spec, options=CorrectionOptions(), card={})

    def boom(*args, **kwargs):
        raise RuntimeError("boom\nsecond line")

    monkeypatch.setattr("artefix.correction.volume.correct_volume", boom)
    with caplog.at_level(logging.DEBUG, logger="artefix.correction.bulk"):
        result = bulk.correct_scan(task)
    assert (result.status, result.error) == ("failed", "RuntimeError: boom second line")
    assert [r.exc_info[0] for r in caplog.records if r.exc_info] == [RuntimeError]
    assert not task.output.exists() and not task.sidecar.exists()


def test_options_and_results_are_values_and_the_planners_options_keyword_only(tmp_path):
    with pytest.raises(dataclasses.FrozenInstanceError):
        CorrectionOptions().axis = 1
    ref = ScanRef(Path("a.npy"), "a.npy", PurePosixPath("a.npy"))
    assert BulkResult(ref, None, "not flagged").seconds == 0.0 and BulkResult(ref, None, "x").error == ""
    status = "".join(["fai", "led"])  # equal to "failed", as read back from a summary: not the same object
    run = BulkRun([BulkResult(ref, None, status)], Path("o"))
    assert run.failed != [] and run.count("".join(["fai", "led"])) == 1
    assert (run.summary, run.seconds) == (None, 0.0)
    task = BulkTask(ref, Path("o.npy"), Path("o.json"), ModelSpec(), CorrectionOptions(), {}, ())
    assert task.overwrite is False
    with pytest.raises(dataclasses.FrozenInstanceError):
        task.overwrite = True
    with pytest.raises(TypeError):
        check_out_dir([], tmp_path, False)  # derivatives is keyword-only
    with pytest.raises(TypeError):
        plan([], tmp_path, ModelSpec("m"), CorrectionOptions(), {})
    with pytest.raises(TypeError):
        CorrectionOptions.create(["noise"])
    with pytest.raises(TypeError):
        CorrectionOptions.of(InferenceOptions(), 0, 3)  # axis and batch size


def test_every_input_holding_the_output_folder_is_checked(tmp_path):
    dataset = tmp_path / "ds"
    derivatives = dataset / "derivatives"
    (dataset / "sub-01" / "anat").mkdir(parents=True)
    bids = ScanRef(dataset / "y.npy", "y", PurePosixPath("sub-01/anat/sub-01_T1w.npy"), bids_root=dataset, root=dataset)
    # the derivatives folder given as an input too: the dataset's exemption does not cover it
    plain = ScanRef(derivatives / "x.npy", "x.npy", PurePosixPath("x.npy"), root=derivatives)
    with pytest.raises(InputError, match=f"is inside the input {derivatives}:"):
        check_out_dir([bids, plain], derivatives / "artefix", derivatives=False)
    # a root reached twice through equal paths (distinct objects), once from a BIDS scan
    loose = ScanRef(dataset / "notes.npy", "notes.npy", PurePosixPath("notes.npy"), root=Path(str(dataset)))
    check_out_dir([loose, bids], derivatives / "artefix", derivatives=False)


def test_an_unreadable_raw_description_is_replaced_by_defaults(tmp_path):
    refs = _bids_refs(tmp_path, ("raw-ds", "second-ds"), "{not json")  # the first (sorted) names the derivatives
    out = tmp_path / "out"
    out.mkdir()
    bulk._write_dataset_description(out, refs[::-1])
    text = (out / "dataset_description.json").read_text()
    description = json.loads(text)
    assert description["Name"] == "artefix corrections of raw-ds" and description["BIDSVersion"] == "1.9.0"
    assert text == json.dumps(description, indent=2) + "\n"


def test_temporaries_are_removed_for_every_task_even_after_one_without_a_folder(tmp_path):
    refs = [_npy(tmp_path / "in", name) for name in ("a.npy", "b.npy")]
    tasks, _ = plan(refs, tmp_path / "out", spec=ModelSpec("m"), options=CorrectionOptions(), card={})
    tasks[0] = dataclasses.replace(
        tasks[0], output=tmp_path / "missing" / "a.npy", sidecar=tmp_path / "missing" / "a.json"
    )
    (tmp_path / "out").mkdir()
    stale = tmp_path / "out" / ".b.npy.9z.tmp"
    stale.write_text("x")
    bulk._remove_temporaries(tasks)
    assert not stale.exists()


def test_the_summary_lists_every_scan(tmp_path):
    ref = ScanRef(Path("a.npy"), "in/a.npy", PurePosixPath("a.npy"))
    series = ScanRef(Path("d"), "in/d", PurePosixPath("d"), key="1.2.3")
    results = [
        BulkResult(ref, Path("out/a.npy"), "corrected", seconds=1.23456),
        BulkResult(series, None, "not flagged"),
        BulkResult(ref, Path("out/b.npy"), "failed", "bad file", 0.5),
    ]
    write_summary(tmp_path / "corrections.csv", results)
    assert (tmp_path / "corrections.csv").read_text().splitlines() == [
        "path,series,output,status,error,seconds",
        "in/a.npy,,out/a.npy,corrected,,1.235",
        "in/d,1.2.3,,not flagged,,",
        "in/a.npy,,out/b.npy,failed,bad file,0.500",
    ]


def test_a_bulk_run_may_write_into_the_datasets_derivatives_by_default(tmp_path, tiny_spec):
    dataset = tmp_path / "ds"
    scan = dataset / "sub-01" / "anat" / "sub-01_T1w.npy"
    _save_scan(scan)  # creates the folders
    ref = ScanRef(scan, "x", PurePosixPath("sub-01/anat/sub-01_T1w.npy"), bids_root=dataset, root=dataset)
    out = dataset / "derivatives" / "artefix"
    run = bulk.run_bulk([ref], out, spec=tiny_spec)  # derivatives are not searched by default
    with pytest.raises(InputError, match="is inside the input"):
        bulk.run_bulk([ref], out, spec=tiny_spec, derivatives=True)
    assert [r.status for r in run.results] == ["corrected"]
    assert (out / "sub-01" / "anat" / "sub-01_desc-corrected_T1w.npy").is_file()
    text = (out / "sub-01" / "anat" / "sub-01_desc-corrected_T1w.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2) + "\n"
    assert [r.status for r in bulk.run_bulk([ref], out, spec=tiny_spec).results] == ["done before"]  # no overwrite


def test_every_root_is_checked_whatever_comes_before_it(tmp_path):
    first, second = _npy(tmp_path / "a-first", "x.npy"), _npy(tmp_path / "b-second", "y.npy")
    with pytest.raises(InputError, match="is inside the input"):
        check_out_dir([first, second], tmp_path / "b-second" / "out", derivatives=False)


def test_an_output_folder_that_cannot_be_created_is_an_output_error(tmp_path, tiny_spec):
    ref = _npy(tmp_path / "in", "a.npy")
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="cannot create the output folder"):
        bulk.run_bulk([ref], tmp_path / "file" / "out", spec=tiny_spec)


def test_a_scan_whose_output_folder_cannot_be_made_fails_alone(tmp_path, tiny_spec):
    ref = _npy(tmp_path / "in", "a.npy")
    (tmp_path / "blocked").write_text("x")
    [task], _ = plan([ref], tmp_path / "blocked" / "out", spec=tiny_spec, options=CorrectionOptions(), card={})
    result = bulk.correct_scan(task)
    assert result.status == "failed" and "cannot create the folder" in result.error


def test_temporaries_that_vanish_or_resist_do_not_stop_the_cleanup(tmp_path, monkeypatch):
    ref = _npy(tmp_path / "in", "a.npy")
    tasks, _ = plan([ref], tmp_path / "out", spec=ModelSpec("m"), options=CorrectionOptions(), card={})
    out = tmp_path / "out"
    (out / ".a.npy.77.tmp").mkdir(parents=True)
    glob = Path.glob

    def with_a_vanished_one(self, pattern):  # another process removed one between listing and removal
        return [*glob(self, pattern), self / ".a.json.99.old"]

    def refused(*args, **kwargs):  # a folder that cannot be removed
        raise PermissionError("refused")

    monkeypatch.setattr(Path, "glob", with_a_vanished_one)
    monkeypatch.setattr(os, "rmdir", refused)
    bulk._remove_temporaries(tasks)  # neither raises
