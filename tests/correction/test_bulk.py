"""Where bulk correction writes each scan, and which scans a rerun leaves alone."""

from __future__ import annotations

import json
from pathlib import Path, PurePosixPath

import numpy as np
import pytest

from artefix.correction.bulk import CorrectionOptions, bids_derived_name, output_for, plan, sidecar_for
from artefix.correction.spec import ModelSpec
from artefix.errors import InputError
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
