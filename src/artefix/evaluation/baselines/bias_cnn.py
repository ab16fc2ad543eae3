"""The paper's second bias baseline: the implicitly trained bias-field CNN (``bfc``), ported to torch.

Simkó A, Löfstedt T, Garpebring A, Nyholm T, Jonsson J. "MRI bias field correction with an implicitly
trained CNN", MIDL 2022. The authors published the trained Keras model (``IN.h5``, the "ImageNet-based"
model of the paper, repository attilasimko/bfc, commit 966afc0) under the MIT licence; its weights were
converted once by ``scripts/convert_bfc.py`` into ``artefix/weights/bfc/bfc.safetensors`` (the licence and
provenance beside it). No TensorFlow is needed.

The network ``F`` maps a 256x256 slice ``v`` to its multiplicative bias field, so the corrected slice is
``v / F(v)``. The Keras graph, read from the file's ``model_config``:

* three 3x3 convolutions (1 -> 4 -> 12 -> 12 channels) and a batch normalisation;
* six stages of ``BN(conv3x3_s2(x) + conv3x3(conv3x3_s2(x)))`` (12, 24, 32, 48, 64, 64 channels), each
  halving the size: 256 -> 4;
* a 1x1 convolution to one channel: a 4x4 map of low-frequency DCT coefficients;
* ``Lambda`` "dct_transform": ``tf.signal.idct(x, n=256)`` along each image axis (see :func:`dct_field`);
* ``Lambda`` "relu_range": the field clamped to ``[0.5, 2]``.

Every convolution has a linear activation (the network before the clamp is affine in its input); batch
normalisation uses its moving statistics with Keras's epsilon 1e-3. Keras's ``padding="same"`` pads
asymmetrically when the stride is 2 (none before, one row/column after for even sizes), which
:class:`_SameConv2d` reproduces with an explicit pad before an unpadded convolution.

The port is checked on the authors' example (``data.npz``; ``tests/evaluation/test_bfc.py``): at every
batch normalisation the per-channel means and variances of the activations match the moving statistics
stored in the file (a wrong padding or kernel flip misses them by orders of magnitude), and inside the
head the log of the field predicted for ``v`` correlates 0.87 with the log of the true field ``g``. The
published network's field depends only weakly on its input: an all-zero slice already gets a field whose
log correlates 0.87 with ``g``, and ``F(v g_hat) / F(v)`` follows the shape of ``g_hat`` (log correlation
0.79) at about 1 % of its amplitude. The moving statistics stored in the file say that the original's
activations on its training data varied just as little, so this is the trained model's behaviour, not the
port's.

The module is ``bias_cnn`` rather than ``bfc`` so that the re-exported function
``artefix.evaluation.baselines.bfc`` does not shadow it.
"""

from __future__ import annotations

import math
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from artefix.evaluation.baselines._common import _as_slice, _minmax

__all__ = [
    "BFC_FIELD_RANGE",
    "BFC_SIZE",
    "BFCNet",
    "KERAS_LAYERS",
    "bfc",
    "bfc_field",
    "dct_basis",
    "dct_field",
    "load_bfc_net",
]

BFC_SIZE = 256
"""Input and field size of the network (it was trained on 256x256 BrainWeb slices)."""

BFC_FIELD_RANGE = (0.5, 2.0)
"""The range the network's last layer ("relu_range") clamps the field to."""

BFC_BN_EPSILON = 1e-3
"""Keras's batch-normalisation epsilon (every batch normalisation of ``IN.h5``)."""

BFC_STEM = (4, 12, 12)
"""Output channels of the three convolutions before the first batch normalisation."""

BFC_STAGES = (12, 24, 32, 48, 64, 64)
"""Output channels of the six stride-2 residual stages."""

BFC_COEFFICIENTS = 4
"""DCT coefficients per axis of the field (``BFC_SIZE / 2**len(BFC_STAGES)``)."""

WEIGHTS_PACKAGE = "artefix.weights"
WEIGHTS_FILE = ("bfc", "bfc.safetensors")
"""The converted weights, inside the package: ``artefix/weights/bfc/bfc.safetensors``."""


def _keras_layers() -> dict[str, str]:
    """Torch module name -> Keras layer name of ``IN.h5`` (the conversion's and the loading's mapping)."""
    names = {"stem.0": "conv2d", "stem.1": "conv2d_1", "stem.2": "conv2d_2", "stem_bn": "batch_normalization"}
    for i in range(len(BFC_STAGES)):
        # Keras numbered the layers in creation order: the main path's two convolutions, then the shortcut.
        names[f"stages.{i}.down"] = f"conv2d_{3 + 3 * i}"
        names[f"stages.{i}.conv"] = f"conv2d_{4 + 3 * i}"
        names[f"stages.{i}.skip"] = f"conv2d_{5 + 3 * i}"
        names[f"stages.{i}.bn"] = f"batch_normalization_{i + 1}"
    names["head"] = f"conv2d_{3 + 3 * len(BFC_STAGES)}"
    return names


