"""Turn scans into the model's 2D training slices.

Choose the slice axis, drop empty slices, resample the in-plane matrix in Fourier space and normalise
the intensities.

Pipeline of one volume (:func:`prepare_slices`):

1. **Slice axis**: the ``axis`` argument, else ``volume.meta["slice_axis"]`` (set by the reader where the
   file says so), else the last array axis. A 2D image is one slice (index 0).
2. **Foreground filter** (:class:`ForegroundFilter`): keep slice ``z`` when the fraction of its pixels
   above ``level * P_p(volume)`` exceeds ``min_fraction``; ``P_p`` is the volume's ``percentile``-th
   intensity percentile. Defaults 10 %, 5 %, 99th: see the class for why.
3. **Matrix** (``matrix``, default the paper's 320x320): with ``fit="pad"`` (default) the image is first
   zero-padded in image space (centred) to the target's physical aspect ratio, using the in-plane voxel
   spacing, so that the output has square pixels and no anatomy is cut; then its centred k-space is
   cropped or zero-padded to the matrix (:func:`artefix.fft.fourier_resize`: the field of view is kept
   and the resolution changes, e.g. the paper's 512 -> 320 pelvis). ``fit="stretch"`` resamples each
   axis directly (pixels become non-square when the aspect ratios differ). ``fit="native"`` keeps the
   scan's own pixels (training crops them with :class:`artefix.data.augment.ScaleCrop`).
4. **Intensity** (``normalise``): ``"zscore"`` per slice, ``(x - mean) / std`` as in the paper;
   ``"percentile"`` divides the whole volume by ``P_p(volume)`` (the filter's reference), keeping the
   relative brightness of slices and non-negative magnitudes, which is what the artefact simulators need
   (the training dataset Z-normalises after corrupting); ``"none"``.

Large collections are handled by :class:`SliceIndex`: the (file, slice) list is built once (one read per
volume), and slices are produced on demand from a small LRU cache of prepared volumes, so hundreds of
volumes never sit in memory together.

Example:
    >>> import numpy as np
    >>> from artefix.data.io import Volume
    >>> vol = Volume(np.pad(np.ones((40, 40, 6), np.float32), ((12, 12), (12, 12), (0, 0))))
    >>> records = extract_slices(vol, matrix=(32, 32))
    >>> len(records), records[0].array.shape
    (6, (32, 32))
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from artefix.data.io import Volume, read_volume
from artefix.data.splits import PatientRule, common_root
from artefix.fft import fourier_resize

log = logging.getLogger(__name__)

Normalise = Literal["zscore", "percentile", "none"]
Fit = Literal["pad", "stretch", "native"]
NORMALISATIONS: tuple[str, ...] = ("zscore", "percentile", "none")
FITS: tuple[str, ...] = ("pad", "stretch", "native")
DEFAULT_MATRIX: tuple[int, int] = (320, 320)


@dataclass(frozen=True)
class ForegroundFilter:
    """Which slices hold enough anatomy to train on.

    A slice is kept when ``mean(slice > level * P_percentile(volume)) > min_fraction``.

    Why these defaults: the reference is the volume's 99th percentile rather than its maximum, which a
    few bright voxels (vessels, fat, a spike) would decide. Background in magnitude MRI is Rician noise,
    on clinical scans a few per cent of tissue signal (SNR above 10), so 10 % of the reference separates
    tissue from background in T1, T2 and FLAIR alike. Requiring more than 5 % of the slice area drops the
    end slices that only graze the skull or hold a sliver of anatomy. Measured on the shared data: it
    drops 9-20 of the 90 sagittal slices of each 2 mm IXI T1 (the lateral ends), 16 of 144 of the
    skull-stripped MR_Gd volume, and 0-3 slices of the clinical axial MS volumes, whose end slices still
    hold 7-25 % tissue.

    Attributes:
        level: Intensity threshold as a fraction of the reference, in [0, 1).
        min_fraction: Required foreground fraction of the slice area, in [0, 1). ``0`` with ``level=0``
            keeps every slice that is not exactly zero.
        percentile: Percentile of the volume's intensities used as the reference, in (0, 100].
    """

    level: float = 0.1
    min_fraction: float = 0.05
    percentile: float = 99.0

    def __post_init__(self) -> None:
        if not 0.0 <= self.level < 1.0:
            raise ValueError(f"ForegroundFilter.level must be in [0, 1), got {self.level}")
        if not 0.0 <= self.min_fraction < 1.0:
            raise ValueError(f"ForegroundFilter.min_fraction must be in [0, 1), got {self.min_fraction}")
        if not 0.0 < self.percentile <= 100.0:
            raise ValueError(f"ForegroundFilter.percentile must be in (0, 100], got {self.percentile}")

    def fractions(self, stack: np.ndarray, reference: float | None = None) -> np.ndarray:
        """Foreground fraction of every slice.

        Args:
            stack: Slices, shape ``(N, H, W)``.
            reference: Intensity reference; default :func:`reference_intensity` of ``stack``.

        Returns:
            Shape ``(N,)``, values in [0, 1].
        """
        ref = reference_intensity(stack, self.percentile) if reference is None else reference
        return np.mean(stack > self.level * ref, axis=(-2, -1))

    def keep(self, stack: np.ndarray, reference: float | None = None) -> np.ndarray:
        """Boolean mask of the slices to keep, shape ``(N,)``, for slices ``stack`` of shape ``(N, H, W)``."""
        return self.fractions(stack, reference) > self.min_fraction


#: Keeps every slice that has any positive pixel.
KEEP_ALL = ForegroundFilter(level=0.0, min_fraction=0.0)


def reference_intensity(array: np.ndarray, percentile: float = 99.0) -> float:
    """The ``percentile``-th intensity percentile of ``array``; the maximum if that is not positive.

    Returns 1.0 for an array without any positive value, so dividing by it is always safe.
    """
    ref = float(np.percentile(array, percentile))
    if ref <= 0.0:
        ref = float(np.max(array))
    return ref if ref > 0.0 else 1.0


THICK_SLICE_RATIO = 1.5
"""An axis whose voxel spacing is at least this multiple of every other's holds a 2D acquisition's thick slices."""


def default_slice_axis(volume: Volume) -> int | None:
    """The slice axis of a 3D volume when none is asked for (None for a 2D image).

    The one axis of length 1 if there is exactly one (a single slice stored as 3D, ``(H, W, 1)`` or
    ``(1, H, W)``), else the header's (``volume.meta["slice_axis"]``: NIfTI ``dim_info``, a DICOM series'
    stacking axis), else the one axis whose spacing is at least :data:`THICK_SLICE_RATIO` times every
    other's (the thick slices of a 2D acquisition, wherever a reorientation put them), else the last axis.
    """
    ndim = volume.array.ndim
    if ndim == 2:
        return None
    single = [i for i, n in enumerate(volume.array.shape) if n == 1]
    if len(single) == 1:
        return single[0]
    chosen = volume.meta.get("slice_axis")
    if chosen is not None:
        return chosen
    spacing = [float(s) for s in volume.spacing] if len(volume.spacing) == ndim else [1.0] * ndim
    thick = max(range(ndim), key=lambda i: spacing[i])
    if all(spacing[thick] >= THICK_SLICE_RATIO * s for i, s in enumerate(spacing) if i != thick):
        return thick
    return ndim - 1


def resolve_axis(volume: Volume, axis: int | None = None) -> int:
    """The slice axis of ``volume``: ``axis``, else :func:`default_slice_axis`.

    Raises:
        ValueError: If ``axis`` is out of range for a 3D volume.
    """
    ndim = volume.array.ndim
    if ndim == 2:
        return -1
    chosen = axis if axis is not None else default_slice_axis(volume)
    if not -ndim <= int(chosen) < ndim:
        raise ValueError(f"slice axis {chosen} is out of range for a volume of shape {volume.array.shape}")
    return int(chosen) % ndim


def _as_stack(volume: Volume, axis: int) -> tuple[np.ndarray, tuple[float, float]]:
    """Slices as ``(N, H, W)`` float32 (a view where possible) and their in-plane spacing in mm."""
    array = volume.array
    spacing = tuple(volume.spacing) if len(volume.spacing) == array.ndim else (1.0,) * array.ndim
    if array.ndim == 2:
        return array[None], (float(spacing[0]), float(spacing[1]))
    stack = np.moveaxis(array, axis, 0)
    in_plane = [s for i, s in enumerate(spacing) if i != axis]
    return stack, (float(in_plane[0]), float(in_plane[1]))


def _check_matrix(matrix: Sequence[int]) -> tuple[int, int]:
    if len(matrix) != 2 or any(int(m) != m or m < 2 for m in matrix):
        raise ValueError(f"matrix must be two integers >= 2, got {tuple(matrix)}")
    return int(matrix[0]), int(matrix[1])


def padded_shape(shape: tuple[int, int], spacing: tuple[float, float], matrix: tuple[int, int]) -> tuple[int, int]:
    """Image-space size after padding ``shape`` to the physical aspect ratio of ``matrix``.

    With field of view ``F_a = n_a * s_a`` (pixels times spacing in mm) and output pixel size
    ``s' = max_a F_a / m_a``, axis ``a`` is padded to ``round(m_a * s' / s_a) >= n_a`` pixels, so after
    the Fourier resize to ``matrix`` both axes have pixel size ``s'`` (square pixels, nothing cropped).

    Args:
        shape: ``(H, W)`` in pixels.
        spacing: In-plane pixel size ``(s_H, s_W)`` in mm (any positive unit; only the ratio matters).
        matrix: Target ``(H', W')``.

    Returns:
        ``(H_pad, W_pad)`` with ``H_pad >= H`` and ``W_pad >= W``.
    """
    sizes = [s if s > 0 and np.isfinite(s) else 1.0 for s in spacing]
    out_pixel = max(shape[0] * sizes[0] / matrix[0], shape[1] * sizes[1] / matrix[1])
    return tuple(  # type: ignore[return-value]
        max(int(n), int(round(m * out_pixel / s))) for n, m, s in zip(shape, matrix, sizes, strict=True)
    )


def _pad_centred(stack: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    ph, pw = shape[0] - stack.shape[-2], shape[1] - stack.shape[-1]
    if ph == 0 and pw == 0:
        return stack
    widths = ((0, 0), (ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2))
    return np.pad(stack, widths)


def prepare_slices(
    volume: Volume,
    axis: int | None = None,
    matrix: Sequence[int] = DEFAULT_MATRIX,
    foreground: ForegroundFilter | None = ForegroundFilter(),  # noqa: B008 (frozen, immutable)
    normalise: Normalise = "zscore",
    fit: Fit = "pad",
    indices: Sequence[int] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Slice, filter, resample and normalise one volume (see the module docstring for each step).

    Args:
        volume: The scan (2D or 3D); magnitude intensities expected.
        axis: Slice axis; default ``volume.meta["slice_axis"]``, else the last axis.
        matrix: Output ``(H, W)`` in pixels.
        foreground: Empty-slice filter; ``None`` keeps every slice.
        normalise: ``"zscore"`` (per slice), ``"percentile"`` (volume / its reference intensity) or
            ``"none"``.
        fit: ``"pad"`` (keep the physical aspect ratio), ``"stretch"`` or ``"native"`` (no resampling:
            the slices keep the volume's in-plane size, and ``matrix`` is only the size that a later
            :class:`artefix.data.augment.ScaleCrop` cuts them to).
        indices: Slice indices to prepare, skipping the filter (used by :class:`SliceIndex`).

    Returns:
        ``(slices, kept)``: float32 array of shape ``(N, H, W)`` and the int64 indices of these slices
        along the slice axis, shape ``(N,)``.

    Raises:
        ValueError: Bad ``matrix``, ``normalise``, ``fit`` or ``axis``.
    """
    out_shape = _check_matrix(matrix)
    if normalise not in NORMALISATIONS:
        raise ValueError(f"normalise must be one of {', '.join(NORMALISATIONS)}, got {normalise!r}")
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
    stack, spacing = _as_stack(volume, resolve_axis(volume, axis))
    percentile = foreground.percentile if foreground is not None else 99.0
    reference = reference_intensity(stack, percentile)
    if indices is not None:
        kept = np.asarray(indices, dtype=np.int64)
        if kept.size and (kept.min() < 0 or kept.max() >= stack.shape[0]):
            raise ValueError(f"slice indices {kept.tolist()} out of range for {stack.shape[0]} slices")
    elif foreground is not None:
        kept = np.flatnonzero(foreground.keep(stack, reference)).astype(np.int64)
    else:
        kept = np.arange(stack.shape[0], dtype=np.int64)
    if kept.size == 0:
        empty = out_shape if fit != "native" else stack.shape[-2:]
        return np.zeros((0, *empty), np.float32), kept
    chosen = stack[kept].astype(np.float32, copy=False)
    if normalise == "percentile":
        chosen = chosen / np.float32(reference)
    if fit == "pad":
        chosen = _pad_centred(chosen, padded_shape(chosen.shape[-2:], spacing, out_shape))
    if fit != "native":
        chosen = np.asarray(fourier_resize(chosen, out_shape), dtype=np.float32)
    if normalise == "zscore":
        mean = chosen.mean(axis=(-2, -1), keepdims=True)
        std = chosen.std(axis=(-2, -1), keepdims=True)
        chosen = (chosen - mean) / np.maximum(std, np.float32(1e-8))
    return np.ascontiguousarray(chosen, dtype=np.float32), kept


