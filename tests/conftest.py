"""Shared fixtures: access to the real MRI in ``../shared/data``; waiting on a running subprocess."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def _require_shared(path: Path, what: str) -> Path:
    """The folder ``path`` where it exists; otherwise skip, or fail where ``ARTEFIX_REQUIRE_SHARED_DATA=1``."""
    if path.is_dir():
        return path
    reason = f"{what} not found at {path}"
    if os.environ.get("ARTEFIX_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"{reason} but ARTEFIX_REQUIRE_SHARED_DATA=1")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data``; skips where absent, fails where ``ARTEFIX_REQUIRE_SHARED_DATA=1``."""
    return _require_shared(SHARED_DATA, "real MRI data")


@pytest.fixture(scope="session")
def require_shared() -> Callable[[Path, str], Path]:
    """``require_shared(path, what)``: the same rule as ``shared_data`` for other external files."""
    return _require_shared


def _wait_for(condition: Callable[[], bool], proc: subprocess.Popen, what: str, timeout: float = 120.0) -> None:
    """Return once ``condition()`` holds; fail when ``proc`` exits first or after ``timeout`` seconds.

    Between two checks it waits on ``proc`` itself (20 ms at most), so an early exit is seen at once;
    nothing waits a fixed time.
    """
    deadline = time.monotonic() + timeout
    while not condition():
        try:
            proc.wait(timeout=0.02)
        except subprocess.TimeoutExpired:
            if time.monotonic() > deadline:
                pytest.fail(f"still no {what} after {timeout:.0f} s")
            continue
        if condition():
            return
        stderr = proc.stderr.read() if proc.stderr is not None else ""
        stderr = stderr.decode(errors="replace") if isinstance(stderr, bytes) else stderr
        pytest.fail(f"the process exited with {proc.returncode} before {what}:\n{stderr[-3000:]}")


@pytest.fixture(scope="session")
def wait_for() -> Callable[..., None]:
    """``wait_for(condition, proc, what, timeout=120)``: wait on a condition about a subprocess, with a deadline."""
    return _wait_for


def _mr_slice(
    stored,
    *,
    series_uid: str,
    number: int,
    position=None,
    spacing=(0.8, 0.6),
    thickness: float = 2.5,
    bits_stored: int = 16,
    **extra,
):
    """One synthetic axial MR image as a pydicom Dataset (explicit VR little endian, uint16 pixels).

    Args:
        stored: ``(rows, columns)`` stored values (cast to little-endian uint16).
        series_uid: SeriesInstanceUID.
        number: InstanceNumber.
        position: ImagePositionPatient (LPS, mm) or None to leave it out.
        spacing: PixelSpacing (row spacing, column spacing) in mm.
        thickness: SliceThickness in mm.
        bits_stored: BitsStored (HighBit follows).
        **extra: Further attributes set as given (e.g. ``RescaleSlope=2``).
    """
    import numpy as np
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    stored = np.asarray(stored)
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = MRImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = MRImageStorage
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.3.4"
    ds.SeriesInstanceUID = series_uid
    ds.PatientID = "ANON"
    ds.Modality = "MR"
    ds.ImageType = ["ORIGINAL", "PRIMARY", "M", "ND"]
    ds.SeriesDescription = "t2_tse_tra"
    ds.InstanceNumber = number
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    if position is not None:
        ds.ImagePositionPatient = [float(p) for p in position]
    ds.PixelSpacing = list(spacing)
    ds.SliceThickness = thickness
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = stored.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, bits_stored, bits_stored - 1, 0
    ds.PixelData = stored.astype("<u2").tobytes()
    for name, value in extra.items():
        setattr(ds, name, value)
    return ds


@pytest.fixture(scope="session")
def mr_slice():
    """Builder of one synthetic MR DICOM image (see ``_mr_slice``), shared by the DICOM reading and CLI tests."""
    return _mr_slice
