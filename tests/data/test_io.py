"""Readers/writers of artefix.data.io: NIfTI, NumPy, PNG, fastMRI HDF5, atomicity and refusals."""

from __future__ import annotations

import gzip
import logging
import os
import stat
import struct
from pathlib import Path

import h5py
import nibabel as nib
import numpy as np
import pytest
from PIL import Image

from artefix.data import io
from artefix.data.io import SUPPORTED_INPUTS, SUPPORTED_OUTPUTS, Volume, check_finite, read_volume, write_volume
from artefix.data.io.fastmri import rss_from_kspace
from artefix.errors import InputError, OutputError
from artefix.fft import fft2c, ifft2c


def _oblique_affine() -> np.ndarray:
    angle = np.deg2rad(12.0)
    rot = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    affine = np.eye(4)
    affine[:3, :3] = rot @ np.diag([0.9, 0.8, 2.5])
    affine[:3, 3] = [-40.0, 12.5, 7.0]
    return affine


def _write_scaled_nifti(path: Path, shape: tuple[int, ...] = (12, 10, 5)) -> tuple[np.ndarray, nib.Nifti1Header]:
    """int16 NIfTI with scl_slope 2 / inter -100, qform (scanner) != sform (MNI), TR in pixdim[4]."""
    rng = np.random.default_rng(0)
    raw = rng.integers(0, 1000, size=shape).astype(np.int16)
    affine = _oblique_affine()
    img = nib.Nifti1Image(raw, affine)
    hdr = img.header
    hdr.set_data_dtype(np.int16)
    hdr.set_qform(affine, code=1)
    sform = affine.copy()
    sform[:3, 3] += [1.0, -2.0, 0.5]
    hdr.set_sform(sform, code=4)
    hdr.set_xyzt_units("mm", "sec")
    hdr.set_dim_info(freq=0, phase=1, slice=2)
    hdr["pixdim"][4] = 2.2
    hdr["descrip"] = b"artefix test"
    plain = path.with_name("plain.nii")
    nib.save(nib.Nifti1Image(raw, None, header=hdr), plain)
    data = bytearray(plain.read_bytes())
    plain.unlink()
    data[112:120] = struct.pack("<ff", 2.0, -100.0)  # scl_slope, scl_inter (nibabel resets them on save)
    path.write_bytes(gzip.compress(bytes(data)) if path.name.endswith(".gz") else bytes(data))
    img = nib.load(path)
    assert (img.dataobj.slope, img.dataobj.inter) == (2.0, -100.0)
    return raw.astype(np.float64) * 2.0 - 100.0, img.header


def test_formats_are_described():
    for table in (SUPPORTED_INPUTS, SUPPORTED_OUTPUTS):
        assert set(table) <= set(io.FORMATS)
        assert all(isinstance(v, str) and v for v in table.values())
    assert ".nii.gz" in SUPPORTED_INPUTS["nifti"]


def test_volume_defaults_and_validation():
    v = Volume(np.arange(12, dtype=np.int32).reshape(3, 4), affine=np.diag([0.5, 2.0, 3.0, 1.0]))
    assert v.array.dtype == np.float32
    assert v.spacing == (0.5, 2.0)
    assert v.format == "npy" and v.source is None and v.header is None and v.meta == {}
    with pytest.raises(ValueError, match="2D or 3D"):
        Volume(np.zeros(5))
    with pytest.raises(ValueError, match="4x4"):
        Volume(np.zeros((3, 3)), affine=np.eye(3))
    with pytest.raises(ValueError, match="format"):
        Volume(np.zeros((3, 3)), format="jpeg")
    with pytest.raises(ValueError, match="spacing"):
        Volume(np.zeros((3, 3, 3)), spacing=(1.0, 1.0))


