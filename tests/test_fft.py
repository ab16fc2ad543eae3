import numpy as np
import pytest
import torch

from artefix.fft import fft2c, fourier_resize, ifft2c, kspace_crop_pad

SHAPES = [(8, 8), (7, 9), (33, 47), (3, 16, 15)]


@pytest.mark.parametrize("shape", SHAPES)
def test_fft2c_matches_numpy_definition(shape):
    x = np.random.default_rng(0).standard_normal(shape) + 1j * np.random.default_rng(1).standard_normal(shape)
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(x, axes=(-2, -1)), norm="ortho"), axes=(-2, -1))
    np.testing.assert_allclose(fft2c(x), ref, atol=1e-12)
    np.testing.assert_allclose(ifft2c(ref), x, atol=1e-12)


@pytest.mark.parametrize("shape", SHAPES)
def test_torch_and_numpy_agree(shape):
    x = np.random.default_rng(2).standard_normal(shape)
    k_np = fft2c(x)
    k_t = fft2c(torch.from_numpy(x))
    assert isinstance(k_t, torch.Tensor)
    np.testing.assert_allclose(k_t.numpy(), k_np, atol=1e-12)
    np.testing.assert_allclose(ifft2c(k_t).numpy(), ifft2c(k_np), atol=1e-12)


@pytest.mark.parametrize("shape", [(8, 8), (7, 9)])
def test_dc_at_centre_and_parseval(shape):
    x = np.ones(shape)
    k = fft2c(x)
    h, w = shape
    assert abs(k[h // 2, w // 2]) == pytest.approx(np.sqrt(h * w))
    k[h // 2, w // 2] = 0
    assert np.abs(k).max() < 1e-12
    y = np.random.default_rng(3).standard_normal(shape)
    assert np.sum(np.abs(fft2c(y)) ** 2) == pytest.approx(np.sum(y**2))


def test_crop_pad_keeps_dc_and_zero_fills():
    k = np.arange(7 * 9, dtype=complex).reshape(7, 9)
    big = kspace_crop_pad(k, (10, 12))
    assert big.shape == (10, 12)
    assert big[10 // 2, 12 // 2] == k[7 // 2, 9 // 2]
    assert np.count_nonzero(big) == np.count_nonzero(k)
    back = kspace_crop_pad(big, (7, 9))
    np.testing.assert_array_equal(back, k)
    small = kspace_crop_pad(k, (3, 4))
    assert small[1, 2] == k[3, 4]
    with pytest.raises(ValueError, match="positive"):
        kspace_crop_pad(k, (0, 3))


def test_crop_pad_torch_matches_numpy():
    k = np.random.default_rng(4).standard_normal((2, 9, 8)) + 0j
    np.testing.assert_array_equal(kspace_crop_pad(torch.from_numpy(k), (6, 11)).numpy(), kspace_crop_pad(k, (6, 11)))


def test_fourier_resize_512_to_320_preserves_intensity_and_bandlimited_content():
    yy, xx = np.meshgrid(np.arange(512), np.arange(512), indexing="ij")
    img = 5.0 + np.cos(2 * np.pi * 3 * yy / 512) + np.sin(2 * np.pi * 5 * xx / 512)
    small = fourier_resize(img, (320, 320))
    assert small.shape == (320, 320)
    assert np.isrealobj(small)
    yy, xx = np.meshgrid(np.arange(320), np.arange(320), indexing="ij")
    expected = 5.0 + np.cos(2 * np.pi * 3 * yy / 320) + np.sin(2 * np.pi * 5 * xx / 320)
    np.testing.assert_allclose(small, expected, atol=1e-9)
    np.testing.assert_allclose(fourier_resize(small, (512, 512)), img, atol=1e-9)


def test_fourier_resize_identity_and_complex():
    x = np.random.default_rng(5).standard_normal((6, 6)) + 0j
    assert fourier_resize(x, (6, 6)) is x
    assert np.iscomplexobj(fourier_resize(x, (9, 9)))
