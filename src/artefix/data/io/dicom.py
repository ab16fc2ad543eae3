"""DICOM for :mod:`artefix.data.io`: read one series into a :class:`Volume`, write a derived series.

Geometry. DICOM gives, per slice, ``ImagePositionPatient`` (IPP, mm, centre of the first pixel),
``ImageOrientationPatient`` (IOP: the direction cosines ``r`` of a row, i.e. of increasing column
index, and ``c`` of a column) and ``PixelSpacing = (row spacing, column spacing)``, all in the LPS
patient frame. With the volume stacked as ``array[row, col, k]`` and slices sorted by their position
``IPP . n`` along the normal ``n = r x c``, the voxel-to-world map is::

    world_LPS(row, col, k) = IPP_0 + row * dr * c + col * dc * r + k * s,   s = (IPP_last - IPP_0) / (N - 1)

and the RAS affine flips the first two world axes: ``affine = diag(-1, -1, 1, 1) @ A_LPS``.

Stored pixel values are mapped to physical values with ``value = RescaleSlope * stored + RescaleIntercept``
(per file). Multi-frame (enhanced) DICOM is not supported: convert it with e.g. dcm2niix.
"""

from __future__ import annotations

import copy
import logging
import struct
from pathlib import Path
from typing import Any

import numpy as np

from artefix.atomic import one_line
from artefix.data.io.volume import Volume, has_dicom_preamble
from artefix.errors import InputError, OutputError

log = logging.getLogger(__name__)

_DICOMDIR_CLASS = "1.2.840.10008.1.3.10"
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])
_STORED_MAX = 65535
_STALE_PIXEL_TAGS = (
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "SmallestPixelValueInSeries",
    "LargestPixelValueInSeries",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "RedPaletteColorLookupTableDescriptor",
    "ModalityLUTSequence",
    "ExtendedOffsetTable",
    "ExtendedOffsetTableLengths",
    "VOILUTSequence",
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
)


def read_dicom(path: Path, *, key: str | None = None) -> Volume:
    """Read a DICOM series folder (3D, ``(rows, cols, slices)``) or a single file (2D, ``(rows, cols)``).

    Files that are not DICOM (no ``DICM`` preamble), DICOMDIR files and non-image objects are skipped.

    Args:
        path: A folder holding the series' files (any names, not searched recursively), or one file.
        key: SeriesInstanceUID (or SeriesNumber) to read when the folder holds several series.

    Returns:
        The volume in physical units (rescale applied), RAS affine, ``meta['slice_axis'] == 2`` for a
        folder (``None`` for one file), ``meta['slice_positions']`` (mm along the normal, ascending) and
        ``header`` = the pydicom Datasets in slice order without their pixel data.

    Raises:
        InputError: No DICOM images, several series and no (or an unknown) ``key``, inconsistent sizes or
            orientations, several images at one position, corrupt or undecodable files.
    """
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and p.name.upper() != "DICOMDIR")
        if not files:
            raise InputError(f"{path}: folder is empty")
        headers = [(f, ds) for f in files if (ds := _read_header(f)) is not None]
        if not headers:
            raise InputError(f"{path}: no DICOM images among its {len(files)} files")
        chosen = _choose_series(path, headers, key)
        _refuse_mosaic(chosen[0][0], chosen[0][1])
        return _stack(path, [_read_full(f) for f, _ in chosen], series=True)
    ds, pixels = _read_full(path)
    _refuse_mosaic(path, ds)
    if key is not None and key not in (str(ds.get("SeriesInstanceUID", "")), str(ds.get("SeriesNumber", ""))):
        raise InputError(f"{path}: series {key!r} not found; this file is series {ds.get('SeriesInstanceUID')}")
    return _stack(path, [(ds, pixels)], series=False)


