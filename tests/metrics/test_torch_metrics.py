"""Torch metrics (artefix.metrics.torch_metrics): agreement with the numpy metrics, gradients, validation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from artefix.metrics.numpy_metrics import ssim, vif, vifp
from artefix.metrics.torch_metrics import quality_deficit, ssim_torch, vifp_torch


def _smooth_images(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).cumsum(-1).cumsum(-2)


@pytest.mark.parametrize("shape", [(2, 1, 41, 41), (3, 1, 64, 77)])
def test_vifp_torch_agrees_with_the_numpy_metric(shape):
    ref = _smooth_images(0, shape)
    out = ref + 0.5 * _smooth_images(1, shape) / shape[-1] + torch.randn(shape, dtype=torch.float64)
    out[0, 0, :5] = 0.0  # blank patches exercise the guards
    got = vifp_torch(out, ref)
    want = [vifp(ref[i, 0].numpy(), out[i, 0].numpy()) for i in range(shape[0])]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)
    np.testing.assert_allclose(vifp_torch(ref, ref).numpy(), 1.0, rtol=1e-9)


@pytest.mark.parametrize("shape", [(2, 1, 7, 7), (1, 1, 30, 45)])
def test_ssim_torch_agrees_with_scikit_image(shape):
    ref = _smooth_images(4, shape)
    out = ref + 3.0 * torch.randn(shape, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    span = (ref.amax(dim=(1, 2, 3)) - ref.amin(dim=(1, 2, 3)))[:, None, None, None]
    got = ssim_torch(out, ref, span)
    want = [ssim(ref[i, 0].numpy(), out[i, 0].numpy()) for i in range(shape[0])]
    np.testing.assert_allclose(got.numpy(), want, rtol=1e-10)


def test_quality_deficit_is_the_paper_metrics_and_differentiable():
    ref = _smooth_images(2, (3, 1, 48, 52))
    out = ref + 2.0 * torch.randn(ref.shape, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out.requires_grad_(True)
    q = quality_deficit(out, ref)
    assert q.shape == (3,)
    for i in range(3):
        r, o = ref[i, 0].numpy(), out[i, 0].detach().numpy()
        assert float(q[i].detach()) == pytest.approx(2.0 - ssim(r, o) - vif(r, o), abs=1e-10)
    q.sum().backward()
    assert out.grad is not None and bool(torch.isfinite(out.grad).all()) and float(out.grad.abs().sum()) > 0
    torch.testing.assert_close(quality_deficit(ref, ref), torch.zeros(3, dtype=torch.float64), atol=1e-9, rtol=0)
    scaled = quality_deficit(3.0 * out.detach(), 3.0 * ref)  # data range and 0-255 map are the reference's
    torch.testing.assert_close(scaled, q.detach(), atol=1e-9, rtol=0)
    with pytest.raises(ValueError, match="constant"):
        quality_deficit(ref, torch.ones_like(ref))
    with pytest.raises(ValueError, match="41x41"):
        quality_deficit(ref[..., :40], ref[..., :40])
    with pytest.raises(ValueError, match="shape"):
        quality_deficit(ref[:, 0], ref[:, 0])
