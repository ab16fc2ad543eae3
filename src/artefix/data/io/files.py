"""Read and write scans by path for :mod:`artefix.data.io`: the format comes from the extension.

Writes are atomic: the data goes to a temporary file (or folder, for DICOM) next to the target and is
renamed over it only when complete, so a failure leaves neither a partial output nor the temporary.

Example:
    >>> import numpy as np, tempfile, pathlib
    >>> out = pathlib.Path(tempfile.mkdtemp()) / "x.npy"
    >>> _ = write_volume(Volume(np.ones((4, 5), np.float32)), out)
    >>> read_volume(out).array.shape
    (4, 5)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import numpy as np

from artefix.atomic import atomic_file, atomic_folder, same_path
from artefix.data.io.volume import Volume, check_finite, has_dicom_preamble
from artefix.errors import InputError, OutputError

SAMPLE_PREFIX = "sample:"
"""An INPUT of the form ``sample:NAME`` names a built-in sample slice (:func:`read_input`)."""

SUPPORTED_INPUTS: Mapping[str, str] = MappingProxyType(
    {
        "nifti": ".nii or .nii.gz (NIfTI-1/2; a 4D file only when it holds a single volume)",
        "dicom": "a folder holding a DICOM series (several series: choose with key=SeriesInstanceUID), "
        "or a single .dcm file",
        "fastmri-h5": ".h5 fastMRI file: reconstruction_rss / reconstruction_esc, or the root-sum-of-squares "
        "of its kspace",
        "npy": ".npy holding a 2D slice or a 3D volume",
        "npz": ".npz (choose the array with key=, default its single array or arr_0)",
        "png": ".png grayscale slice (colour is converted to luminance)",
    }
)
SUPPORTED_OUTPUTS: Mapping[str, str] = MappingProxyType(
    {
        "nifti": ".nii or .nii.gz, float32, with the reference's header and affine",
        "dicom": "a folder (a path without extension): a derived series built on a DICOM reference, "
        "one uint16 file per slice with RescaleSlope/Intercept",
        "fastmri-h5": ".h5 with a 'reconstruction' dataset (fastMRI submission layout)",
        "npy": ".npy float32",
        "npz": ".npz float32 (under the reference's key, default arr_0)",
        "png": ".png, one 2D slice min-max scaled to 16 bits (8 bits when the reference was an 8-bit PNG)",
    }
)

_INPUT_SUFFIXES = (".nii", ".nii.gz", ".dcm", ".ima", ".h5", ".hdf5", ".npy", ".npz", ".png")
_OUTPUT_SUFFIXES = (".nii", ".nii.gz", ".h5", ".hdf5", ".npy", ".npz", ".png")
_SUFFIX_FORMAT = {
    ".nii": "nifti",
    ".nii.gz": "nifti",
    ".dcm": "dicom",
    ".ima": "dicom",
    ".h5": "fastmri-h5",
    ".hdf5": "fastmri-h5",
    ".npy": "npy",
    ".npz": "npz",
    ".png": "png",
}


def read_volume(path: str | Path, *, key: str | None = None) -> Volume:
    """Read a scan, choosing the reader from the extension (a folder is a DICOM series).

    Args:
        path: File or folder, see :data:`SUPPORTED_INPUTS`.
        key: Which array to read where a file holds several: npz key, fastMRI dataset name
            (``reconstruction_rss``, ``reconstruction_esc`` or ``kspace``), DICOM SeriesInstanceUID (or
            SeriesNumber). Passing it for a single-array format (NIfTI, npy, PNG) is an error.

    Returns:
        The :class:`Volume`, with finite float32 data.

    Raises:
        InputError: Missing, unsupported, unreadable or truncated file; 1D or >3D data; NaN/Inf voxels
            (the message gives their count); ambiguous DICOM series or npz/h5 keys.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    fmt = _input_format(path)
    if key is not None and fmt in ("nifti", "npy", "png"):
        raise InputError(f"{path}: `key` {key!r} only applies to npz, fastMRI .h5 and DICOM folders")
    if fmt == "nifti":
        from artefix.data.io.nifti import read_nifti

        volume = read_nifti(path)
    elif fmt == "dicom":
        from artefix.data.io.dicom import read_dicom

        volume = read_dicom(path, key=key)
    elif fmt == "fastmri-h5":
        from artefix.data.io.fastmri import read_fastmri

        volume = read_fastmri(path, key=key)
    elif fmt == "png":
        from artefix.data.io.arrays import read_png

        volume = read_png(path)
    else:
        from artefix.data.io.arrays import read_numpy

        volume = read_numpy(path, fmt, key)
    return check_finite(volume)


def is_sample(source: str | os.PathLike[str]) -> bool:
    """Whether an input names a built-in sample slice (``sample:NAME``) rather than a file."""
    return os.fspath(source).startswith(SAMPLE_PREFIX)


def read_input(source: str | os.PathLike[str], *, key: str | None = None) -> Volume:
    """Read a command's INPUT: a scan file or folder (:func:`read_volume`) or a built-in sample slice.

    Args:
        source: A path, or ``sample:NAME`` with NAME one of :data:`artefix.data.samples.SAMPLE_NAMES`
            (an ``npy``-family 2D volume with an identity affine and no source file).
        key: As for :func:`read_volume`; an error with a sample.

    Returns:
        The :class:`Volume`.

    Raises:
        InputError: An unknown sample, ``key`` with a sample, or any error of :func:`read_volume`.
    """
    text = os.fspath(source)
    if not is_sample(text):
        return read_volume(text, key=key)
    from artefix.data.samples import load_sample

    if key is not None:
        raise InputError(f"{text}: `key` does not apply to a built-in sample")
    try:
        array = load_sample(text[len(SAMPLE_PREFIX) :])
    except ValueError as exc:
        raise InputError(str(exc)) from None
    return Volume(array=array, affine=np.eye(4), spacing=(1.0, 1.0), format="npy", source=None)