def seed_keys(files: Sequence[Path]) -> list[str]:
    """The location-independent name of each scan that seeds its corruptions: ``"folder/file"``.

    Where two scans of a run share that name (``patient/study1/T1.nii.gz`` and ``other/study1/T1.nii.gz``),
    both get more of their parent folders until the names differ, so no two scans are corrupted alike.

    Args:
        files: The run's scans.

    Returns:
        One key per file, in order.
    """
    parts = [Path(f).parts for f in files]
    depth = [min(2, len(p)) for p in parts]
    while True:
        keys = ["/".join(p[-d:]) for p, d in zip(parts, depth, strict=True)]
        clash = [i for i, k in enumerate(keys) if keys.count(k) > 1 and depth[i] < len(parts[i])]
        if not clash:
            return keys
        for i in clash:
            depth[i] += 1


@dataclass(frozen=True)
class SliceRef:
    """One (scan, slice) entry of a :class:`SliceIndex`.

    Attributes:
        file: The scan (file or DICOM folder).
        index: Slice index along the slice axis of the original volume.
        patient: Patient ID.
    """

    file: Path
    index: int
    patient: str
    scan_key: str | None = None

    @property
    def key(self) -> str:
        """Stable name of the slice, ``"parent-folder/file-name#index"``.

        It does not depend on where the data lives or on the patient rule
        (``patient01/study1_T1W.nii.gz#12``, ``ProstateX-0000/4.000000-t2tsetra-00702#7``); ``scan_key``
        (:func:`seed_keys`, more parent folders where two indexed scans share a name) replaces the
        ``parent-folder/file-name`` part.
        """
        scan = self.scan_key if self.scan_key is not None else f"{self.file.parent.name}/{self.file.name}"
        return f"{scan}#{self.index}"