KERAS_LAYERS: dict[str, str] = _keras_layers()
"""Torch module name -> Keras layer name (``conv2d_*``, ``batch_normalization_*``) of ``IN.h5``."""


def _same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """TensorFlow's ``padding="same"`` along one axis: ``(before, after)``.

    The output has ``ceil(size / stride)`` samples; the total padding is what that needs, and TensorFlow
    puts the odd sample *after* (so a 3x3, stride-2 convolution of an even size pads 0 before, 1 after).
    """
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


class _SameConv2d(nn.Conv2d):
    """A Keras ``Conv2D(padding="same")``: explicit (possibly asymmetric) zero padding, then no padding."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride=stride, padding=0, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (sh, sw) = self.kernel_size, self.stride
        top, bottom = _same_padding(x.shape[-2], kh, sh)
        left, right = _same_padding(x.shape[-1], kw, sw)
        return super().forward(F.pad(x, (left, right, top, bottom)))


class _KerasBatchNorm(nn.Module):
    """Keras ``BatchNormalization`` at inference: ``gamma * (x - moving_mean) / sqrt(moving_var + eps) + beta``."""

    def __init__(self, channels: int, eps: float = BFC_BN_EPSILON) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("gamma", torch.ones(channels))
        self.register_buffer("beta", torch.zeros(channels))
        self.register_buffer("moving_mean", torch.zeros(channels))
        self.register_buffer("moving_variance", torch.ones(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scale = self.gamma * torch.rsqrt(self.moving_variance + self.eps)
        return (x - self.moving_mean[:, None, None]) * scale[:, None, None] + self.beta[:, None, None]


class _Stage(nn.Module):
    """One stride-2 residual stage: ``BN(skip(x) + conv(down(x)))``, all 3x3, linear."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.down = _SameConv2d(cin, cout, 3, stride=2)
        self.conv = _SameConv2d(cout, cout, 3)
        self.skip = _SameConv2d(cin, cout, 3, stride=2)
        self.bn = _KerasBatchNorm(cout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.bn(self.skip(x) + self.conv(self.down(x)))


def dct_basis(n: int = BFC_SIZE, k: int = BFC_COEFFICIENTS, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """The ``(n, k)`` matrix of ``tf.signal.idct(c, n=n)`` (default type 2, ``norm=None``) on ``k`` coefficients.

    Derivation: TensorFlow's ``idct(x, type=2, n, norm=None)`` is ``dct(x, type=3, n, norm=None)`` (its
    source maps the inverse of type 2 to type 3 and applies no scaling: its documentation says one must
    multiply by ``0.5 / n`` to invert ``dct``); ``n`` larger than the input zero-pads the coefficients to
    ``n``; and its unnormalised type 3 is scipy.fftpack's (TensorFlow documents the equivalence)::

        y[i] = c[0] + 2 * sum_{m=1}^{k-1} c[m] * cos(pi * (2 i + 1) * m / (2 n)),   i = 0 .. n-1

    so ``y = B @ c`` with ``B[i, 0] = 1`` and ``B[i, m] = 2 cos(pi (2i + 1) m / (2n))``. (Not scipy.fft's
    ``idct``, which divides by ``2n``.)
    """
    i = torch.arange(n, dtype=dtype)[:, None]
    m = torch.arange(k, dtype=dtype)[None, :]
    basis = 2.0 * torch.cos(math.pi * (2 * i + 1) * m / (2 * n))
    basis[:, 0] = 1.0
    return basis


def dct_field(coefficients: torch.Tensor, n: int = BFC_SIZE) -> torch.Tensor:
    """The "dct_transform" Lambda: ``(B, 1, k, k)`` DCT coefficients -> ``(B, 1, n, n)`` field (unclamped).

    The Keras layer transposes an image axis last, applies ``tf.signal.idct(x, n=n)``, and repeats for the
    other axis (transposes ``[0, 2, 3, 1]`` three times, so the orientation is kept): separable, ``B c B^T``
    with ``B`` from :func:`dct_basis`.
    """
    k = coefficients.shape[-1]
    basis = dct_basis(n, k, coefficients.dtype).to(coefficients.device)
    return basis @ coefficients @ basis.T


class BFCNet(nn.Module):
    """The Keras model ``IN.h5`` in torch: ``(B, 1, 256, 256)`` slice -> ``(B, 1, 256, 256)`` field in [0.5, 2].

    Module names and their Keras layers: :data:`KERAS_LAYERS`. Convolution weights are stored OIHW (Keras:
    HWIO), batch normalisations as ``gamma``, ``beta``, ``moving_mean``, ``moving_variance`` buffers.
    """

    def __init__(self) -> None:
        super().__init__()
        chans = (1, *BFC_STEM)
        self.stem = nn.Sequential(*(_SameConv2d(a, b, 3) for a, b in zip(chans[:-1], chans[1:], strict=True)))
        self.stem_bn = _KerasBatchNorm(BFC_STEM[-1])
        widths = (BFC_STEM[-1], *BFC_STAGES)
        self.stages = nn.Sequential(*(_Stage(a, b) for a, b in zip(widths[:-1], widths[1:], strict=True)))
        self.head = _SameConv2d(BFC_STAGES[-1], 1, 1)

    def coefficients(self, x: torch.Tensor) -> torch.Tensor:
        """The ``(B, 1, 4, 4)`` DCT coefficients of the field (the output of the last convolution)."""
        return self.head(self.stages(self.stem_bn(self.stem(x))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The field: the coefficients' DCT synthesis ("dct_transform"), clamped ("relu_range")."""
        lo, hi = BFC_FIELD_RANGE
        return dct_field(self.coefficients(x), x.shape[-1]).clamp(lo, hi)


def _weights_bytes() -> bytes:
    return resources.files(WEIGHTS_PACKAGE).joinpath(*WEIGHTS_FILE).read_bytes()


@lru_cache(maxsize=1)
def load_bfc_net() -> BFCNet:
    """The network with the packaged weights, float32 (as stored and as TensorFlow ran it), eval mode.

    Loaded once per process.

    Returns:
        The shared :class:`BFCNet`; do not modify it.
    """
    from safetensors.torch import load

    net = BFCNet()
    state = load(_weights_bytes())
    net.load_state_dict(state, strict=True)
    return net.eval().requires_grad_(False)


def _resize(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    if tuple(x.shape[-2:]) == shape:
        return x
    return F.interpolate(x, size=shape, mode="bicubic", align_corners=False, antialias=True)


def bfc_field(image: Any) -> np.ndarray:
    """The network's multiplicative field of a slice, in ``[0.5, 2]``, at the slice's size.

    The slice is taken as given (no intensity scaling: the network expects a slice like the authors'
    example, about ``[0, 1.12]``; :func:`bfc` scales to ``[0, 1]``). Other sizes than 256x256 are resized
    to 256x256 (bicubic, antialiased), the field is predicted there in float32 (the precision the authors'
    TensorFlow model ran in) and resized back in float64 (bicubic; the field is a sum of 4x4 low-frequency
    cosines, so this is accurate) and clamped to ``[0.5, 2]`` again.

    Args:
        image: Real 2D slice ``(H, W)``.

    Returns:
        The field ``(H, W)``, float64.
    """
    x = _as_slice(image)
    shape = (int(x.shape[0]), int(x.shape[1]))
    net = load_bfc_net()
    with torch.no_grad():
        t = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None, None]
        field = _resize(net(_resize(t, (BFC_SIZE, BFC_SIZE))).double(), shape)
        lo, hi = BFC_FIELD_RANGE
        return field.clamp(lo, hi)[0, 0].numpy().copy()


def bfc(corrupted: Any) -> np.ndarray:
    """Bias-field correction with the implicitly trained CNN of Simkó et al. (MIDL 2022): ``v / F(v)``.

    The slice is mapped to ``[0, 1]`` (min-max; the authors' example lies in about ``[0, 1.12]`` with a
    zero background, and their script scales its second input by its maximum), its field ``F`` predicted
    by :func:`bfc_field` (resized to and from the network's 256x256), the scaled slice divided by it and
    mapped back with the inverse affine map, so ``bfc(a x + b) = a bfc(x) + b`` for ``a > 0``. The field is
    multiplicative, so the division is done where the background is zero (the minimum); a field is only
    defined up to a constant factor, which z-normalised metrics ignore.

    Args:
        corrupted: Bias-corrupted slice ``(H, W)``, real.

    Returns:
        The corrected slice ``(H, W)``, float64, in the input's intensity units.
    """
    x = _as_slice(corrupted, "corrupted")
    if x.max() == x.min():
        return x.copy()
    scaled, lo, scale = _minmax(x, 1.0)
    return scaled / bfc_field(scaled) / scale + lo
