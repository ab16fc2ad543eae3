"""NIfTI for :mod:`artefix.data.io` (nibabel): read with the scaling applied, write keeping the header.

The stored value ``v`` of a voxel maps to ``scl_slope * v + scl_inter`` (no scaling where the slope is 0
or NaN); readers get the scaled float32 data, writers store float32 with the scaling reset, so what is
read back is exactly what was written.
"""

from __future__ import annotations

import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from artefix.atomic import one_line
from artefix.data.io.volume import Volume
from artefix.errors import InputError, OutputError


def read_nifti(path: Path) -> Volume:
    """Read a ``.nii``/``.nii.gz`` file (NIfTI-1 or -2).

    Returns:
        float32 scaled data in the file's axis order (a trailing singleton 4th axis dropped; the magnitude
        of complex voxels), the
        image's best affine (sform, else qform), ``spacing`` = pixdim, ``header`` = the nibabel header,
        ``meta['slice_axis']`` from ``dim_info`` (``None`` when unset).

    Raises:
        InputError: Unreadable/truncated file, RGB voxels, or a 4D file with several volumes.
    """
    errors = (OSError, EOFError, ValueError, zlib.error, ImageFileError, HeaderDataError)
    try:
        img = nib.load(path, mmap=False)
    except errors as exc:
        raise InputError(f"{path}: unreadable NIfTI ({one_line(exc)})") from exc
    if not isinstance(img, nib.Nifti1Image):
        raise InputError(f"{path}: not a single-file NIfTI image ({type(img).__name__})")
    stored = img.get_data_dtype()
    if stored.fields is not None:
        raise InputError(f"{path}: NIfTI of {stored} voxels (RGB or another record type) is not an MR magnitude image")
    try:
        if stored.kind == "c":  # complex voxels: the magnitude image, as for complex .npy input
            data = np.abs(np.asanyarray(img.dataobj)).astype(np.float32)
        else:
            data = np.asarray(img.get_fdata(dtype=np.float32))
    except errors as exc:
        raise InputError(f"{path}: unreadable or truncated NIfTI ({one_line(exc)})") from exc
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim > 3:
        raise InputError(
            f"{path}: NIfTI of shape {data.shape} holds several volumes; extract one first (e.g. fslroi IN OUT 0 1)"
        )
    if data.ndim < 2:
        raise InputError(f"{path}: NIfTI of shape {data.shape} is not a 2D slice or a 3D volume")
    header = img.header
    slice_axis = header.get_dim_info()[2]
    meta = {"slice_axis": int(slice_axis) if slice_axis is not None and slice_axis < data.ndim else None}
    spacing = tuple(float(z) for z in header.get_zooms()[: data.ndim])
    return Volume(data, np.array(img.affine, dtype=np.float64), spacing, "nifti", path, header=header, meta=meta)


def _strip_trailing_ones(shape: tuple[int, ...]) -> tuple[int, ...]:
    shape = tuple(int(s) for s in shape)
    while len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


def write_nifti(array: np.ndarray, ref: Volume, tmp: Path, path: Path) -> None:
    """Write ``array`` to ``tmp`` as float32 NIfTI with ``ref``'s header and affine.

    With a NIfTI reference its header is copied unchanged except for the data type (float32) and the
    scaling (reset); the affine is written only where it differs from the header's (then as an
    "aligned" sform). Otherwise a new header gets ``ref.affine`` as sform and qform (code "scanner" for
    DICOM references, "aligned" otherwise), mm units, the spacing and the slice axis.

    Args:
        array: Data, shape equal to the reference header's up to trailing singleton axes.
        ref: Reference volume.
        tmp: Temporary file to write (a ``.nii``/``.nii.gz`` name).
        path: Final output path, for messages.

    Raises:
        OutputError: Shape mismatch, or nibabel refuses the data.
    """
    header = ref.header if isinstance(ref.header, nib.Nifti1Header) else None
    if header is not None:
        header = header.copy()
        shape = tuple(header.get_data_shape())
        if _strip_trailing_ones(shape) != _strip_trailing_ones(array.shape):
            raise OutputError(f"{path}: array shape {array.shape} does not match the reference NIfTI shape {shape}")
        header.set_data_dtype(np.float32)
        header.set_slope_inter(1.0, 0.0)
        image_class = nib.Nifti2Image if isinstance(header, nib.Nifti2Header) else nib.Nifti1Image
        keep = np.allclose(ref.affine, header.get_best_affine(), atol=1e-6)
        img = image_class(array.reshape(shape), None if keep else ref.affine, header=header)
    else:
        img = nib.Nifti1Image(array, ref.affine, dtype=np.float32)
        code = "scanner" if ref.format == "dicom" else "aligned"
        img.header.set_qform(ref.affine, code=code)
        img.header.set_sform(ref.affine, code=code)
        img.header.set_xyzt_units("mm")
        if len(ref.spacing) == array.ndim:
            img.header.set_zooms(ref.spacing)
        slice_axis = ref.meta.get("slice_axis")
        if isinstance(slice_axis, int) and 0 <= slice_axis < min(array.ndim, 3):
            img.header.set_dim_info(slice=slice_axis)
    try:
        nib.save(img, tmp)
    except (ValueError, TypeError) as exc:
        raise OutputError(f"{path}: cannot write NIfTI ({one_line(exc)})") from exc
