"""One Fourier convention for the whole package: centred, orthonormal 2D FFTs on the last two axes.

k-space is ``fftshift(fft2(ifftshift(x)))`` with ``norm="ortho"``, so the DC sample sits at index
``(H // 2, W // 2)`` for even and odd sizes alike and Parseval holds exactly
(``sum |x|^2 == sum |k|^2``). Every function accepts a NumPy array or a torch tensor of shape
``(..., H, W)`` and returns the same kind of object, on the same device.

Example:
    >>> import numpy as np
    >>> from artefix.fft import fft2c, ifft2c
    >>> x = np.random.default_rng(0).random((5, 7))
    >>> bool(np.allclose(ifft2c(fft2c(x)).real, x))
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

if TYPE_CHECKING:
    import torch

ArrayT = TypeVar("ArrayT", np.ndarray, "torch.Tensor")

_AXES = (-2, -1)


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def fft2c(x: ArrayT) -> ArrayT:
    """Centred orthonormal 2D FFT over the last two axes.

    Args:
        x: Image(s), real or complex, shape ``(..., H, W)``.

    Returns:
        Complex k-space of the same shape, DC at ``(H // 2, W // 2)``.
    """
    if _is_torch(x):
        import torch

        x = torch.fft.ifftshift(x, dim=_AXES)
        x = torch.fft.fft2(x, dim=_AXES, norm="ortho")
        return torch.fft.fftshift(x, dim=_AXES)
    x = np.fft.ifftshift(np.asarray(x), axes=_AXES)
    x = np.fft.fft2(x, axes=_AXES, norm="ortho")
    return np.fft.fftshift(x, axes=_AXES)


def ifft2c(k: ArrayT) -> ArrayT:
    """Centred orthonormal inverse 2D FFT over the last two axes (inverse of :func:`fft2c`).

    Args:
        k: Centred k-space, shape ``(..., H, W)``.

    Returns:
        Complex image(s) of the same shape.
    """
    if _is_torch(k):
        import torch

        k = torch.fft.ifftshift(k, dim=_AXES)
        k = torch.fft.ifft2(k, dim=_AXES, norm="ortho")
        return torch.fft.fftshift(k, dim=_AXES)
    k = np.fft.ifftshift(np.asarray(k), axes=_AXES)
    k = np.fft.ifft2(k, axes=_AXES, norm="ortho")
    return np.fft.fftshift(k, axes=_AXES)


def _centre_slices(src: int, dst: int) -> tuple[slice, slice]:
    """Slices that map the centred window shared by lengths ``src`` and ``dst``.

    The DC index ``n // 2`` of each length lines up, for even and odd sizes.

    Returns:
        ``(slice into the source, slice into the destination)``.
    """
    n = min(src, dst)
    a = src // 2 - n // 2
    b = dst // 2 - n // 2
    return slice(a, a + n), slice(b, b + n)


def kspace_crop_pad(k: ArrayT, shape: tuple[int, int]) -> ArrayT:
    """Crop or zero-pad centred k-space to ``shape`` around its DC sample.

    Args:
        k: Centred k-space, shape ``(..., H, W)``.
        shape: Target ``(H', W')``; each axis is cropped or padded independently.

    Returns:
        k-space of shape ``(..., H', W')``; values outside the source window are exactly 0.
    """
    h, w = int(shape[0]), int(shape[1])
    if h < 1 or w < 1:
        raise ValueError(f"target shape must be positive, got {shape}")
    sh, dh = _centre_slices(k.shape[-2], h)
    sw, dw = _centre_slices(k.shape[-1], w)
    out_shape = (*k.shape[:-2], h, w)
    if _is_torch(k):
        import torch

        out = torch.zeros(out_shape, dtype=k.dtype, device=k.device)
    else:
        out = np.zeros(out_shape, dtype=k.dtype)
    out[..., dh, dw] = k[..., sh, sw]
    return out


def fourier_resize(x: ArrayT, shape: tuple[int, int]) -> ArrayT:
    """Resample image(s) to ``shape`` by cropping or zero-padding their centred k-space.

    This is how the paper brings a 512x512 pelvic scan to the model's 320x320 matrix: the field of
    view is kept and the resolution changes. Intensities are preserved (a constant image stays the
    same constant), i.e. the k-space is scaled by ``sqrt(H'W' / HW)`` to compensate the orthonormal
    FFT's size dependence.

    Args:
        x: Image(s), shape ``(..., H, W)``, real or complex.
        shape: Target ``(H', W')``.

    Returns:
        Resampled image(s), shape ``(..., H', W')``. Complex input gives complex output; real input
        gives the real part (the imaginary part is only round-off, or a half-sample asymmetry where
        an even axis is cropped).
    """
    if tuple(x.shape[-2:]) == tuple(shape):
        return x
    is_complex = x.is_complex() if _is_torch(x) else np.iscomplexobj(x)
    k = kspace_crop_pad(fft2c(x), shape)
    scale = float(np.sqrt(shape[0] * shape[1] / (x.shape[-2] * x.shape[-1])))
    out = ifft2c(k) * scale
    return out if is_complex else out.real
