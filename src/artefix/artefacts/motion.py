"""Rigid motion: the paper's piece-wise constant motion model (Simko et al. 2023, "Motion correction").

A Cartesian acquisition records one phase-encoding (PE) line of k-space per repetition. If the
patient holds a pose for a while and then moves, each line is the Fourier transform of the image *in
the pose held while that line was recorded*:

    K(ky, kx) = F[T_s(I)](ky, kx)   for every line ky in segment s,   K = F[I] elsewhere,

where ``F`` is :func:`artefix.fft.fft2c` and ``T_s`` the rigid transform (rotation about the image
centre, then translation) of segment ``s``. The simulator:

* keeps a centre band of ``center_fraction * N`` PE lines around the DC line ``N // 2`` clean (the
  authors' code: 7 % in training; the paper's evaluation leaves 25 %, 12.5 % or 5 % clean);
* corrupts a fraction (30-80 %) of the remaining lines, split into 4-24 segments;
* gives every segment one pose, rotation ~ N(0, 12 deg), translation ~ N(0, 30 px) per axis.

**Which lines are corrupted.** The default (``ordering="linear"``) assumes a linear ky ordering, the
usual Cartesian acquisition, so acquisition time runs along the PE axis: every segment is a contiguous
run of lines, and runs of clean lines (the patient back in the reference pose) may separate segments.
This is the physically meaningful choice and it is what the evaluation code of the paper's co-author
did (clean and corrupted runs alternating in line order). The centre band is cut out of the time line
(it stays clean by construction), so a segment may continue on the other side of it.
``ordering="random"`` instead picks the corrupted lines as a random subset of the outer lines and splits
them at random into segments, as the text's "split randomly" can also be read; it corresponds to a
randomly permuted PE order and gives incoherent, noise-like ghosting. Either way the parameters list the
lines of every segment explicitly, so a logged corruption replays exactly.

The moved images are computed in one batched ``grid_sample`` (bilinear, zero padding) over all
segments, followed by one batched FFT; the lines are then gathered with index operations. Bilinear
interpolation is a low-pass filter for a sub-pixel shift (its response at Nyquist is ``|1 - 2d|`` for a
fractional shift ``d``), so the corrupted lines also lose some high-frequency energy that a true rigid
motion keeps (TorchIO's ``RandomMotion`` interpolates linearly too); an exact Fourier shift and rotation
would remove that blur, at the cost of regenerating every model and evaluation that used this simulator.

The corrupted fraction is of the lines outside the clean centre band (the paper: of all lines), so with
the 7 % training band 28-74 % of all lines are corrupted, and a wider evaluation band corrupts fewer.

Example:
    >>> import numpy as np
    >>> from artefix.artefacts.motion import apply_rigid_motion, sample_rigid_motion_params
    >>> image = np.random.default_rng(0).random((64, 64))
    >>> params = sample_rigid_motion_params(np.random.default_rng(1), image.shape)
    >>> apply_rigid_motion(image, params).shape
    (64, 64)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

import numpy as np
import torch
import torch.nn.functional as F

from artefix.artefacts.base import RngLike, as_rng, check_image, from_tensor, to_tensor
from artefix.fft import fft2c, ifft2c

CENTER_FRACTION = 0.07
"""Training fraction of PE lines around DC that keep the clean k-space (authors' code)."""

CORRUPTED_FRACTION = (0.3, 0.8)
"""Training range of the fraction of the non-centre lines that are corrupted (paper)."""

N_SEGMENTS = (4, 24)
"""Training range (inclusive) of the number of motion segments (paper)."""

ROTATION_STD_DEG = 12.0
"""Training standard deviation of a segment's rotation in degrees (paper)."""

TRANSLATION_STD_PX = 30.0
"""Training standard deviation of a segment's translation per axis in pixels (paper, "30 voxels")."""

SEVERITY_LEVELS = (0.25, 0.125, 0.05)
"""The paper's evaluation levels: fraction of central k-space lines left uncorrupted."""

SEVERITY_N_SEGMENTS = (1, 8)
"""Number of movements at evaluation (authors' evaluation code)."""

SEVERITY_ROTATION_STD_DEG = 3.0
"""Rotation standard deviation at evaluation in degrees (authors' evaluation code)."""

SEVERITY_TRANSLATION_STD_PX = 10.0
"""Translation standard deviation at evaluation in pixels (authors' evaluation code)."""

LineOrdering = Literal["linear", "random"]


def center_band(n_lines: int, center_fraction: float) -> range:
    """The PE lines that keep the clean k-space.

    ``round(center_fraction * n_lines)`` lines (halves rounded up), placed around the DC line
    ``n_lines // 2`` so that it holds ``n // 2`` lines below DC: ``[n_lines//2 - n//2, ... + n)``.

    Args:
        n_lines: Number of PE lines ``N``.
        center_fraction: Fraction of lines in the band, in ``[0, 1]``.

    Returns:
        The band's line indices (empty for ``center_fraction = 0``).
    """
    if not 0.0 <= center_fraction <= 1.0:
        raise ValueError(f"center_fraction must be in [0, 1], got {center_fraction!r}")
    n = min(int(math.floor(center_fraction * n_lines + 0.5)), n_lines)
    start = n_lines // 2 - n // 2
    return range(start, start + n)


@dataclass(frozen=True)
class RigidMotionParams:
    """One rigid-motion corruption.

    Attributes:
        pe_axis: Image axis of phase encoding: ``-2`` (lines are rows, ky along H) or ``-1``
            (lines are columns, ky along W).
        center_fraction: Fraction of PE lines around DC that keep the clean k-space, in ``[0, 1)``
            (see :func:`center_band`).
        segments: PE line indices of each corrupted segment. No line may be in two segments; that no
            line lies in the centre band and that all indices are ``< N`` is checked by
            :func:`apply_rigid_motion`, which knows ``N``.
        rotations_deg: Rotation of each segment about the image centre ``((H-1)/2, (W-1)/2)``, in
            degrees, positive = counter-clockwise as displayed with row 0 at the top.
        translations_px: ``(dy, dx)`` translation of each segment in pixels, applied after the
            rotation; ``+dy`` moves content to larger row indices, ``+dx`` to larger column indices.
    """

    name: ClassVar[str] = "motion"

    pe_axis: int
    center_fraction: float
    segments: tuple[tuple[int, ...], ...]
    rotations_deg: tuple[float, ...]
    translations_px: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        if self.pe_axis not in (-2, -1):
            raise ValueError(f"pe_axis must be -2 or -1, got {self.pe_axis!r}")
        if not 0.0 <= self.center_fraction < 1.0:
            raise ValueError(f"center_fraction must be in [0, 1), got {self.center_fraction!r}")
        n = len(self.segments)
        if len(self.rotations_deg) != n or len(self.translations_px) != n:
            raise ValueError(
                f"need one rotation and one translation per segment: {n} segments, "
                f"{len(self.rotations_deg)} rotations_deg, {len(self.translations_px)} translations_px"
            )
        for s, lines in enumerate(self.segments):
            if len(lines) == 0:
                raise ValueError(f"segment {s} is empty")
            bad = [line for line in lines if not isinstance(line, int | np.integer) or line < 0]
            if bad:
                raise ValueError(f"segment {s}: line indices must be non-negative ints, got {bad[0]!r}")
        all_lines = np.fromiter((line for seg in self.segments for line in seg), dtype=np.int64)
        values, counts = np.unique(all_lines, return_counts=True)
        if np.any(counts > 1):
            raise ValueError(f"line {int(values[counts > 1][0])} appears twice in segments")
        for s, rot in enumerate(self.rotations_deg):
            if not math.isfinite(rot):
                raise ValueError(f"rotations_deg[{s}] must be finite, got {rot!r}")
        for s, shift in enumerate(self.translations_px):
            if len(shift) != 2 or not all(math.isfinite(v) for v in shift):
                raise ValueError(f"translations_px[{s}] must be a finite (dy, dx) pair, got {shift!r}")
        # plain nested tuples (e.g. after a JSON round trip gave lists), so equal params compare equal, and
        # plain Python scalars (NumPy ones from a draw or a config are not JSON-serialisable)
        object.__setattr__(self, "pe_axis", int(self.pe_axis))
        object.__setattr__(self, "center_fraction", float(self.center_fraction))
        object.__setattr__(self, "segments", tuple(tuple(int(line) for line in seg) for seg in self.segments))
        object.__setattr__(self, "rotations_deg", tuple(float(r) for r in self.rotations_deg))
        object.__setattr__(self, "translations_px", tuple((float(dy), float(dx)) for dy, dx in self.translations_px))

    @property
    def n_segments(self) -> int:
        """Number of motion segments."""
        return len(self.segments)

    @property
    def corrupted_lines(self) -> tuple[int, ...]:
        """All corrupted PE lines, sorted."""
        return tuple(sorted(line for seg in self.segments for line in seg))


def _check_shape(shape: Sequence[int]) -> tuple[int, int]:
    if len(shape) != 2 or int(shape[0]) < 2 or int(shape[1]) < 2:
        raise ValueError(f"shape must be (H, W) with H, W >= 2, got {tuple(shape)}")
    return int(shape[0]), int(shape[1])


def _split_sizes(rng: np.random.Generator, total: int, parts: int, minimum: int) -> np.ndarray:
    """Uniformly random composition of ``total`` into ``parts`` integers, each ``>= minimum``."""
    free = total - parts * minimum
    bars = np.sort(rng.choice(free + parts - 1, size=parts - 1, replace=False))
    edges = np.concatenate(([-1], bars, [free + parts - 1]))
    return np.diff(edges) - 1 + minimum


def _choose_segments(
    rng: np.random.Generator, outer: np.ndarray, n_corrupted: int, n_segments: int, ordering: LineOrdering
) -> list[np.ndarray]:
    """Pick ``n_corrupted`` of the ``outer`` lines (acquisition order) as ``n_segments`` segments."""
    if ordering == "linear":
        seg_sizes = _split_sizes(rng, n_corrupted, n_segments, 1)
        gap_sizes = _split_sizes(rng, len(outer) - n_corrupted, n_segments + 1, 0)
        starts = np.cumsum(gap_sizes[:-1]) + np.concatenate(([0], np.cumsum(seg_sizes)[:-1]))
        return [outer[a : a + n] for a, n in zip(starts, seg_sizes, strict=True)]
    if ordering == "random":
        chosen = rng.permutation(outer)[:n_corrupted]
        seg_sizes = _split_sizes(rng, n_corrupted, n_segments, 1)
        bounds = np.concatenate(([0], np.cumsum(seg_sizes)))
        return [np.sort(chosen[a:b]) for a, b in zip(bounds[:-1], bounds[1:], strict=True)]
    raise ValueError(f"ordering must be 'linear' or 'random', got {ordering!r}")


def sample_rigid_motion_params(
    rng: RngLike,
    shape: tuple[int, int],
    pe_axis: int | None = None,
    *,
    center_fraction: float = CENTER_FRACTION,
    corrupted_fraction: tuple[float, float] = CORRUPTED_FRACTION,
    n_segments: tuple[int, int] = N_SEGMENTS,
    rotation_std_deg: float = ROTATION_STD_DEG,
    translation_std_px: float = TRANSLATION_STD_PX,
    ordering: LineOrdering = "linear",
) -> RigidMotionParams:
    """Draw a rigid-motion corruption from the paper's training distribution.

    With ``M`` lines outside the centre band, ``round(f * M)`` lines are corrupted, ``f ~ U(corrupted
    _fraction)``, split into ``S ~ U{n_segments}`` segments (``S`` is capped at the number of corrupted
    lines; no line is corrupted when that number is 0). Poses are independent: rotation
    ``~ N(0, rotation_std_deg^2)``, ``dy, dx ~ N(0, translation_std_px^2)``.

    Args:
        rng: The only source of randomness (``numpy.random.Generator``, seed or None).
        shape: Image shape ``(H, W)``.
        pe_axis: ``-2`` or ``-1``; drawn uniformly when None (the paper picks LR or AP at random).
        center_fraction: Fraction of PE lines around DC kept clean.
        corrupted_fraction: ``(low, high)`` of the fraction of non-centre lines corrupted.
        n_segments: ``(low, high)``, inclusive, of the number of segments.
        rotation_std_deg: Standard deviation of the rotations in degrees.
        translation_std_px: Standard deviation of each translation component in pixels.
        ordering: ``"linear"`` (contiguous segments in linear ky order, default) or ``"random"``
            (random subset of lines); see the module docstring.

    Returns:
        The parameters.
    """
    shape = _check_shape(shape)
    rng = as_rng(rng)
    lo_f, hi_f = (float(v) for v in corrupted_fraction)
    if not 0.0 <= lo_f <= hi_f <= 1.0:
        raise ValueError(f"corrupted_fraction must satisfy 0 <= low <= high <= 1, got {corrupted_fraction!r}")
    lo_s, hi_s = (int(v) for v in n_segments)
    if not 1 <= lo_s <= hi_s:
        raise ValueError(f"n_segments must satisfy 1 <= low <= high, got {n_segments!r}")
    if not (rotation_std_deg >= 0.0 and translation_std_px >= 0.0):
        raise ValueError(
            f"standard deviations must be >= 0, got rotation_std_deg={rotation_std_deg!r}, "
            f"translation_std_px={translation_std_px!r}"
        )
    if ordering not in ("linear", "random"):
        raise ValueError(f"ordering must be 'linear' or 'random', got {ordering!r}")
    if pe_axis is None:
        pe_axis = int(rng.choice((-2, -1)))
    if pe_axis not in (-2, -1):
        raise ValueError(f"pe_axis must be -2, -1 or None, got {pe_axis!r}")
    n_lines = shape[pe_axis]
    band = center_band(n_lines, center_fraction)
    outer = np.setdiff1d(np.arange(n_lines, dtype=np.int64), np.arange(band.start, band.stop))
    fraction = rng.uniform(lo_f, hi_f)
    n_corrupted = int(math.floor(fraction * len(outer) + 0.5))
    n_seg = min(int(rng.integers(lo_s, hi_s + 1)), n_corrupted)
    segments = _choose_segments(rng, outer, n_corrupted, n_seg, ordering) if n_seg > 0 else []
    rotations = rng.normal(0.0, rotation_std_deg, size=n_seg)
    translations = rng.normal(0.0, translation_std_px, size=(n_seg, 2))
    return RigidMotionParams(
        pe_axis=pe_axis,
        center_fraction=float(center_fraction),
        segments=tuple(tuple(int(i) for i in seg) for seg in segments),
        rotations_deg=tuple(float(r) for r in rotations),
        translations_px=tuple((float(dy), float(dx)) for dy, dx in translations),
    )


def rigid_motion_params_for_severity(
    level: float, shape: tuple[int, int], rng: RngLike, pe_axis: int | None = None
) -> RigidMotionParams:
    """Rigid motion of an evaluation severity.

    The paper's levels leave the central 25 %, 12.5 % or 5 % of k-space lines uncorrupted. As in the
    authors' evaluation code the motion has 1-8 movements with rotation std 3 deg and translation std
    10 px. The paper does not state the corrupted fraction at evaluation; the training range 30-80 %
    of the non-centre lines is used.

    Args:
        level: Fraction of central PE lines left clean, in ``(0, 1)`` (smaller is worse).
        shape: Image shape ``(H, W)``.
        rng: Draws the segments and poses.
        pe_axis: ``-2`` or ``-1``; drawn uniformly when None.

    Returns:
        The parameters.
    """
    if not 0.0 < level < 1.0:
        raise ValueError(f"level (uncorrupted centre fraction) must be in (0, 1), got {level!r}")
    return sample_rigid_motion_params(
        rng,
        shape,
        pe_axis,
        center_fraction=float(level),
        corrupted_fraction=CORRUPTED_FRACTION,
        n_segments=SEVERITY_N_SEGMENTS,
        rotation_std_deg=SEVERITY_ROTATION_STD_DEG,
        translation_std_px=SEVERITY_TRANSLATION_STD_PX,
    )


def _affine_theta(rotations_deg: torch.Tensor, translations_px: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """``affine_grid`` matrices (P, 2, 3) of rigid poses, in normalised coordinates.

    A pose maps a pixel offset ``p = (x, y)`` from the centre (x along columns, y along rows) to
    ``R p + t`` with ``R = [[c, s], [-s, c]]`` (counter-clockwise as displayed, y pointing down). The
    output samples the input at ``R^-1 (p - t)``. With ``align_corners=False`` the normalised
    coordinate is ``n = D^-1 p``, ``D = diag(W/2, H/2)``, so ``theta = [D^-1 R^-1 D | -D^-1 R^-1 t]``;
    the ``D`` factors keep the rotation rigid on non-square images.
    """
    angle = torch.deg2rad(rotations_deg)
    c, s = torch.cos(angle), torch.sin(angle)
    dy, dx = translations_px[:, 0], translations_px[:, 1]
    half_w, half_h = width / 2.0, height / 2.0
    row0 = torch.stack((c, -s * (half_h / half_w), -(c * dx - s * dy) / half_w), dim=-1)
    row1 = torch.stack((s * (half_w / half_h), c, -(s * dx + c * dy) / half_h), dim=-1)
    return torch.stack((row0, row1), dim=-2)


def _warp(x: torch.Tensor, rotations_deg: torch.Tensor, translations_px: torch.Tensor) -> torch.Tensor:
    """Move real images ``x`` (N or 1, C, H, W) by P = N poses; returns (P, C, H, W).

    Bilinear interpolation, zero outside the field of view, ``align_corners=False`` (an identity pose
    samples exactly at pixel centres).
    """
    height, width = x.shape[-2:]
    theta = _affine_theta(rotations_deg, translations_px, height, width)
    n = theta.shape[0]
    grid = F.affine_grid(theta, [n, x.shape[1], height, width], align_corners=False)
    return F.grid_sample(x.expand(n, -1, -1, -1), grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def _real_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype in (torch.float64, torch.complex128) else torch.float32


def _as_channels(t: torch.Tensor) -> tuple[torch.Tensor, int]:
    """(B, H, W) real/complex -> real (B, C, H, W) with C = 1 (real) or 2 (real, imaginary)."""
    if t.is_complex():
        return torch.view_as_real(t).permute(0, 3, 1, 2), 2
    return t.unsqueeze(1), 1


def _from_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Inverse of :func:`_as_channels` on (..., C, H, W)."""
    if channels == 2:
        return torch.view_as_complex(x.movedim(-3, -1).contiguous())
    return x.squeeze(-3)


def rigid_transform(image: Any, rotation_deg: Any, translation_px: Any) -> Any:
    """Rotate image(s) about their centre, then translate them (bilinear, zero padding).

    ``I'(R p + t) = I(p)`` for pixel offsets ``p`` from the centre ``((H-1)/2, (W-1)/2)``; positive
    rotation is counter-clockwise as displayed with row 0 at the top, ``+dy`` moves content to larger
    row indices and ``+dx`` to larger column indices.

    Args:
        image: NumPy array or torch tensor ``(H, W)`` or ``(B, H, W)``, real or complex (real and
            imaginary parts are interpolated separately).
        rotation_deg: One angle in degrees for all images, or ``B`` angles, shape ``(B,)``.
        translation_px: One ``(dy, dx)`` in pixels, or ``B`` of them, shape ``(B, 2)``.

    Returns:
        The moved image(s), same kind, shape and dtype as ``image`` (integer input becomes float32).
    """
    check_image(image)
    t, was_numpy = to_tensor(image)
    squeeze = t.ndim == 2
    batch = t.unsqueeze(0) if squeeze else t
    real = _real_dtype(batch)
    rot = torch.as_tensor(np.asarray(rotation_deg, dtype=np.float64), device=t.device).to(real).reshape(-1)
    shift = torch.as_tensor(np.asarray(translation_px, dtype=np.float64), device=t.device).to(real)
    shift = shift.reshape(-1, 2)
    if len(rot) != len(shift) or len(rot) not in (1, batch.shape[0]):
        raise ValueError(f"need 1 or B={batch.shape[0]} poses, got {len(rot)} rotations and {len(shift)} translations")
    x, channels = _as_channels(batch)
    if len(rot) == 1:
        out = _warp(x.reshape(1, -1, *x.shape[-2:]), rot, shift).reshape(x.shape)
    else:
        out = _warp(x, rot, shift)
    out = _from_channels(out, channels)
    return from_tensor(out.squeeze(0) if squeeze else out, was_numpy)


def _line_segments(params: RigidMotionParams, n_lines: int) -> tuple[torch.Tensor, torch.Tensor]:
    """All corrupted lines and their segment index, validated against ``n_lines``."""
    lines = np.fromiter((i for seg in params.segments for i in seg), dtype=np.int64)
    owner = np.repeat(np.arange(params.n_segments), [len(seg) for seg in params.segments])
    if lines.size and lines.max() >= n_lines:
        raise ValueError(f"segment line {int(lines.max())} out of range for {n_lines} PE lines")
    band = center_band(n_lines, params.center_fraction)
    in_band = lines[(lines >= band.start) & (lines < band.stop)]
    if in_band.size:
        raise ValueError(
            f"lines {in_band.tolist()} lie in the clean centre band [{band.start}, {band.stop}) "
            f"of {n_lines} PE lines (center_fraction={params.center_fraction})"
        )
    return torch.from_numpy(lines), torch.from_numpy(owner)


def apply_rigid_motion(image: Any, params: RigidMotionParams) -> Any:
    """Simulate piece-wise constant rigid motion during a Cartesian acquisition.

    ``K[line] = fft2c(T_s(I))[line]`` for the lines of segment ``s``, ``K = fft2c(I)`` elsewhere, and
    the result is ``ifft2c(K)``. All segments are warped in one batched ``grid_sample`` and transformed
    in one batched FFT (memory ``~ S * B * H * W`` complex values).

    Args:
        image: NumPy array or torch tensor ``(H, W)`` or ``(B, H, W)``, real or complex; a real image
            is moved as is, a complex one by moving its real and imaginary parts.
        params: The corruption; its line indices must fit ``image.shape[params.pe_axis]``.

    Returns:
        The motion-corrupted complex image(s), same kind (NumPy/torch, device) and shape as
        ``image``; complex128 for float64/complex128 input, complex64 otherwise.
    """
    check_image(image)
    t, was_numpy = to_tensor(image)
    squeeze = t.ndim == 2
    batch = t.unsqueeze(0) if squeeze else t
    real = _real_dtype(batch)
    complex_dtype = torch.complex128 if real == torch.float64 else torch.complex64
    batch = batch.to(complex_dtype if batch.is_complex() else real)
    lines, owner = _line_segments(params, batch.shape[params.pe_axis])
    kspace = fft2c(batch).to(complex_dtype)
    if params.n_segments > 0:
        device = batch.device
        rot = torch.tensor(params.rotations_deg, dtype=real, device=device)
        shift = torch.tensor(params.translations_px, dtype=real, device=device).reshape(-1, 2)
        x, channels = _as_channels(batch)
        moved = _warp(x.reshape(1, -1, *x.shape[-2:]), rot, shift)
        moved = _from_channels(moved.reshape(len(rot), *x.shape), channels)
        moved_k = fft2c(moved).to(complex_dtype)
        lines, owner = lines.to(device), owner.to(device)
        kspace = kspace.clone()
        if params.pe_axis == -2:
            kspace[:, lines, :] = moved_k[owner, :, lines, :].permute(1, 0, 2)
        else:
            kspace[:, :, lines] = moved_k[owner, :, :, lines].permute(1, 2, 0)
    out = ifft2c(kspace)
    return from_tensor(out.squeeze(0) if squeeze else out, was_numpy)
