"""The :class:`Volume` of :mod:`artefix.data.io` and the checks its format modules share.

Every reader returns a :class:`Volume`: a float32 ``array`` of shape ``(H, W)`` or ``(H, W, D)`` (for a
fastMRI file ``(slices, H, W)``), the 4x4 voxel-to-world ``affine`` in RAS millimetres, the voxel
``spacing`` and the original ``header`` so that :func:`~artefix.data.io.write_volume` can write a result
back in the input's family with the same geometry. A world position is ``affine @ [i, j, k, 1]`` for voxel
index ``(i, j, k)``.

NaN and infinite voxels are an error at read time (:class:`~artefix.errors.InputError` stating how many
there are): the models cannot use them and silently replacing them would hide a broken conversion.
:func:`check_finite` is the same check for volumes built in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from artefix.errors import InputError

FORMATS = ("nifti", "dicom", "fastmri-h5", "npy", "npz", "png")


@dataclass
class Volume:
    """An image or volume with its geometry and the header of the file it came from.

    Attributes:
        array: Image data, float32, shape ``(H, W)`` or 3D. NIfTI keeps the file's axis order, a
            DICOM series is stacked as ``(rows, columns, slices)`` and a fastMRI file is
            ``(slices, H, W)``. Other dtypes are converted to float32.
        affine: 4x4 voxel-to-world matrix, RAS+ millimetres (identity for npy/npz/png).
        spacing: Millimetres per voxel along each array axis; derived from the affine's column norms
            when left empty.
        format: One of :data:`FORMATS`, the family the data came from.
        source: File or folder it was read from (``None`` when built in memory).
        header: The nibabel header (NIfTI), the list of pydicom Datasets in slice order without pixel
            data (DICOM), the ISMRMRD XML header string (fastMRI) or ``None``.
        meta: Extra facts, e.g. ``slice_axis`` (the acquisition's slice axis where the file says so,
            else ``None``), ``key`` (the dataset read from an npz/h5), ``bit_depth`` (PNG).
    """

    array: np.ndarray
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    spacing: tuple[float, ...] = ()
    format: str = "npy"
    source: Path | None = None
    header: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    def with_array(self, array: np.ndarray) -> Volume:
        """A volume with new data but this one's geometry, header and metadata (and no source file)."""
        return Volume(
            array=array,
            affine=self.affine,
            spacing=self.spacing,
            format=self.format,
            source=None,
            header=self.header,
            meta=dict(self.meta),
        )

    def __post_init__(self) -> None:
        array = np.asarray(self.array)
        if array.ndim not in (2, 3):
            raise ValueError(f"Volume.array must be 2D or 3D, got shape {array.shape}")
        if np.iscomplexobj(array):
            raise ValueError("Volume.array must be real; take the magnitude of complex images first")
        self.array = array.astype(np.float32, copy=False)
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"Volume.affine must be 4x4, got shape {affine.shape}")
        self.affine = affine
        if len(self.spacing) == 0:
            self.spacing = tuple(float(np.linalg.norm(affine[:3, i])) for i in range(array.ndim))
        else:
            self.spacing = tuple(float(s) for s in self.spacing)
        if len(self.spacing) != array.ndim:
            raise ValueError(f"Volume.spacing {self.spacing} needs one value per axis of shape {array.shape}")
        if self.format not in FORMATS:
            raise ValueError(f"Volume.format {self.format!r} is not one of {', '.join(FORMATS)}")
        if self.source is not None:
            self.source = Path(self.source)


def check_finite(volume: Volume) -> Volume:
    """Raise :class:`InputError` when ``volume.array`` holds NaN or infinite voxels.

    Returns:
        ``volume`` unchanged, for chaining.
    """
    bad = int(volume.array.size - np.count_nonzero(np.isfinite(volume.array)))
    if bad:
        name = volume.source if volume.source is not None else "input"
        raise InputError(f"{name}: {bad} of {volume.array.size} voxels are NaN or infinite; fix or mask them first")
    return volume


def has_dicom_preamble(path: Path) -> bool:
    """Whether ``path`` starts with the 128-byte DICOM preamble and the ``DICM`` marker."""
    try:
        with open(path, "rb") as f:
            head = f.read(132)
    except OSError:
        return False
    return len(head) == 132 and head[128:] == b"DICM"
