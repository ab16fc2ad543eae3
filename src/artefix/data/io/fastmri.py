"""fastMRI HDF5 files for :mod:`artefix.data.io`.

A fastMRI file holds ``kspace`` (complex, ``(slices, coils, H, W)`` multi-coil or ``(slices, H, W)``
single-coil), usually the magnitude references ``reconstruction_rss`` / ``reconstruction_esc``
(``(slices, 320, 320)``, cropped to the central field of view) and the ISMRMRD XML header
``ismrmrd_header``. Where only k-space is present the image is the root-sum-of-squares over coils of the
centred orthonormal inverse FFT (:func:`artefix.fft.ifft2c`), at the full encoded matrix (not cropped):

    I(x) = sqrt( sum_c |IFFT2c(k_c)(x)|^2 )
"""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import numpy as np

from artefix.atomic import one_line
from artefix.data.io.volume import Volume
from artefix.errors import InputError
from artefix.fft import ifft2c

log = logging.getLogger(__name__)

RECONSTRUCTION_KEYS = ("reconstruction_rss", "reconstruction_esc", "reconstruction")
_NS = "{http://www.ismrm.org/ISMRMRD}"


def rss_from_kspace(kspace: np.ndarray) -> np.ndarray:
    """Magnitude image(s) from centred k-space: root-sum-of-squares over coils.

    Args:
        kspace: Complex ``(slices, coils, H, W)`` (multi-coil), ``(slices, H, W)`` (single-coil) or
            ``(H, W)``.

    Returns:
        float32 ``(slices, H, W)`` (or ``(H, W)``), ``sqrt(sum_c |ifft2c(k_c)|^2)``.
    """
    kspace = np.asarray(kspace)
    if kspace.ndim == 4:
        out = np.empty((kspace.shape[0], *kspace.shape[2:]), dtype=np.float32)
        for s in range(kspace.shape[0]):
            coils = ifft2c(kspace[s].astype(np.complex64, copy=False))
            out[s] = np.sqrt(np.sum(np.abs(coils) ** 2, axis=0))
        return out
    if kspace.ndim in (2, 3):
        return np.abs(ifft2c(kspace.astype(np.complex64, copy=False))).astype(np.float32)
    raise ValueError(f"k-space must be (slices, coils, H, W), (slices, H, W) or (H, W), got {kspace.shape}")


def _space_spacing(header: str | None, space: str, shape: tuple[int, int]) -> tuple[float, float, float] | None:
    """``(slice thickness, dx, dy)`` in mm from the ISMRMRD ``encodedSpace``/``reconSpace`` where it fits."""
    if not header:
        return None
    try:
        root = ET.fromstring(header)
        node = root.find(f"{_NS}encoding/{_NS}{space}")
        if node is None:
            return None
        matrix = [float(node.find(f"{_NS}matrixSize/{_NS}{a}").text) for a in "xyz"]
        fov = [float(node.find(f"{_NS}fieldOfView_mm/{_NS}{a}").text) for a in "xyz"]
    except (ET.ParseError, AttributeError, TypeError, ValueError):
        log.debug("unparsable ISMRMRD header; spacing left at 1 mm")
        return None
    if (int(matrix[0]), int(matrix[1])) != tuple(shape) or min(matrix) <= 0:
        return None
    return fov[2] / matrix[2], fov[0] / matrix[0], fov[1] / matrix[1]


def read_fastmri(path: Path, *, key: str | None = None) -> Volume:
    """Read a fastMRI ``.h5`` file as ``(slices, H, W)`` with ``meta['slice_axis'] == 0``.

    Args:
        path: The file.
        key: ``reconstruction_rss``, ``reconstruction_esc``, ``reconstruction`` or ``kspace``; by default
            the first present in that order.

    Returns:
        The magnitude volume; spacing from the ISMRMRD header where its matrix matches the array
        (else 1 mm); ``affine = diag(spacing, 1)`` (orientation unknown); ``header`` is the XML string.

    Raises:
        InputError: Not HDF5, truncated, no usable dataset, or an unknown ``key`` (the message lists the
            datasets).
    """
    import h5py

    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise InputError(f"{path}: not a readable HDF5 file ({one_line(exc)})") from exc
    with f:
        names = sorted(f.keys())
        if key is None:
            key = next((k for k in (*RECONSTRUCTION_KEYS, "kspace") if k in f), None)
            if key is None:
                raise InputError(f"{path}: no fastMRI reconstruction or kspace dataset; datasets are {names}")
        elif key not in f or not isinstance(f[key], h5py.Dataset):
            raise InputError(f"{path}: no dataset {key!r}; datasets are {names}")
        dataset = f[key]
        try:
            if np.iscomplexobj(np.empty(0, dtype=dataset.dtype)):
                if dataset.ndim == 4:
                    array = np.stack([rss_from_kspace(dataset[s : s + 1])[0] for s in range(dataset.shape[0])])
                else:
                    array = rss_from_kspace(dataset[()])
                space = "encodedSpace"
            else:
                array = np.asarray(dataset[()], dtype=np.float32)
                space = "reconSpace"
            header = _xml(f)
        except (OSError, ValueError, TypeError) as exc:
            raise InputError(f"{path}: cannot read dataset {key!r} ({one_line(exc)})") from exc
        attrs = {k: _plain(v) for k, v in f.attrs.items()}
    if array.ndim not in (2, 3) or array.size == 0:
        raise InputError(f"{path}: dataset {key!r} of shape {array.shape} is not (slices, H, W)")
    spacing = _space_spacing(header, space, array.shape[-2:])
    spacing = (spacing if spacing is not None else (1.0, 1.0, 1.0))[-array.ndim :]
    affine = np.diag([*spacing, *([1.0] * (4 - array.ndim))])
    meta = {"slice_axis": 0 if array.ndim == 3 else None, "key": key, "attrs": attrs}
    return Volume(array, affine, spacing, "fastmri-h5", path, header=header, meta=meta)


def _xml(f: Any) -> str | None:
    if "ismrmrd_header" not in f:
        return None
    value = f["ismrmrd_header"][()]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def write_fastmri(array: np.ndarray, ref: Volume, tmp: Path) -> None:
    """Write ``array`` (float32) as dataset ``reconstruction`` in the fastMRI submission layout.

    ``ref``'s ISMRMRD header and its string attributes (``acquisition``, ``patient_id``) are copied;
    numeric attributes such as ``max`` describe the original reconstruction and are dropped.
    """
    import h5py

    with h5py.File(tmp, "w") as f:
        f.create_dataset("reconstruction", data=np.asarray(array, dtype=np.float32))
        if isinstance(ref.header, str):
            f.create_dataset("ismrmrd_header", data=ref.header.encode("utf-8"))
        for name, value in (ref.meta.get("attrs") or {}).items():
            if isinstance(value, str):
                f.attrs[name] = value