def test_nifti_read_applies_scaling_and_keeps_geometry(tmp_path):
    path = tmp_path / "scan.nii.gz"
    expected, header = _write_scaled_nifti(path)
    v = read_volume(path)
    assert v.format == "nifti" and v.source == path
    assert v.array.dtype == np.float32 and v.array.shape == (12, 10, 5)
    np.testing.assert_array_equal(v.array, expected.astype(np.float32))
    np.testing.assert_allclose(v.affine, header.get_best_affine())
    assert int(header["sform_code"]) == 4  # the sform wins, as nibabel does
    np.testing.assert_allclose(v.spacing, (0.9, 0.8, 2.5), rtol=1e-6)
    assert v.meta["slice_axis"] == 2


def test_nifti_round_trip_keeps_header_exactly(tmp_path):
    src = tmp_path / "scan.nii.gz"
    _write_scaled_nifti(src)
    v = read_volume(src)
    result = v.array * 0.731 + 3.25  # not representable in the source int16 scaling
    out = write_volume(Volume(result), tmp_path / "out.nii.gz", like=v)
    back = read_volume(out)
    np.testing.assert_array_equal(back.array, result.astype(np.float32))
    np.testing.assert_array_equal(back.affine, v.affine)
    h0, h1 = v.header, back.header
    for name in h0.keys():
        if name in ("datatype", "bitpix", "scl_slope", "scl_inter", "vox_offset"):
            continue
        np.testing.assert_array_equal(h0[name], h1[name], err_msg=name)
    assert int(h1["qform_code"]) == 1 and int(h1["sform_code"]) == 4
    np.testing.assert_array_equal(h1.get_qform(), h0.get_qform())
    np.testing.assert_array_equal(h1.get_sform(), h0.get_sform())
    assert h1.get_data_dtype() == np.float32
    raw = np.asarray(nib.load(out).dataobj.get_unscaled())
    np.testing.assert_array_equal(raw, result.astype(np.float32))  # stored as given, no scaling


def test_nifti_write_shape_mismatch_and_fresh_header(tmp_path):
    src = tmp_path / "scan.nii"
    _write_scaled_nifti(src)
    v = read_volume(src)
    with pytest.raises(OutputError, match="does not match"):
        write_volume(Volume(np.zeros((12, 10, 4))), tmp_path / "bad.nii", like=v)
    assert not (tmp_path / "bad.nii").exists()
    plain = Volume(np.ones((6, 7, 3)), affine=np.diag([0.5, 0.5, 3.0, 1.0]), meta={"slice_axis": 2})
    out = write_volume(plain, tmp_path / "plain.nii.gz")
    hdr = nib.load(out).header
    assert int(hdr["sform_code"]) == 2 and int(hdr["qform_code"]) == 2
    np.testing.assert_allclose(hdr.get_zooms(), (0.5, 0.5, 3.0))
    assert hdr.get_dim_info()[2] == 2


def test_nifti_truncated_and_garbage(tmp_path):
    src = tmp_path / "scan.nii.gz"
    _write_scaled_nifti(src, shape=(40, 40, 20))
    data = src.read_bytes()
    cut = tmp_path / "cut.nii.gz"
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="cut.nii.gz"):
        read_volume(cut)
    junk = tmp_path / "junk.nii"
    junk.write_bytes(b"not a nifti file at all" * 20)
    with pytest.raises(InputError, match="junk.nii"):
        read_volume(junk)


def test_nifti_4d(tmp_path):
    data = np.arange(4 * 5 * 3, dtype=np.float32).reshape(4, 5, 3, 1)
    nib.save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "single.nii")
    v = read_volume(tmp_path / "single.nii")
    assert v.array.shape == (4, 5, 3)
    np.testing.assert_array_equal(v.array, data[..., 0])
    out = write_volume(Volume(v.array * 2), tmp_path / "single2.nii", like=v)
    assert nib.load(out).shape == (4, 5, 3, 1)  # the reference's 4D shape is kept
    nib.save(nib.Nifti1Image(np.zeros((4, 5, 3, 2), np.float32), np.eye(4)), tmp_path / "multi.nii")
    with pytest.raises(InputError, match="several volumes"):
        read_volume(tmp_path / "multi.nii")