@dataclass(frozen=True, eq=False)
class SliceRecord:
    """A prepared 2D slice.

    Attributes:
        file: The scan it came from (``Path("")`` when unknown).
        index: Slice index along the slice axis of the original volume.
        patient: Patient ID (``""`` when unknown).
        array: float32 image, shape ``(H, W)`` = the requested matrix.
    """

    file: Path
    index: int
    patient: str
    array: np.ndarray = field(repr=False)


def extract_slices(
    volume: Volume,
    axis: int | None = None,
    matrix: Sequence[int] = DEFAULT_MATRIX,
    foreground: ForegroundFilter | None = ForegroundFilter(),  # noqa: B008 (frozen, immutable)
    normalise: Normalise = "zscore",
    fit: Fit = "pad",
    *,
    patient: str = "",
) -> list[SliceRecord]:
    """All non-empty slices of ``volume`` as :class:`SliceRecord` objects (see :func:`prepare_slices`).

    Args:
        volume: The scan; its ``source`` becomes the records' ``file``.
        axis: Slice axis; default ``volume.meta["slice_axis"]``, else the last axis.
        matrix: Output ``(H, W)``.
        foreground: Empty-slice filter, ``None`` keeps all.
        normalise: ``"zscore"``, ``"percentile"`` or ``"none"``.
        fit: ``"pad"`` or ``"stretch"``.
        patient: Patient ID stored in the records.

    Returns:
        One record per kept slice, in slice order.
    """
    slices, kept = prepare_slices(volume, axis, matrix, foreground, normalise, fit)
    file = Path(volume.source) if volume.source is not None else Path("")
    return [SliceRecord(file, int(k), patient, s) for k, s in zip(kept.tolist(), slices, strict=True)]


