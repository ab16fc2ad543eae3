"""Numpy metrics (artefix.metrics.numpy_metrics): VIF against sewar, SSIM/PSNR/MSE by hand, masks, orientation table."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage
from skimage.metrics import structural_similarity

import artefix
from artefix.artefacts import base
from artefix.fft import fourier_resize
from artefix.metrics import numpy_metrics as metrics
from artefix.metrics.numpy_metrics import (
    METRICS,
    VIF_MIN_SIZE,
    compute_metrics,
    foreground_mask,
    mse,
    psnr,
    ssim,
    vif,
    vif_paper,
    vifp,
    znorm,
)


@pytest.fixture(scope="module")
def brain() -> np.ndarray:
    """The built-in T1 slice resampled (k-space crop) to 64x64, non-negative, z-normalised."""
    x = np.abs(fourier_resize(artefix.load_sample("brain-t1").astype(np.float64), (64, 64)))
    return znorm(x)


def _pairs(ref: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    noisy = ref + 0.3 * rng.standard_normal(ref.shape)
    blurred = ndimage.gaussian_filter(ref, 1.5)
    scale255 = 255.0 / (ref.max() - ref.min())
    return [
        (ref, noisy),
        (ref, 1.4 * ref + 0.2),
        (ref, blurred),
        ((ref - ref.min()) * scale255, (noisy - ref.min()) * scale255),
        (ref, ref),
    ]


def test_vifp_matches_sewar(brain):
    sewar = pytest.importorskip("sewar")
    for ref, img in _pairs(brain):
        assert vifp(ref, img) == pytest.approx(sewar.vifp(ref, img), rel=1e-9, abs=1e-12)
    # non-square, odd size, other visual-noise constant
    ref = brain[:51, :60]
    img = ndimage.gaussian_filter(ref, 1.0)
    assert vifp(ref, img, sigma_nsq=0.5) == pytest.approx(sewar.vifp(ref, img, sigma_nsq=0.5), rel=1e-9)


def test_vif_identity_gain_and_scale(brain):
    for f in (vif, vif_paper, vifp):
        assert f(brain, brain) == pytest.approx(1.0, abs=1e-8)
    # a pure gain a > 1 "improves" on the reference under VIF (known property), both conventions
    assert vif_paper(brain, 1.5 * brain) > 1.0
    assert vif(brain, 1.5 * brain) > 1.0
    # vif maps both images to the reference's [0, 255]: invariant to any common affine map
    noisy = brain + 0.3 * np.random.default_rng(0).standard_normal(brain.shape)
    assert vif(3.0 * brain - 7.0, 3.0 * noisy - 7.0) == pytest.approx(vif(brain, noisy), rel=1e-9)
    # on the raw z-normalised scale sigma_n^2 = 2 swamps the noise: vif-paper is far too optimistic
    assert vif(brain, noisy) < 0.6 < 0.9 < vif_paper(brain, noisy) < 1.0
    # a worse image scores lower
    noisier = brain + 0.6 * np.random.default_rng(1).standard_normal(brain.shape)
    assert vif(brain, noisier) < vif(brain, noisy)


def test_vif_minimum_size_and_validation(brain):
    ok = brain[:VIF_MIN_SIZE, :VIF_MIN_SIZE]
    assert vifp(ok, ok) == pytest.approx(1.0, abs=1e-8)
    with pytest.raises(ValueError, match="at least 41x41"):
        vifp(brain[:40, :64], brain[:40, :64])
    with pytest.raises(ValueError, match="sigma_nsq"):
        vifp(brain, brain, sigma_nsq=0.0)
    with pytest.raises(ValueError, match="no local variance"):
        vifp(np.ones((48, 48)), np.ones((48, 48)))
    with pytest.raises(ValueError, match="constant"):
        vif(np.ones((48, 48)), np.ones((48, 48)))


def test_ssim_uses_reference_data_range(brain):
    img = brain + 0.2 * np.random.default_rng(2).standard_normal(brain.shape)
    expected = structural_similarity(brain, img, data_range=brain.max() - brain.min(), win_size=7)
    assert ssim(brain, img) == pytest.approx(expected, rel=1e-12)
    assert ssim(brain, brain) == pytest.approx(1.0)
    # the reference fixes the range: stretching the test image does not change the constants
    assert ssim(brain, img) != pytest.approx(ssim(img, brain), rel=1e-6)


def test_masked_ssim(brain):
    full = np.ones(brain.shape, bool)
    img = brain + 0.2 * np.random.default_rng(2).standard_normal(brain.shape)
    assert ssim(brain, img, mask=full) == pytest.approx(ssim(brain, img), rel=1e-12)
    # corrupt only the region far (> 3 px window radius) from a central square: SSIM inside stays 1
    mask = np.zeros(brain.shape, bool)
    mask[20:44, 20:44] = True
    outside = ~ndimage.binary_dilation(mask, np.ones((3, 3)), iterations=3)  # 7x7 windows stay clean
    bad = brain.copy()
    bad[outside] += np.random.default_rng(4).standard_normal(int(outside.sum()))
    assert ssim(brain, bad, mask=mask) == pytest.approx(1.0)
    assert ssim(brain, bad) < 0.9
    with pytest.raises(ValueError, match="empty"):
        ssim(brain, img, mask=np.zeros(brain.shape, bool))
    with pytest.raises(ValueError, match="border"):
        ssim(brain, img, mask=~ndimage.binary_erosion(full, iterations=3, border_value=0))
    with pytest.raises(ValueError, match="shape"):
        ssim(brain, img, mask=full[:10])


def test_mse_and_psnr_by_hand():
    ref = np.zeros((16, 16))
    ref[4:12, 4:12] = 2.0  # data range 2
    img = ref + 0.1
    assert mse(ref, img) == pytest.approx(0.01)
    assert psnr(ref, img) == pytest.approx(10 * np.log10(4.0 / 0.01))
    assert psnr(ref, ref) == float("inf")
    # the reference's range, not the image's: doubling the test image's range changes nothing else
    assert psnr(ref, img) == pytest.approx(26.0206, abs=1e-4)


def test_foreground_mask_phantom():
    yy, xx = np.mgrid[:64, :64]
    disc = (yy - 32) ** 2 + (xx - 32) ** 2 <= 20**2
    hole = (yy - 32) ** 2 + (xx - 32) ** 2 <= 5**2
    phantom = np.where(disc & ~hole, 1.0, 0.0)  # bright ring around a dark hole, dark background
    m0 = foreground_mask(phantom, dilation=0)
    np.testing.assert_array_equal(m0, disc)  # Otsu splits 0/1, holes filled
    m2 = foreground_mask(phantom)
    np.testing.assert_array_equal(m2, ndimage.binary_dilation(disc, iterations=2))
    assert m2.dtype == bool
    with pytest.raises(ValueError, match="dilation"):
        foreground_mask(phantom, dilation=-1)
    with pytest.raises(ValueError, match="constant"):
        foreground_mask(np.zeros((8, 8)))


def test_foreground_mask_real_slice(brain):
    m = foreground_mask(brain)
    assert 0.3 < m.mean() < 0.8
    assert m[32, 32] and not m[0, 0] and not m[-1, -1]
    assert not ndimage.binary_fill_holes(m)[~m].any()  # no holes left


def test_compute_metrics_keys_and_orientation(brain):
    noisy = znorm(brain + 0.3 * np.random.default_rng(5).standard_normal(brain.shape))
    noisier = znorm(brain + 0.6 * np.random.default_rng(6).standard_normal(brain.shape))
    good = compute_metrics(brain, noisy)
    worse = compute_metrics(brain, noisier)
    assert list(good) == list(METRICS) == ["ssim", "ssim-fg", "vif", "vif-paper", "mse", "psnr"]
    assert dict(METRICS) == {k: k == "mse" for k in METRICS}
    for name, lower_is_better in METRICS.items():
        assert (worse[name] > good[name]) == lower_is_better, name
    perfect = compute_metrics(brain, brain)
    assert perfect["ssim"] == pytest.approx(1.0) and perfect["ssim-fg"] == pytest.approx(1.0)
    assert perfect["vif"] == pytest.approx(1.0) and perfect["mse"] == 0.0
    # explicit mask equals the default one
    assert compute_metrics(brain, noisy, mask=foreground_mask(brain)) == good


def test_validation_and_znorm_reuse(brain):
    assert metrics.znorm is base.znorm
    with pytest.raises(ValueError, match="same shape"):
        mse(brain, brain[:10])
    with pytest.raises(ValueError, match="NaN"):
        mse(brain, np.full(brain.shape, np.nan))
    with pytest.raises(ValueError, match="2D"):
        ssim(brain[None], brain[None])
    with pytest.raises(ValueError, match="real"):
        mse(brain, brain.astype(complex))
