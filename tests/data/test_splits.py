from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from artefix.data.splits import (
    BRAIN_FRACTIONS,
    PELVIS_FRACTIONS,
    SET_NAMES,
    PatientRule,
    Split,
    allocate,
    discover_scans,
    make_split,
)
from artefix.errors import InputError

BRAIN_FOLDERS = (
    "open_ms_data_ljubljana_longitudinal",
    "ixi_t1_2mm_via_nichart",
    "niivue_demo_images",
    "msd_brain_slices_via_openjphpy",
)


def _touch(path: Path, data: bytes = b"x") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _dicom_bytes() -> bytes:
    return b"\0" * 128 + b"DICM" + b"\0" * 16


def _assert_disjoint_and_complete(split: Split, files: list[Path]) -> None:
    owner: dict[str, str] = {}
    for name in SET_NAMES:
        for patient in split.patients(name):
            assert patient not in owner, f"{patient} in {owner.get(patient)} and {name}"
            owner[patient] = name
    listed = sorted(f for name in SET_NAMES for f in split.files(name))
    assert listed == sorted(files)
    assert len(set(listed)) == len(listed)


# --- discover_scans ----------------------------------------------------------------------------------


def test_discover_finds_each_kind_and_skips_the_rest(tmp_path: Path) -> None:
    nifti = _touch(tmp_path / "a" / "patient01" / "t1.nii.gz")
    nii = _touch(tmp_path / "a" / "patient02" / "t2.nii")
    h5 = _touch(tmp_path / "fastmri" / "file_brain_1.h5")
    npy = _touch(tmp_path / "np" / "x.npy")
    npz = _touch(tmp_path / "np" / "y.npz")
    series = tmp_path / "b" / "ProstateX-0000" / "4.000-t2tsetra"
    for k in range(3):
        _touch(series / f"1-{k:03d}.dcm", _dicom_bytes())
    bare = tmp_path / "b" / "ProstateX-0001" / "series-no-ext"
    for k in range(2):
        _touch(bare / f"IM{k}", _dicom_bytes())
    _touch(bare / ".DS_Store")  # hidden files do not spoil a series
    _touch(tmp_path / "a" / "README.md", b"notes")
    _touch(tmp_path / "a" / "patient01" / "notes.txt", b"text")
    _touch(tmp_path / ".hidden" / "skip.nii.gz")
    mixed = tmp_path / "mixed"
    _touch(mixed / "1.dcm", _dicom_bytes())
    _touch(mixed / "info.txt", b"not dicom")
    inner = _touch(series / "sub" / "ignored.nii.gz")  # a series folder is not searched further

    found = discover_scans(tmp_path)

    assert found == sorted([nifti, nii, h5, npy, npz, series, bare])
    assert inner not in found and mixed not in found


def test_discover_accepts_several_roots_files_and_dedups(tmp_path: Path) -> None:
    a = _touch(tmp_path / "x" / "a.nii.gz")
    b = _touch(tmp_path / "y" / "b.npy")
    dcm = _touch(tmp_path / "z" / "1.dcm", _dicom_bytes())
    found = discover_scans([tmp_path / "x", tmp_path / "x", b, dcm])
    assert found == sorted([a, b, dcm.parent])


def test_discover_missing_root_names_it(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="nowhere"):
        discover_scans(tmp_path / "nowhere")


# --- PatientRule ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relative", "patient"),
    [
        ("open_ms_data_ljubljana_longitudinal/patient01/study1_T1W.nii.gz", "patient01"),
        ("prostatex_tcia_via_picai_prep/ProstateX-0000/4.000000-t2tsetra-00702", "ProstateX-0000"),
        ("ixi_t1_2mm_via_nichart/IXI012-HH-1211_T1.nii.gz", "IXI012-HH-1211"),
        ("bids/sub-07/ses-02/anat/sub-07_ses-02_T1w.nii.gz", "sub-07"),
        ("brats/BraTS2021_00012/BraTS2021_00012_t1.nii.gz", "BraTS2021_00012"),
        ("hcp/100307/T1w.nii.gz", "100307"),
        ("fastmri/multicoil_val/file_brain_AXT2_200_2000019.h5", "file_brain_AXT2_200_2000019"),
        ("flat/MR_Gd.nii.gz", "MR_Gd"),
    ],
)
def test_default_patient_rule(tmp_path: Path, relative: str, patient: str) -> None:
    rule = PatientRule(roots=(tmp_path,))
    assert rule(tmp_path / relative) == patient


