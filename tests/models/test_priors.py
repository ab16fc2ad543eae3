import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from artefix.artefacts.base import znorm
from artefix.artefacts.noise import NoiseParams, apply_noise
from artefix.models.priors import (
    estimated_noise_std,
    estimated_snr_db,
    foreground_noise_std,
    foreground_snr_db,
    gaussian_smooth,
    smooth_bias_residual,
    snr_gate,
)


def _phantom(h=96, w=80):
    """A smooth head-like ellipse (positive) on a zero background, float64 numpy."""
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    inside = (yy / 0.85) ** 2 + (xx / 0.75) ** 2 < 1
    return inside * (1.0 + 0.3 * np.cos(3 * xx) * np.sin(2 * yy))


def test_noise_std_of_white_noise_within_five_percent():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn((3, 128, 96), generator=g, dtype=torch.float64) * torch.tensor([0.5, 1.0, 2.0])[:, None, None]
    image = torch.from_numpy(_phantom(128, 96))[None] * 10 + noise
    est = estimated_noise_std(image)
    torch.testing.assert_close(est, torch.tensor([0.5, 1.0, 2.0], dtype=torch.float64), rtol=0.05, atol=0)


def test_estimated_snr_tracks_added_kspace_noise():
    """Complex k-space noise at the paper's SNR, estimated from the magnitude image.

    Within 2.5 dB where the noise gate acts (5 and 10 dB); lower SNRs read higher (the mean k-space
    magnitude then includes the noise) but the estimate stays monotone.
    """
    clean = _phantom(128, 112) * 100
    levels = [-5.0, 0.0, 5.0, 10.0]
    est = []
    for k, snr_db in enumerate(levels):
        noisy = np.abs(apply_noise(clean, NoiseParams(snr_db=snr_db, seed=k)))
        est.append(float(estimated_snr_db(torch.from_numpy(znorm(noisy))[None])[0]))
    assert est == sorted(est)
    assert abs(est[2] - 5.0) < 2.5 and abs(est[3] - 10.0) < 2.5
    clean_est = float(estimated_snr_db(torch.from_numpy(znorm(clean))[None])[0])
    assert clean_est > est[-1] + 20  # a noise-free image reads as far cleaner


@pytest.mark.parametrize("name", ["phantom", "brain-t1"])
def test_estimated_snr_is_reproducible_and_steps_with_the_noise_where_the_gate_decides(name):
    """Around the noise gate (9-11 dB of the estimate, chosen in the estimate's own units) the decision needs a
    reproducible, monotone estimate more than an exact one: over five noise realisations of one slice the
    estimate varies by at most 0.7 dB (measured: 0.55 on the phantom, 0.29 on the real slice), and every
    2 dB less added noise raises it by 1.2 to 2.2 dB (measured 1.4-1.9)."""
    from artefix.data.samples import load_sample

    clean = _phantom(128, 112) * 100 if name == "phantom" else load_sample(name).astype(np.float64)
    means = []
    for snr_db in (6.0, 8.0, 10.0, 12.0):
        est = [
            float(
                estimated_snr_db(torch.from_numpy(znorm(np.abs(apply_noise(clean, NoiseParams(snr_db, seed)))))[None])
            )
            for seed in range(5)
        ]
        assert max(est) - min(est) <= 0.7, (snr_db, est)
        means.append(float(np.mean(est)))
    steps = np.diff(means)
    assert ((steps >= 1.2) & (steps <= 2.2)).all(), means


def test_estimated_snr_ignores_scale_and_handles_odd_sizes_and_constant_images():
    x = torch.from_numpy(_phantom(61, 47))[None] + 0.05 * torch.randn((1, 61, 47), dtype=torch.float64)
    torch.testing.assert_close(estimated_snr_db(x), estimated_snr_db(7.0 * x))
    flat = estimated_snr_db(torch.zeros((2, 9, 9)))
    assert torch.isfinite(flat).all()
    with pytest.raises(ValueError, match="H, W >= 2"):
        estimated_noise_std(torch.zeros((1, 1, 9)))


