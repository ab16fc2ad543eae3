"""DICOM series reading (sorting, rescale, LPS->RAS affine) and derived-series writing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from artefix.data.io import Volume, read_volume, write_volume
from artefix.data.io.dicom import quantise
from artefix.errors import InputError, OutputError

ROWS, COLS = 6, 5
DR, DC = 0.8, 0.6  # PixelSpacing = (row spacing, column spacing)
ORIGIN = np.array([-20.0, 30.0, 10.0])  # LPS of the first slice's first pixel
GAP = 2.5


def _slice(mr_slice, stored: np.ndarray, z: float | None, number: int, series_uid: str, **extra) -> Dataset:
    position = None if z is None else (ORIGIN[0], ORIGIN[1], z)
    extra = {"SeriesNumber": 7, "RescaleSlope": 2, "RescaleIntercept": -100, **extra}
    extra.setdefault("SmallestImagePixelValue", int(stored.min()))
    return mr_slice(
        stored,
        series_uid=series_uid,
        number=number,
        position=position,
        spacing=(DR, DC),
        thickness=GAP,
        bits_stored=12,
        **extra,
    )


def _write_series(mr_slice, folder: Path, n: int = 4, *, positions: bool = True, seed: int = 0) -> np.ndarray:
    """Axial series in shuffled file names, instance numbers descending with z; returns physical values
    ``2 * stored - 100`` as ``(rows, cols, n)`` in ascending z order."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    stored = rng.integers(0, 4000, size=(n, ROWS, COLS)).astype(np.uint16)
    series_uid = generate_uid()
    names = rng.permutation(n)
    for k in range(n):
        z = float(ORIGIN[2] + GAP * k) if positions else None
        number = n - k if positions else k + 1
        ds = _slice(mr_slice, stored[k], z, number, series_uid)
        ds.save_as(folder / f"img_{names[k]:03d}.bin", enforce_file_format=True)
    (folder / "notes.txt").write_text("not dicom")
    return np.moveaxis(stored.astype(np.float64) * 2 - 100, 0, -1)


def _expected_affine(z0: float = ORIGIN[2]) -> np.ndarray:
    # LPS: axis 0 (rows) along the column cosine (0,1,0) * DR, axis 1 along the row cosine (1,0,0) * DC.
    lps = np.array([[0, DC, 0, ORIGIN[0]], [DR, 0, 0, ORIGIN[1]], [0, 0, GAP, z0], [0, 0, 0, 1.0]])
    return np.diag([-1.0, -1.0, 1.0, 1.0]) @ lps


def test_read_series_sorted_rescaled_with_affine(tmp_path, mr_slice):
    expected = _write_series(mr_slice, tmp_path / "s", n=5)
    v = read_volume(tmp_path / "s")
    assert v.format == "dicom" and v.meta["slice_axis"] == 2
    assert v.array.shape == (ROWS, COLS, 5) and v.array.dtype == np.float32
    np.testing.assert_array_equal(v.array, expected)
    np.testing.assert_allclose(v.meta["slice_positions"], ORIGIN[2] + GAP * np.arange(5))
    np.testing.assert_allclose(v.affine, _expected_affine())
    np.testing.assert_allclose(v.spacing, (DR, DC, GAP))
    # voxel (r, c, k) sits at IPP_k + c * DC * row_cos + r * DR * col_cos (LPS), i.e. RAS (-x, -y, z)
    r, c, k = 3, 2, 4
    lps = ORIGIN + c * DC * np.array([1, 0, 0]) + r * DR * np.array([0, 1, 0]) + [0, 0, GAP * k]
    np.testing.assert_allclose(v.affine @ [r, c, k, 1], [-lps[0], -lps[1], lps[2], 1])
    assert [int(ds.InstanceNumber) for ds in v.header] == [5, 4, 3, 2, 1]
    assert all("PixelData" not in ds for ds in v.header)


def test_read_without_positions_falls_back_to_instance_number(tmp_path, mr_slice):
    expected = _write_series(mr_slice, tmp_path / "s", n=3, positions=False)
    v = read_volume(tmp_path / "s")
    np.testing.assert_array_equal(v.array, expected)


