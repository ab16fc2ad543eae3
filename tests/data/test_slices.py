from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest

from artefix.data.io import Volume, read_volume
from artefix.data.slices import (
    KEEP_ALL,
    ForegroundFilter,
    SliceIndex,
    SliceRecord,
    extract_slices,
    padded_shape,
    prepare_slices,
    reference_intensity,
    resolve_axis,
)


def _disc(shape: tuple[int, int], radius_px: tuple[float, float], value: float = 100.0) -> np.ndarray:
    """An ellipse of the given semi-axes (rows, cols) in pixels, centred at (H // 2, W // 2)."""
    yy, xx = np.mgrid[: shape[0], : shape[1]].astype(float)
    r2 = ((yy - shape[0] // 2) / radius_px[0]) ** 2 + ((xx - shape[1] // 2) / radius_px[1]) ** 2
    return np.where(r2 <= 1.0, value, 0.0).astype(np.float32)


def _head(n_slices: int = 10, size: int = 48, noise: float = 1.0, seed: int = 0) -> np.ndarray:
    """A (size, size, n_slices) 'head': empty end slices, a sliver, then growing discs; Rician-like noise."""
    rng = np.random.default_rng(seed)
    vol = np.zeros((size, size, n_slices), np.float32)
    # Foreground area fractions per slice (0 = empty).
    area = [0.0, 0.0, 0.02, 0.08, 0.2, 0.4, 0.5, 0.4, 0.2, 0.0][:n_slices]
    for z, a in enumerate(area):
        if a > 0:
            r = np.sqrt(a * size * size / np.pi)
            vol[..., z] = _disc((size, size), (r, r), 100.0 + 5.0 * z)
    re = vol + noise * rng.standard_normal(vol.shape)
    im = noise * rng.standard_normal(vol.shape)
    return np.hypot(re, im).astype(np.float32)


def _halfmax_extent(image: np.ndarray) -> tuple[int, int]:
    """Pixels above half the maximum along the central row and the central column."""
    h, w = image.shape
    half = 0.5 * image.max()
    return int(np.sum(image[:, w // 2] > half)), int(np.sum(image[h // 2, :] > half))


# --- foreground filter -------------------------------------------------------------------------------


def test_foreground_filter_drops_empty_slices_and_keeps_anatomy() -> None:
    vol = _head()
    kept = np.flatnonzero(ForegroundFilter().keep(np.moveaxis(vol, -1, 0)))
    # Slices 0, 1, 9 hold noise only, slice 2 a 2 % sliver (< 5 %); 3..8 hold 8-50 % anatomy.
    assert kept.tolist() == [3, 4, 5, 6, 7, 8]
    fractions = ForegroundFilter().fractions(np.moveaxis(vol, -1, 0))
    np.testing.assert_allclose(fractions[[3, 5, 6]], [0.08, 0.4, 0.5], atol=0.01)
    assert fractions[[0, 1, 9]].max() == 0.0  # noise (1 % of tissue) never reaches 10 % of P99


def test_foreground_reference_is_robust_to_hot_pixels() -> None:
    vol = _head()
    vol[5, 5, 0] = 1e6  # one spike; a max-based threshold would discard every slice
    assert reference_intensity(vol) < 200.0
    stack = np.moveaxis(vol, -1, 0)
    assert np.flatnonzero(ForegroundFilter().keep(stack)).tolist() == [3, 4, 5, 6, 7, 8]


def test_foreground_filter_is_configurable() -> None:
    stack = np.moveaxis(_head(), -1, 0)
    assert np.flatnonzero(ForegroundFilter(min_fraction=0.01).keep(stack)).tolist() == list(range(2, 9))
    assert np.flatnonzero(ForegroundFilter(min_fraction=0.3).keep(stack)).tolist() == [5, 6, 7]
    assert KEEP_ALL.keep(stack).all()  # noise is positive everywhere


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"level": 1.0}, "level"), ({"min_fraction": -0.1}, "min_fraction"), ({"percentile": 0.0}, "percentile")],
)
def test_foreground_filter_validates(kwargs: dict[str, float], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ForegroundFilter(**kwargs)


def test_reference_intensity_of_sparse_and_empty_arrays() -> None:
    sparse = np.zeros(1000, np.float32)
    sparse[0] = 7.0
    assert reference_intensity(sparse) == 7.0  # P99 is 0: fall back to the maximum
    assert reference_intensity(np.zeros(10)) == 1.0


# --- axis -------------------------------------------------------------------------------------------


def test_slice_axis_choice() -> None:
    vol = Volume(np.zeros((4, 5, 6), np.float32))
    assert resolve_axis(vol) == 2
    vol.meta["slice_axis"] = 0
    assert resolve_axis(vol) == 0
    assert resolve_axis(vol, axis=1) == 1
    assert resolve_axis(vol, axis=-2) == 1
    with pytest.raises(ValueError, match="slice axis 3"):
        resolve_axis(vol, axis=3)
    assert resolve_axis(Volume(np.zeros((4, 5), np.float32)), axis=2) == -1


def test_slicing_follows_meta_slice_axis() -> None:
    data = _head(size=32)  # (32, 32, 10), anatomy in 3..8 along the last axis
    moved = Volume(np.ascontiguousarray(np.moveaxis(data, -1, 0)), meta={"slice_axis": 0})
    records = extract_slices(moved, matrix=(32, 32), normalise="none")
    assert [r.index for r in records] == [3, 4, 5, 6, 7, 8]
    last = extract_slices(Volume(data), matrix=(32, 32), normalise="none")
    for a, b in zip(records, last, strict=True):
        np.testing.assert_allclose(a.array, b.array, atol=1e-4)
    # An explicit axis overrides the metadata: slicing along rows of this volume.
    across = extract_slices(moved, axis=1, matrix=(32, 32), foreground=None)
    assert len(across) == 32


def test_2d_volume_is_one_slice() -> None:
    records = extract_slices(Volume(_disc((40, 40), (12, 12))), matrix=(32, 32), patient="p")
    assert len(records) == 1 and records[0].index == 0 and records[0].patient == "p"
    assert records[0].file == Path("")


# --- resampling ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("matrix", [(64, 64), (320, 320)])
def test_output_shapes_dtype_and_zscore(matrix: tuple[int, int]) -> None:
    vol = Volume(_head(size=96))
    slices, kept = prepare_slices(vol, matrix=matrix)
    assert slices.shape == (6, *matrix) and slices.dtype == np.float32
    assert kept.dtype == np.int64 and kept.tolist() == [3, 4, 5, 6, 7, 8]
    np.testing.assert_allclose(slices.mean(axis=(1, 2)), 0.0, atol=1e-5)
    np.testing.assert_allclose(slices.std(axis=(1, 2)), 1.0, atol=1e-4)


def test_fourier_crop_512_to_320_is_exact_for_band_limited_images() -> None:
    """Cropping k-space keeps the field of view: cos(2 pi k n / 512) becomes cos(2 pi k m / 320)."""
    n = np.arange(512)
    m = np.arange(320)
    big = np.outer(np.cos(2 * np.pi * 5 * n / 512), np.cos(2 * np.pi * 9 * n / 512)) + 2.0
    small = np.outer(np.cos(2 * np.pi * 5 * m / 320), np.cos(2 * np.pi * 9 * m / 320)) + 2.0
    slices, _ = prepare_slices(Volume(big.astype(np.float32)), matrix=(320, 320), foreground=None, normalise="none")
    np.testing.assert_allclose(slices[0], small, atol=1e-4)


def test_pad_keeps_a_disc_round_and_stretch_does_not() -> None:
    image = _disc((64, 48), (15, 15))  # square pixels, non-square field of view
    padded, _ = prepare_slices(Volume(image), matrix=(32, 32), foreground=None, normalise="none")
    rows, cols = _halfmax_extent(padded[0])
    assert abs(rows - cols) <= 1 and abs(rows - 15) <= 1  # diameter 30 px -> 15 px at half the resolution
    stretched, _ = prepare_slices(Volume(image), matrix=(32, 32), foreground=None, normalise="none", fit="stretch")
    rows, cols = _halfmax_extent(stretched[0])
    assert abs(rows - 15) <= 1 and abs(cols - 20) <= 1  # 30 * 32 / 48 = 20 px wide: an ellipse


def _sigmas(image: np.ndarray) -> tuple[float, float]:
    """Standard deviations (rows, cols) in pixels of a non-negative blob, from its second moments."""
    w = np.clip(image, 0, None)
    yy, xx = np.mgrid[: image.shape[0], : image.shape[1]].astype(float)
    my, mx = (w * yy).sum() / w.sum(), (w * xx).sum() / w.sum()
    return float(np.sqrt((w * (yy - my) ** 2).sum() / w.sum())), float(np.sqrt((w * (xx - mx) ** 2).sum() / w.sum()))


def test_pad_uses_the_voxel_spacing() -> None:
    # A round Gaussian blob of sigma 8 mm sampled with 1 mm rows and 2 mm columns is elongated in pixels.
    yy, xx = np.mgrid[:64, :32].astype(float)
    image = np.exp(-0.5 * (((yy - 32) / 8.0) ** 2 + ((xx - 16) / 4.0) ** 2)).astype(np.float32)
    vol = Volume(image, spacing=(1.0, 2.0))
    slices, _ = prepare_slices(vol, matrix=(32, 32), foreground=None, normalise="none")
    np.testing.assert_allclose(_sigmas(slices[0]), (4.0, 4.0), atol=0.05)  # square 2 mm pixels
    # With square pixels and a non-square field of view the blob stays round after padding.
    yy, xx = np.mgrid[:64, :48].astype(float)
    blob = np.exp(-0.5 * (((yy - 32) / 6.0) ** 2 + ((xx - 24) / 6.0) ** 2)).astype(np.float32)
    padded, _ = prepare_slices(Volume(blob), matrix=(32, 32), foreground=None, normalise="none")
    np.testing.assert_allclose(_sigmas(padded[0]), (3.0, 3.0), atol=0.05)
    stretched, _ = prepare_slices(Volume(blob), matrix=(32, 32), foreground=None, normalise="none", fit="stretch")
    np.testing.assert_allclose(_sigmas(stretched[0]), (3.0, 4.0), atol=0.05)  # 6 px * 32 / 48 = 4 px wide
    assert padded_shape((64, 32), (1.0, 2.0), (32, 32)) == (64, 32)
    assert padded_shape((64, 48), (1.0, 1.0), (32, 32)) == (64, 64)
    assert padded_shape((406, 448), (0.5, 0.5), (320, 320)) == (448, 448)
    assert padded_shape((100, 100), (1.0, 1.0), (64, 128)) == (100, 200)


def test_percentile_normalisation_keeps_volume_scale() -> None:
    vol = _head(size=64)
    slices, kept = prepare_slices(Volume(vol), matrix=(64, 64), normalise="percentile")
    ref = reference_intensity(vol)
    np.testing.assert_allclose(slices, np.moveaxis(vol, -1, 0)[kept] / ref, atol=1e-5)  # same matrix: no resampling
    # The brighter slices stay brighter (a per-slice normalisation would erase this).
    assert slices[-1].max() > slices[0].max()


def test_prepare_slices_validates() -> None:
    vol = Volume(_head(size=32))
    with pytest.raises(ValueError, match="matrix"):
        prepare_slices(vol, matrix=(1, 32))
    with pytest.raises(ValueError, match="normalise"):
        prepare_slices(vol, normalise="minmax")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="fit"):
        prepare_slices(vol, fit="crop")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="out of range"):
        prepare_slices(vol, indices=[10])


