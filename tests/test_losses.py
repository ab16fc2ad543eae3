"""Tests of artefix.losses: Table 1 kernels, convolutional loss LC, multi-task loss (Eq. 6)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from scipy import signal
from torch import nn

from artefix.losses import (
    ALPHA_PRESETS,
    DELTA_PRESETS,
    KERNEL_DIVISORS,
    KERNEL_NAMES,
    ConvolutionalLoss,
    MultiTaskLoss,
    MultiTaskLossOutput,
    conv_loss,
    deltas_from_preset,
    kernel_responses,
    kernels,
)

# Table 1 of the paper (PAPER_SPEC.md "Losses"), retyped independently of the implementation.
TABLE1 = {
    "E": [[0, 0, 0], [0, 1, 0], [0, 0, 0]],
    "PT": [[-1, -1, -1], [0, 0, 0], [1, 1, 1]],
    "PR": [[1, 0, -1], [1, 0, -1], [1, 0, -1]],
    "S3T": [[-1, -2, -1], [0, 0, 0], [1, 2, 1]],
    "S3R": [[1, 0, -1], [2, 0, -2], [1, 0, -1]],
    "S5T": [
        [-2, -2, -4, -2, -2],
        [-1, -1, -2, -1, -1],
        [0, 0, 0, 0, 0],
        [1, 1, 2, 1, 1],
        [2, 2, 4, 2, 2],
    ],
    "S5R": [
        [2, 1, 0, -1, -2],
        [2, 1, 0, -1, -2],
        [4, 2, 0, -2, -4],
        [2, 1, 0, -1, -2],
        [2, 1, 0, -1, -2],
    ],
    "L3": [[0, -1, 0], [-1, 4, -1], [0, -1, 0]],
    "L5": [
        [0, 0, -1, 0, 0],
        [0, -1, -2, -1, 0],
        [-1, -2, 16, -2, -1],
        [0, -1, -2, -1, 0],
        [0, 0, -1, 0, 0],
    ],
}
# The authors' code's divisors.
DIVISORS = {"E": 1, "PT": 6, "PR": 6, "S3T": 8, "S3R": 8, "S5T": 36, "S5R": 36, "L3": 8, "L5": 32}
# Table 2: deltas of the MT+LC (brain) and Pelvis MT+LC columns, and alpha of every column.
TABLE2_BRAIN = [0.30, 0.83, 0.25, 0.74, 0.30, 0.21, 0.72, 0.09, 0.82]
TABLE2_PELVIS = [0.13, 0.23, 0.03, 0.84, 0.23, 0.14, 0.91, 0.38, 0.77]
TABLE2_ALPHA = {
    "bias": 0.60,
    "subsampling": 0.48,
    "motion": 0.59,
    "noise": 0.85,
    "mt": 0.51,
    "mt_lc_brain": 0.87,
    "mt_lc_pelvis": 0.89,
}
NAMES = ["E", "PT", "PR", "S3T", "S3R", "S5T", "S5R", "L3", "L5"]


def padded(name: str, normalise: bool) -> np.ndarray:
    """The 5x5 (zero-padded) float64 kernel, built from the retyped table."""
    raw = np.array(TABLE1[name], dtype=np.float64)
    out = np.zeros((5, 5))
    off = (5 - raw.shape[0]) // 2
    out[off : off + raw.shape[0], off : off + raw.shape[1]] = raw
    return out / DIVISORS[name] if normalise else out


def loop_terms(x: np.ndarray, y: np.ndarray, normalise: bool) -> np.ndarray:
    """Reference: 'valid' 5x5 cross-correlation of x - y by explicit loops, mean of squares per kernel."""
    d = (x - y).reshape(-1, x.shape[-2], x.shape[-1])
    n, h, w = d.shape
    out = np.zeros(len(NAMES))
    for k, name in enumerate(NAMES):
        ker = padded(name, normalise)
        acc = 0.0
        for b in range(n):
            for i in range(h - 4):
                for j in range(w - 4):
                    r = 0.0
                    for a in range(5):
                        for c in range(5):
                            r += ker[a, c] * d[b, i + a, j + c]
                    acc += r * r
        out[k] = acc / (n * (h - 4) * (w - 4))
    return out


def np_znorm(x: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=(-2, -1), keepdims=True)
    std = x.std(axis=(-2, -1), keepdims=True)
    return (x - mean) / std


def rand(shape: tuple[int, ...], seed: int, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(seed).standard_normal(shape)).to(dtype)


# ----------------------------------------------------------------------------------------- kernels


def test_kernel_names_and_shape() -> None:
    assert KERNEL_NAMES == tuple(NAMES)
    k = kernels()
    assert k.shape == (9, 1, 5, 5)
    assert k.dtype == torch.float32
    assert kernels(dtype=torch.float64).dtype == torch.float64


@pytest.mark.parametrize("normalise", [False, True])
def test_kernels_equal_table1(normalise: bool) -> None:
    k = kernels(normalise, dtype=torch.float64).numpy()
    for i, name in enumerate(NAMES):
        np.testing.assert_array_equal(k[i, 0], padded(name, normalise), err_msg=name)
    assert dict(KERNEL_DIVISORS) == DIVISORS


def test_normalised_kernels_sum_and_abs_sum() -> None:
    k = kernels(dtype=torch.float64).numpy()[:, 0]
    # Every divisor is the sum of absolute weights; every kernel but the identity sums to zero.
    np.testing.assert_allclose(np.abs(k).sum(axis=(1, 2)), np.ones(9), rtol=0, atol=1e-15)
    np.testing.assert_allclose(k.sum(axis=(1, 2))[1:], np.zeros(8), atol=1e-15)
    # 3x3 kernels live in the centre of the 5x5 support.
    for i, name in enumerate(NAMES):
        if len(TABLE1[name]) == 3:
            assert np.all(k[i, [0, 4], :] == 0) and np.all(k[i, :, [0, 4]] == 0)


# ------------------------------------------------------------------------------- convolutional loss


@pytest.mark.parametrize("normalise", [False, True])
def test_identity_only_is_mse_of_images_cropped_by_2px(normalise: bool) -> None:
    x, y = rand((3, 1, 11, 13), 0), rand((3, 1, 11, 13), 1)
    expected = F.mse_loss(x[..., 2:-2, 2:-2], y[..., 2:-2, 2:-2])
    for loss in (ConvolutionalLoss("mse", normalise=normalise), ConvolutionalLoss({"E": 1.0})):
        torch.testing.assert_close(loss(x, y), expected, rtol=1e-12, atol=0)
    torch.testing.assert_close(conv_loss(x, y, "E", normalise=normalise), expected, rtol=1e-12, atol=0)
    # Not the full-image MSE: the border is excluded.
    assert not torch.isclose(ConvolutionalLoss("mse")(x, y), F.mse_loss(x, y))


# One pixel of value 1 at (2, 2) in a 6x6 image, y = 0: the 'valid' grid is 2x2 and the responses are
# I[2, 2], I[2, 1], I[1, 2], I[1, 1] of the 5x5 kernel (cross-correlation), worked out by hand:
# e.g. L5: (16^2 + 2^2 + 2^2 + 1^2) / 32^2 / 4 = 265 / 4096.
HAND_NORMALISED = {
    "E": Fraction(1, 4),
    "PT": Fraction(2, 36 * 4),
    "PR": Fraction(2, 36 * 4),
    "S3T": Fraction(5, 64 * 4),
    "S3R": Fraction(5, 64 * 4),
    "S5T": Fraction(5, 1296 * 4),
    "S5R": Fraction(5, 1296 * 4),
    "L3": Fraction(18, 64 * 4),
    "L5": Fraction(265, 1024 * 4),
}


def test_hand_computed_single_pixel() -> None:
    x = torch.zeros(1, 1, 6, 6, dtype=torch.float64)
    x[0, 0, 2, 2] = 3.0
    y = torch.zeros_like(x)
    expected = np.array([9 * float(HAND_NORMALISED[n]) for n in NAMES])
    np.testing.assert_allclose(ConvolutionalLoss("mse").terms(x, y).numpy(), expected, rtol=1e-13)
    raw = np.array([9 * float(HAND_NORMALISED[n]) * DIVISORS[n] ** 2 for n in NAMES])
    np.testing.assert_allclose(ConvolutionalLoss("mse", normalise=False).terms(x, y).numpy(), raw, rtol=1e-13)
    for k, name in enumerate(NAMES):
        assert conv_loss(x, y, name).item() == pytest.approx(expected[k], rel=1e-13)
    # The weighted sum with the brain MT+LC deltas.
    lc = ConvolutionalLoss("mt_lc_brain")(x, y).item()
    assert lc == pytest.approx(float(np.dot(TABLE2_BRAIN, expected)), rel=1e-13)


@pytest.mark.parametrize("normalise", [False, True])
def test_terms_match_explicit_loop_reference(normalise: bool) -> None:
    x, y = rand((2, 1, 7, 9), 2), rand((2, 1, 7, 9), 3)
    got = ConvolutionalLoss("mse", normalise=normalise).terms(x, y).numpy()
    np.testing.assert_allclose(got, loop_terms(x.numpy(), y.numpy(), normalise), rtol=1e-12)


def test_cross_correlation_and_convolution_give_the_same_loss() -> None:
    x, y = rand((1, 1, 12, 10), 4), rand((1, 1, 12, 10), 5)
    d = (x - y)[0, 0].numpy()
    resp = kernel_responses(x - y)[0].numpy()
    terms = ConvolutionalLoss("mse").terms(x, y).numpy()
    for k, name in enumerate(NAMES):
        ker = padded(name, True)
        # The implementation is a cross-correlation ...
        np.testing.assert_allclose(resp[k], signal.correlate2d(d, ker, mode="valid"), atol=1e-12)
        # ... and the flipped (true) convolution differs by a sign at most, so the loss is the same.
        conv = signal.convolve2d(d, ker, mode="valid")
        assert terms[k] == pytest.approx(np.mean(conv**2), rel=1e-12)


def test_signed_responses_orientation() -> None:
    i, j = torch.meshgrid(torch.arange(8.0), torch.arange(9.0), indexing="ij")
    down = kernel_responses(i.double()[None, None])[0]
    right = kernel_responses(j.double()[None, None])[0]
    # "Top" kernels: x[i + 1] - x[i - 1] (normalised Prewitt/Sobel 3x3 give the unit slope).
    assert torch.allclose(down[NAMES.index("PT")], torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(down[NAMES.index("S3T")], torch.tensor(1.0, dtype=torch.float64))
    # "Right" kernels: x[j - 1] - x[j + 1].
    assert torch.allclose(right[NAMES.index("PR")], torch.tensor(-1.0, dtype=torch.float64))
    assert torch.allclose(right[NAMES.index("S3R")], torch.tensor(-1.0, dtype=torch.float64))
    assert down.shape == (9, 4, 5)


def test_edge_kernels_zero_for_constant_offset() -> None:
    x = rand((2, 1, 10, 11), 6)
    terms = ConvolutionalLoss("mse").terms(x, x + 2.5).numpy()
    assert terms[0] == pytest.approx(2.5**2, rel=1e-12)
    np.testing.assert_allclose(terms[1:], 0.0, atol=1e-24)
    raw = ConvolutionalLoss("mse", normalise=False).terms(x, x - 7.0).numpy()
    np.testing.assert_allclose(raw[1:], 0.0, atol=1e-20)


@pytest.mark.parametrize(("a", "b", "c"), [(0.3, -0.7, 1.5), (2.0, 0.0, -1.0), (0.0, 1.2, 0.4)])
def test_laplace_zero_for_linear_ramp_edges_not(a: float, b: float, c: float) -> None:
    x = rand((2, 1, 9, 12), 7)
    i, j = torch.meshgrid(torch.arange(9, dtype=torch.float64), torch.arange(12, dtype=torch.float64), indexing="ij")
    y = x + (a * i + b * j + c)
    t = dict(zip(NAMES, ConvolutionalLoss("mse").terms(x, y).tolist(), strict=True))
    assert t["L3"] == pytest.approx(0.0, abs=1e-24)
    assert t["L5"] == pytest.approx(0.0, abs=1e-24)
    # Edge kernels see the slope in their direction (values from sum_ab I[a, b] * offset):
    # Prewitt/Sobel 3x3 normalised give the slope itself, Sobel 5x5 gives 60/36 = 5/3 of it;
    # they are blind to the perpendicular slope.
    for name, expected in [
        ("PT", a**2),
        ("S3T", a**2),
        ("S5T", (5 * a / 3) ** 2),
        ("PR", b**2),
        ("S3R", b**2),
        ("S5R", (5 * b / 3) ** 2),
    ]:
        assert t[name] == pytest.approx(expected, rel=1e-10, abs=1e-24), name
    if a != 0:
        assert t["PT"] > 0 and t["S3T"] > 0 and t["S5T"] > 0
    if b != 0:
        assert t["PR"] > 0 and t["S3R"] > 0 and t["S5R"] > 0


def test_conv_loss_with_custom_kernel_crops_by_its_own_size() -> None:
    x, y = rand((2, 1, 8, 8), 8), rand((2, 1, 8, 8), 9)
    ident3 = torch.zeros(3, 3, dtype=torch.float64)
    ident3[1, 1] = 1
    expected = F.mse_loss(x[..., 1:-1, 1:-1], y[..., 1:-1, 1:-1])
    torch.testing.assert_close(conv_loss(x, y, ident3), expected, rtol=1e-12, atol=0)
    lap = torch.tensor(TABLE1["L3"], dtype=torch.float64)
    ref = np.mean(signal.correlate2d((x - y)[0, 0].numpy(), lap.numpy(), mode="valid") ** 2)
    assert conv_loss(x[:1], y[:1], lap).item() == pytest.approx(ref, rel=1e-12)


def test_forward_is_weighted_sum_of_terms_and_symmetric() -> None:
    x, y = rand((2, 1, 16, 16), 10), rand((2, 1, 16, 16), 11)
    loss = ConvolutionalLoss("mt_lc_pelvis")
    terms = loss.terms(x, y)
    assert terms.shape == (9,) and bool((terms > 0).all())
    torch.testing.assert_close(loss(x, y), (torch.tensor(TABLE2_PELVIS, dtype=torch.float64) * terms).sum())
    torch.testing.assert_close(loss(x, y), loss(y, x))
    assert loss(x, x).item() == 0.0


def test_deltas_forms_and_buffer() -> None:
    expected = torch.tensor(TABLE2_BRAIN, dtype=torch.float64)
    for d in (
        "mt_lc_brain",
        dict(zip(NAMES, TABLE2_BRAIN, strict=True)),
        TABLE2_BRAIN,
        tuple(TABLE2_BRAIN),
        np.array(TABLE2_BRAIN),
        torch.tensor(TABLE2_BRAIN, dtype=torch.float64),
    ):
        torch.testing.assert_close(ConvolutionalLoss(d).deltas, expected, rtol=0, atol=0)
    partial = ConvolutionalLoss({"PT": 0.5, "L5": 2.0}).deltas.tolist()
    assert partial == [0, 0.5, 0, 0, 0, 0, 0, 0, 2.0]
    loss = ConvolutionalLoss("mt_lc_pelvis")
    assert "deltas" in dict(loss.named_buffers())
    assert set(loss.state_dict()) == {"deltas"}
    fresh = ConvolutionalLoss("mse")
    fresh.load_state_dict(loss.state_dict())
    assert fresh.deltas.tolist() == TABLE2_PELVIS


@pytest.mark.parametrize(
    ("deltas", "match"),
    [
        ({"XX": 1.0}, "XX"),
        ([1.0] * 8, "9 values"),
        ([1.0] * 8 + [-0.1], "L5"),
        ({"PR": float("nan")}, "PR"),
        ("mt_lc_knee", "mt_lc_knee"),
    ],
)
def test_bad_deltas_raise(deltas: object, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        ConvolutionalLoss(deltas)  # type: ignore[arg-type]


def test_bad_inputs_raise() -> None:
    loss = ConvolutionalLoss()
    with pytest.raises(ValueError, match="same shape"):
        loss(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match="at least 5x5"):
        loss(torch.zeros(1, 1, 4, 8), torch.zeros(1, 1, 4, 8))
    with pytest.raises(ValueError, match="unknown kernel"):
        conv_loss(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), "Q")
    with pytest.raises(ValueError, match="real floating"):
        loss(torch.zeros(1, 1, 8, 8, dtype=torch.complex64), torch.zeros(1, 1, 8, 8, dtype=torch.complex64))


def test_dtype_follows_input() -> None:
    x32, y32 = rand((1, 1, 8, 8), 12, torch.float32), rand((1, 1, 8, 8), 13, torch.float32)
    loss = ConvolutionalLoss()
    assert loss(x32, y32).dtype == torch.float32
    out64 = loss(x32.double(), y32.double())
    assert out64.dtype == torch.float64
    assert loss(x32, y32).item() == pytest.approx(out64.item(), rel=1e-5)


def test_presets_equal_table2() -> None:
    assert set(DELTA_PRESETS) == {"mse", "mt_lc_brain", "mt_lc_pelvis"}
    assert [DELTA_PRESETS["mse"][n] for n in NAMES] == [1, 0, 0, 0, 0, 0, 0, 0, 0]
    assert [DELTA_PRESETS["mt_lc_brain"][n] for n in NAMES] == TABLE2_BRAIN
    assert [DELTA_PRESETS["mt_lc_pelvis"][n] for n in NAMES] == TABLE2_PELVIS
    d = deltas_from_preset("mt_lc_brain")
    d["E"] = 99.0  # a copy: the preset is untouched
    assert DELTA_PRESETS["mt_lc_brain"]["E"] == 0.30
    assert dict(ALPHA_PRESETS) == TABLE2_ALPHA
    with pytest.raises(ValueError, match="nope"):
        deltas_from_preset("nope")
    for name, alpha in TABLE2_ALPHA.items():
        mt = MultiTaskLoss.from_preset(name)
        assert mt.alpha == alpha
        expected = TABLE2_PELVIS if name == "mt_lc_pelvis" else TABLE2_BRAIN if name == "mt_lc_brain" else None
        got = mt.criterion.deltas.tolist()
        if expected is None:
            assert got == [1, 0, 0, 0, 0, 0, 0, 0, 0]
        else:
            assert got == expected


def test_gradcheck_convolutional_loss() -> None:
    x = rand((2, 1, 6, 7), 14).requires_grad_()
    y = rand((2, 1, 6, 7), 15).requires_grad_()
    loss = ConvolutionalLoss("mt_lc_brain").double()
    assert torch.autograd.gradcheck(loss, (x, y))


# ---------------------------------------------------------------------------------- multi-task loss


def test_multitask_value_against_numpy() -> None:
    b, h, w = 3, 9, 10
    v, u, p = rand((b, 1, h, w), 16), rand((b, 1, h, w), 17), rand((b, 4, h, w), 18)
    y = torch.tensor([2, 0, 3])
    alpha = 0.87
    out = MultiTaskLoss("mt_lc_brain", alpha=alpha)(v, u, p, y)
    assert isinstance(out, MultiTaskLossOutput)
    pn, un, vn = p.numpy(), u.numpy(), v.numpy()
    pred = np_znorm(un[:, 0] + pn[np.arange(b), y.numpy()])
    ref = loop_terms(pred, np_znorm(vn[:, 0]), normalise=True)
    reconstruction = float(np.dot(TABLE2_BRAIN, ref))
    regulariser = alpha * sum(np.mean(pn[s, i] ** 2) for s in range(b) for i in range(4)) / b
    assert out.reconstruction.item() == pytest.approx(reconstruction, rel=1e-12)
    assert out.regulariser.item() == pytest.approx(regulariser, rel=1e-12)
    assert out.total.item() == pytest.approx(reconstruction + regulariser, rel=1e-12)


def test_multitask_zero_when_selected_residual_restores_target_up_to_affine() -> None:
    v = rand((2, 1, 8, 8), 19)
    u = rand((2, 1, 8, 8), 20)
    p = rand((2, 4, 8, 8), 21)
    y = torch.tensor([1, 3])
    # Make u + p_y = 3 v + 2 per sample: Z-normalisation maps it onto Znorm(v).
    for s, k in enumerate(y.tolist()):
        p[s, k] = 3 * v[s, 0] + 2 - u[s, 0]
    out = MultiTaskLoss("mt_lc_pelvis", alpha=0.0)(5 * v - 1, u, p, y)
    assert out.reconstruction.item() == pytest.approx(0.0, abs=1e-20)
    assert out.regulariser.item() == 0.0
    # Any other head selection does not restore it.
    assert MultiTaskLoss(alpha=0.0)(v, u, p, torch.tensor([0, 2])).total.item() > 0.1


def test_only_selected_heads_receive_gradient() -> None:
    c, h, w = 5, 8, 8
    features = rand((3, c, h, w), 22, torch.float32)
    heads = nn.Conv2d(c, 4, kernel_size=1)
    v, u = rand((3, 1, h, w), 23, torch.float32), rand((3, 1, h, w), 24, torch.float32)
    y = torch.tensor([1, 3, 1])
    residuals = heads(features)
    residuals.retain_grad()
    MultiTaskLoss("mt_lc_brain", alpha=0.0)(v, u, residuals, y).total.backward()
    g = residuals.grad
    for s in range(3):
        for i in range(4):
            norm = g[s, i].abs().sum().item()
            assert (norm > 0) if i == int(y[s]) else (norm == 0.0), (s, i)
    row_norm = heads.weight.grad.flatten(1).abs().sum(1)
    assert row_norm[0].item() == 0.0 and row_norm[2].item() == 0.0
    assert row_norm[1].item() > 0 and row_norm[3].item() > 0
    assert heads.bias.grad[0].item() == 0.0 and heads.bias.grad[2].item() == 0.0

    # Four separate 1x1 heads: the same, head by head.
    sep = nn.ModuleList(nn.Conv2d(c, 1, 1) for _ in range(4))
    res = torch.cat([hd(features) for hd in sep], dim=1)
    MultiTaskLoss(alpha=0.0)(v, u, res, torch.tensor([0, 0, 2])).total.backward()
    assert [float(hd.weight.grad.abs().sum()) > 0 for hd in sep] == [True, False, True, False]

    # With the regulariser on, every head is pulled towards zero.
    heads.zero_grad()
    MultiTaskLoss("mt_lc_brain", alpha=0.5)(v, u, heads(features), y).total.backward()
    assert bool((heads.weight.grad.flatten(1).abs().sum(1) > 0).all())


def test_single_task_and_mask_forms() -> None:
    v, u, p = rand((2, 1, 7, 7), 25), rand((2, 1, 7, 7), 26), rand((2, 4, 7, 7), 27)
    loss = MultiTaskLoss("mt_lc_brain", alpha=0.3)
    single = loss(v, u, p[:, 2:3])  # one residual head, no index needed
    pick = loss(v, u, p, torch.tensor([2, 2]))
    torch.testing.assert_close(single.reconstruction, pick.reconstruction)
    assert single.regulariser.item() == pytest.approx(0.3 * float(p[:, 2].square().mean()), rel=1e-12)
    torch.testing.assert_close(loss(v, u, p[:, :1], torch.tensor([3, 0])), loss(v, u, p[:, :1]))
    # A (B, n) mask selects several heads per sample; an index is the one-hot special case.
    mask = torch.tensor([[True, False, True, False], [False, False, False, True]])
    multi = loss(v, u, p, mask)
    summed = torch.stack([p[0, 0] + p[0, 2], p[1, 3]])[:, None]
    torch.testing.assert_close(multi.reconstruction, loss(v, u + summed, torch.zeros_like(p[:, :1])).reconstruction)
    onehot = F.one_hot(torch.tensor([1, 0]), 4)
    torch.testing.assert_close(loss(v, u, p, onehot), loss(v, u, p, torch.tensor([1, 0])))


def test_criterion_override_and_target_normalisation() -> None:
    v, u, p = rand((2, 1, 8, 8), 28), rand((2, 1, 8, 8), 29), rand((2, 4, 8, 8), 30)
    y = torch.tensor([0, 1])
    out = MultiTaskLoss(criterion=nn.MSELoss())(v, u, p, y)
    pred = np_znorm(u.numpy()[:, 0] + p.numpy()[[0, 1], [0, 1]])
    assert out.reconstruction.item() == pytest.approx(np.mean((pred - np_znorm(v.numpy()[:, 0])) ** 2))
    raw = MultiTaskLoss(criterion=nn.MSELoss(), znorm_target=False)(v, u, p, y)
    assert raw.reconstruction.item() == pytest.approx(np.mean((pred - v.numpy()[:, 0]) ** 2))
    default = MultiTaskLoss()
    assert default.criterion.deltas.tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0]


def test_gradcheck_multitask_loss() -> None:
    v = rand((2, 1, 6, 6), 31)
    u = rand((2, 1, 6, 6), 32).requires_grad_()
    p = rand((2, 4, 6, 6), 33).requires_grad_()
    loss = MultiTaskLoss("mt_lc_pelvis", alpha=0.89).double()
    y = torch.tensor([3, 1])
    assert torch.autograd.gradcheck(lambda uu, pp: loss(v, uu, pp, y).total, (u, p))


@pytest.mark.parametrize(
    ("kwargs", "call", "match"),
    [
        ({"alpha": -0.1}, None, "alpha"),
        ({"deltas": "mse", "criterion": nn.MSELoss()}, None, "not both"),
        ({}, ((2, 1, 8, 8), (2, 1, 8, 8), (2, 4, 8, 8), None), "artefact_index is required"),
        ({}, ((2, 1, 8, 8), (2, 1, 8, 8), (2, 4, 8, 8), [0, 4]), r"\[0, 4\)"),
        ({}, ((2, 1, 8, 8), (2, 1, 8, 8), (2, 4, 8, 8), [0, 1, 2]), r"shape \(2,\)"),
        ({}, ((2, 1, 8, 8), (2, 1, 8, 9), (2, 4, 8, 8), [0, 1]), "corrupted"),
        ({}, ((2, 2, 8, 8), (2, 1, 8, 8), (2, 4, 8, 8), [0, 1]), "target"),
        ({}, ((2, 1, 8, 8), (2, 1, 8, 8), (2, 4, 8), [0, 1]), "residuals"),
    ],
)
def test_multitask_bad_arguments_raise(kwargs: dict, call: tuple | None, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        loss = MultiTaskLoss(**kwargs)
        assert call is not None
        t, c, r, idx = call
        index = None if idx is None else torch.tensor(idx)
        loss(torch.zeros(t), torch.zeros(c), torch.zeros(r), index)


# ------------------------------------------------------------------------------- re-exported metrics


def test_torch_metrics_are_re_exported_from_their_old_path() -> None:
    import artefix.losses
    from artefix.metrics import torch_metrics

    for name in ("quality_deficit", "ssim_torch", "vifp_torch", "_filter_valid", "_gaussian_window"):
        assert getattr(artefix.losses, name) is getattr(torch_metrics, name), name
    assert {"quality_deficit", "ssim_torch", "vifp_torch"} <= set(artefix.losses.__all__)


# ------------------------------------------------------------------- input forms and their limits


def test_two_and_three_dimensional_inputs_are_batches_of_single_images() -> None:
    x, y = rand((3, 1, 9, 8), 34), rand((3, 1, 9, 8), 35)
    loss = ConvolutionalLoss("mt_lc_brain")
    torch.testing.assert_close(loss(x[:, 0], y[:, 0]), loss(x, y), rtol=1e-14, atol=0)
    torch.testing.assert_close(loss(x[0, 0], y[0, 0]), loss(x[:1], y[:1]), rtol=1e-14, atol=0)
    torch.testing.assert_close(loss.terms(x[:, 0], y[:, 0]), loss.terms(x, y), rtol=1e-14, atol=0)
    assert kernel_responses(x[0, 0]).shape == (1, 9, 5, 4)
    assert kernel_responses(x[:, 0]).shape == (3, 9, 5, 4)
    torch.testing.assert_close(kernel_responses(x[:, 0]), kernel_responses(x), rtol=0, atol=0)
    torch.testing.assert_close(conv_loss(x[:, 0], y[:, 0], "L5"), conv_loss(x, y, "L5"), rtol=1e-14, atol=0)
    torch.testing.assert_close(conv_loss(x[0, 0], y[0, 0], "PT"), conv_loss(x[:1], y[:1], "PT"), rtol=1e-14, atol=0)


def test_the_smallest_image_is_5x5_along_both_axes() -> None:
    x, y = rand((2, 1, 5, 5), 36), rand((2, 1, 5, 5), 37)
    assert kernel_responses(x).shape == (2, 9, 1, 1)
    np.testing.assert_allclose(ConvolutionalLoss("mse").terms(x, y).numpy(), loop_terms(x.numpy(), y.numpy(), True))
    for shape in ((2, 1, 5, 4), (2, 1, 4, 5), (5, 4), (4, 5)):
        with pytest.raises(ValueError, match="at least 5x5"):
            ConvolutionalLoss()(torch.zeros(shape), torch.zeros(shape))
        with pytest.raises(ValueError, match="at least 5x5"):
            kernel_responses(torch.zeros(shape))
        with pytest.raises(ValueError, match="at least 5x5"):
            conv_loss(torch.zeros(shape), torch.zeros(shape), "E")


def test_inputs_that_are_not_real_floating_tensors_raise() -> None:
    for bad in (torch.zeros(8, 8, dtype=torch.int64), torch.zeros(8, 8, dtype=torch.bool), torch.zeros(8)):
        with pytest.raises(ValueError, match=r"real floating \(B, 1, H, W\) tensor"):
            kernel_responses(bad)
    with pytest.raises(ValueError, match="must be a torch.Tensor, got ndarray"):
        kernel_responses(np.zeros((8, 8)))  # type: ignore[arg-type]
    ints = torch.ones(1, 1, 8, 8, dtype=torch.int32)
    with pytest.raises(ValueError, match=r"y must be a real floating"):
        conv_loss(torch.zeros(1, 1, 8, 8), ints, torch.ones(3, 3))


def test_conv_loss_refuses_a_kernel_that_is_not_a_name_or_a_2d_tensor() -> None:
    x = torch.zeros(1, 1, 8, 8)
    with pytest.raises(ValueError, match=r"2D tensor \(kh, kw\), got \(1, 3, 3\)"):
        conv_loss(x, x, torch.ones(1, 3, 3))
    with pytest.raises(ValueError, match=r"2D tensor \(kh, kw\), got \(9,\)"):
        conv_loss(x, x, torch.ones(9))
    with pytest.raises(ValueError, match=r"2D tensor \(kh, kw\), got list"):
        conv_loss(x, x, [[1.0]])  # type: ignore[arg-type]


def test_conv_loss_needs_the_image_as_large_as_the_kernel_along_both_axes() -> None:
    tall, wide = torch.ones(5, 1), torch.ones(1, 5)
    for kernel in (tall, wide):
        for shape in ((1, 1, 4, 8), (1, 1, 8, 4)):
            with pytest.raises(ValueError, match="at least 5x5"):
                conv_loss(torch.zeros(shape), torch.zeros(shape), kernel)
    x, y = rand((1, 1, 5, 5), 38), rand((1, 1, 5, 5), 39)
    expected = ((x - y)[0, 0].sum(dim=0) ** 2).mean()
    torch.testing.assert_close(conv_loss(x, y, tall), expected, rtol=1e-12, atol=0)


# ------------------------------------------------------------------------- multi-task: refusals


@pytest.mark.parametrize("shape", [(2, 3), (2, 5), (1, 4), (3, 4), (2, 4, 1)])
def test_a_mask_of_the_wrong_shape_raises(shape: tuple[int, ...]) -> None:
    v, u, p = torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), torch.zeros(2, 4, 8, 8)
    with pytest.raises(ValueError, match=r"or a mask of shape \(2, 4\)"):
        MultiTaskLoss()(v, u, p, torch.ones(shape, dtype=torch.bool))


def test_a_float_or_boolean_index_is_read_as_a_mask() -> None:
    v, u, p = rand((2, 1, 8, 8), 40), rand((2, 1, 8, 8), 41), rand((2, 4, 8, 8), 42)
    for index in (torch.tensor([1.0, 0.0]), torch.tensor([True, False])):
        with pytest.raises(ValueError, match="mask of shape"):
            MultiTaskLoss()(v, u, p, index)
    one_hot = torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 1.0]])
    torch.testing.assert_close(MultiTaskLoss()(v, u, p, one_hot), MultiTaskLoss()(v, u, p, torch.tensor([1, 3])))


@pytest.mark.parametrize("value", [2.0, -1.0, 0.5])
def test_a_mask_holds_only_0_and_1(value: float) -> None:
    v, u, p = torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), torch.zeros(2, 4, 8, 8)
    mask = torch.zeros(2, 4)
    mask[1, 2] = value
    with pytest.raises(ValueError, match="only 0 and 1"):
        MultiTaskLoss()(v, u, p, mask)


def test_residuals_must_be_four_dimensional_and_alpha_finite() -> None:
    v, u = torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)
    for shape in ((2, 4, 8), (2, 4, 8, 8, 1)):
        with pytest.raises(ValueError, match=r"residuals must have shape \(B, n, H, W\)"):
            MultiTaskLoss()(v, u, torch.zeros(shape), torch.tensor([0, 1]))
    for alpha in (float("nan"), float("inf")):
        with pytest.raises(ValueError, match="alpha must be finite"):
            MultiTaskLoss(alpha=alpha)
    assert MultiTaskLoss(alpha=0).alpha == 0.0


def test_a_scalar_index_raises() -> None:
    v, u, p = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8), torch.zeros(1, 4, 8, 8)
    with pytest.raises(ValueError, match=r"integer indices of shape \(1,\)"):
        MultiTaskLoss()(v, u, p, torch.tensor(2))


def test_kernels_takes_its_dtype_and_device_by_keyword() -> None:
    assert torch.equal(kernels(normalise=False)[1, 0, 1:4, 1:4], torch.tensor(TABLE1["PT"], dtype=torch.float32))
    with pytest.raises(TypeError):
        kernels(True, torch.float64)  # type: ignore[misc]


def test_residuals_with_no_head_are_refused() -> None:
    v, u, p = torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), torch.zeros(2, 0, 8, 8)
    with pytest.raises(ValueError, match="artefact_index is required for residuals with 0 heads"):
        MultiTaskLoss()(v, u, p)
    with pytest.raises(ValueError, match=r"must lie in \[0, 0\)"):
        MultiTaskLoss()(v, u, p, torch.tensor([0, 0]))


def test_images_of_different_shapes_raise_whichever_is_larger() -> None:
    small, large = torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 9)
    for x, y in ((small, large), (large, small), (small, torch.zeros(2, 1, 8, 8)), (torch.zeros(2, 1, 8, 8), small)):
        with pytest.raises(ValueError, match="same shape"):
            ConvolutionalLoss()(x, y)
        with pytest.raises(ValueError, match="same shape"):
            conv_loss(x, y, "E")


def test_an_index_past_the_last_head_raises() -> None:
    v, u, p = torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), torch.zeros(2, 4, 8, 8)
    for index in ([0, 5], [9, 1], [-2, 0], [0, -1]):
        with pytest.raises(ValueError, match=r"must lie in \[0, 4\)"):
            MultiTaskLoss()(v, u, p, torch.tensor(index))


@pytest.mark.parametrize("which", ["target", "corrupted"])
@pytest.mark.parametrize("shape", [(2, 1, 8, 7), (2, 1, 7, 8), (1, 1, 8, 8), (2, 0, 8, 8), (3, 1, 8, 8)])
def test_target_and_input_must_match_the_residuals_smaller_or_larger(which: str, shape: tuple[int, ...]) -> None:
    images = {"target": torch.zeros(2, 1, 8, 8), "corrupted": torch.zeros(2, 1, 8, 8)}
    images[which] = torch.zeros(shape)
    with pytest.raises(ValueError, match=rf"{which} must have shape \(2, 1, 8, 8\)"):
        MultiTaskLoss()(images["target"], images["corrupted"], torch.zeros(2, 4, 8, 8), torch.tensor([0, 1]))


# ------------------------------------------------------------------ mutation check, second run (#23)


def test_more_than_nine_deltas_are_refused() -> None:
    for values in ([0.5] * 10, np.full(12, 0.5), torch.full((3, 4), 0.5)):
        with pytest.raises(ValueError, match="deltas must have 9 values"):
            ConvolutionalLoss(values)  # type: ignore[arg-type]


def test_a_one_dimensional_pair_is_refused_by_the_loss() -> None:
    for loss in (ConvolutionalLoss(), ConvolutionalLoss().terms):
        with pytest.raises(ValueError, match="at least 5x5"):
            loss(torch.zeros(25), torch.zeros(25))


def test_conv_loss_takes_normalise_by_keyword() -> None:
    x, y = rand((1, 1, 6, 6), 43), rand((1, 1, 6, 6), 44)
    assert conv_loss(x, y, "L3", normalise=False).item() == pytest.approx(64 * conv_loss(x, y, "L3").item())
    with pytest.raises(TypeError):
        conv_loss(x, y, "L3", False)  # type: ignore[misc]


def test_the_default_multitask_loss_has_no_regulariser() -> None:
    v, u, p = rand((2, 1, 8, 8), 45), rand((2, 1, 8, 8), 46), rand((2, 4, 8, 8), 47)
    out = MultiTaskLoss()(v, u, p, torch.tensor([1, 2]))
    assert MultiTaskLoss().alpha == 0.0
    assert out.regulariser.item() == 0.0
    assert out.total.item() == out.reconstruction.item() > 0


def test_without_regulariser_an_unselected_head_does_not_enter_the_loss() -> None:
    f32 = torch.float32
    v, u, p = rand((2, 1, 8, 8), 48, f32), rand((2, 1, 8, 8), 49, f32), rand((2, 4, 8, 8), 50, f32)
    huge = p.clone()
    huge[:, 3] = 1e30  # a diverged head that no sample selects: its square overflows float32
    index = torch.tensor([0, 2])
    loss = MultiTaskLoss("mt_lc_brain", alpha=0.0)
    out = loss(v, u, huge, index)
    assert torch.isfinite(out.total) and out.regulariser.item() == 0.0
    torch.testing.assert_close(out.total, loss(v, u, p, index).total, rtol=0, atol=0)


def test_an_index_shorter_than_the_batch_raises() -> None:
    v, u, p = torch.zeros(2, 1, 8, 8), torch.zeros(2, 1, 8, 8), torch.zeros(2, 4, 8, 8)
    with pytest.raises(ValueError, match=r"artefact_index must have shape \(2,\), got \(1,\)"):
        MultiTaskLoss()(v, u, p, torch.tensor([1]))


def test_a_batch_of_300_takes_its_indices() -> None:
    v, u, p = rand((300, 1, 5, 5), 51), rand((300, 1, 5, 5), 52), rand((300, 4, 5, 5), 53)
    index = torch.arange(300) % 4
    mask = F.one_hot(index, 4).double()
    torch.testing.assert_close(MultiTaskLoss()(v, u, p, index), MultiTaskLoss()(v, u, p, mask), rtol=0, atol=0)