def test_single_file_is_2d(tmp_path, mr_slice):
    expected = _write_series(mr_slice, tmp_path / "s", n=3)
    v = read_volume(tmp_path / "s")
    files = sorted((tmp_path / "s").glob("img_*.bin"))
    one = files[0].with_suffix(".dcm")
    files[0].rename(one)
    single = read_volume(one)
    with pytest.raises(OutputError, match="holds the input"):
        write_volume(Volume(single.array), tmp_path / "s", like=single, overwrite=True)
    assert single.array.ndim == 2 and single.meta["slice_axis"] is None
    k = int(np.argmin(np.abs(np.asarray(v.meta["slice_positions"]) - single.meta["slice_positions"][0])))
    np.testing.assert_array_equal(single.array, expected[..., k])
    out = write_volume(Volume(single.array + 10), tmp_path / "one", like=single)
    assert len(list(out.iterdir())) == 1
    back = read_volume(out)
    assert back.array.shape == (ROWS, COLS, 1)
    step = float(np.ptp(single.array)) / 65534
    np.testing.assert_allclose(back.array[..., 0], single.array + 10, rtol=0, atol=step / 2 + 1e-3)


def test_several_series_need_a_key(tmp_path, mr_slice):
    folder = tmp_path / "s"
    _write_series(mr_slice, folder, n=3, seed=1)
    other = _slice(mr_slice, np.zeros((ROWS, COLS), np.uint16), 50.0, 1, "1.2.3.999")
    other.save_as(folder / "other.dcm", enforce_file_format=True)
    with pytest.raises(InputError, match=r"2 series.*1\.2\.3\.999"):
        read_volume(folder)
    assert read_volume(folder, key="1.2.3.999").array.shape == (ROWS, COLS, 1)
    with pytest.raises(InputError, match="no single series"):
        read_volume(folder, key="4.5.6")


def test_bad_folders_and_files(tmp_path, mr_slice):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty"):
        read_volume(tmp_path / "empty")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("hello")
    with pytest.raises(InputError, match="no DICOM images"):
        read_volume(tmp_path / "text")
    dup = tmp_path / "dup"
    dup.mkdir()
    for k in range(2):
        _slice(mr_slice, np.zeros((ROWS, COLS), np.uint16), 5.0, k + 1, "1.2.3.5").save_as(
            dup / f"{k}.dcm", enforce_file_format=True
        )
    with pytest.raises(InputError, match="same slice position|share one slice position"):
        read_volume(dup)
    _write_series(mr_slice, tmp_path / "cut", n=2)
    victim = sorted((tmp_path / "cut").glob("img_*.bin"))[0]
    victim.write_bytes(victim.read_bytes()[:-20])
    with pytest.raises(InputError, match="img_"):
        read_volume(tmp_path / "cut")


def test_quantise_bounds():
    x = np.linspace(-123.4567, 987.6543, 1001)
    stored, slope, intercept = quantise(x)
    assert stored.dtype == np.uint16 and len(slope) <= 16 and len(intercept) <= 16
    step = float(slope)
    assert step == pytest.approx((x.max() - x.min()) / 65534, rel=1e-9)
    assert np.max(np.abs(stored * step + float(intercept) - x)) <= step / 2 * (1 + 1e-6)
    const, slope, intercept = quantise(np.full(4, 7.25))
    assert float(slope) * const[0] + float(intercept) == 7.25