def test_empty_volume_gives_no_slices() -> None:
    slices, kept = prepare_slices(Volume(np.zeros((16, 16, 3), np.float32)), matrix=(8, 8))
    assert slices.shape == (0, 8, 8) and kept.size == 0


def test_extract_slices_records_provenance(tmp_path: Path) -> None:
    vol = Volume(_head(size=32), source=tmp_path / "p1" / "scan.nii.gz")
    records = extract_slices(vol, matrix=(16, 16), patient="p1")
    assert all(isinstance(r, SliceRecord) for r in records)
    assert [r.index for r in records] == [3, 4, 5, 6, 7, 8]
    assert {r.file for r in records} == {tmp_path / "p1" / "scan.nii.gz"}
    with pytest.raises(AttributeError):
        records[0].index = 0  # type: ignore[misc]


# --- SliceIndex ------------------------------------------------------------------------------------------


class CountingReader:
    """Serves in-memory volumes by path and counts the reads."""

    def __init__(self, volumes: dict[Path, np.ndarray]) -> None:
        self.volumes = volumes
        self.reads: dict[Path, int] = dict.fromkeys(volumes, 0)

    def __call__(self, path: Path) -> Volume:
        self.reads[path] += 1
        return Volume(self.volumes[path], source=path)


def _reader(tmp_path: Path, n: int = 3) -> CountingReader:
    return CountingReader({tmp_path / f"patient{k}" / "t1.nii.gz": _head(size=32, seed=k) for k in range(n)})


