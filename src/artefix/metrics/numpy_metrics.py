"""Image-quality metrics of the paper's evaluation in numpy: SSIM, pixel-domain VIF, MSE and PSNR.

Inputs are single 2D slices ``(H, W)``. As in the paper, the **caller** z-normalises both images per
slice first (zero mean, unit standard deviation; :func:`znorm`, re-exported from
:mod:`artefix.artefacts.base`), so every metric compares images on a common intensity scale. All
"data ranges" are taken from the reference image ``ref`` only, so a corrected image can never improve
its score by stretching its own range.

* ``ssim``: scikit-image's SSIM (7x7 uniform window, K1 = 0.01, K2 = 0.03) with
  ``data_range = max(ref) - min(ref)``; with a mask, the mean of the SSIM map inside the mask.
* ``ssim-fg``: SSIM inside :func:`foreground_mask` of the reference. The zero background of an MRI slice
  is a large, trivially "perfect" region that dominates plain SSIM.
* ``vif``: pixel-domain VIF (:func:`vifp`, Sheikh & Bovik 2006) after mapping both images with the one
  affine map that takes the reference to [0, 255], the scale for which VIF's visual-noise variance
  ``sigma_n^2 = 2`` was designed.
* ``vif-paper``: :func:`vifp` on the raw z-normalised images (what ``sewar.vifp`` does, the authors'
  convention). With a unit-variance image, ``sigma_n^2 = 2`` is larger than the signal, which inflates
  the score: any gain ``> 1`` gives ``vif-paper > 1``.
* ``mse``: ``mean((ref - img)^2)``.
* ``psnr``: ``10 log10(data_range^2 / mse)`` with ``data_range = max(ref) - min(ref)``, in dB.

Example:
    >>> import numpy as np
    >>> from artefix.metrics.numpy_metrics import compute_metrics, znorm
    >>> ref = znorm(np.random.default_rng(0).random((64, 64)))
    >>> m = compute_metrics(ref, ref)
    >>> round(m["ssim"], 6), round(m["vif"], 6), m["mse"]
    (1.0, 1.0, 0.0)
"""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

import numpy as np
from scipy import ndimage

from artefix.artefacts.base import znorm

__all__ = [
    "METRICS",
    "VIF_MIN_SIZE",
    "compute_metrics",
    "foreground_mask",
    "mse",
    "psnr",
    "ssim",
    "vif",
    "vif_paper",
    "vifp",
    "znorm",
]

METRICS: MappingProxyType[str, bool] = MappingProxyType(
    {"ssim": False, "ssim-fg": False, "vif": False, "vif-paper": False, "mse": True, "psnr": False}
)
"""Metric name -> ``lower_is_better`` (the keys and order of :func:`compute_metrics`)."""

VIF_MIN_SIZE = 41
"""Smallest height/width for which all four VIF scales have a non-empty valid region."""

_VIF_EPS = 1e-10
_VIF_SCALES = 4
_SSIM_WIN = 7


def _as_image(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x)
    if np.iscomplexobj(arr):
        raise ValueError(f"{name} must be a real image, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2D slice (H, W), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} contains {int(arr.size - np.isfinite(arr).sum())} NaN or infinite value(s)")
    return arr


def _pair(ref: Any, img: Any) -> tuple[np.ndarray, np.ndarray]:
    r = _as_image(ref, "ref")
    i = _as_image(img, "img")
    if r.shape != i.shape:
        raise ValueError(f"ref and img must have the same shape, got {r.shape} and {i.shape}")
    return r, i


def _data_range(ref: np.ndarray) -> float:
    rng = float(ref.max() - ref.min())
    if rng <= 0:
        raise ValueError(f"reference image is constant (value {float(ref.flat[0])}); its data range is 0")
    return rng


def _check_mask(mask: Any, shape: tuple[int, ...]) -> np.ndarray:
    m = np.asarray(mask)
    if m.shape != shape:
        raise ValueError(f"mask must have the image shape {shape}, got {m.shape}")
    if m.dtype != bool:
        if not np.isin(m, (0, 1)).all():
            raise ValueError(f"mask must be boolean (or 0/1), got dtype {m.dtype} with other values")
        m = m.astype(bool)
    if not m.any():
        raise ValueError("mask is empty")
    return m


def mse(ref: Any, img: Any) -> float:
    """Mean squared error ``mean((ref - img)^2)`` (lower is better).

    Args:
        ref: Reference slice ``(H, W)``, real.
        img: Image to score, same shape.

    Returns:
        The MSE in squared intensity units.
    """
    r, i = _pair(ref, img)
    return float(np.mean((r - i) ** 2))