def test_write_derived_series(tmp_path, mr_slice):
    _write_series(mr_slice, tmp_path / "s", n=4)
    v = read_volume(tmp_path / "s")
    result = v.array * 0.37 + 5.3
    out = write_volume(Volume(result), tmp_path / "out", like=v)
    files = sorted(out.iterdir())
    assert len(files) == 4
    written = [pydicom.dcmread(f) for f in files]
    originals = {str(ds.SOPInstanceUID) for ds in v.header}
    series = {str(ds.SeriesInstanceUID) for ds in written}
    assert len(series) == 1 and series.isdisjoint({str(ds.SeriesInstanceUID) for ds in v.header})
    sops = [str(ds.SOPInstanceUID) for ds in written]
    assert len(set(sops)) == 4 and originals.isdisjoint(sops)
    for ds, src in zip(written, v.header, strict=True):
        assert list(ds.ImageType)[:2] == ["DERIVED", "SECONDARY"]
        assert ds.SeriesDescription == "t2_tse_tra artefix"
        assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
        assert ds.SourceImageSequence[0].ReferencedSOPInstanceUID == src.SOPInstanceUID
        for tag in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing", "SliceThickness"):
            assert list(np.atleast_1d(ds[tag].value)) == list(np.atleast_1d(src[tag].value)), tag
        assert ds.StudyInstanceUID == src.StudyInstanceUID and ds.PatientID == src.PatientID
        assert "SmallestImagePixelValue" not in ds
        assert ds.BitsStored == 16 and ds.PixelRepresentation == 0
    back = read_volume(out)
    step = float(written[0].RescaleSlope)
    assert step == pytest.approx((result.max() - result.min()) / 65534, rel=1e-6)
    assert np.max(np.abs(back.array - result)) <= step / 2 + 1e-3
    np.testing.assert_allclose(back.affine, v.affine)
    assert str(v.header[0].SeriesInstanceUID) not in series  # the reference is untouched


def test_write_dicom_refusals(tmp_path, monkeypatch, mr_slice):
    _write_series(mr_slice, tmp_path / "s", n=3)
    v = read_volume(tmp_path / "s")
    with pytest.raises(OutputError, match="needs like= a DICOM"):
        write_volume(Volume(v.array), tmp_path / "out")
    with pytest.raises(OutputError, match="does not match"):
        write_volume(Volume(v.array[..., :2]), tmp_path / "out", like=v)
    with pytest.raises(OutputError, match="is the input"):
        write_volume(Volume(v.array), tmp_path / "s", like=v, overwrite=True)
    write_volume(Volume(v.array), tmp_path / "out", like=v)
    with pytest.raises(OutputError, match="exists"):
        write_volume(Volume(v.array), tmp_path / "out", like=v)
    first = sorted((tmp_path / "out").iterdir())
    write_volume(Volume(v.array + 1), tmp_path / "out", like=v, overwrite=True)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [p.name for p in first]
    np.testing.assert_allclose(read_volume(tmp_path / "out").array, v.array + 1, atol=0.2)
    (tmp_path / "mixed").mkdir()
    (tmp_path / "mixed" / "keep.txt").write_text("precious")
    with pytest.raises(OutputError, match="non-DICOM"):
        write_volume(Volume(v.array), tmp_path / "mixed", like=v, overwrite=True)
    assert (tmp_path / "mixed" / "keep.txt").read_text() == "precious"

    calls = []

    def failing_write(filename, dataset, *args, **kwargs):
        calls.append(filename)
        if len(calls) == 2:
            raise OSError("disk full")
        return real_write(filename, dataset, *args, **kwargs)

    real_write = pydicom.dcmwrite
    monkeypatch.setattr(pydicom, "dcmwrite", failing_write)
    with pytest.raises(OutputError, match="disk full"):
        write_volume(Volume(v.array), tmp_path / "new", like=v)
    assert not (tmp_path / "new").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mixed", "out", "s"]


@pytest.mark.shared_data
def test_real_vs_seg_series(shared_data, tmp_path):
    folder = shared_data / "niivue_demo_images" / "VS-SEG-001_t1_mpr_tra_gk_subset"
    v = read_volume(folder)
    assert v.array.shape == (512, 512, 16)
    assert np.all(np.isfinite(v.array)) and v.array.max() > 100
    np.testing.assert_allclose(v.spacing, (0.41015625, 0.41015625, 1.5), rtol=1e-6)
    positions = np.asarray(v.meta["slice_positions"])
    np.testing.assert_allclose(np.diff(positions), 1.5, atol=1e-3)
    sitk = pytest.importorskip("SimpleITK")
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(folder)))
    image = reader.Execute()
    np.testing.assert_array_equal(np.transpose(sitk.GetArrayFromImage(image), (1, 2, 0)), v.array)
    direction = np.array(image.GetDirection()).reshape(3, 3) * np.array(image.GetSpacing())
    itk = np.eye(4)  # ITK index (col, row, slice) -> LPS
    itk[:3, :3], itk[:3, 3] = direction, image.GetOrigin()
    np.testing.assert_allclose(v.affine, (np.diag([-1.0, -1.0, 1, 1]) @ itk)[:, [1, 0, 2, 3]], atol=1e-6)
    out = write_volume(Volume(v.array * 0.5), tmp_path / "half", like=v)
    back = read_volume(out)
    step = (v.array.max() - v.array.min()) * 0.5 / 65534
    assert np.max(np.abs(back.array - v.array * 0.5)) <= step / 2 + 1e-3
    np.testing.assert_allclose(back.affine, v.affine)