def test_slice_index_builds_once_and_loads_lazily(tmp_path: Path) -> None:
    reader = _reader(tmp_path)
    files = list(reader.volumes)
    index = SliceIndex(files, matrix=(16, 16), cache_size=1, reader=reader)
    assert len(index) == 18  # 6 kept slices per volume
    assert all(count == 1 for count in reader.reads.values())  # one read per scan to build
    assert [r.patient for r in index.refs[::6]] == ["patient0", "patient1", "patient2"]
    assert index.refs[7].key == "patient1/t1.nii.gz#4"

    first = index.slice(0)
    assert first.shape == (16, 16) and first.dtype == np.float32 and not first.flags.writeable
    index.slice(5)  # same scan: cached
    assert reader.reads[files[0]] == 2
    index.slice(6)  # next scan evicts the first (cache_size=1)
    index.slice(0)
    assert reader.reads[files[0]] == 3 and reader.reads[files[1]] == 2
    assert index.file_index(13) == 2 and list(index.slices_of(1)) == list(range(6, 12))

    expected, kept = prepare_slices(Volume(reader.volumes[files[2]]), matrix=(16, 16), normalise="percentile")
    np.testing.assert_array_equal(index.slice(12), expected[0])
    assert index.refs[12].index == kept[0]
    record = index.record(-1)
    assert record.file == files[2] and record.index == 8
    with pytest.raises(IndexError):
        index.slice(18)


