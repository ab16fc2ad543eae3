"""Rebuild the built-in sample (src/artefix/data/sample/sample.npz) from ../shared/data.

Run from the repository root: ``python scripts/make_sample.py``. Only a few 2D slices of CC BY data
are taken (see src/artefix/data/sample/LICENSE.md for the attributions).
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "src" / "artefix" / "data" / "sample" / "sample.npz"


def nifti_slice(rel: str, index: int | None = None) -> np.ndarray:
    """One axial slice (H, W) of a NIfTI volume, rows = anterior->posterior as displayed."""
    vol = np.asarray(nib.load(DATA / rel).dataobj)
    k = vol.shape[2] // 2 if index is None else index
    return np.rot90(vol[:, :, k]).astype(np.uint16)


def dicom_slice(folder: str, index: int) -> np.ndarray:
    """One slice of a DICOM series, sorted by instance number, stored values (uint16)."""
    files = sorted((DATA / folder).glob("*.dcm"), key=lambda p: int(pydicom.dcmread(p).InstanceNumber))
    return pydicom.dcmread(files[index]).pixel_array.astype(np.uint16)


def main() -> None:
    """Write the sample archive."""
    ms = "open_ms_data_ljubljana_longitudinal/patient01/"
    slices = {
        "brain-t1": nifti_slice(ms + "study1_T1W.nii.gz", 22),
        "brain-t2": nifti_slice(ms + "study1_T2W.nii.gz", 20),
        "brain-flair": nifti_slice(ms + "study1_FLAIR.nii.gz", 20),
        "pelvis-t2": dicom_slice("prostatex_tcia_via_picai_prep/ProstateX-0000/4.000000-t2tsetra-00702", 9),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(OUT, **slices)


if __name__ == "__main__":
    main()