def write_volume(volume: Volume, path: str | Path, *, overwrite: bool = False, like: Volume | None = None) -> Path:
    """Write ``volume.array`` in the family given by ``path``'s extension, atomically.

    The geometry comes from ``like`` when given, else from ``volume`` itself (the *reference*):

    * NIfTI keeps the reference's NIfTI header and affine exactly (qform/sform codes, pixdim, units,
      dim_info); the data is stored as float32 with no scaling (``scl_slope``/``scl_inter`` reset), and
      its shape must be the header's (up to trailing singleton axes). A reference without a NIfTI header
      gets a fresh header from its affine (codes "scanner" for DICOM, "aligned" otherwise).
    * DICOM (``path`` is a folder: no extension, or ending in a separator) needs a DICOM reference; see
      :func:`artefix.data.io.dicom.write_dicom`.
    * PNG takes one 2D slice, min-max scaled to the full uint16 range (uint8 when the reference is an
      8-bit PNG), so absolute intensities are not kept.
    * ``.npy``/``.npz``/``.h5`` store the float32 array as is.

    Args:
        volume: What to write.
        path: Output file or DICOM folder; its parent folder must exist.
        overwrite: Replace an existing output.
        like: Reference volume whose header/geometry the output keeps.

    Returns:
        The output path.

    Raises:
        OutputError: Unsupported extension, output exists without ``overwrite``, output is the
            input, non-finite values, shape not matching the reference, or an I/O failure.
    """
    text = os.fspath(path)
    path = Path(text).expanduser()
    ref = like if like is not None else volume
    fmt = _output_format(path, text.endswith(("/", os.sep)))
    _check_output(path, (volume.source, ref.source), overwrite=overwrite, folder=fmt == "dicom")
    array = volume.array
    if not np.all(np.isfinite(array)):
        raise OutputError(f"{path}: refusing to write an array with NaN or infinite values")
    if fmt == "dicom":
        from artefix.data.io.dicom import write_dicom

        with atomic_folder(path) as tmp:
            write_dicom(array, ref, tmp)
        return path
    with atomic_file(path) as tmp:
        if fmt == "nifti":
            from artefix.data.io.nifti import write_nifti

            write_nifti(array, ref, tmp, path)
        elif fmt == "png":
            from artefix.data.io.arrays import write_png

            write_png(array, ref, tmp, path)
        elif fmt == "fastmri-h5":
            from artefix.data.io.fastmri import write_fastmri

            write_fastmri(array, ref, tmp)
        elif fmt == "npz":
            name = str(ref.meta.get("key") or "arr_0") if ref.format == "npz" else "arr_0"
            with open(tmp, "wb") as f:
                np.savez_compressed(f, **{name: array})
        else:
            with open(tmp, "wb") as f:
                np.save(f, array)
    return path


def _suffix(path: Path) -> str:
    name = path.name.lower()
    return ".nii.gz" if name.endswith(".nii.gz") else path.suffix.lower()


def _input_format(path: Path) -> str:
    if path.is_dir():
        return "dicom"
    suffix = _suffix(path)
    if suffix in _SUFFIX_FORMAT:
        return _SUFFIX_FORMAT[suffix]
    if suffix == "" and has_dicom_preamble(path):
        return "dicom"
    raise InputError(
        f"{path}: unsupported input {suffix or '(no extension)'}; supported: "
        f"{', '.join(_INPUT_SUFFIXES)}, a DICOM folder or an extensionless DICOM file"
    )


def _output_format(path: Path, folder_hint: bool) -> str:
    suffix = _suffix(path)
    if folder_hint or suffix == "" or path.is_dir():
        return "dicom"
    fmt = _SUFFIX_FORMAT.get(suffix)
    if fmt is None or fmt == "dicom":
        raise OutputError(
            f"{path}: unsupported output {suffix}; supported: {', '.join(_OUTPUT_SUFFIXES)} or a folder (DICOM series)"
        )
    return fmt


def _check_output(path: Path, sources: tuple[Path | None, ...], *, overwrite: bool, folder: bool) -> None:
    for source in sources:
        if source is not None and same_path(path, Path(source)):
            raise OutputError(f"{path}: output is the input {source}; choose another output path")
        if folder and source is not None and path.resolve() in Path(source).resolve().parents:
            raise OutputError(f"{path}: output folder holds the input {source}; choose another output path")
    if not path.parent.is_dir():
        raise OutputError(f"{path}: output folder {path.parent} does not exist")
    if not path.exists() and not path.is_symlink():
        return
    if not overwrite:
        raise OutputError(f"{path}: output exists; pass `overwrite` to replace it")
    if folder:
        if not path.is_dir():
            raise OutputError(f"{path}: exists and is not a folder; cannot replace it with a DICOM series")
        others = [p.name for p in path.iterdir() if not (p.is_file() and has_dicom_preamble(p))]
        if others:
            raise OutputError(
                f"{path}: folder holds non-DICOM entries ({', '.join(sorted(others)[:3])}); not replacing it"
            )
    elif path.is_dir():
        raise OutputError(f"{path}: is a folder; cannot replace it with a file")