def psnr(ref: Any, img: Any) -> float:
    """Peak signal-to-noise ratio ``10 log10(D^2 / MSE)`` with ``D = max(ref) - min(ref)``.

    Args:
        ref: Reference slice ``(H, W)``, real, not constant.
        img: Image to score, same shape.

    Returns:
        PSNR in dB; ``inf`` when the images are identical.
    """
    r, i = _pair(ref, img)
    err = float(np.mean((r - i) ** 2))
    if err == 0.0:
        return float("inf")
    return float(10.0 * np.log10(_data_range(r) ** 2 / err))


def ssim(ref: Any, img: Any, mask: Any = None) -> float:
    """Structural similarity (Wang et al. 2004) with the reference's data range.

    ``SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))`` on 7x7
    uniform windows (scikit-image's ``structural_similarity``), ``C_i = (K_i D)^2``,
    ``D = max(ref) - min(ref)``.

    Args:
        ref: Reference slice ``(H, W)``, real, not constant, at least 7x7.
        img: Image to score, same shape.
        mask: Optional boolean ``(H, W)`` region. Without it, the mean of the SSIM map over the image
            minus its 3-pixel border (scikit-image's convention); with it, the mean of the same map over
            the mask pixels inside that border (so an all-True mask gives the plain SSIM).

    Returns:
        SSIM in [-1, 1] (1 for identical images).
    """
    from skimage.metrics import structural_similarity

    r, i = _pair(ref, img)
    if min(r.shape) < _SSIM_WIN:
        raise ValueError(f"SSIM needs images of at least {_SSIM_WIN}x{_SSIM_WIN}, got shape {r.shape}")
    value, smap = structural_similarity(r, i, data_range=_data_range(r), win_size=_SSIM_WIN, full=True)
    if mask is None:
        return float(value)
    m = _check_mask(mask, r.shape)
    pad = (_SSIM_WIN - 1) // 2
    interior = np.zeros_like(m)
    interior[pad:-pad, pad:-pad] = True
    m = m & interior
    if not m.any():
        raise ValueError(f"mask has no pixels outside the {pad}-pixel border that SSIM ignores")
    return float(smap[m].mean())


