"""Which scans the inputs hold: BIDS datasets, DICOM trees (one scan per series), folders and files."""

from __future__ import annotations

import json
import os
from pathlib import Path, PurePosixPath

import numpy as np
import pytest
from pydicom.uid import generate_uid

from artefix.data.io import read_volume
from artefix.errors import InputError
from artefix.qc.discover import discover


def _touch_nifti(path: Path) -> Path:
    import nibabel as nib

    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((8, 8, 2)).astype(np.float32), np.eye(4)), path)
    return path


def _bids(root: Path) -> Path:
    root.mkdir()
    (root / "dataset_description.json").write_text(json.dumps({"Name": "demo", "BIDSVersion": "1.9.0"}))
    _touch_nifti(root / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    (root / "sub-01" / "anat" / "sub-01_T1w.json").write_text("{}")
    _touch_nifti(root / "sub-01" / "anat" / "sub-01_desc-brain_mask.nii.gz")  # a mask: not a scan
    _touch_nifti(root / "sub-02" / "ses-1" / "anat" / "sub-02_ses-1_FLAIR.nii")
    _touch_nifti(root / "sub-02" / "ses-1" / "func" / "sub-02_ses-1_task-rest_bold.nii.gz")  # not anat
    _touch_nifti(root / "derivatives" / "prep" / "sub-01" / "anat" / "sub-01_desc-prep_T1w.nii.gz")
    (root / "derivatives" / "prep" / "dataset_description.json").write_text("{}")
    return root


def test_bids_anat_only_without_derivatives_unless_asked(tmp_path):
    root = _bids(tmp_path / "ds")
    refs = discover([str(root)])
    assert [r.relative for r in refs] == [
        PurePosixPath("sub-01/anat/sub-01_T1w.nii.gz"),
        PurePosixPath("sub-02/ses-1/anat/sub-02_ses-1_FLAIR.nii"),
    ]
    assert all(r.bids_root == root for r in refs)
    assert refs[0].given == os.path.join(str(root), "sub-01", "anat", "sub-01_T1w.nii.gz")
    with_derivatives = discover([root], derivatives=True)
    assert PurePosixPath("derivatives/prep/sub-01/anat/sub-01_desc-prep_T1w.nii.gz") in {
        r.relative for r in with_derivatives
    }
    # a subject folder of a dataset: its scans, placed relative to the dataset's root
    sub = discover([str(root / "sub-02")])
    assert [r.relative for r in sub] == [PurePosixPath("sub-02/ses-1/anat/sub-02_ses-1_FLAIR.nii")]
    assert sub[0].given == os.path.join(str(root / "sub-02"), "ses-1", "anat", "sub-02_ses-1_FLAIR.nii")
    # a dataset inside a plain folder is searched by the BIDS rule too
    nested = discover([tmp_path])
    assert {r.relative for r in nested} == {r.relative for r in refs}


def test_dicom_tree_gives_one_scan_per_series(tmp_path, mr_slice):
    tree = tmp_path / "archive"
    mixed, single = tree / "patient1" / "study", tree / "patient2" / "series7"
    mixed.mkdir(parents=True)
    single.mkdir(parents=True)
    uids = sorted([generate_uid(), generate_uid()])
    rng = np.random.default_rng(0)
    for s, uid in enumerate(uids):
        for k in range(3):
            ds = mr_slice(
                (rng.random((12, 10)) * 1000).astype(np.uint16),
                series_uid=uid,
                number=k + 1,
                position=(0.0, 0.0, 2.0 * k),
                SeriesDescription=f"series {s}",
            )
            ds.save_as(mixed / f"1.2.3.{s}.{k}", enforce_file_format=True)  # named by UID: no suffix
    single_uid = generate_uid()
    for k in range(2):
        ds = mr_slice(
            np.full((12, 10), k + 1, np.uint16), series_uid=single_uid, number=k + 1, position=(0, 0, 2.0 * k)
        )
        ds.save_as(single / f"{k}.dcm", enforce_file_format=True)
    (mixed / "README.txt").write_text("exported by the PACS")
    refs = discover([tree])
    assert [(r.relative, r.key) for r in refs] == [
        (PurePosixPath("patient1/study"), uids[0]),
        (PurePosixPath("patient1/study"), uids[1]),
        (PurePosixPath("patient2/series7"), None),
    ]
    assert [r.series_description for r in refs[:2]] == ["series 0", "series 1"]
    for ref in refs:
        volume = read_volume(ref.path, key=ref.key)
        assert volume.array.shape == ((12, 10, 3) if ref.key else (12, 10, 2))
    # the series folder given itself
    (alone,) = discover([str(single)])
    assert alone.relative == PurePosixPath("series7") and alone.given == str(single) and alone.key is None


def test_plain_folders_files_and_errors(tmp_path):
    folder = tmp_path / "scans"
    (folder / "a").mkdir(parents=True)
    np.save(folder / "a" / "x.npy", np.ones((8, 8, 2), np.float32))
    np.save(folder / ".hidden.npy", np.ones((8, 8), np.float32))
    (folder / "notes.txt").write_text("not a scan")
    _touch_nifti(folder / "b.nii.gz")
    refs = discover([str(folder), str(folder / "a" / "x.npy")])  # the same scan twice: kept once
    assert [r.relative for r in refs] == [PurePosixPath("a/x.npy"), PurePosixPath("b.nii.gz")]
    assert refs[0].given == os.path.join(str(folder), "a", "x.npy") and refs[0].root == folder
    (direct,) = discover([str(folder / "b.nii.gz")])
    assert direct.relative == PurePosixPath("b.nii.gz") and direct.root is None and direct.given.endswith("b.nii.gz")
    with pytest.raises(InputError, match="no such file"):
        discover([tmp_path / "missing"])
    with pytest.raises(InputError, match="not a scan"):
        discover([folder / "notes.txt"])
    (tmp_path / "empty").mkdir()
    assert discover([tmp_path / "empty"]) == []