def test_foreground_noise_std_of_white_noise_within_six_percent():
    g = torch.Generator().manual_seed(0)
    noise = torch.randn((3, 128, 96), generator=g, dtype=torch.float64) * torch.tensor([0.5, 1.0, 2.0])[:, None, None]
    image = torch.from_numpy(_phantom(128, 96))[None] * 10 + noise
    est = foreground_noise_std(image)
    torch.testing.assert_close(est, torch.tensor([0.5, 1.0, 2.0]), rtol=0.06, atol=0)


def _noisy(clean, snr_db, seed):
    """Magnitude image of ``clean`` with complex k-space noise at the paper's SNR."""
    return np.abs(apply_noise(clean, NoiseParams(snr_db=snr_db, seed=seed)))


def _snr(image):
    return float(foreground_snr_db(torch.from_numpy(znorm(np.asarray(image, np.float64)))[None])[0])


def test_foreground_snr_falls_with_every_step_of_added_kspace_noise():
    """Each 5 dB less of the paper's SNR reads at least 2 dB less; a noise-free image reads far cleaner."""
    clean = _phantom(128, 112) * 100
    est = [_snr(_noisy(clean, snr_db, k)) for k, snr_db in enumerate([15.0, 10.0, 5.0, 0.0, -5.0])]
    assert all(a - b > 2.0 for a, b in zip(est, est[1:], strict=False)), est
    assert _snr(clean) > est[0] + 20


def _background_variants(image, mask):
    """The image, its background zeroed, cropped to the mask's box (+2 px) and zero-padded by 40 px."""
    rows, cols = np.nonzero(mask)
    box = np.s_[max(rows.min() - 2, 0) : rows.max() + 3, max(cols.min() - 2, 0) : cols.max() + 3]
    return {"as is": image, "zeroed": image * mask, "cropped": image[box], "padded": np.pad(image, 40)}


@pytest.mark.parametrize("snr_db", [None, 10.0, 5.0])
def test_foreground_snr_ignores_a_zeroed_cropped_or_padded_background_phantom(snr_db):
    clean = _phantom(128, 112) * 100
    image = clean if snr_db is None else _noisy(clean, snr_db, 3)
    mask = ndimage.binary_dilation(clean > 0, iterations=3)
    est = {name: _snr(v) for name, v in _background_variants(image, mask).items()}
    if snr_db is None:  # noise-free: every variant reads far above any noise gate (round-off sets the value)
        assert min(est.values()) > 60, est
    else:
        assert max(est.values()) - min(est.values()) < 1.0, est


