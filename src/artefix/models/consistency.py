"""k-space data consistency for the subsampling head: keep what the scanner measured.

A scan reconstructed from a truncated k-space (the paper's super-resolution masks, a scanner's zero-filled
interpolation, partial Fourier) has k-space lines that hold (almost) nothing beyond an edge on one or more
sides. The subsampling head should only fill in those lines: changing the measured ones cannot make the
image truer to the object. :func:`measured_window` finds the edges from the input alone and
:func:`project_unmeasured` removes the part of a residual that falls inside the window, the data-consistency
step of unrolled reconstruction networks (e.g. fastMRI's VarNet) applied to one head.

Edge rule. It works on ``p``, the log10 of the mean k-space power of each row (or column) of k-space, one
side of the centre at a time. A *magnitude* image of a truncated k-space is not empty beyond the edge: the
magnitude spreads power there (most where the image crosses zero, e.g. the ringing in a skull-stripped
background), a tail that starts about a decade below the edge, falls over two or three lines to a floor 1.5
to 3 decades down (10 decades for a real-valued image: float32 round-off) and stays smooth. A natural spectrum
instead falls off gradually, and ever more slowly away from the centre. A side is cut at candidate edge ``t``
(the first measured line; at least ``max(5, N // 32)`` lines cut, at least ``max(7, N // 10)`` kept between
``t`` and the centre) when all of these hold:

1. *contrast*: the mean of lines ``t .. t+2`` (the edge level) stands at least ``min_step`` decades above the
   mean of lines ``t-5 .. t-3`` (lines ``t-1`` and ``t-2``, where the tail is steepest, are left out);
2. *kink*: that step exceeds the rise of the profile over the same distance just inside (lines ``t+4 .. t+6``
   against the edge level) by at least :data:`MIN_KINK` decades: a step no larger than the rise inside is
   the spectrum's own slope towards the centre;
3. *floor*: every line beyond ``t-3`` lies at least :data:`FLOOR` of the step (or :data:`FLOOR_CAP` decades)
   below the edge level: nothing was measured out there (a random or equispaced line mask keeps lines beyond
   its centre band);
4. *smooth*: the mean absolute second difference of ``p`` (its line-to-line roughness) is at most
   :data:`SMOOTH_BEYOND` of the step over the lines beyond ``t-3`` and at most :data:`SMOOTH_INSIDE` of it
   over lines ``t+1 .. t+6``: a truncation leaves smooth profiles on both sides, a line mask a comb.

Of the candidates that pass, the one with the largest step between the adjacent blocks ``t-3 .. t-1`` and
``t .. t+2`` is the edge: the first measured line, or where the tail is steep the line before it (a window a
line too wide only keeps the head from filling that line). A window narrower than a fifth of the lines is not
looked for: so close to the centre a natural spectrum can have a plateau that looks truncated (the outermost
sagittal slices of a head).

The thresholds were set on the real scans of ``../shared/data`` (tests/models/test_consistency.py): of the
3277 slices of every volume and series there, none is cut; interior slices truncated to a centred window of
1/R per axis (R = 2, 3, 4; magnitude, float32; odd and even sizes) are all found, every edge within a line
(a volume's first and last slices, nearly empty, can be missed). Scans without such an edge (fully sampled,
k-space filtered, randomly or equispaced undersampled) get an all-true window edge to edge, so the projection
leaves the residual unchanged where no truncation is found.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from artefix.fft import fft2c, ifft2c

MIN_STEP = 0.8
"""Default least contrast (decades of mean line power) between the measured edge lines and the lines beyond."""

MIN_KINK = 0.55
"""Least excess (decades) of the step at the edge over the profile's rise just inside it."""

FLOOR = 0.6
"""Every line beyond the edge lies at least this fraction of the step below the edge level..."""

FLOOR_CAP = 2.0
"""...or at least this many decades below it (a truncation to a round-off floor steps by 5 to 10 decades)."""

SMOOTH_BEYOND = 0.15
"""Largest mean absolute second difference of the line powers beyond the edge, as a fraction of the step."""

SMOOTH_INSIDE = 0.2
"""Largest mean absolute second difference of the line powers just inside the edge, as a fraction of the step."""

MIN_KEPT_DIV = 10
"""At least ``N // MIN_KEPT_DIV`` lines (and 7) stay measured on each side of the centre: windows of a fifth or more."""

EDGE_LINES = 3
"""Lines averaged for the edge level, the level beyond and the level further inside."""

_GAP = 2
"""Lines next to a candidate edge left out of the level beyond (the steepest part of the magnitude's tail)."""

_INSIDE = 6
"""Lines inside the edge whose roughness is checked (and the offset of the block further inside, less 2)."""