def test_nifti_complex_gives_the_magnitude_and_rgb_is_refused(tmp_path):
    phase = np.exp(1j * np.linspace(0, np.pi, 6)).reshape(2, 3).astype(np.complex64)
    nib.save(nib.Nifti1Image(3 * phase, np.eye(4)), tmp_path / "complex.nii.gz")
    np.testing.assert_allclose(read_volume(tmp_path / "complex.nii.gz").array, np.full((2, 3), 3.0), rtol=1e-6)
    rgb = np.zeros((4, 4, 2), dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(rgb, np.eye(4)), tmp_path / "rgb.nii.gz")
    with pytest.raises(InputError, match="RGB"):
        read_volume(tmp_path / "rgb.nii.gz")


def test_npy_round_trip_and_errors(tmp_path):
    a = np.random.default_rng(1).normal(size=(9, 7, 3)).astype(np.float32)
    out = write_volume(Volume(a), tmp_path / "a.npy")
    back = read_volume(out)
    assert back.format == "npy" and back.meta["slice_axis"] is None
    np.testing.assert_array_equal(back.array, a)
    np.testing.assert_array_equal(back.affine, np.eye(4))
    np.save(tmp_path / "line.npy", np.arange(10.0))
    with pytest.raises(InputError, match=r"line.npy.*\(10,\)"):
        read_volume(tmp_path / "line.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="obj.npy.*pickle"):
        read_volume(tmp_path / "obj.npy")
    np.save(tmp_path / "four.npy", np.zeros((2, 3, 4, 5)))
    with pytest.raises(InputError, match="shape"):
        read_volume(tmp_path / "four.npy")
    z = np.array([[3 + 4j, 0], [1j, -2]], dtype=np.complex64)
    np.save(tmp_path / "c.npy", z)
    np.testing.assert_allclose(read_volume(tmp_path / "c.npy").array, [[5, 0], [1, 2]])
    with pytest.raises(InputError, match="key"):
        read_volume(tmp_path / "c.npy", key="x")


def test_npz_keys(tmp_path):
    a, b = np.ones((4, 4)), np.full((5, 5), 2.0)
    np.savez(tmp_path / "one.npz", image=a)
    np.savez(tmp_path / "default.npz", a, b)
    np.savez(tmp_path / "named.npz", first=a, second=b)
    np.testing.assert_array_equal(read_volume(tmp_path / "one.npz").array, a)
    v = read_volume(tmp_path / "default.npz")
    assert v.meta["key"] == "arr_0" and v.array.shape == (4, 4)
    np.testing.assert_array_equal(read_volume(tmp_path / "named.npz", key="second").array, b)
    with pytest.raises(InputError, match=r"\['first', 'second'\]"):
        read_volume(tmp_path / "named.npz")
    with pytest.raises(InputError, match=r"'third'.*\['first', 'second'\]"):
        read_volume(tmp_path / "named.npz", key="third")
    out = write_volume(Volume(b * 3), tmp_path / "out.npz", like=read_volume(tmp_path / "one.npz"))
    with np.load(out) as z:
        assert z.files == ["image"]
        np.testing.assert_array_equal(z["image"], b * 3)


def test_png_read_write(tmp_path, caplog):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8) * 5
    Image.fromarray(gray).save(tmp_path / "g.png")
    v = read_volume(tmp_path / "g.png")
    np.testing.assert_array_equal(v.array, gray)
    assert v.meta["bit_depth"] == 8
    deep = (np.arange(48, dtype=np.uint16).reshape(6, 8) * 1000).astype(np.uint16)
    Image.fromarray(deep).save(tmp_path / "d.png")
    np.testing.assert_array_equal(read_volume(tmp_path / "d.png").array, deep)
    rgb = np.zeros((2, 3, 3), np.uint8)
    rgb[..., 0], rgb[..., 1], rgb[..., 2] = 100, 200, 50
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    with caplog.at_level(logging.WARNING, logger="artefix.data.io.arrays"):
        lum = read_volume(tmp_path / "rgb.png").array
    np.testing.assert_allclose(lum, 0.299 * 100 + 0.587 * 200 + 0.114 * 50, rtol=1e-6)
    assert "luminance" in caplog.text
    x = np.linspace(-3.0, 5.0, 35).reshape(5, 7).astype(np.float32).astype(np.float64)
    back = read_volume(write_volume(Volume(x), tmp_path / "x.png")).array
    np.testing.assert_array_equal(back, np.round((x + 3.0) / 8.0 * 65535))  # min-max to uint16
    back8 = read_volume(write_volume(Volume(x), tmp_path / "x8.png", like=v)).array
    np.testing.assert_array_equal(back8, np.round((x + 3.0) / 8.0 * 255))  # 8-bit reference
    with pytest.raises(OutputError, match="2D"):
        write_volume(Volume(np.zeros((3, 3, 2))), tmp_path / "vol.png")