def _gaussian_window_1d(n: int) -> np.ndarray:
    """1D factor of sewar's ``fspecial(GAUSSIAN, n, sigma=n/5)``, normalised to sum 1.

    The 2D window ``exp(-(x^2 + y^2) / (2 sigma^2))`` on ``x, y in [-(n//2), n//2]`` is the outer product
    of this vector with itself (sewar's truncation of values below ``eps * max`` never triggers for
    ``sigma = n / 5``).
    """
    x = np.arange(-(n // 2), n // 2 + 1, dtype=np.float64)
    g = np.exp(-(x**2) / (2.0 * (n / 5.0) ** 2))
    return g / g.sum()


def _filter_valid(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Separable correlation with ``outer(w, w)``, keeping only the 'valid' region (no padding)."""
    r = len(w) // 2
    y = ndimage.correlate1d(x, w, axis=0, mode="constant")
    y = ndimage.correlate1d(y, w, axis=1, mode="constant")
    return y[r : x.shape[0] - r, r : x.shape[1] - r]


def vifp(ref: Any, img: Any, sigma_nsq: float = 2.0) -> float:
    """Pixel-domain visual information fidelity (VIF-P), a vectorised port of ``sewar.full_ref.vifp``.

    At four scales (Gaussian windows of 17, 9, 5, 3 pixels, ``sigma = size / 5``; the image is filtered
    and decimated by 2 between scales), local statistics give a gain ``g = s_xy / s_x^2`` and a
    distortion variance ``s_v^2 = s_y^2 - g s_xy``, and

    ``VIF = sum log10(1 + g^2 s_x^2 / (s_v^2 + sigma_n^2)) / sum log10(1 + s_x^2 / sigma_n^2)``

    over all valid window positions of all scales (sewar's guards for tiny and negative variances
    included). VIF(x, x) = 1; a pure gain ``a > 1`` gives VIF > 1.

    Args:
        ref: Reference slice ``(H, W)``, real, at least ``VIF_MIN_SIZE`` (41) pixels per axis.
        img: Image to score, same shape.
        sigma_nsq: Visual-noise variance ``sigma_n^2`` in squared intensity units (2.0 was designed
            for images on a 0-255 scale).

    Returns:
        VIF (>= 0, 1 for identical images).
    """
    gt, p = _pair(ref, img)
    if min(gt.shape) < VIF_MIN_SIZE:
        raise ValueError(f"VIF needs images of at least {VIF_MIN_SIZE}x{VIF_MIN_SIZE}, got shape {gt.shape}")
    if not (np.isfinite(sigma_nsq) and sigma_nsq > 0):
        raise ValueError(f"sigma_nsq must be a positive finite number, got {sigma_nsq!r}")
    eps = _VIF_EPS
    num = 0.0
    den = 0.0
    for scale in range(1, _VIF_SCALES + 1):
        w = _gaussian_window_1d(2 ** (_VIF_SCALES - scale + 1) + 1)
        if scale > 1:
            gt = _filter_valid(gt, w)[::2, ::2]
            p = _filter_valid(p, w)[::2, ::2]
        mu1 = _filter_valid(gt, w)
        mu2 = _filter_valid(p, w)
        s11 = np.maximum(_filter_valid(gt * gt, w) - mu1 * mu1, 0.0)
        s22 = np.maximum(_filter_valid(p * p, w) - mu2 * mu2, 0.0)
        s12 = _filter_valid(gt * p, w) - mu1 * mu2

        g = s12 / (s11 + eps)
        sv = s22 - g * s12
        flat = s11 < eps
        g[flat] = 0.0
        sv[flat] = s22[flat]
        s11[flat] = 0.0
        blank = s22 < eps
        g[blank] = 0.0
        sv[blank] = 0.0
        negative = g < 0
        sv[negative] = s22[negative]
        g[negative] = 0.0
        sv[sv <= eps] = eps

        num += float(np.sum(np.log10(1.0 + g**2 * s11 / (sv + sigma_nsq))))
        den += float(np.sum(np.log10(1.0 + s11 / sigma_nsq)))
    if den <= 0.0:
        raise ValueError("reference image has no local variance at any VIF scale; VIF is undefined")
    return num / den


def vif(ref: Any, img: Any) -> float:
    """VIF on the 0-255 scale: both images go through the affine map that takes ``ref`` to [0, 255].

    ``x -> 255 (x - min(ref)) / (max(ref) - min(ref))`` is applied to ``ref`` and ``img`` alike, then
    :func:`vifp` with ``sigma_n^2 = 2``. The result does not depend on the input's intensity scale.

    Args:
        ref: Reference slice ``(H, W)``, real, not constant.
        img: Image to score, same shape.

    Returns:
        VIF (1 for identical images).
    """
    r, i = _pair(ref, img)
    lo = float(r.min())
    scale = 255.0 / _data_range(r)
    return vifp((r - lo) * scale, (i - lo) * scale, sigma_nsq=2.0)


def vif_paper(ref: Any, img: Any) -> float:
    """VIF the way the authors computed it: ``sewar.vifp`` (``sigma_n^2 = 2``) on the raw inputs.

    On z-normalised images ``sigma_n^2 = 2`` exceeds the signal variance, so the value is biased
    upwards and exceeds 1 for any gain > 1 (the paper's tables report VIF > 1). Prefer :func:`vif`.

    Args:
        ref: Reference slice ``(H, W)`` (z-normalised by the caller).
        img: Image to score, same shape.

    Returns:
        VIF (1 for identical images).
    """
    return vifp(ref, img, sigma_nsq=2.0)


def foreground_mask(ref: Any, dilation: int = 2) -> np.ndarray:
    """Foreground (anatomy) mask of a reference slice.

    Pixels above Otsu's threshold of ``ref`` (the threshold maximising the between-class variance of
    the intensity histogram), with enclosed holes filled (dark CSF, bone inside the head) and then
    dilated by ``dilation`` pixels (3x3 cross structuring element) so that the edge of the anatomy is
    included; holes closed off by the dilation are filled too.

    Args:
        ref: Reference slice ``(H, W)``, real, not constant.
        dilation: Number of dilation steps (>= 0).

    Returns:
        Boolean ``(H, W)`` mask, True on the foreground.
    """
    from skimage.filters import threshold_otsu

    r = _as_image(ref, "ref")
    _data_range(r)
    if isinstance(dilation, bool) or not isinstance(dilation, (int, np.integer)) or dilation < 0:
        raise ValueError(f"dilation must be a non-negative integer, got {dilation!r}")
    mask = r > threshold_otsu(r)
    mask = ndimage.binary_fill_holes(mask)
    if dilation:
        mask = ndimage.binary_fill_holes(ndimage.binary_dilation(mask, iterations=int(dilation)))
    return np.asarray(mask, dtype=bool)


def compute_metrics(ref: Any, img: Any, mask: Any = None) -> dict[str, float]:
    """All metrics of one slice, keyed as in :data:`METRICS`.

    Both images are expected to be z-normalised by the caller (``znorm``), as in the paper.

    Args:
        ref: Reference (clean) slice ``(H, W)``, at least 41x41 (VIF's four scales).
        img: Corrected or corrupted slice, same shape.
        mask: Foreground mask for ``ssim-fg``; ``None`` computes :func:`foreground_mask` of ``ref``.

    Returns:
        ``{"ssim", "ssim-fg", "vif", "vif-paper", "mse", "psnr"}`` -> value.
    """
    r, i = _pair(ref, img)
    m = foreground_mask(r) if mask is None else _check_mask(mask, r.shape)
    return {
        "ssim": ssim(r, i),
        "ssim-fg": ssim(r, i, mask=m),
        "vif": vif(r, i),
        "vif-paper": vif_paper(r, i),
        "mse": mse(r, i),
        "psnr": psnr(r, i),
    }