def _read_header(path: Path) -> Any:
    """Header of one file, or ``None`` for files that are not DICOM images."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path, stop_before_pixels=True)
    except InvalidDicomError:
        log.debug("%s: not DICOM, skipped", path)
        return None
    except (OSError, EOFError, ValueError, struct.error, KeyError) as exc:
        if has_dicom_preamble(path):
            raise InputError(f"{path}: corrupt DICOM header ({one_line(exc)})") from exc
        return None
    sop_class = str(getattr(ds.get("file_meta", None), "MediaStorageSOPClassUID", ""))
    if sop_class == _DICOMDIR_CLASS or "Rows" not in ds or "Columns" not in ds:
        log.debug("%s: not an image, skipped", path)
        return None
    return ds


def _refuse_mosaic(path: Path, ds: Any) -> None:
    """Refuse a Siemens mosaic: one image tiling a whole volume's slices, which a 2D model must not see as one.

    Unpacking needs the vendor's private tags (the number of images in the mosaic, the slice order); dcm2niix
    does it.
    """
    image_type = [str(v).upper() for v in (ds.get("ImageType", []) or [])]
    if "MOSAIC" in image_type:
        raise InputError(
            f"{path}: a Siemens mosaic (ImageType {'/'.join(image_type)}): one image tiles many slices; "
            "convert it to a volume first (e.g. dcm2niix) and correct that"
        )


def _read_full(path: Path) -> tuple[Any, np.ndarray]:
    """``(dataset without its pixel data element, physical pixel values float64 (rows, cols))``."""
    import pydicom
    from pydicom.errors import InvalidDicomError

    try:
        ds = pydicom.dcmread(path)
    except (InvalidDicomError, OSError, EOFError, ValueError, struct.error, KeyError) as exc:
        raise InputError(f"{path}: not a readable DICOM file ({one_line(exc)})") from exc
    if int(ds.get("NumberOfFrames", 1) or 1) > 1 or "PerFrameFunctionalGroupsSequence" in ds:
        raise InputError(f"{path}: multi-frame (enhanced) DICOM is not supported; convert it with dcm2niix")
    if str(ds.get("PhotometricInterpretation", "MONOCHROME2")).strip() == "MONOCHROME1":
        raise InputError(f"{path}: MONOCHROME1 (inverted grey scale) is not supported; convert it to MONOCHROME2")
    if int(ds.get("SamplesPerPixel", 1) or 1) != 1:
        raise InputError(f"{path}: colour DICOM ({ds.get('PhotometricInterpretation')}) is not an MR image")
    if "PixelData" not in ds:
        raise InputError(f"{path}: DICOM file has no pixel data")
    try:
        pixels = np.asarray(ds.pixel_array)
    except (ValueError, RuntimeError, NotImplementedError, AttributeError, TypeError) as exc:
        syntax = getattr(ds.get("file_meta", None), "TransferSyntaxUID", "unknown")
        raise InputError(
            f"{path}: cannot decode pixel data (transfer syntax {syntax}; truncated, or a compressed "
            f"syntax needing pylibjpeg/GDCM): {one_line(exc)}"
        ) from exc
    slope = _number(ds, "RescaleSlope", 1.0)
    intercept = _number(ds, "RescaleIntercept", 0.0)
    del ds.PixelData
    return ds, pixels.astype(np.float64) * slope + intercept


def _number(ds: Any, name: str, default: float) -> float:
    value = ds.get(name)
    if value is None or value == "":
        return default
    return float(value)


def _describe(uid: str, group: list[tuple[Path, Any]]) -> str:
    ds = group[0][1]
    return (
        f"{uid} (#{ds.get('SeriesNumber', '?')} {str(ds.get('SeriesDescription', '')).strip()!r}, {len(group)} images)"
    )


def _choose_series(path: Path, headers: list[tuple[Path, Any]], key: str | None) -> list[tuple[Path, Any]]:
    series: dict[str, list[tuple[Path, Any]]] = {}
    for f, ds in headers:
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((f, ds))
    if key is None:
        if len(series) == 1:
            return next(iter(series.values()))
        listing = "; ".join(_describe(uid, group) for uid, group in series.items())
        raise InputError(
            f"{path}: holds {len(series)} series; choose one with `key` UID (or `key` SERIES-NUMBER): {listing}"
        )
    if key in series:
        return series[key]
    matches = [g for g in series.values() if str(g[0][1].get("SeriesNumber", "")) == key]
    if len(matches) == 1:
        return matches[0]
    listing = "; ".join(_describe(uid, group) for uid, group in series.items())
    raise InputError(f"{path}: no single series {key!r}; series are: {listing}")


def _orientation(ds: Any) -> tuple[np.ndarray, np.ndarray] | None:
    iop = ds.get("ImageOrientationPatient")
    if iop is None or len(iop) != 6:
        return None
    cosines = np.asarray([float(v) for v in iop])
    return cosines[:3], cosines[3:]


def _stack(path: Path, slices: list[tuple[Any, np.ndarray]], *, series: bool) -> Volume:
    """Sort ``(dataset, pixels)`` slices along the normal, check consistency, stack, build the RAS affine."""
    datasets = [ds for ds, _ in slices]
    first = datasets[0]
    size = (int(first.Rows), int(first.Columns))
    for ds in datasets:
        if (int(ds.Rows), int(ds.Columns)) != size:
            raise InputError(f"{path}: images of different sizes in one series ({size} and {ds.Rows}x{ds.Columns})")
    orient = _orientation(first)
    positions = [ds.get("ImagePositionPatient") for ds in datasets]
    has_geometry = orient is not None and all(p is not None and len(p) == 3 for p in positions)
    if has_geometry:
        row_cos, col_cos = orient
        for ds in datasets:
            other = _orientation(ds)
            if other is None or not np.allclose(np.concatenate(other), np.concatenate(orient), atol=1e-3):
                raise InputError(f"{path}: images with different orientations in one series")
        normal = np.cross(row_cos, col_cos)
        ipp = np.array([[float(v) for v in p] for p in positions])
        along = ipp @ normal
        numbers = np.array([int(ds.get("InstanceNumber", 0) or 0) for ds in datasets])
        order = np.lexsort((numbers, along))
    else:
        log.warning("%s: no ImagePositionPatient/ImageOrientationPatient; sorting by InstanceNumber", path)
        row_cos, col_cos, normal = np.eye(3)
        order = np.argsort([int(ds.get("InstanceNumber", 0) or 0) for ds in datasets], kind="stable")
        thickness = _number(first, "SliceThickness", 1.0) or 1.0
        rank = np.argsort(order)  # slice k of the sorted stack sits at k * thickness along z
        ipp = np.outer(rank, normal * thickness)
        along = ipp @ normal
    datasets = [datasets[i] for i in order]
    array = np.stack([slices[i][1] for i in order], axis=-1).astype(np.float32)
    ipp, along = ipp[order], along[order]
    if len(datasets) > 1 and np.min(np.diff(along)) < 1e-3:
        raise InputError(
            f"{path}: several images share one slice position (echoes, time points or b-values?); "
            "split the series first"
        )
    if len(datasets) > 1:
        step = (ipp[-1] - ipp[0]) / (len(datasets) - 1)
        gaps = np.diff(along)
        if np.ptp(gaps) > 0.01 * np.mean(gaps) + 1e-3:
            log.warning(
                "%s: uneven slice spacing (%.3f-%.3f mm); the affine uses the mean", path, gaps.min(), gaps.max()
            )
    else:
        step = normal * (_number(first, "SpacingBetweenSlices", 0.0) or _number(first, "SliceThickness", 1.0) or 1.0)
    pixel_spacing = first.get("PixelSpacing")
    dr, dc = (float(pixel_spacing[0]), float(pixel_spacing[1])) if pixel_spacing else (1.0, 1.0)
    lps = np.eye(4)
    lps[:3, 0] = col_cos * dr
    lps[:3, 1] = row_cos * dc
    lps[:3, 2] = step
    lps[:3, 3] = ipp[0]
    spacing: tuple[float, ...] = (dr, dc, float(np.linalg.norm(step)))
    if not series:
        array, spacing = array[..., 0], spacing[:2]
    meta = {
        "slice_axis": 2 if series else None,
        "slice_positions": [float(a) for a in along],
        "series_uid": str(first.get("SeriesInstanceUID", "")),
        "series_description": str(first.get("SeriesDescription", "")),
    }
    return Volume(array, _LPS_TO_RAS @ lps, spacing, "dicom", path, header=datasets, meta=meta)


def _ds_string(value: float) -> str:
    """``value`` as a DICOM decimal string (at most 16 characters)."""
    from pydicom.valuerep import format_number_as_ds

    return format_number_as_ds(float(value))


def quantise(array: np.ndarray) -> tuple[np.ndarray, str, str]:
    """Map float values to uint16 with one slope/intercept for the series.

    ``stored = round((value - b) / m)`` with ``b = min`` and ``m = (max - min) / 65534`` (one count of
    headroom absorbs the rounding of ``m`` and ``b`` to 16-character decimal strings), so
    ``|m * stored + b - value| <= m / 2`` up to that rounding.

    Args:
        array: Float values, any shape, finite.

    Returns:
        ``(stored uint16 array, RescaleSlope string, RescaleIntercept string)``.
    """
    values = np.asarray(array, dtype=np.float64)
    lo, hi = float(values.min()), float(values.max())
    slope_text = _ds_string((hi - lo) / (_STORED_MAX - 1)) if hi > lo else "1"
    intercept_text = _ds_string(lo)
    slope, intercept = float(slope_text), float(intercept_text)
    stored = np.clip(np.round((values - intercept) / slope), 0, _STORED_MAX).astype(np.uint16)
    return stored, slope_text, intercept_text


def display_window(array: np.ndarray) -> tuple[str, str] | None:
    """WindowCenter and WindowWidth (decimal strings) spanning the 0.5th to 99.5th percentile of ``array``.

    A written series gets its own window: the reference's would show a residual series (values near 0 in
    the input's units) as one flat grey. None where that span is under 1 (DICOM's least window width):
    such a series is written without a window, which viewers then take from the data.
    """
    lo, hi = (float(v) for v in np.percentile(np.asarray(array, dtype=np.float64), [0.5, 99.5]))
    if hi - lo < 1.0:
        return None
    return _ds_string((lo + hi) / 2), _ds_string(hi - lo)


def write_dicom(array: np.ndarray, ref: Volume, folder: Path) -> None:
    """Write ``array`` as a new derived series into ``folder``, one file per slice, copying ``ref``'s tags.

    Each file keeps the reference slice's tags (patient, study, geometry: IPP, IOP, PixelSpacing,
    SliceThickness, InstanceNumber ...) and gets: a new SOPInstanceUID and one new SeriesInstanceUID
    (``pydicom.uid.generate_uid``), ImageType ``DERIVED, SECONDARY, ...``, SeriesDescription + " artefix",
    a SourceImageSequence pointing at the reference image, uint16 pixel data with the series-wide
    RescaleSlope/Intercept of :func:`quantise` and the window of :func:`display_window`, in Explicit VR
    Little Endian.

    Args:
        array: ``(rows, cols, slices)`` matching the reference, or ``(rows, cols)`` for one slice.
        ref: A DICOM :class:`Volume` (its ``header`` is the list of Datasets).
        folder: Existing empty folder to write into.

    Raises:
        OutputError: ``ref`` is not a DICOM volume, or the shape does not match it.
    """
    import pydicom
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID, ExplicitVRLittleEndian, generate_uid

    datasets = ref.header
    if ref.format != "dicom" or not isinstance(datasets, list) or not datasets:
        raise OutputError(
            f"{folder.name}: a DICOM output needs like= a DICOM volume (it supplies geometry and patient tags)"
        )
    rows, cols = int(datasets[0].Rows), int(datasets[0].Columns)
    if array.ndim == 2:
        array = array[..., None]
    if array.shape != (rows, cols, len(datasets)):
        raise OutputError(
            f"array shape {array.shape} does not match the DICOM reference ({rows}, {cols}, {len(datasets)})"
        )
    stored, slope, intercept = quantise(array)
    window = display_window(array)
    series_uid = generate_uid()
    for k, src in enumerate(datasets):
        ds = copy.deepcopy(src)
        sop_uid = generate_uid()
        meta = ds.file_meta if isinstance(ds.get("file_meta"), FileMetaDataset) else FileMetaDataset()
        meta.MediaStorageSOPClassUID = ds.SOPClassUID
        meta.MediaStorageSOPInstanceUID = sop_uid
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        ds.file_meta = meta
        ds.SOPInstanceUID = sop_uid
        ds.SeriesInstanceUID = series_uid
        image_type = src.get("ImageType", []) or []
        image_type = [image_type] if isinstance(image_type, str) else list(image_type)
        ds.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
        ds.SeriesDescription = str(src.get("SeriesDescription", "")).strip()[:56] + " artefix"
        ds.DerivationDescription = "processed with artefix"
        reference = Dataset()
        reference.ReferencedSOPClassUID = src.SOPClassUID
        reference.ReferencedSOPInstanceUID = src.SOPInstanceUID
        ds.SourceImageSequence = [reference]
        for tag in _STALE_PIXEL_TAGS:
            if tag in ds:
                delattr(ds, tag)
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 0
        ds.RescaleSlope = slope
        ds.RescaleIntercept = intercept
        if window is not None:
            ds.WindowCenter, ds.WindowWidth = window
        ds.PixelData = np.ascontiguousarray(stored[:, :, k], dtype="<u2").tobytes()
        ds["PixelData"].VR = "OW"
        pydicom.dcmwrite(folder / f"{k + 1:04d}.dcm", ds, enforce_file_format=True)