def test_sixteen_bit_colour_png_is_refused_not_truncated(tmp_path):
    """Pillow decodes 16-bit RGB to 8 bits per channel: such a file is refused; 16-bit grey is read as stored."""
    import zlib

    def png(path, depth, colour, rows, width):
        def chunk(kind, data):
            return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

        header = struct.pack(">IIBBBBB", width, rows.shape[0], depth, colour, 0, 0, 0)
        raw = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in rows)
        path.write_bytes(
            b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
        )

    grey = np.arange(12, dtype=np.uint16).reshape(3, 4) * 5000
    png(tmp_path / "grey16.png", 16, 0, grey, 4)
    np.testing.assert_array_equal(read_volume(tmp_path / "grey16.png").array, grey.astype(np.float32))
    png(tmp_path / "rgb16.png", 16, 2, np.repeat(grey, 3, axis=1), 4)  # R, G, B samples per pixel
    with pytest.raises(InputError, match="16-bit RGB PNG is not supported"):
        read_volume(tmp_path / "rgb16.png")


def test_non_finite_values(tmp_path):
    a = np.ones((6, 6), np.float32)
    a[0, :2] = np.nan
    a[3, 3] = np.inf
    np.save(tmp_path / "nan.npy", a)
    with pytest.raises(InputError, match="3 of 36 voxels"):
        read_volume(tmp_path / "nan.npy")
    with pytest.raises(InputError, match="NaN"):
        check_finite(Volume(a))
    assert check_finite(Volume(np.ones((2, 2)))).array.shape == (2, 2)
    with pytest.raises(OutputError, match="NaN"):
        write_volume(Volume(a), tmp_path / "out.npy")
    assert not (tmp_path / "out.npy").exists()


def test_missing_and_unsupported(tmp_path):
    with pytest.raises(InputError, match="nope.nii.gz: no such file"):
        read_volume(tmp_path / "nope.nii.gz")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(InputError, match=r"notes.txt.*\.nii\.gz"):
        read_volume(tmp_path / "notes.txt")
    with pytest.raises(OutputError, match=r"\.npy"):
        write_volume(Volume(np.ones((2, 2))), tmp_path / "out.jpg")
    with pytest.raises(OutputError, match="does not exist"):
        write_volume(Volume(np.ones((2, 2))), tmp_path / "no" / "out.npy")