Reader = Callable[[Path], Volume]


class SliceIndex:
    """The non-empty slices of a collection of scans, with volumes loaded lazily.

    Construction reads every scan once to run the foreground filter and keeps only the list of
    :class:`SliceRef` entries. :meth:`slice` then prepares slices on demand: a scan is read and all its
    kept slices are resampled to the matrix in one go, and the result is kept in an LRU cache of
    ``cache_size`` scans (``None``: unbounded, for collections that fit in memory). Memory is therefore
    about ``cache_size * slices_per_scan * H * W * 4`` bytes (4 scans of 40 slices at 320x320: 66 MB).
    With shuffled access every slice usually comes from another scan; order the accesses by scan (for
    instance :class:`artefix.data.dataset.GroupedShuffleSampler`) to make the cache effective.

    The cache is not pickled: each DataLoader worker starts with an empty one.

    Attributes:
        refs: The slices, grouped by scan in the order of ``files``.
        matrix: Output ``(H, W)``.
        axis, foreground, fit: As in :func:`prepare_slices`.
        normalise: Intensity normalisation of :meth:`slice` (default ``"percentile"``: non-negative
            magnitudes, as the artefact simulators expect).
    """

    def __init__(
        self,
        files: Iterable[str | Path],
        *,
        matrix: Sequence[int] = DEFAULT_MATRIX,
        axis: int | None = None,
        foreground: ForegroundFilter | None = ForegroundFilter(),  # noqa: B008 (frozen, immutable)
        normalise: Normalise = "percentile",
        fit: Fit = "pad",
        patient_of: Callable[[Path], str] | None = None,
        cache_size: int | None = 4,
        reader: Reader = read_volume,
    ) -> None:
        """Build the index (reads every scan once).

        Args:
            files: Scans (e.g. :func:`artefix.data.splits.discover_scans` or ``Split.files(...)``).
            matrix: Output ``(H, W)``.
            axis: Slice axis for every scan; default per scan ``meta["slice_axis"]``, else the last axis.
            foreground: Empty-slice filter; ``None`` keeps all slices.
            normalise: See :func:`prepare_slices`.
            fit: ``"pad"`` or ``"stretch"``.
            patient_of: ``path -> patient ID``; default the scan's :class:`~artefix.data.splits.PatientRule`
                relative to the folder that holds all scans.
            cache_size: Prepared scans kept in memory (>= 1), or ``None`` for all.
            reader: ``path -> Volume``; default :func:`artefix.data.io.read_volume`.

        Raises:
            ValueError: No files, bad options, or a scan the reader cannot read.
        """
        self.files: tuple[Path, ...] = tuple(Path(f) for f in files)
        if not self.files:
            raise ValueError("SliceIndex got no files")
        self.matrix = _check_matrix(matrix)
        if cache_size is not None and cache_size < 1:
            raise ValueError(f"cache_size must be >= 1 or None, got {cache_size}")
        if normalise not in NORMALISATIONS:
            raise ValueError(f"normalise must be one of {', '.join(NORMALISATIONS)}, got {normalise!r}")
        if fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {fit!r}")
        self.axis = axis
        self.foreground = foreground
        self.normalise: Normalise = normalise
        self.fit: Fit = fit
        self.cache_size = cache_size
        self.reader = reader
        rule = patient_of if patient_of is not None else PatientRule(roots=(common_root(self.files),))
        refs: list[SliceRef] = []
        self._kept: list[np.ndarray] = []
        self._first: list[int] = []
        for file, scan_key in zip(self.files, seed_keys(self.files), strict=True):
            volume = reader(file)
            stack, _ = _as_stack(volume, resolve_axis(volume, axis))
            if foreground is None:
                kept = np.arange(stack.shape[0], dtype=np.int64)
            else:
                kept = np.flatnonzero(foreground.keep(stack)).astype(np.int64)
            if kept.size == 0:
                log.warning("%s: no slice passes the foreground filter %s; skipped", file, foreground)
            patient = str(rule(file))
            self._first.append(len(refs))
            self._kept.append(kept)
            refs.extend(SliceRef(file, int(k), patient, scan_key) for k in kept.tolist())
        self.refs: tuple[SliceRef, ...] = tuple(refs)
        self._file_of = np.repeat(np.arange(len(self.files)), [k.size for k in self._kept])
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()

    def __len__(self) -> int:
        """Number of slices."""
        return len(self.refs)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state

    def file_index(self, i: int) -> int:
        """Position in :attr:`files` of the scan that slice ``i`` comes from."""
        return int(self._file_of[i])

    def slices_of(self, file_pos: int) -> range:
        """Positions in :attr:`refs` of the slices of scan ``files[file_pos]``."""
        start = self._first[file_pos]
        return range(start, start + self._kept[file_pos].size)

    def _prepared(self, file_pos: int) -> np.ndarray:
        cached = self._cache.get(file_pos)
        if cached is not None:
            self._cache.move_to_end(file_pos)
            return cached
        volume = self.reader(self.files[file_pos])
        stack, _ = prepare_slices(
            volume,
            self.axis,
            self.matrix,
            self.foreground,
            self.normalise,
            self.fit,
            indices=self._kept[file_pos],
        )
        stack.setflags(write=False)
        self._cache[file_pos] = stack
        while self.cache_size is not None and len(self._cache) > self.cache_size:
            self._cache.popitem(last=False)
        return stack

    def slice(self, i: int) -> np.ndarray:
        """Prepared slice ``i``: read-only float32 array of shape :attr:`matrix` (native with ``fit="native"``)."""
        if not -len(self) <= i < len(self):
            raise IndexError(f"slice {i} out of range for {len(self)} slices")
        i %= len(self)
        file_pos = self.file_index(i)
        return self._prepared(file_pos)[i - self._first[file_pos]]

    def record(self, i: int) -> SliceRecord:
        """Slice ``i`` with its provenance."""
        ref = self.refs[i]
        return SliceRecord(ref.file, ref.index, ref.patient, self.slice(i))