def test_slice_index_pickles_without_its_cache(tmp_path: Path) -> None:
    reader = _reader(tmp_path, n=2)
    index = SliceIndex(list(reader.volumes), matrix=(16, 16), reader=reader)
    index.slice(0)
    index.slice(7)
    clone = pickle.loads(pickle.dumps(index))
    assert len(index._cache) == 2 and len(clone._cache) == 0
    np.testing.assert_array_equal(clone.slice(7), index.slice(7))


def test_slice_index_options(tmp_path: Path) -> None:
    reader = _reader(tmp_path, n=1)
    files = list(reader.volumes)
    everything = SliceIndex(files, matrix=(16, 16), foreground=None, reader=reader)
    assert len(everything) == 10
    named = SliceIndex(files, matrix=(16, 16), patient_of=lambda p: "X", reader=reader)
    assert {r.patient for r in named.refs} == {"X"}
    with pytest.raises(ValueError, match="cache_size"):
        SliceIndex(files, cache_size=0, reader=reader)
    with pytest.raises(ValueError, match="no files"):
        SliceIndex([], reader=reader)


# --- real data -----------------------------------------------------------------------------------------


@pytest.mark.shared_data
def test_real_ms_volume_at_320(shared_data: Path) -> None:
    path = shared_data / "open_ms_data_ljubljana_longitudinal" / "patient01" / "study1_T2W.nii.gz"
    vol = read_volume(path)  # 406 x 448 x 36 axial, 0.51 mm pixels
    records = extract_slices(vol, matrix=(320, 320))
    assert 30 <= len(records) <= 36
    stack = np.stack([r.array for r in records])
    assert stack.shape[1:] == (320, 320) and np.all(np.isfinite(stack))
    np.testing.assert_allclose(stack.mean(axis=(1, 2)), 0.0, atol=1e-4)
    np.testing.assert_allclose(stack.std(axis=(1, 2)), 1.0, atol=1e-3)


