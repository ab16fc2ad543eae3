"""k-space data consistency for the subsampling head: keep what the scanner measured.

A scan reconstructed from a truncated k-space (the paper's super-resolution masks, a scanner's zero-filled
interpolation, partial Fourier) has k-space lines that hold (almost) nothing beyond an edge on one or more
sides. The subsampling head should only fill in those lines: changing the measured ones cannot make the
image truer to the object. :func:`measured_window` finds the edges from the input alone (a step of at
least ``min_step`` decades in the mean power of the k-space lines, with nothing but low-power lines
beyond it) and :func:`project_unmeasured` removes the part of a residual that falls inside the window,
the data-consistency step of unrolled reconstruction networks (e.g. fastMRI's VarNet) applied to one head.

Scans without such a step (fully sampled, randomly undersampled, k-space filtered) get an all-true window
edge to edge, so the projection leaves the residual unchanged where no truncation is found.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from artefix.fft import fft2c, ifft2c

MIN_STEP = 1.0
"""Default least contrast (decades of mean line power) between the measured edge lines and the lines beyond."""

EDGE_LINES = 3
"""Measured lines averaged at a candidate edge."""


def _line_power(image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """log10 of the mean k-space power per row ``(B, H)`` and per column ``(B, W)`` of ``(B, H, W)`` images."""
    k = fft2c(image.float().to(torch.complex64))
    power = k.real**2 + k.imag**2
    eps = power.mean(dim=(-2, -1))[:, None] * 1e-12 + 1e-30  # (B, 1): keeps log10 finite on empty lines
    return torch.log10(power.mean(dim=-1) + eps), torch.log10(power.mean(dim=-2) + eps)


def _low_edge(profile: torch.Tensor, centre: int, min_step: float, min_cut: int) -> torch.Tensor:
    """First measured index from the low side per row of ``profile`` ``(B, N)`` (0 where no step is found).

    Candidate edge ``t`` (``min_cut <= t <= centre - max(EDGE_LINES, N // 16)``: at least an eighth of the
    lines stay measured, and the lines averaged stay clear of the steep rise at the k-space centre at
    index ``centre``): the step is the mean of the ``EDGE_LINES`` lines after ``t`` minus the largest
    value of the lines before ``t - 1``; the largest step wins when it reaches ``min_step``. Lines ``t - 1``
    and ``t`` are left out of both: the magnitude image blurs the edge of its k-space by a line.
    """
    b, n = profile.shape
    stop = centre - max(EDGE_LINES, n // 16) + 1
    if stop <= min_cut:
        return torch.zeros(b, dtype=torch.long, device=profile.device)
    # Written with a masked max and an average pool rather than cummax/unfold, which ONNX export lacks.
    index = torch.arange(n, device=profile.device)
    t = torch.arange(min_cut, stop, device=profile.device)
    before = index[None, :] < t[:, None] - 1  # (T, N): the lines beyond candidate edge t, less one
    outside_max = torch.where(before[None], profile[:, None, :], profile.new_tensor(-torch.inf)).amax(dim=-1)
    windows = F.avg_pool1d(profile[:, None], EDGE_LINES, stride=1)[:, 0]  # [:, j] = mean of lines j..j+2
    step = windows[:, t + 1] - outside_max
    best, where = step.max(dim=-1)
    return torch.where(best >= min_step, t[where], torch.zeros_like(where))


def measured_window(image: torch.Tensor, *, min_step: float = MIN_STEP) -> torch.Tensor:
    """Mask of the k-space samples an image was measured with: ``(B, H, W)`` bool for ``(B, H, W)`` input.

    Each of the four sides of the centred k-space is cut where the line power steps up by ``min_step``
    decades or more over every line beyond (at least ``max(3, N // 32)`` lines are cut); a side with no such
    step keeps all lines.

    Args:
        image: Real or complex images ``(B, H, W)`` (the model's Z-normalised input).
        min_step: Least step in decades (1.0: ten times more power in the measured edge lines).

    Returns:
        Boolean mask, True where k-space was measured (the rectangle between the edges).
    """
    if image.ndim != 3:
        raise ValueError(f"expected images of shape (B, H, W), got {tuple(image.shape)}")
    rows, cols = _line_power(image.detach())
    masks = []
    for profile in (rows, cols):
        n = profile.shape[-1]
        min_cut = max(3, n // 32)
        low = _low_edge(profile, n // 2, min_step, min_cut)  # fft2c puts the centre at index n // 2
        high = n - _low_edge(profile.flip(-1), n - 1 - n // 2, min_step, min_cut)
        index = torch.arange(n, device=image.device)
        masks.append((index >= low[:, None]) & (index < high[:, None]))
    return masks[0][:, :, None] & masks[1][:, None, :]


def mirrored(mask: torch.Tensor) -> torch.Tensor:
    """``mask`` at ``-k``: centred k-space ``(B, H, W)`` reflected through its centre (index ``N // 2``)."""
    h, w = mask.shape[-2:]
    return torch.roll(mask.flip((-2, -1)), shifts=(1 - h % 2, 1 - w % 2), dims=(-2, -1))


def project_unmeasured(residual: torch.Tensor, measured: torch.Tensor) -> torch.Tensor:
    """The part of real residuals ``(B, H, W)`` that lies outside the ``measured`` k-space ``(B, H, W)``.

    A real image's k-space is conjugate-symmetric, so the samples at ``-k`` of the measured ones are
    removed too (the union of ``measured`` and its mirror): the result is real and leaves every measured
    sample exactly as it was. An image measured edge to edge (no truncation found) keeps its residual.
    """
    keep = ~(measured | mirrored(measured))
    k = fft2c(residual.float().to(torch.complex64))
    projected = ifft2c(k * keep).real.to(residual.dtype)
    untouched = measured.all(dim=-1, keepdim=True).all(dim=-2, keepdim=True)  # nothing truncated
    return torch.where(untouched, residual, projected)