def test_patient_rule_uses_the_deepest_root_and_ignores_folders_above_it(tmp_path: Path) -> None:
    # "user01" above the root looks like a subject folder but must not be used.
    root = tmp_path / "user01" / "data"
    rule = PatientRule(roots=(tmp_path, root))
    assert rule(root / "IXI002-Guys-0828_T1.nii.gz") == "IXI002-Guys-0828"


def test_patient_rule_regex(tmp_path: Path) -> None:
    named = PatientRule(roots=(tmp_path,), pattern=r"(?P<patient>IXI\d+)-")
    assert named(tmp_path / "IXI012-HH-1211_T1.nii.gz") == "IXI012"
    group = PatientRule(roots=(tmp_path,), pattern=r"^[^/]+/([^/]+)/")
    assert group(tmp_path / "site/pat7/scan.nii.gz") == "pat7"
    whole = PatientRule(roots=(tmp_path,), pattern=r"case\d+")
    assert whole(tmp_path / "x/case12_a.nii.gz") == "case12"
    with pytest.raises(ValueError, match="does not match"):
        named(tmp_path / "other.nii.gz")
    with pytest.raises(ValueError, match="not a valid regex"):
        PatientRule(pattern="(unclosed")


# --- allocate -----------------------------------------------------------------------------------------


def test_allocate_seven_patients_gives_every_set_one() -> None:
    assert allocate(7, BRAIN_FRACTIONS) == (5, 1, 1)
    assert allocate(4, BRAIN_FRACTIONS) == (2, 1, 1)  # rounding alone would leave val empty
    assert allocate(3, BRAIN_FRACTIONS) == (1, 1, 1)
    assert allocate(3, PELVIS_FRACTIONS) == (2, 1, 0)
    assert allocate(1, BRAIN_FRACTIONS) == (1, 0, 0)
    assert allocate(2, BRAIN_FRACTIONS) == (1, 0, 1)  # largest fractions are served first


@pytest.mark.parametrize("n", range(1, 60))
def test_allocate_sums_and_tracks_fractions(n: int) -> None:
    for fractions in (BRAIN_FRACTIONS, PELVIS_FRACTIONS, (0.5, 0.25, 0.25)):
        counts = allocate(n, fractions)
        assert sum(counts) == n
        nonzero = [i for i, f in enumerate(fractions) if f > 0]
        if n >= len(nonzero):
            assert all(counts[i] >= 1 for i in nonzero)
        assert all(counts[i] == 0 for i, f in enumerate(fractions) if f == 0)
        # Never more than one patient (plus the one-per-set guarantee) away from n * f.
        assert np.all(np.abs(np.array(counts) - n * np.array(fractions)) <= 2)


def test_allocate_exact_for_round_numbers() -> None:
    assert allocate(100, BRAIN_FRACTIONS) == (70, 10, 20)
    assert allocate(10, PELVIS_FRACTIONS) == (8, 2, 0)