@pytest.mark.shared_data
def test_real_ixi_end_slices_are_dropped(shared_data: Path) -> None:
    vol = read_volume(shared_data / "ixi_t1_2mm_via_nichart" / "IXI012-HH-1211_T1.nii.gz")
    slices, kept = prepare_slices(vol, matrix=(64, 64), normalise="percentile")
    n = vol.array.shape[-1]
    assert 0 not in kept and n - 1 not in kept and n // 2 in kept
    assert 0.7 * n <= kept.size < n
    assert kept.tolist() == list(range(kept[0], kept[-1] + 1))  # one contiguous block of anatomy
    assert np.all(np.isfinite(slices)) and 0.5 < float(np.percentile(slices, 99.5)) < 2.0


def test_default_slice_axis_is_the_headers_else_the_thick_one_else_the_last():
    from artefix.data.slices import default_slice_axis, resolve_axis

    data = np.zeros((8, 5, 7), np.float32)
    assert default_slice_axis(Volume(data, spacing=(0.6, 3.0, 0.6))) == 1  # a coronal 2D acquisition in RAS order
    assert default_slice_axis(Volume(data, spacing=(1.0, 1.2, 1.0))) == 2  # not clearly thicker: the last
    assert default_slice_axis(Volume(data, spacing=(0.6, 3.0, 0.6), meta={"slice_axis": 0})) == 0  # the header's
    assert default_slice_axis(Volume(data[..., 0], spacing=(0.5, 3.0))) is None  # one 2D image
    assert resolve_axis(Volume(data, spacing=(0.6, 3.0, 0.6)), axis=2) == 2  # asked for
    single = np.zeros((1, 5, 7), np.float32)  # one slice stored as 3D: its length-1 axis, whatever else says
    assert default_slice_axis(Volume(single, spacing=(1.0, 1.0, 3.0), meta={"slice_axis": 2})) == 0
    assert default_slice_axis(Volume(single.reshape(5, 7, 1))) == 2
    assert default_slice_axis(Volume(np.zeros((1, 1, 7), np.float32))) == 2  # two length-1 axes: no such rule


def test_seed_keys_grow_only_where_two_scans_share_a_name(tmp_path):
    from artefix.data.slices import SliceIndex, seed_keys

    files = [Path("data/pA/study1/T1.nii.gz"), Path("data/pB/study1/T1.nii.gz"), Path("data/pB/study2/T1.nii.gz")]
    assert seed_keys(files) == ["pA/study1/T1.nii.gz", "pB/study1/T1.nii.gz", "study2/T1.nii.gz"]
    assert seed_keys([Path("x/scan.nii.gz")]) == ["x/scan.nii.gz"]  # a lone scan keeps "folder/file"
    assert seed_keys([Path("a.npy"), Path("b.npy")]) == ["a.npy", "b.npy"]
    scans = []
    for patient in ("pA", "pB"):  # two patients, one layout: their validation corruptions must differ
        (tmp_path / patient / "study1").mkdir(parents=True)
        scans.append(tmp_path / patient / "study1" / "T1.npy")
        np.save(scans[-1], np.random.default_rng(len(scans)).random((16, 16, 2)).astype(np.float32))
    index = SliceIndex(scans, matrix=(16, 16), foreground=None)
    assert [r.key for r in index.refs] == [
        "pA/study1/T1.npy#0",
        "pA/study1/T1.npy#1",
        "pB/study1/T1.npy#0",
        "pB/study1/T1.npy#1",
    ]
