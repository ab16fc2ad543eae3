"""Build the out-of-distribution (OOD) bench: real MRI from sources no shipped model was trained on.

Usage: ``python scripts/build_ood_bench.py OUT_DIR [--shared-data PATH]``.

The shipped models were trained on ``../shared/data``'s MS (Ljubljana), IXI, niivue demo (VS-SEG, MR_Gd)
and ProstateX folders. This bench takes none of them: it reads the glioma slices of
``../shared/data/msd_brain_slices_via_openjphpy`` and real MR images that ship *inside* installed Python
packages (nibabel's, pydicom's and matplotlib's test or sample data, and where installed nilearn's MNI152
template, dipy's test volumes and pydicom-data's test files). It never downloads anything: a source whose
package (or shared folder) is missing is skipped with a logged warning and named in ``SOURCES.md``.

Output: one folder per source under ``OUT_DIR`` holding float32 NIfTI files ``(H, W, n)`` with their affine
(RAS millimetres) and the slice axis (2) in ``dim_info``, plus ``OUT_DIR/SOURCES.md`` with each file's origin,
package version, licence, attribution and the checksum of the file it was read from. The intensities are the
stored ones (DICOM rescale applied), neither normalised nor resampled.

Slice choice, fixed and independent of any model: a 3D volume is first put in the closest RAS orientation
(so axis 2 is axial); each axial slice's foreground fraction is the share of its pixels above 10 % of the
volume's 99th intensity percentile; the slices whose fraction is at least half the volume's largest span
``[a, b]``; the bench keeps ``c - s, c, c + s`` with ``c = (a + b) // 2`` and ``s = max(1, (b - a) // 4)``
(about the quarter, middle and three-quarter points), equally spaced so that one affine places them all.
2D images are kept whole. Every slice is at least 41 pixels per side (VIF's four scales); nothing is
upsampled.

The bytes are deterministic: the same installed packages give the same files (gzip without a timestamp).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import importlib.metadata
import importlib.util
import logging
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import nibabel as nib
import numpy as np

log = logging.getLogger("build_ood_bench")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"
MIN_SIDE = 41
"""Smallest slice side that ``artefix evaluate`` scores (VIF's four scales)."""
FOREGROUND_LEVEL = 0.1
"""A pixel is foreground above this fraction of the volume's 99th intensity percentile."""
SLICES_PER_VOLUME = 3
TRAINING_SOURCES = (
    "open_ms_data_ljubljana_longitudinal",
    "ixi_t1_2mm_via_nichart",
    "niivue_demo_images",
    "prostatex_tcia_via_picai_prep",
)
"""``../shared/data`` folders the shipped models were trained on: never read here."""


class SourceMissingError(Exception):
    """A source's package or folder is not installed here."""


class Image(NamedTuple):
    """One bench file before it is written.

    Attributes:
        stem: File name without ``.nii.gz``.
        array: ``(H, W, n)`` float32.
        affine: 4x4 voxel-to-world, RAS millimetres.
        read_from: The file it was read from, relative to its package (or shared-data) folder.
        origin_sha256: SHA-256 of that file.
        slices: Which slices or frames of it were kept, in words.
    """

    stem: str
    array: np.ndarray
    affine: np.ndarray
    read_from: str
    origin_sha256: str
    slices: str


class Source(NamedTuple):
    """A bench source: where its images come from and under which terms.

    Attributes:
        name: Folder name in the bench.
        package: Distribution it is read from (``None``: ``../shared/data``).
        content: Scanner, contrast, anatomy, matrix, skull and background, as far as known.
        origin: Where the data came from before the package shipped it.
        licence: Licence of the data as the package states it.
        attribution: What a user of the bench must credit.
        build: ``(shared_data) -> images``; raises :class:`SourceMissingError` when unavailable.
    """

    name: str
    package: str | None
    content: str
    origin: str
    licence: str
    attribution: str
    build: Callable[[Path], list[Image]]


# ----------------------------------------------------------------------------------------- locating


def package_dir(module: str) -> Path:
    """Folder of an installed top-level package, found without importing it.

    Raises:
        SourceMissingError: When the package is not installed.
    """
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        raise SourceMissingError(f"package {module!r} is not installed")
    return Path(next(iter(spec.submodule_search_locations)))


def package_file(module: str, relative: str) -> Path:
    """A data file inside an installed package (``relative`` to its folder).

    Raises:
        SourceMissingError: When the package or the file is missing.
    """
    path = package_dir(module) / relative
    if not path.is_file():
        raise SourceMissingError(f"{module}/{relative} is not in this installation")
    return path


def sha256(path: Path) -> str:
    """Hex SHA-256 of a file."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def version_of(distribution: str) -> str:
    """Installed version of a distribution."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


# ------------------------------------------------------------------------------------ slice choice


def foreground_fractions(stack: np.ndarray) -> np.ndarray:
    """Per-slice share of pixels above :data:`FOREGROUND_LEVEL` of the stack's 99th percentile.

    Args:
        stack: ``(H, W, N)`` volume, slices along the last axis.

    Returns:
        ``(N,)`` fractions in ``[0, 1]``.
    """
    reference = float(np.percentile(stack, 99.0))
    if reference <= 0.0:
        reference = float(stack.max()) if stack.max() > 0 else 1.0
    return np.mean(stack > FOREGROUND_LEVEL * reference, axis=(0, 1))


def representative_slices(stack: np.ndarray, count: int = SLICES_PER_VOLUME) -> tuple[int, int]:
    """``(first, step)`` of ``count`` equally spaced slices over the well-filled span (module docstring).

    Args:
        stack: ``(H, W, N)`` volume.
        count: Slices to keep (odd: the middle one is the span's centre).

    Returns:
        First slice index and the step between kept slices (``count`` may shrink for a thin span: the
        caller keeps ``range(first, first + step * count, step)`` clipped to the volume).
    """
    fractions = foreground_fractions(stack)
    span = np.flatnonzero(fractions >= 0.5 * fractions.max())
    a, b = int(span[0]), int(span[-1])
    centre = (a + b) // 2
    step = max(1, (b - a) // (count + 1))
    return max(0, centre - step * (count // 2)), step


def axial_slab(path: Path, volume_index: int | None = None) -> tuple[np.ndarray, np.ndarray, str]:
    """The representative axial slices of a NIfTI volume and the affine that places them.

    Args:
        path: NIfTI file.
        volume_index: Which volume of a 4D file (None: 3D, or a 4D file of one volume).

    Returns:
        ``(array (H, W, n) float32, affine, description of the kept slices)``.
    """
    img = nib.as_closest_canonical(nib.load(path))
    data = np.asarray(img.get_fdata(dtype=np.float32))
    if data.ndim == 4:
        data = data[..., 0 if volume_index is None else volume_index]
    first, step = representative_slices(data)
    kept = [k for k in range(first, first + step * SLICES_PER_VOLUME, step) if k < data.shape[2]]
    choose = np.array([[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, step, first], [0, 0, 0, 1]], dtype=np.float64)
    where = f"axial slices {kept} of {data.shape[2]} (RAS)"
    if volume_index is not None:
        where += f", volume {volume_index}"
    return np.ascontiguousarray(data[:, :, kept]), img.affine @ choose, where


def dicom_slice(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """A single-frame DICOM image as ``(rows, columns, 1)`` with its RAS affine (artefix's reader)."""
    from artefix.data.io import read_volume

    volume = read_volume(path)
    return volume.array[:, :, None].astype(np.float32), volume.affine


def flat(array: np.ndarray, spacing: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A 2D image without geometry as ``(H, W, 1)`` with a diagonal affine of ``spacing`` mm."""
    affine = np.diag([spacing, spacing, spacing, 1.0])
    return np.asarray(array, dtype=np.float32)[:, :, None], affine


# ---------------------------------------------------------------------------------------- sources


def _msd(shared: Path) -> list[Image]:
    path = shared / "msd_brain_slices_via_openjphpy" / "dataset0_data.npz"
    if not path.is_file():
        raise SourceMissingError(f"{path} not found (no ../shared/data here?)")
    digest = sha256(path)
    images = []
    with np.load(path) as npz:
        for key in sorted(npz.files):
            array, affine = flat(npz[key])
            images.append(
                Image(f"msd_glioma_{key}", array, affine, f"{path.parent.name}/{path.name}", digest, f"array {key}")
            )
    return images


def _nibabel_epi(shared: Path) -> list[Image]:
    path = package_file("nibabel", "tests/data/example4d.nii.gz")
    array, affine, where = axial_slab(path, volume_index=0)
    return [Image("nibabel_epi", array, affine, "nibabel/tests/data/example4d.nii.gz", sha256(path), where)]


def _pydicom_mr(shared: Path) -> list[Image]:
    path = package_file("pydicom", "data/test_files/MR_small.dcm")
    array, affine = dicom_slice(path)
    rel = "pydicom/data/test_files/MR_small.dcm"
    return [Image("pydicom_mr_small", array, affine, rel, sha256(path), "the single 64x64 image")]


def _matplotlib_head(shared: Path) -> list[Image]:
    path = package_file("matplotlib", "mpl-data/sample_data/s1045.ima.gz")
    raw = np.frombuffer(gzip.decompress(path.read_bytes()), dtype="<u2")
    if raw.size != 256 * 256:
        raise SourceMissingError(f"{path}: expected 256x256 uint16, got {raw.size} values")
    array, affine = flat(raw.reshape(256, 256))
    rel = "matplotlib/mpl-data/sample_data/s1045.ima.gz"
    return [Image("matplotlib_head", array, affine, rel, sha256(path), "the single 256x256 image")]


def _mni152(shared: Path) -> list[Image]:
    rel = "datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz"
    path = package_file("nilearn", rel)
    array, affine, where = axial_slab(path)
    return [Image("mni152_t1", array, affine, f"nilearn/{rel}", sha256(path), where)]


def _dipy_b0(shared: Path) -> list[Image]:
    path = package_file("dipy", "data/files/S0_10slices.nii.gz")
    array, affine, where = axial_slab(path, volume_index=0)
    return [Image("dipy_s0", array, affine, "dipy/data/files/S0_10slices.nii.gz", sha256(path), where)]


def _dipy_piesno(shared: Path) -> list[Image]:
    path = package_file("dipy", "data/files/test_piesno.nii.gz")
    img = nib.load(path)
    data = np.asarray(img.get_fdata(dtype=np.float32))
    rel = "dipy/data/files/test_piesno.nii.gz"
    digest = sha256(path)
    # One slice, 14 frames: 0-1 are b=0 (mean signal 2.4x the others), 2-13 diffusion-weighted.
    return [
        Image(f"dipy_piesno_{tag}", data[:, :, [frame]], img.affine, rel, digest, f"frame {frame} of 14 ({what})")
        for tag, frame, what in (("b0", 0, "the first b=0 image"), ("dwi", 2, "the first diffusion-weighted image"))
    ]


def _dipy_t1(shared: Path) -> list[Image]:
    path = package_file("dipy", "data/files/t1_coronal_slice.npy")
    array, affine = flat(np.load(path, allow_pickle=False))
    rel = "dipy/data/files/t1_coronal_slice.npy"
    return [Image("dipy_t1_coronal", array, affine, rel, sha256(path), "the single 256x256 image")]


def _pydicom_data_abdomen(shared: Path) -> list[Image]:
    path = package_file("data_store", "data/MR-SIEMENS-DICOM-WithOverlays.dcm")
    array, affine = dicom_slice(path)
    rel = "data_store/data/MR-SIEMENS-DICOM-WithOverlays.dcm"
    return [Image("siemens_abdomen", array, affine, rel, sha256(path), "the single 484x484 image")]


SOURCES: tuple[Source, ...] = (
    Source(
        "msd_glioma",
        None,
        "5 skull-stripped glioma brain slices (BraTS-derived; which of FLAIR/T1w/T1gd/T2w each is, is not "
        "documented), 240x240 at 1 mm, zero background; one file per slice (different patients)",
        "Medical Segmentation Decathlon, Task01 BrainTumour, middle slices, via the openjphpy repository; "
        "`../shared/data/msd_brain_slices_via_openjphpy` (see its SOURCES.md)",
        "CC BY-SA 4.0",
        "Antonelli et al., The Medical Segmentation Decathlon, Nat Commun 13, 4128 (2022); "
        "Simpson et al., arXiv:1902.09063 (2019); BraTS (Menze et al. 2015, Bakas et al. 2017)",
        _msd,
    ),
    Source(
        "nibabel_epi",
        "nibabel",
        "gradient-echo EPI (BOLD fMRI) brain, 128x96 at 2 mm (2.2 mm slices), background masked to zero; "
        "first of its 2 volumes",
        "nibabel's test data `tests/data/example4d.nii.gz` (its README gives no further provenance)",
        "MIT (nibabel's COPYING: the package 'including all examples ... and attached documentation')",
        "NiBabel developers (Copyright (c) 2009-2019 Matthew Brett et al.), https://nipy.org/nibabel",
        _nibabel_epi,
    ),
    Source(
        "pydicom_mr_small",
        "pydicom",
        "Toshiba MRT50H1 spin-echo (TE 240 ms, TR 4000 ms), 64x64 at 0.3125 mm, anatomy not documented, "
        "noisy non-zero background",
        "pydicom's test file `data/test_files/MR_small.dcm`: NEMA WG04 sample 'MR1_UNC' downsized to 64x64 "
        "(ftp://medical.nema.org/MEDICAL/Dicom/DataSets/WG04/), per pydicom's test_files/README.txt",
        "MIT (pydicom); README.txt: 'I believe there is no restriction on using any of these files in this manner'",
        "pydicom contributors (Darcy Mason et al.); NEMA DICOM WG04 compression test set",
        _pydicom_mr,
    ),
    Source(
        "matplotlib_head",
        "matplotlib",
        "sagittal T1-like head slice with skull, scalp and neck, 256x256, 8-bit levels stored as uint16 "
        "(multiples of 256), zero background; pixel size not recorded (1 mm written)",
        "matplotlib's sample data `mpl-data/sample_data/s1045.ima.gz` (used by its `mri_with_eeg` example; "
        "matplotlib gives no further provenance)",
        "Matplotlib License (PSF-based, BSD-compatible), which covers the package's data files",
        "Copyright (c) 2012- Matplotlib Development Team; All Rights Reserved",
        _matplotlib_head,
    ),
    Source(
        "mni152",
        "nilearn",
        "ICBM152 2009a nonlinear symmetric T1 template (an average of 152 adults' scans, not one scan), "
        "skull-stripped and rescaled to uint8 by nilearn, 197x233 at 1 mm, zero background",
        "nilearn `datasets/data/mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz`, from the McConnell Brain "
        "Imaging Centre's ICBM 2009a release",
        "nilearn BSD-3-Clause; the template itself: 'Copyright (C) 1993-2004 Louis Collins, McConnell Brain "
        "Imaging Centre, Montreal Neurological Institute, McGill University. Permission to use, copy, modify, "
        "and distribute ... is hereby granted, provided that the above copyright notice appear in all copies' "
        "(nilearn's own description says 'License: unknown')",
        "Fonov et al., NeuroImage 47 S102 (2009) and 54(1) 313-327 (2011); Collins et al. (1999); nilearn",
        _mni152,
    ),
    Source(
        "dipy_s0",
        "dipy",
        "diffusion b=0 (T2-weighted EPI) brain, 128x128 at 2 mm, 10 non-adjacent slices (sheared affine), "
        "low-level background noise",
        "dipy's bundled test file `data/files/S0_10slices.nii.gz` (dipy gives no further provenance)",
        "BSD-3-Clause (dipy's LICENSE covers its data files unless stated otherwise)",
        "Copyright (c) 2008-2026, dipy developers, https://dipy.org",
        _dipy_b0,
    ),
    Source(
        "dipy_piesno",
        "dipy",
        "one axial diffusion slice, 96x96, acquired with an 8-channel coil (dipy: 'N=8, K=14'), strong "
        "non-central-chi background noise: a b=0 frame and a diffusion-weighted frame; voxel size not recorded",
        "dipy's bundled test file `data/files/test_piesno.nii.gz` (the PIESNO noise estimator's test data)",
        "BSD-3-Clause (dipy's LICENSE covers its data files unless stated otherwise)",
        "Copyright (c) 2008-2026, dipy developers, https://dipy.org",
        _dipy_piesno,
    ),
    Source(
        "dipy_t1_coronal",
        "dipy",
        "coronal T1 brain slice, skull-stripped, intensities scaled to [0, 1], 256x256, zero background; "
        "pixel size not recorded (1 mm written)",
        "dipy's bundled test file `data/files/t1_coronal_slice.npy` (used by its MRF segmentation tests)",
        "BSD-3-Clause (dipy's LICENSE covers its data files unless stated otherwise)",
        "Copyright (c) 2008-2026, dipy developers, https://dipy.org",
        _dipy_t1,
    ),
    Source(
        "siemens_abdomen",
        "pydicom-data",
        "Siemens Avanto 1.5 T, fat-saturated 3D T1 gradient echo (t1_vibe_fs_tra_bh_dyn, TE 2.81 ms), axial "
        "abdomen (liver lesion) MPR, 484x484 at 0.72 mm, 4 mm slice; not a brain",
        "pydicom-data `data_store/data/MR-SIEMENS-DICOM-WithOverlays.dcm`, from GDCM's test data (pydicom "
        "test_files/README.txt)",
        "MIT (pydicom-data's LICENSE)",
        "pydicom-data (Copyright (c) 2020 Dicom in Python); GDCM test data",
        _pydicom_data_abdomen,
    ),
)
"""Every source, in bench order. Considered and left out: nibabel's ``anatomical.nii`` (33x41x25, under 41
pixels), its PAR/REC files (phantoms), pydicom-data's ``MR2_*`` (a 1024x1024 shoulder: many times the
evaluation cost of every other slice together) and ``emri_small*`` (enhanced multi-frame DICOM without pixel
geometry, which artefix does not read), scikit-image's ``brain`` (a download)."""


# ---------------------------------------------------------------------------------------------- writing


def nifti_bytes(image: Image, source: str) -> bytes:
    """The gzip-compressed NIfTI-1 of ``image``, with no timestamp (same input, same bytes)."""
    img = nib.Nifti1Image(np.asarray(image.array, dtype=np.float32), image.affine)
    header = img.header
    header.set_sform(image.affine, code="aligned")
    header.set_qform(image.affine, code="aligned")
    header.set_xyzt_units("mm")
    header.set_dim_info(slice=2)
    header["descrip"] = f"artefix OOD bench: {source}".encode()[:79]
    return gzip.compress(img.to_bytes(), compresslevel=6, mtime=0)


def _check(image: Image, source: str) -> None:
    array = image.array
    if array.ndim != 3 or array.dtype != np.float32:
        raise ValueError(f"{source}/{image.stem}: expected (H, W, n) float32, got {array.shape} {array.dtype}")
    if min(array.shape[:2]) < MIN_SIDE:
        raise ValueError(f"{source}/{image.stem}: slices of {array.shape[:2]} are under {MIN_SIDE} pixels")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{source}/{image.stem}: non-finite voxels")


def _package(source: Source) -> str:
    return "(../shared/data)" if source.package is None else f"{source.package} {version_of(source.package)}"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def sources_markdown(built: Sequence[tuple[Source, list[Image]]], skipped: Sequence[tuple[Source, str]]) -> str:
    """The text of ``SOURCES.md``: what each file is, where it came from, under which licence."""
    lines = [
        "# OOD bench: sources",
        "",
        "Built by `python scripts/build_ood_bench.py OUT_DIR`. Real MRI that no shipped model was trained on "
        f"(the training folders of ../shared/data, {', '.join(TRAINING_SOURCES)}, are never read). Keep it "
        "out of training and of every modelling choice: it is for measuring only.",
        "",
        "Files: float32 NIfTI `(H, W, n)`, slices along axis 2 (`dim_info`), RAS mm affine; stored intensities, "
        "not normalised or resampled. A volume contributes 3 equally spaced axial slices around the middle of "
        "its well-filled span (rule in the script's docstring); a 2D image is kept whole.",
        "",
        "| folder | file | slices | shape (H, W, n) | read from | package version | sha256 of the source file |",
        "|---|---|---|---|---|---|---|",
    ]
    for source, images in built:
        for image in images:
            lines.append(
                f"| {source.name} | {source.name}/{image.stem}.nii.gz | {_cell(image.slices)} | "
                f"{tuple(int(s) for s in image.array.shape)} | `{image.read_from}` | "
                f"{_package(source)} | `{image.origin_sha256}` |"
            )
    lines += ["", "## Each source", ""]
    for source, _ in built:
        lines += [
            f"### {source.name}",
            "",
            f"- Content: {source.content}",
            f"- Origin: {source.origin}",
            f"- Package: {_package(source)}",
            f"- Licence: {source.licence}",
            f"- Attribution: {source.attribution}",
            "",
        ]
    if skipped:
        lines += ["## Skipped here", ""]
        lines += [f"- {source.name}: {_cell(reason)}" for source, reason in skipped]
        lines.append("")
    return "\n".join(lines)


def build(out_dir: Path, shared_data: Path = SHARED_DATA) -> list[Path]:
    """Write the bench into ``out_dir`` (its source folders and SOURCES.md are replaced).

    Args:
        out_dir: Output folder (created).
        shared_data: The ``../shared/data`` folder (only the MSD folder is read).

    Returns:
        The written NIfTI files, in bench order.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    built: list[tuple[Source, list[Image]]] = []
    skipped: list[tuple[Source, str]] = []
    written: list[Path] = []
    for source in SOURCES:
        folder = out_dir / source.name
        if folder.exists():
            shutil.rmtree(folder)
        try:
            images = source.build(shared_data)
        except SourceMissingError as exc:
            log.warning("skipping source %s: %s", source.name, exc)
            skipped.append((source, str(exc)))
            continue
        folder.mkdir()
        for image in images:
            _check(image, source.name)
            path = folder / f"{image.stem}.nii.gz"
            path.write_bytes(nifti_bytes(image, source.name))
            written.append(path)
        built.append((source, images))
    (out_dir / "SOURCES.md").write_text(sources_markdown(built, skipped), encoding="utf-8")
    log.info("%d sources, %d files, %d skipped", len(built), len(written), len(skipped))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the arguments, build the bench, print the files."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="output folder")
    parser.add_argument("--shared-data", type=Path, default=SHARED_DATA, help="the ../shared/data folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    files = build(args.out_dir, args.shared_data)
    for path in files:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
