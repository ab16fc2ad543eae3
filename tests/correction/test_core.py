"""The slice-batch maths of correct and qc (:mod:`artefix.correction.core`), with stub models: fast unit tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from artefix.correction.core import (
    correct_batch,
    model_input,
    qc_batch,
    scan_snr_db,
    slice_moments,
    working_shape,
)
from artefix.fft import fourier_resize
from artefix.models import ModelOutput
from artefix.models.consistency import measured_window
from artefix.models.policy import InferencePolicy
from artefix.models.priors import estimated_snr_db

HEADS = ("bias", "subsampling", "motion", "noise")


def _stack(shape: tuple[int, int, int] = (3, 12, 10), seed: int = 0) -> torch.Tensor:
    """Slices in 'scanner units': offsets and scales that differ from slice to slice."""
    rng = np.random.default_rng(seed)
    data = rng.random(shape) * np.array([5.0, 50.0, 500.0])[: shape[0], None, None] + np.arange(shape[0])[:, None, None]
    return torch.from_numpy(data.astype(np.float32))


def _moments(batch: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return batch.mean(dim=(1, 2)), batch.std(dim=(1, 2), correction=0)


def _zn(a: np.ndarray) -> np.ndarray:
    return (a - a.mean(axis=(-2, -1), keepdims=True)) / a.std(axis=(-2, -1), keepdims=True)


class Stub(nn.Module):
    """Residuals ``p_k = factors[k] * x + offsets[k]``; records the input shapes and the keywords of each call."""

    def __init__(self, factors: tuple[float, ...], offsets: tuple[float, ...], scores: bool = False) -> None:
        super().__init__()
        self.factors = torch.tensor(factors, dtype=torch.float32)[None, :, None, None]
        self.offsets = torch.tensor(offsets, dtype=torch.float32)[None, :, None, None]
        self.scores = scores
        self.calls: list[tuple[tuple[int, ...], dict[str, Any]]] = []

    def forward(self, x: torch.Tensor, **kwargs: Any) -> ModelOutput:
        self.calls.append((tuple(x.shape), kwargs))
        p = self.factors * x + self.offsets
        scores = torch.full((x.shape[0], p.shape[1]), 0.25) if self.scores else None
        return ModelOutput(x, p, scores)


class Plain(nn.Module):
    """A module that takes the image alone and returns a bare tuple-like output with residuals, no scores."""

    def forward(self, x: torch.Tensor) -> Any:
        class Out:
            residuals = torch.cat([x, -x], dim=1)

        return Out()


# ------------------------------------------------------------------------------------------ moments


def test_slice_moments_are_float64_population_moments_of_each_slice() -> None:
    stack = np.stack([np.arange(12, dtype=np.int16).reshape(3, 4), np.full((3, 4), 7, np.int16)])
    stack[1, 0, 0] = 8
    mean, std, constant = slice_moments(stack)
    assert mean.dtype == std.dtype == np.float64 and mean.shape == std.shape == constant.shape == (2,)
    np.testing.assert_allclose(mean, [5.5, 7 + 1 / 12], rtol=1e-15)
    np.testing.assert_allclose(std, [np.arange(12).std(), np.r_[8, np.full(11, 7)].std()], rtol=1e-12)
    assert constant.tolist() == [False, False]
    assert slice_moments(np.full((1, 2, 3), -4.0))[2].tolist() == [True]


# ----------------------------------------------------------------------------------- working shape


def test_working_shape_refuses_matrices_that_are_not_two_integers_of_at_least_2() -> None:
    for matrix in ((320,), (320, 320, 320), (True, 320), (320, 2.5), (1, 320), (320, 1), (0, 0)):
        with pytest.raises(ValueError, match="two integers >= 2"):
            working_shape((10, 10), (1.0, 1.0), matrix)
    assert working_shape((10, 10), (1.0, 1.0), (2, 2)) == (2, 2)
    assert working_shape((10, 20), (1.0, 1.0), (np.int64(10), 20.0)) == (10, 20)


def test_working_shape_keeps_the_aspect_of_the_longer_physical_side() -> None:
    assert working_shape((100, 50), (1.0, 1.0), (40, 40)) == (40, 20)  # height fills the matrix
    assert working_shape((50, 100), (1.0, 1.0), (40, 40)) == (20, 40)  # width fills it
    assert working_shape((100, 100), (1.0, 1.0), (40, 20)) == (20, 20)  # the narrower side of the matrix rules
    assert working_shape((100, 20), (1.0, 1.0), (40, 20)) == (40, 8)  # a tall slice fills a tall matrix's height
    assert working_shape((20, 100), (1.0, 1.0), (20, 40)) == (8, 40)
    assert working_shape((60, 60), (2.0, 1.0), (30, 30)) == (30, 15)  # tall pixels: a tall field of view
    assert working_shape((100, 50), matrix=(40, 40)) == (40, 20)  # square pixels by default


def test_working_shape_is_at_least_two_pixels_a_side() -> None:
    assert working_shape((2, 1000), (1.0, 1.0), (10, 10)) == (2, 10)
    assert working_shape((1000, 2), (1.0, 1.0), (10, 10)) == (10, 2)


@pytest.mark.parametrize("spacing", [(0.0, 2.0), (2.0, 0.0), (-1.0, 2.0), (2.0, -1.0), (np.nan, 2.0), (2.0, np.inf)])
def test_working_shape_treats_a_bad_spacing_as_square_pixels(spacing: tuple[float, float]) -> None:
    assert working_shape((60, 30), spacing, (20, 20)) == (20, 10)


# ----------------------------------------------------------------------------------- correct_batch


def test_correct_batch_maps_back_to_each_slices_mean_and_standard_deviation() -> None:
    batch = _stack()
    mean, std = _moments(batch)
    stub = Stub((0.5, 0.0, -0.25), (0.0, 1.0, 2.0))
    weights = torch.tensor([1.0, 0.0, 0.5])
    out = correct_batch(stub, batch, mean, std, weights)
    x = batch.double().numpy()
    mu, sd = x.mean(axis=(1, 2), keepdims=True), x.std(axis=(1, 2), keepdims=True)
    u = (x - mu) / sd
    p = np.stack([0.5 * u, np.ones_like(u), -0.25 * u + 2.0], axis=1)
    expected = mu + sd * _zn(u + p[:, 0] + 0.5 * p[:, 2])
    np.testing.assert_allclose(out.image.numpy(), expected, rtol=0, atol=1e-4 * np.abs(x).max())
    np.testing.assert_allclose(out.residuals.numpy(), p * sd[:, None], rtol=1e-5, atol=1e-5 * sd.max())
    assert out.image.shape == batch.shape and out.residuals.shape == (3, 3, 12, 10) and out.scores is None
    assert stub.calls == [((3, 1, 12, 10), {})]


def test_correct_batch_passes_the_snr_and_policy_only_when_given_and_returns_the_scores() -> None:
    batch = _stack(seed=1)
    mean, std = _moments(batch)
    stub = Stub((0.0, 0.0), (0.0, 0.0), scores=True)
    snr, policy = torch.tensor([10.0, 11.0, 12.0]), InferencePolicy()
    out = correct_batch(stub, batch, mean, std, torch.ones(2), snr_db=snr, policy=policy)
    _, kwargs = stub.calls[0]
    assert kwargs.keys() == {"snr_db", "policy"} and kwargs["snr_db"] is snr and kwargs["policy"] is policy
    assert out.scores is not None and out.scores.tolist() == [[0.25, 0.25]] * 3
    correct_batch(stub, batch, mean, std, torch.ones(2), snr_db=snr)
    assert stub.calls[1][1].keys() == {"snr_db"}
    correct_batch(stub, batch, mean, std, torch.ones(2), policy=policy)
    assert stub.calls[2][1].keys() == {"policy"}
    # zero residuals: the input itself
    np.testing.assert_allclose(out.image.numpy(), batch.numpy(), rtol=0, atol=1e-4 * float(batch.abs().max()))
    plain = correct_batch(Plain(), batch, mean, std, torch.tensor([1.0, 1.0]))
    assert plain.scores is None and plain.residuals.shape == (3, 2, 12, 10)


def test_correct_batch_runs_the_model_at_the_working_shape_and_resizes_the_residuals_back() -> None:
    batch = _stack(seed=2)
    mean, std = _moments(batch)
    stub = Stub((0.5,), (0.0,))
    out = correct_batch(stub, batch, mean, std, torch.ones(1), work_shape=(16, 14))
    assert stub.calls[0][0] == (3, 1, 16, 14)
    u = ((batch - mean[:, None, None]) / std[:, None, None]).double()
    back = fourier_resize(fourier_resize(u, (16, 14)), (12, 10))
    expected = 0.5 * back * std.double()[:, None, None]
    np.testing.assert_allclose(out.residuals[:, 0].numpy(), expected.numpy(), atol=1e-4 * float(std.max()))
    assert out.image.shape == batch.shape
    stub.calls.clear()
    correct_batch(stub, batch, mean, std, torch.ones(1), work_shape=(12, 10))
    assert stub.calls[0][0] == (3, 1, 12, 10)
    coarse = correct_batch(stub, batch, mean, std, torch.ones(1), work_shape=(8, 6))  # smaller than native
    assert stub.calls[1][0] == (3, 1, 8, 6) and coarse.residuals.shape == (3, 1, 12, 10)
    back = fourier_resize(fourier_resize(u, (8, 6)), (12, 10))
    np.testing.assert_allclose(
        coarse.residuals[:, 0].numpy(), (0.5 * back * std.double()[:, None, None]).numpy(), atol=1e-4 * float(std.max())
    )


# --------------------------------------------------------------------------- scan SNR and model input


def test_scan_snr_skips_infinite_and_nan_estimates() -> None:
    assert scan_snr_db(np.array([np.inf, 3.0, -np.inf, 9.0, np.nan])) == 6.0
    assert scan_snr_db(np.array([np.inf, -np.inf])) is None
    assert isinstance(scan_snr_db(np.array([4, 5])), float)


def test_model_input_is_the_z_normalised_slice_resized_only_when_the_shape_differs() -> None:
    batch = _stack(seed=3)
    mean, std = _moments(batch)
    u = model_input(batch, mean, std, None)
    np.testing.assert_allclose(u.double().numpy(), _zn(batch.double().numpy()), atol=1e-5)
    assert torch.equal(model_input(batch, mean, std, (12, 10)), u)
    resized = model_input(batch, mean, std, (8, 10))
    assert resized.shape == (3, 8, 10)
    torch.testing.assert_close(resized, fourier_resize(u, (8, 10)))
    assert model_input(batch, mean, std, (12, 6)).shape == (3, 12, 6)
    # a working shape that repeats one native side (12x10 slices at 10x10 or 12x12) is still a different shape...
    # ...and so is one that repeats the batch size (3 slices): the slice is (H, W), whatever the batch
    for shape in ((10, 10), (12, 12), (3, 10), (12, 3)):
        torch.testing.assert_close(model_input(batch, mean, std, shape), fourier_resize(u, shape))


# ---------------------------------------------------------------------------------------- qc_batch


class QCStub(nn.Module):
    """A model with the attributes qc_batch reads; ``detect`` records its calls."""

    def __init__(self, policy: InferencePolicy, detector: bool, heads: tuple[str, ...] = HEADS) -> None:
        super().__init__()
        self.policy = policy
        self.detector = object() if detector else None
        self.head_names = heads
        self.detected: list[tuple[tuple[int, ...], dict[str, Any]]] = []

    def detect(self, x: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        self.detected.append((tuple(x.shape), kwargs))
        return torch.full((x.shape[0], len(self.head_names)), 0.5)


def _truncated_rows(n: int = 64, seed: int = 4) -> torch.Tensor:
    """Two slices whose k-space lost its outer quarter of rows on either side (columns all measured)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:n, :n]
    image = np.exp(-(((yy - n / 2) / 10.0) ** 2 + ((xx - n / 2) / 14.0) ** 2)) + rng.random((2, n, n))
    k = np.fft.fftshift(np.fft.fft2(image), axes=(-2, -1))
    k[:, : n // 4], k[:, -n // 4 :] = 0, 0
    return torch.from_numpy(np.abs(np.fft.ifft2(np.fft.ifftshift(k, axes=(-2, -1)))).astype(np.float32))


def test_qc_batch_runs_no_step_a_model_lacks() -> None:
    batch = _stack(seed=5)
    mean, std = _moments(batch)
    model = QCStub(InferencePolicy(), detector=False)
    assert tuple(qc_batch(model, batch, mean, std)) == (None, None, None)
    gated = QCStub(InferencePolicy(), detector=True)
    assert tuple(qc_batch(gated, batch, mean, std, detect=False)) == (None, None, None)
    assert gated.detected == []
    # consistency without a subsampling head: no window
    no_sub = QCStub(InferencePolicy(consistency=True), detector=False, heads=("bias", "noise"))
    assert qc_batch(no_sub, batch, mean, std).window is None


def test_qc_batch_detects_at_the_working_shape_with_the_given_snr_and_policy() -> None:
    batch = _stack(seed=6)
    mean, std = _moments(batch)
    model = QCStub(InferencePolicy(), detector=True)
    scores = qc_batch(model, batch, mean, std, work_shape=(8, 8))
    assert scores.detection is not None and scores.detection.shape == (3, 4)
    assert scores.window is None and scores.snr_db is None
    ((shape, kwargs),) = model.detected
    assert shape == (3, 1, 8, 8) and kwargs["snr_db"] is None and kwargs["policy"] is model.policy
    other, snr = InferencePolicy(gated=False), torch.tensor([1.0, 2.0, 3.0])
    qc_batch(model, batch, mean, std, snr_db=snr, policy=other)
    assert model.detected[1][1]["policy"] is other and model.detected[1][1]["snr_db"] is snr


def test_qc_batch_window_is_the_measured_fraction_of_rows_then_columns() -> None:
    batch = _truncated_rows()
    mean, std = _moments(batch)
    model = QCStub(InferencePolicy(consistency=True), detector=False)
    scores = qc_batch(model, batch, mean, std)
    assert scores.detection is None and scores.snr_db is None and scores.window is not None
    assert scores.window.shape == (2, 2)
    measured = measured_window(model_input(batch, mean, std, None))
    assert scores.window[:, 0].tolist() == measured.any(dim=-1).float().mean(dim=-1).tolist()
    assert scores.window[:, 1].tolist() == [1.0, 1.0]  # every column measured
    assert all(0.4 <= v <= 0.6 for v in scores.window[:, 0].tolist())  # about half the rows


def test_qc_batch_estimates_the_snr_only_when_the_noise_gate_needs_it_and_none_is_given() -> None:
    batch = _stack(seed=7)
    mean, std = _moments(batch)
    model = QCStub(InferencePolicy(noise_snr=(5.0, 10.0)), detector=False)
    scores = qc_batch(model, batch, mean, std)
    assert scores.snr_db is not None
    torch.testing.assert_close(scores.snr_db, estimated_snr_db(model_input(batch, mean, std, None)))
    assert scores.detection is None and scores.window is None
    assert qc_batch(model, batch, mean, std, snr_db=torch.zeros(3)).snr_db is None
    # the policy passed in, not the model's, decides
    assert qc_batch(model, batch, mean, std, policy=InferencePolicy()).snr_db is None