def _fastmri_header(enc: tuple[int, int], rec: tuple[int, int]) -> bytes:
    def space(tag: str, m: tuple[int, int], fov: tuple[float, float, float]) -> str:
        return (
            f"<{tag}><matrixSize><x>{m[0]}</x><y>{m[1]}</y><z>1</z></matrixSize>"
            f"<fieldOfView_mm><x>{fov[0]}</x><y>{fov[1]}</y><z>{fov[2]}</z></fieldOfView_mm></{tag}>"
        )

    return (
        '<?xml version="1.0"?><ismrmrdHeader xmlns="http://www.ismrm.org/ISMRMRD"><encoding>'
        + space("encodedSpace", enc, (64.0, 48.0, 3.0))
        + space("reconSpace", rec, (32.0, 32.0, 3.0))
        + "</encoding></ismrmrdHeader>"
    ).encode()


def test_fastmri_multicoil_kspace_rss(tmp_path):
    rng = np.random.default_rng(2)
    slices, coils, h, w = 3, 4, 16, 12
    image = rng.normal(size=(slices, h, w)) + 1j * rng.normal(size=(slices, h, w))
    sens = rng.normal(size=(coils, h, w)) + 1j * rng.normal(size=(coils, h, w))
    sens /= np.sqrt(np.sum(np.abs(sens) ** 2, axis=0))  # sum_c |S_c|^2 = 1 -> RSS = |image|
    kspace = fft2c(image[:, None] * sens[None]).astype(np.complex64)
    with h5py.File(tmp_path / "k.h5", "w") as f:
        f["kspace"] = kspace
        f["ismrmrd_header"] = _fastmri_header((h, w), (8, 8))
        f.attrs["acquisition"] = "CORPD_FBK"
    v = read_volume(tmp_path / "k.h5")
    assert v.format == "fastmri-h5" and v.meta["slice_axis"] == 0 and v.meta["key"] == "kspace"
    assert v.array.shape == (slices, h, w)
    np.testing.assert_allclose(v.array, np.abs(image), rtol=1e-4, atol=1e-5)
    expected = np.sqrt(np.sum(np.abs(ifft2c(kspace.astype(np.complex128))) ** 2, axis=1))
    np.testing.assert_allclose(v.array, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(v.spacing, (3.0, 64.0 / h, 48.0 / w))  # encoded FOV / matrix
    single = fft2c(image).astype(np.complex64)
    np.testing.assert_allclose(rss_from_kspace(single), np.abs(image), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="k-space"):
        rss_from_kspace(np.zeros(5, np.complex64))


def test_fastmri_reconstruction_keys_and_write(tmp_path):
    rss = np.random.default_rng(3).random((2, 8, 8)).astype(np.float32)
    esc = rss * 2
    with h5py.File(tmp_path / "r.h5", "w") as f:
        f["reconstruction_esc"] = esc
        f["reconstruction_rss"] = rss
        f["kspace"] = fft2c(rss).astype(np.complex64)
        f["ismrmrd_header"] = _fastmri_header((8, 8), (8, 8))
    v = read_volume(tmp_path / "r.h5")
    assert v.meta["key"] == "reconstruction_rss"
    np.testing.assert_array_equal(v.array, rss)
    np.testing.assert_allclose(v.spacing, (3.0, 4.0, 4.0))
    np.testing.assert_array_equal(read_volume(tmp_path / "r.h5", key="reconstruction_esc").array, esc)
    np.testing.assert_allclose(read_volume(tmp_path / "r.h5", key="kspace").array, rss, atol=1e-5)
    with pytest.raises(InputError, match=r"'image'.*\['ismrmrd_header', 'kspace'"):
        read_volume(tmp_path / "r.h5", key="image")
    out = write_volume(Volume(v.array + 1), tmp_path / "out.h5", like=v)
    back = read_volume(out)
    assert back.meta["key"] == "reconstruction"
    np.testing.assert_array_equal(back.array, rss + 1)
    assert back.header == v.header
    (tmp_path / "fake.h5").write_bytes(b"\x00" * 100)
    with pytest.raises(InputError, match="fake.h5"):
        read_volume(tmp_path / "fake.h5")


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_atomic_write_leaves_nothing(tmp_path, monkeypatch):
    def failing_save(f, arr, *args, **kwargs):
        f.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", failing_save)
    with pytest.raises(OutputError, match="disk full"):
        write_volume(Volume(np.ones((3, 3))), tmp_path / "a.npy")
    assert not (tmp_path / "a.npy").exists()
    assert _leftovers(tmp_path) == []

    def failing_nib_save(img, filename):
        Path(filename).write_bytes(b"partial")
        raise RuntimeError("boom")

    monkeypatch.setattr(nib, "save", failing_nib_save)
    with pytest.raises(RuntimeError, match="boom"):
        write_volume(Volume(np.ones((3, 3, 2))), tmp_path / "b.nii.gz")
    assert list(tmp_path.iterdir()) == []


def test_overwrite_and_same_file_refusal(tmp_path):
    path = tmp_path / "a.npy"
    write_volume(Volume(np.ones((3, 3))), path)
    with pytest.raises(OutputError, match="exists"):
        write_volume(Volume(np.zeros((3, 3))), path)
    np.testing.assert_array_equal(np.load(path), np.ones((3, 3)))
    write_volume(Volume(np.zeros((3, 3))), path, overwrite=True)
    np.testing.assert_array_equal(np.load(path), np.zeros((3, 3)))
    v = read_volume(path)
    with pytest.raises(OutputError, match="is the input"):
        write_volume(v, tmp_path / "." / "a.npy", overwrite=True)
    with pytest.raises(OutputError, match="is the input"):
        write_volume(Volume(np.ones((3, 3))), path, overwrite=True, like=v)
    assert _leftovers(tmp_path) == []


@pytest.mark.shared_data
def test_real_nifti_open_ms(shared_data, tmp_path):
    path = shared_data / "open_ms_data_ljubljana_longitudinal" / "patient01" / "study1_T1W.nii.gz"
    v = read_volume(path)
    assert v.array.ndim == 3 and min(v.array.shape[:2]) >= 256 and 30 <= v.array.shape[2] <= 60
    assert np.all(np.isfinite(v.array)) and v.array.max() > 0
    assert all(0.3 < s < 6.0 for s in v.spacing)
    np.testing.assert_allclose(np.linalg.norm(v.affine[:3, :3], axis=0), v.spacing, rtol=1e-5)
    z_world = (v.affine @ np.array([[0, 0, k, 1] for k in range(v.array.shape[2])]).T)[2]
    assert np.all(np.diff(z_world) > 0)  # axial slices ascend inferior -> superior
    out = write_volume(Volume(v.array * 0.5), tmp_path / "half.nii.gz", like=v)
    back = read_volume(out)
    np.testing.assert_array_equal(back.array, v.array * 0.5)
    np.testing.assert_array_equal(back.affine, v.affine)
    assert int(back.header["qform_code"]) == int(v.header["qform_code"])
    assert int(back.header["sform_code"]) == int(v.header["sform_code"])
    np.testing.assert_array_equal(back.header["pixdim"], v.header["pixdim"])


@pytest.mark.skipif(os.name != "posix", reason="POSIX permission bits")
def test_outputs_get_normal_permissions(tmp_path):
    plain = tmp_path / "plain.bin"
    plain.write_bytes(b"x")  # created with 0666 & ~umask, like any file
    out = write_volume(Volume(np.ones((3, 3))), tmp_path / "a.npy")
    assert stat.S_IMODE(out.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)


def test_a_5d_array_is_refused_with_the_shape_it_has(tmp_path):
    path = tmp_path / "five.npy"
    np.save(path, np.ones((1, 3, 4, 5, 6), np.float32))  # shown as given, not squeezed to (3, 4, 5, 6)
    with pytest.raises(InputError, match=r"array of shape \(1, 3, 4, 5, 6\) is not a 2D slice or a 3D volume"):
        read_volume(path)
    np.save(path, np.ones((1, 8, 9, 1, 1), np.float32))  # singleton axes are dropped: a 2D slice
    assert read_volume(path).array.shape == (8, 9)