@pytest.mark.parametrize(
    ("n", "fractions", "match"),
    [
        (0, BRAIN_FRACTIONS, "at least one patient"),
        (5, (0.7, 0.1, 0.1), "add up to 1"),
        (5, (1.2, -0.2, 0.0), "non-negative"),
        (5, (float("nan"), 0.5, 0.5), "non-negative"),
    ],
)
def test_allocate_rejects_bad_input(n: int, fractions: tuple[float, ...], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        allocate(n, fractions)


# --- make_split / Split -------------------------------------------------------------------------------


def _tree(tmp_path: Path, n_patients: int, files_per_patient: int = 3) -> list[Path]:
    return [
        _touch(tmp_path / "study" / f"patient{p:02d}" / f"scan{k}_T1W.nii.gz")
        for p in range(n_patients)
        for k in range(files_per_patient)
    ]


def test_make_split_is_patient_disjoint_complete_and_seeded(tmp_path: Path) -> None:
    files = _tree(tmp_path, 20)
    split = make_split(files, seed=3)
    _assert_disjoint_and_complete(split, files)
    assert [len(split.patients(n)) for n in SET_NAMES] == [14, 2, 4]
    # Every file of a patient is in the patient's set.
    for name in SET_NAMES:
        for patient in split.patients(name):
            entries = split.sets[name][patient]
            assert len(entries) == 3 and all(Path(e).parts[0] == patient for e in entries)
    # Order of the input does not matter; the seed does.
    assert make_split(list(reversed(files)), seed=3) == split
    assert make_split(files, seed=4).patients("train") != split.patients("train")
    assert split.root == (tmp_path / "study").as_posix()
    assert split.train == split.files("train") and split.val == split.files("val")


def test_make_split_keeps_one_patient_per_set_even_when_files_are_many(tmp_path: Path) -> None:
    files = _tree(tmp_path, 7, files_per_patient=4)
    split = make_split(files, BRAIN_FRACTIONS, seed=0)
    assert [len(split.patients(n)) for n in SET_NAMES] == [5, 1, 1]
    pelvis = make_split(files, PELVIS_FRACTIONS, seed=0)
    assert [len(pelvis.patients(n)) for n in SET_NAMES] == [6, 1, 0]
    assert pelvis.test == []


def test_split_save_load_round_trip_is_readable_json(tmp_path: Path) -> None:
    files = _tree(tmp_path, 7)
    split = make_split(files, seed=11)
    out = split.save(tmp_path / "splits" / "brain.json")
    doc = json.loads(out.read_text())
    assert doc["fractions"] == {"train": 0.7, "val": 0.1, "test": 0.2}
    assert doc["seed"] == 11
    assert doc["counts"]["train"] == {"patients": 5, "files": 15}
    assert set(doc["train"]) == set(split.patients("train"))
    assert all(not Path(f).is_absolute() for fs in doc["val"].values() for f in fs)
    assert "\n  " in out.read_text()  # indented, one entry per line
    loaded = Split.load(out)
    assert loaded == split
    assert loaded.files("test") == split.files("test")
    # Relative entries resolve against another root, e.g. the data on another machine.
    moved = loaded.files("val", root="/elsewhere")
    assert all(str(f).startswith("/elsewhere/patient") for f in moved)


def test_a_relative_root_is_taken_from_the_split_files_folder(tmp_path: Path) -> None:
    files = _tree(tmp_path / "data", 4)
    split = make_split(files, seed=1, root=tmp_path / "data")
    doc = split.to_dict() | {"root": "../../data"}
    path = tmp_path / "configs" / "release" / "split.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(doc))
    loaded = Split.load(path)
    assert loaded.root == (tmp_path / "data").as_posix()
    assert loaded.files("train") == split.files("train") and all(f.is_file() or f.is_dir() for f in loaded.train)


def test_shipped_split_files_hold_no_absolute_path() -> None:
    repo = Path(__file__).resolve().parents[2]
    shipped = sorted(p for top in ("configs", "experiments") for p in (repo / top).rglob("*split*.json"))
    assert len(shipped) >= 3
    for path in shipped:
        doc = json.loads(path.read_text())
        entries = [doc["root"], *(f for name in ("train", "val", "test") for fs in doc[name].values() for f in fs)]
        assert not any(Path(e).is_absolute() for e in entries), path


@pytest.mark.shared_data
def test_the_shipped_brain_split_finds_its_scans(shared_data: Path) -> None:
    split = Split.load(Path(__file__).resolve().parents[2] / "configs" / "release" / "brain_split.json")
    assert Path(split.root) == shared_data.resolve()
    assert all(f.exists() for f in split.train + split.val + split.test)


def test_split_load_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read"):
        Split.load(tmp_path / "missing.json")
    bad = _touch(tmp_path / "bad.json", b"{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        Split.load(bad)
    other = _touch(tmp_path / "other.json", b'{"train": {}}')
    with pytest.raises(InputError, match="not an artefix split"):
        Split.load(other)


def test_split_rejects_a_patient_in_two_sets() -> None:
    with pytest.raises(ValueError, match="patient 'p1' is in both 'train' and 'test'"):
        Split(sets={"train": {"p1": ("a",)}, "test": {"p1": ("b",)}})
    with pytest.raises(ValueError, match="unknown set name"):
        Split(sets={"training": {}})


def test_make_split_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no files"):
        make_split([])
    files = _tree(tmp_path, 3)
    with pytest.raises(ValueError, match=r"\(train, val, test\)"):
        make_split(files, (0.5, 0.5))
    with pytest.raises(ValueError, match="not inside root"):
        make_split(files, root=tmp_path / "elsewhere")


def test_custom_patient_function(tmp_path: Path) -> None:
    files = _tree(tmp_path, 6)

    def by_scan(path: Path) -> str:
        return path.name.split("_")[0]  # deliberately per-scan "patients": scan0, scan1, scan2

    split = make_split(files, (0.4, 0.3, 0.3), patient_of=by_scan)
    assert sorted(p for n in SET_NAMES for p in split.patients(n)) == ["scan0", "scan1", "scan2"]


# --- real data -----------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_brain_scans_split_by_patient(shared_data: Path) -> None:
    roots = [shared_data / name for name in BRAIN_FOLDERS]
    files = discover_scans(roots)
    ms = [f for f in files if "open_ms_data_ljubljana_longitudinal" in f.parts]
    assert len(ms) == 26  # README: 26 volumes of 7 patients
    assert len([f for f in files if "ixi_t1_2mm_via_nichart" in f.parts]) == 20
    assert shared_data / "niivue_demo_images" / "VS-SEG-001_t1_mpr_tra_gk_subset" in files

    split = make_split(files, BRAIN_FRACTIONS, seed=0, root=shared_data)
    _assert_disjoint_and_complete(split, files)
    patients = {p for n in SET_NAMES for p in split.patients(n)}
    assert {f"patient{k:02d}" for k in (1, 3, 4, 9, 12, 19, 20)} <= patients
    assert "IXI012-HH-1211" in patients and "VS-SEG-001" in patients
    n = len(patients)
    assert [len(split.patients(s)) for s in SET_NAMES] == list(allocate(n, BRAIN_FRACTIONS))

    # The 7 longitudinal MS patients alone: 5/1/1, and all six scans of patient01 stay together.
    ms_split = make_split(ms, seed=0)
    assert [len(ms_split.patients(s)) for s in SET_NAMES] == [5, 1, 1]
    owner = [s for s in SET_NAMES if "patient01" in ms_split.sets[s]]
    assert len(owner) == 1 and len(ms_split.sets[owner[0]]["patient01"]) == 6


@pytest.mark.shared_data
def test_real_pelvis_series_split(shared_data: Path) -> None:
    files = discover_scans(shared_data / "prostatex_tcia_via_picai_prep")
    assert len(files) == 9 and all(f.is_dir() for f in files)
    split = make_split(files, PELVIS_FRACTIONS, seed=0)
    _assert_disjoint_and_complete(split, files)
    assert [len(split.patients(s)) for s in SET_NAMES] == [2, 1, 0]
    assert all(p.startswith("ProstateX-") for s in SET_NAMES for p in split.patients(s))


@pytest.mark.parametrize(
    ("path", "patient"),
    [
        ("visit1/patient07/t1.nii.gz", "patient07"),  # a visit folder holds many subjects
        ("ses-1/sub-3/x.nii.gz", "sub-3"),
        ("sub-01/ses-02/anat/x.nii.gz", "sub-01"),
        ("IXI-T1/IXI012-HH-1211-T1.nii.gz", "IXI012-HH-1211"),  # a contrast folder too, and the file's contrast
        ("IXI-T2/IXI012-HH-1211-T2.nii.gz", "IXI012-HH-1211"),
        ("IXI012-HH-1211_T1.nii.gz", "IXI012-HH-1211"),
        ("patient01/study1_T1W.nii.gz", "patient01"),
        ("file_brain_AXT2_200_2000019.h5", "file_brain_AXT2_200_2000019"),
    ],
)
def test_visit_and_contrast_folders_are_not_patients(tmp_path, path, patient):
    assert PatientRule(roots=(tmp_path,))(tmp_path / path) == patient