@pytest.mark.shared_data
@pytest.mark.parametrize("snr_db", [None, 15.0, 5.0, 0.0])
def test_foreground_snr_ignores_a_zeroed_cropped_or_padded_background_real_scan(shared_data, snr_db):
    """A real T1 slice with its native noisy background (within 1 dB whatever is done to the background).

    The whole-image estimate of the noise gate (estimated_snr_db) reads 240 dB once the background is zeroed.
    """
    import nibabel as nib

    volume = nib.load(shared_data / "ixi_t1_2mm_via_nichart" / "IXI012-HH-1211_T1.nii.gz").get_fdata()
    clean = volume[:, :, volume.shape[2] // 2].astype(np.float64)
    image = clean if snr_db is None else _noisy(clean, snr_db, 5)
    smooth = ndimage.gaussian_filter(clean, 2)
    mask = ndimage.binary_dilation(ndimage.binary_fill_holes(smooth > 0.1 * np.percentile(smooth, 99)), iterations=4)
    est = {name: _snr(v) for name, v in _background_variants(image, mask).items()}
    assert max(est.values()) - min(est.values()) < 1.0, est


def test_foreground_snr_ignores_scale_and_offset_and_handles_odd_sizes_and_constant_images():
    x = torch.from_numpy(_phantom(61, 47))[None] + 0.05 * torch.randn((1, 61, 47), dtype=torch.float64)
    torch.testing.assert_close(foreground_snr_db(x), foreground_snr_db(7.0 * x - 3.0))
    flat = foreground_snr_db(torch.zeros((2, 9, 9)))
    assert torch.isfinite(flat).all()
    assert torch.isfinite(foreground_snr_db(torch.rand((1, 3, 5)))).all()
    with pytest.raises(ValueError, match="H, W >= 3"):
        foreground_noise_std(torch.zeros((1, 2, 9)))


def test_snr_gate_is_a_clamped_ramp():
    snr = torch.tensor([-3.0, 9.0, 10.5, 12.0, 30.0])
    torch.testing.assert_close(snr_gate(snr, 9.0, 12.0), torch.tensor([1.0, 1.0, 0.5, 0.0, 0.0]))
    with pytest.raises(ValueError, match="lo < hi"):
        snr_gate(snr, 12.0, 12.0)


def test_gaussian_smooth_keeps_constants_inside_and_does_not_wrap():
    x = torch.zeros((1, 64, 64))
    x[0, 32, 32] = 1.0
    y = gaussian_smooth(x, 3.0)
    assert math.isclose(float(y.sum()), 1.0, rel_tol=1e-4)
    yy, xx = torch.meshgrid(torch.arange(64.0), torch.arange(64.0), indexing="ij")
    expected = torch.exp(-((yy - 32) ** 2 + (xx - 32) ** 2) / 18) / (2 * math.pi * 9)
    torch.testing.assert_close(y[0], expected, atol=1e-5, rtol=0)
    edge = torch.zeros((1, 64, 64))
    edge[0, 0, 0] = 1.0
    assert float(gaussian_smooth(edge, 3.0)[0, -1, -1]) < 1e-6  # no wrap-around to the far corner


def _field(h, w):
    yy, xx = np.mgrid[-1 : 1 : h * 1j, -1 : 1 : w * 1j]
    return 1.0 + 0.15 * np.sin(1.3 * xx + 0.5) * np.cos(yy)


@pytest.mark.parametrize("shape", [(96, 80), (75, 101)])
def test_smooth_bias_keeps_a_smooth_multiplicative_correction(shape):
    x = _phantom(*shape)
    f = _field(*shape)
    exact = x - x * f  # the residual that removes the field from x * f
    out = smooth_bias_residual(torch.from_numpy(x * f)[None], torch.from_numpy(exact)[None], 0.1)[0].numpy()
    inside = x > 0.5
    left = np.sqrt(np.mean((x * f + out - x)[inside] ** 2))
    before = np.sqrt(np.mean((x * f - x)[inside] ** 2))
    assert left < 0.25 * before  # most of the field is still removed (the fit blurs it near the edges)


def test_smooth_bias_is_zero_for_zero_and_drops_texture():
    x = torch.from_numpy(_phantom())[None]
    torch.testing.assert_close(smooth_bias_residual(x, torch.zeros_like(x), 0.1), torch.zeros_like(x))
    texture = 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0), dtype=x.dtype) * (x > 0)
    kept = smooth_bias_residual(x, texture, 0.1)
    assert float(kept.pow(2).sum()) < 0.01 * float(texture.pow(2).sum())
    with pytest.raises(ValueError, match="sigma"):
        smooth_bias_residual(x, texture, 0.0)
    with pytest.raises(ValueError, match="one shape"):
        smooth_bias_residual(x, texture[:, :-1], 0.1)


@pytest.mark.parametrize("fraction", [0.01, 0.5, 1.0])
def test_order_statistic_matches_topk(fraction):
    """The eager kthvalue path gives the value the ONNX-export topk path gives."""
    from artefix.models.priors import _kth_largest

    values = torch.randn((3, 1001), generator=torch.Generator().manual_seed(2))
    k = max(1, math.ceil(fraction * 1001))
    torch.testing.assert_close(_kth_largest(values, fraction), values.topk(k, dim=-1).values[:, -1])


def test_a_blank_slice_gets_a_zero_bias_residual_not_nan():
    from artefix.models import build_model

    model = build_model("tiny", seed=0, gates=True, bias_smooth=0.1, noise_snr=(9.0, 12.0)).eval()
    with torch.no_grad():
        out = model(torch.zeros(2, 1, 24, 20))  # what znorm gives for a constant slice
        tiny = model(torch.randn(1, 1, 1, 16))  # one pixel wide: no noise estimate, no gate
    assert torch.isfinite(out.residuals).all() and torch.isfinite(out.output).all()
    assert torch.isfinite(tiny.residuals).all()