@pytest.mark.shared_data
def test_real_prostatex_series(shared_data):
    folder = shared_data / "prostatex_tcia_via_picai_prep" / "ProstateX-0000" / "4.000000-t2tsetra-00702"
    v = read_volume(folder)
    assert v.array.shape[:2] in ((320, 320), (384, 384)) and 15 <= v.array.shape[2] <= 23
    assert np.all(np.isfinite(v.array)) and v.array.max() > 0
    assert 0.3 < v.spacing[0] < 1.0 and 2.0 < v.spacing[2] < 5.0
    positions = np.asarray(v.meta["slice_positions"])
    assert np.all(np.diff(positions) > 0)
    np.testing.assert_allclose(np.diff(positions), v.spacing[2], rtol=1e-3)
    # transverse: the slice axis points (mostly) superior in RAS
    assert abs(v.affine[2, 2]) / np.linalg.norm(v.affine[:3, 2]) > 0.9


def test_enhanced_and_inverted_grey_scale_are_refused(tmp_path, mr_slice):
    """A one-frame Enhanced MR file keeps its geometry and rescale in functional groups; MONOCHROME1 is inverted."""
    for name, extra in (
        ("enhanced", {"PerFrameFunctionalGroupsSequence": [Dataset()]}),
        ("mono1", {"PhotometricInterpretation": "MONOCHROME1"}),
    ):
        folder = tmp_path / name
        folder.mkdir()
        _slice(mr_slice, np.ones((ROWS, COLS), np.uint16), 5.0, 1, generate_uid(), **extra).save_as(
            folder / "0.dcm", enforce_file_format=True
        )
        with pytest.raises(InputError, match="enhanced|MONOCHROME1"):
            read_volume(folder)


def test_written_series_gets_its_own_window_and_keeps_a_one_valued_image_type(tmp_path, mr_slice):
    _write_series(mr_slice, tmp_path / "s", n=3)
    v = read_volume(tmp_path / "s")
    for ds in v.header:
        ds.ImageType = "ORIGINAL"  # a single value: pydicom gives a str
        ds.WindowCenter, ds.WindowWidth = 600, 1200
    image = v.array * 0.5 + 20.0
    out = write_volume(Volume(image), tmp_path / "image", like=v)
    ds = pydicom.dcmread(sorted(out.iterdir())[0])
    assert list(ds.ImageType) == ["DERIVED", "SECONDARY"]
    lo, hi = np.percentile(image, [0.5, 99.5])
    assert float(ds.WindowCenter) == pytest.approx((lo + hi) / 2, rel=1e-6)
    assert float(ds.WindowWidth) == pytest.approx(hi - lo, rel=1e-6)
    residual = write_volume(Volume(v.array * 1e-4), tmp_path / "residual", like=v)  # spans less than 1
    ds = pydicom.dcmread(sorted(residual.iterdir())[0])
    assert "WindowCenter" not in ds and "WindowWidth" not in ds


def test_a_siemens_mosaic_is_refused_in_one_line(tmp_path, mr_slice):
    """One image tiling a volume's slices must not be corrected as one slice (and written back as MOSAIC)."""
    stored = np.random.default_rng(0).integers(0, 4000, size=(ROWS, COLS)).astype(np.uint16)
    ds = _slice(mr_slice, stored, ORIGIN[2], 1, generate_uid(), ImageType=["ORIGINAL", "PRIMARY", "M", "MOSAIC"])
    (tmp_path / "series").mkdir()
    ds.save_as(tmp_path / "series" / "mosaic.dcm", enforce_file_format=True)
    for path in (tmp_path / "series" / "mosaic.dcm", tmp_path / "series"):
        with pytest.raises(InputError, match=r"a Siemens mosaic .*MOSAIC.*dcm2niix") as exc:
            read_volume(path)
        assert "\n" not in str(exc.value)
