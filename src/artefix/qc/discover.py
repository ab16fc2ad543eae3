"""Which scans the inputs of ``artefix qc`` and bulk ``artefix correct`` hold: files, folders, BIDS, DICOM trees.

Every input is a scan file, a DICOM series folder, or a folder searched recursively (hidden entries, whose
name starts with ``.``, are skipped; links to folders are not followed):

* **BIDS dataset**: a folder holding ``dataset_description.json`` (the input or one of its parents). Only the
  anatomical images are scans: ``sub-*/anat/*.nii[.gz]`` and ``sub-*/ses-*/anat/*.nii[.gz]``, except masks and
  segmentations (suffixes in :data:`BIDS_NON_IMAGES`). ``derivatives/`` is left out unless ``derivatives=True``;
  then every dataset in ``derivatives/*/`` is searched by the same rule.
* **DICOM tree**: every folder holding DICOM files (``.dcm``/``.ima``, or the ``DICM`` marker at byte 128) gives
  one scan per series (``SeriesInstanceUID``): the folder itself when it holds one series, else one scan per
  series, read with ``key=SeriesInstanceUID`` (:func:`artefix.data.io.read_volume`). Other files in such a
  folder (a README, ``DICOMDIR``, non-image objects) are ignored; its subfolders are searched too.
* **anything else**: NIfTI, fastMRI HDF5, ``.npy`` and ``.npz`` files (:data:`artefix.data.splits.SCAN_SUFFIXES`).
  A PNG is a scan only when given as an input itself.

Each scan is a :class:`ScanRef` that knows where it was found (its root and the path below it), which is what
the QC table shows (``given``) and what bulk correction mirrors into its output tree (``relative``).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from artefix.data.io import has_dicom_preamble
from artefix.data.splits import SCAN_SUFFIXES
from artefix.errors import InputError

log = logging.getLogger(__name__)

BIDS_DESCRIPTION = "dataset_description.json"
BIDS_NON_IMAGES: tuple[str, ...] = ("mask", "defacemask", "dseg", "probseg")
"""BIDS suffixes in ``anat/`` that are not images to check or correct (masks, segmentations)."""

_DICOM_SUFFIXES = (".dcm", ".ima")
_NIFTI_SUFFIXES = (".nii", ".nii.gz")
_OTHER_SUFFIXES = (".png", ".json", ".tsv", ".csv", ".txt", ".md", ".html", ".bval", ".bvec", ".xml", ".zip", ".gz")


@dataclass(frozen=True)
class ScanRef:
    """One scan found in the inputs.

    Attributes:
        path: File or DICOM folder to read (:func:`artefix.data.io.read_volume`).
        given: The scan's path as the user gave it: the input as typed, joined with the path below it.
        relative: Path below the root it was found in (the BIDS dataset's root for BIDS scans); for a scan
            given as an input itself, its name.
        key: SeriesInstanceUID to read when the folder holds several DICOM series, else None.
        series_description: DICOM SeriesDescription of a series read with ``key`` ("" otherwise).
        bids_root: Root of the BIDS dataset the scan belongs to (None outside BIDS).
        root: The input folder it was found under (None for a scan given as an input itself).
    """

    path: Path
    given: str
    relative: PurePosixPath
    key: str | None = None
    series_description: str = ""
    bids_root: Path | None = None
    root: Path | None = None

    @property
    def identity(self) -> tuple[str, str]:
        """``(absolute path, series key or "")``: the same scan reached from different inputs compares equal."""
        return str(self.path.absolute().resolve()), self.key or ""

    @property
    def label(self) -> str:
        """``given``, with the series UID when the folder holds several series."""
        return f"{self.given} [{self.key}]" if self.key else self.given


def _suffix(name: str) -> str:
    lower = name.lower()
    return ".nii.gz" if lower.endswith(".nii.gz") else os.path.splitext(lower)[1]


def is_dicom_file(path: Path) -> bool:
    """Whether ``path`` is a DICOM file: a ``.dcm``/``.ima`` suffix or the ``DICM`` marker at byte 128.

    Only files without a known suffix are opened (archives often name files by their UID, ``1.2.840...``).
    """
    suffix = _suffix(path.name)
    if suffix in _DICOM_SUFFIXES:
        return True
    if suffix in (*SCAN_SUFFIXES, *_OTHER_SUFFIXES):
        return False
    return has_dicom_preamble(path)


def find_bids_root(path: Path) -> Path | None:
    """The BIDS dataset holding ``path``: the nearest of it and its parents with ``dataset_description.json``.

    Returns:
        The dataset root, or None outside any BIDS dataset.
    """
    for folder in (path, *path.parents):
        if (folder / BIDS_DESCRIPTION).is_file():
            return folder
    return None


def _join(given: str, relative: PurePosixPath) -> str:
    return given if str(relative) in ("", ".") else os.path.join(given, *relative.parts)


def _dicom_series(folder: Path, names: Sequence[str]) -> list[tuple[str | None, str]]:
    """``[(key, description)]`` of the DICOM series among ``names`` in ``folder``: ``[(None, "")]`` for one series.

    Files whose header cannot be read count as the folder's (reading it later reports them); files without
    image rows/columns (DICOMDIR, structured reports) are ignored.
    """
    import pydicom
    from pydicom.errors import InvalidDicomError

    series: dict[str, str] = {}
    for name in names:
        try:
            ds = pydicom.dcmread(
                folder / name,
                stop_before_pixels=True,
                specific_tags=["SeriesInstanceUID", "SeriesDescription", "Rows", "Columns"],
            )
        except (InvalidDicomError, OSError, EOFError, ValueError, KeyError, AttributeError, TypeError) as exc:
            log.debug("%s: DICOM header unreadable (%s)", folder / name, exc)
            continue
        if "Rows" not in ds or "Columns" not in ds:
            continue
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), str(ds.get("SeriesDescription", "")).strip())
    if len(series) <= 1:
        return [(None, "")]
    return [(uid, series[uid]) for uid in sorted(series)]


def _bids_anat(root: Path, start: Path, *, derivatives: bool) -> Iterator[Path]:
    """Anatomical images of the BIDS dataset ``root`` that lie under ``start`` (``start`` is in ``root``)."""
    for sub in sorted(root.glob("sub-*")):
        if not sub.is_dir():
            continue
        folders = [sub / "anat", *(ses / "anat" for ses in sorted(sub.glob("ses-*")) if ses.is_dir())]
        for anat in folders:
            if not anat.is_dir():
                continue
            for file in sorted(anat.iterdir()):
                name = file.name
                suffix = _suffix(name)
                if name.startswith(".") or suffix not in _NIFTI_SUFFIXES or not file.is_file():
                    continue
                label = name[: -len(suffix)].rsplit("_", 1)[-1]
                if label in BIDS_NON_IMAGES:
                    continue
                if file == start or start in file.parents:
                    yield file
    if derivatives and (root / "derivatives").is_dir():
        for dataset in sorted((root / "derivatives").iterdir()):
            if dataset.is_dir() and not dataset.name.startswith("."):
                yield from _bids_anat(dataset, start, derivatives=derivatives)


def _walk(root: Path) -> Iterator[tuple[Path, str | None, str]]:
    """``(scan path, series key, description)`` of every non-BIDS scan under ``root``."""
    for folder, dirs, files in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        visible = sorted(f for f in files if not f.startswith("."))
        if BIDS_DESCRIPTION in visible and here != root:
            dirs[:] = []  # a BIDS dataset inside the folder: searched by the BIDS rule by the caller
            continue
        dicom = [f for f in visible if f.upper() != "DICOMDIR" and is_dicom_file(here / f)]
        if dicom:
            for key, description in _dicom_series(here, dicom):
                yield here, key, description
        for name in visible:
            if _suffix(name) in SCAN_SUFFIXES and (here / name).is_file():
                yield here / name, None, ""


def _nested_bids(root: Path) -> list[Path]:
    """BIDS datasets strictly below ``root`` (not inside another dataset found first)."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        here = Path(folder)
        if here != root and BIDS_DESCRIPTION in files:
            found.append(here)
            dirs[:] = []
    return found


def _scan_input(text: str, *, derivatives: bool) -> Iterator[ScanRef]:
    path = Path(text).expanduser()
    if not path.exists():
        raise InputError(f"{text}: no such file or folder")
    if path.is_file():
        if is_dicom_file(path) or _suffix(path.name) in (*SCAN_SUFFIXES, ".png"):
            yield ScanRef(path, text, PurePosixPath(path.name))
            return
        raise InputError(f"{text}: not a scan (expected NIfTI, DICOM, .h5, .npy, .npz, .png or a folder)")
    bids = find_bids_root(path.absolute())
    if bids is not None:
        start = path.absolute()
        for file in _bids_anat(bids, start, derivatives=derivatives):
            rel = PurePosixPath(file.relative_to(bids).as_posix())
            inside = PurePosixPath(file.relative_to(start).as_posix())
            yield ScanRef(path / inside, _join(text, inside), rel, bids_root=bids, root=path)
        return
    for scan, key, description in _walk(path):
        inside = PurePosixPath(scan.relative_to(path).as_posix())
        relative = inside if str(inside) != "." else PurePosixPath(path.absolute().name)
        yield ScanRef(scan, _join(text, inside), relative, key, description, root=path)
    for dataset in _nested_bids(path):
        for file in _bids_anat(dataset, dataset, derivatives=derivatives):
            rel = PurePosixPath(file.relative_to(dataset).as_posix())
            inside = PurePosixPath(file.relative_to(path).as_posix())
            yield ScanRef(file, _join(text, inside), rel, bids_root=dataset, root=path)


def discover(inputs: Iterable[str | Path], *, derivatives: bool = False) -> list[ScanRef]:
    """Every scan in ``inputs``, in input order (sorted within each input), each scan once.

    Args:
        inputs: Scan files, DICOM series folders, folders to search, BIDS datasets (or folders in one).
        derivatives: Include BIDS ``derivatives/`` datasets.

    Returns:
        The :class:`ScanRef` list (a scan reached from two inputs is kept the first time).

    Raises:
        InputError: An input that does not exist or is a file of no scan family.
    """
    refs: list[ScanRef] = []
    seen: set[tuple[str, str]] = set()
    for text in inputs:
        found = sorted(_scan_input(os.fspath(text), derivatives=derivatives), key=lambda r: (r.given, r.key or ""))
        if not found:
            log.warning("%s: no scans found", text)
        for ref in found:
            if ref.identity not in seen:
                seen.add(ref.identity)
                refs.append(ref)
    return refs