def _line_power(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log10 of the mean k-space power per row ``(B, H)`` and per column ``(B, W)`` of ``(B, H, W)`` images."""
    k = fft2c(image.to(torch.complex64) if image.is_complex() else image.float().to(torch.complex64))
    power = k.real**2 + k.imag**2
    eps = power.mean(dim=(-2, -1))[:, None] * 1e-12 + 1e-30  # (B, 1): keeps log10 finite on empty lines
    return torch.log10(power.mean(dim=-1) + eps), torch.log10(power.mean(dim=-2) + eps)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` ``(B, N)`` over each row of ``mask`` ``(T, N)``: ``(B, T)`` (0 for an empty row)."""
    weights = mask.to(values.dtype)
    return (values @ weights.T) / weights.sum(dim=-1).clamp(min=1.0)


def _low_edge(profile: torch.Tensor, centre: int, min_step: float) -> torch.Tensor:
    """First measured index from the low side per row of ``profile`` ``(B, N)`` (0 where no edge is found).

    ``profile`` is the log10 line power with the k-space centre at index ``centre``; candidate edges ``t`` run
    from ``max(5, N // 32)`` to ``centre - max(7, N // 10)``. The rule (contrast, kink, floor, smooth) is the
    module docstring's.
    """
    b, n = profile.shape
    min_cut = max(EDGE_LINES + _GAP, n // 32)
    stop = centre - max(_INSIDE + 1, n // MIN_KEPT_DIV) + 1
    if stop <= min_cut:
        return torch.zeros(b, dtype=torch.long, device=profile.device)
    # Masked means and a masked max over a (candidates, lines) grid rather than cummax/unfold, which the ONNX
    # export lacks; the grid is small (about N / 2 x N).
    index = torch.arange(n, device=profile.device)
    t = torch.arange(min_cut, stop, device=profile.device)
    pooled = F.avg_pool1d(profile[:, None], EDGE_LINES, stride=1)[:, 0]  # [:, j] = mean of lines j .. j+2
    level = pooled[:, t]  # (B, T): the measured edge lines t .. t+2
    step = level - pooled[:, t - _GAP - EDGE_LINES]  # against lines t-5 .. t-3
    rise = pooled[:, t + _INSIDE - _GAP] - level  # lines t+4 .. t+6 against the edge level
    kink = step - rise.clamp(min=0.0)
    beyond = index[None, :] <= t[:, None] - _GAP - 1  # (T, N): lines 0 .. t-3
    highest = torch.where(beyond[None], profile[:, None, :], profile.new_tensor(-torch.inf)).amax(dim=-1)
    curvature = F.pad((profile[:, 1:-1] - 0.5 * (profile[:, :-2] + profile[:, 2:])).abs(), (1, 1))  # 0 at the ends
    rough_beyond = _masked_mean(curvature, beyond & (index[None, :] >= 1) & (index[None, :] < t[:, None] - _GAP - 1))
    inside = (index[None, :] > t[:, None]) & (index[None, :] <= t[:, None] + _INSIDE)
    rough_inside = _masked_mean(curvature, inside)
    ok = (
        (step >= min_step)
        & (kink >= MIN_KINK)
        & (level - highest >= (FLOOR * step).clamp(max=FLOOR_CAP))
        & (rough_beyond <= SMOOTH_BEYOND * step)
        & (rough_inside <= SMOOTH_INSIDE * step)
    )
    sharp = level - pooled[:, t - EDGE_LINES]  # lines t .. t+2 against the adjacent t-3 .. t-1: peaks at the edge
    best, where = torch.where(ok, sharp, profile.new_tensor(-torch.inf)).max(dim=-1)
    return torch.where(torch.isfinite(best), t[where], torch.zeros_like(where))


def measured_window(image: torch.Tensor, *, min_step: float = MIN_STEP) -> torch.Tensor:
    """Mask of the k-space samples an image was measured with: ``(B, H, W)`` bool for ``(B, H, W)`` input.

    Each of the four sides of the centred k-space (DC at ``(H // 2, W // 2)``) is cut at the edge the module
    docstring's rule finds (at least ``max(5, N // 32)`` lines cut, at least ``max(7, N // 10)`` kept on
    each side of the centre); a side with no such edge keeps all lines. Works for any ``H, W``, odd or even
    (an axis of fewer than 24 lines is never cut).

    Args:
        image: Real or complex images ``(B, H, W)`` (the model's Z-normalised input; any scale).
        min_step: Least contrast in decades between the measured edge lines and the lines beyond (0.8: six
            times more power in the measured edge lines).

    Returns:
        Boolean mask ``(B, H, W)``, True where k-space was measured (the rectangle between the edges).
    """
    if image.ndim != 3:
        raise ValueError(f"expected images of shape (B, H, W), got {tuple(image.shape)}")
    rows, cols = _line_power(image.detach())
    masks = []
    for profile in (rows, cols):
        n = profile.shape[-1]
        low = _low_edge(profile, n // 2, min_step)  # fft2c puts the centre at index n // 2
        high = n - _low_edge(profile.flip(-1), n - 1 - n // 2, min_step)
        index = torch.arange(n, device=image.device)
        masks.append((index >= low[:, None]) & (index < high[:, None]))
    return masks[0][:, :, None] & masks[1][:, None, :]


def mirrored(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` at ``-k``: centred k-space ``(B, H, W)`` reflected through its centre (index ``N // 2``)."""
    h, w = mask.shape[-2:]
    return torch.roll(mask.flip((-2, -1)), shifts=(1 - h % 2, 1 - w % 2), dims=(-2, -1))


def truncated(measured: torch.Tensor) -> torch.Tensor:
    """``(B,)`` booleans: which windows of :func:`measured_window` ``(B, H, W)`` leave some k-space out."""
    return ~measured.flatten(1).all(dim=1)


def project_unmeasured(residual: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """The part of real residuals ``(B, H, W)`` that lies outside the ``measured`` k-space ``(B, H, W)``.

    A real image's k-space is conjugate-symmetric, so the samples at ``-k`` of the measured ones are
    removed too (the union of ``measured`` and its mirror): the result is real and leaves every measured
    sample exactly as it was. An image measured edge to edge (no truncation found) keeps its residual.
    """
    keep = ~(measured | mirrored(measured))
    k = fft2c(residual.float().to(torch.complex64))
    projected = ifft2c(k * keep).real.to(residual.dtype)
    untouched = ~truncated(measured)[:, None, None]
    return torch.where(untouched, residual, projected)
