r"""Artefact detector: one presence score per residual head, gating that head's correction.

A residual network trained on images that always carry an artefact keeps "correcting" clean images: each
head adds a little texture of its own, which costs SSIM and, above all, VIF on scans that needed nothing.
The detector gives the model a cheap way to say "this artefact is absent": a small strided CNN looks at the
image and at its k-space log-magnitude (where subsampling leaves empty lines, motion leaves ghosts along
the phase-encoding axis and noise lifts the high-frequency floor) and returns, per head,

.. math:: g_i = \sigma\bigl(w_i^\top [\operatorname{mean}(f), \max(f)] + b_i\bigr) \in (0, 1),

which multiplies the head's residual, ``p_i <- g_i p_i``. The scores are also what a user reads as "which
artefacts were found". They are learned implicitly through the reconstruction loss (no labels): with
clean slices in the training data and the all-heads term, shrinking an absent artefact's residual is the
cheapest way to lower the loss. This is an addition to the paper's architecture (``ModelConfig.gates``).
"""

from __future__ import annotations

import torch
from torch import nn

from artefix.fft import fft2c

INITIAL_LOGIT = 3.0
"""Initial score logit (sigmoid 0.95): a detector added to trained heads starts by letting them through."""


class ArtefactDetector(nn.Module):
    """Per-head presence scores from an image and its k-space.

    Args:
        n_heads: Number of residual heads ``K``.
        width: Channels of the first strided convolution (doubled at each level).
        levels: Strided 3x3 convolutions (each halves the size).
        negative_slope: LeakyReLU slope.
    """

    def __init__(self, n_heads: int, width: int = 16, levels: int = 4, negative_slope: float = 0.2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        channels = 2
        for level in range(levels):
            out = width * 2**level
            layers += [nn.Conv2d(channels, out, 3, stride=2, padding=1), nn.LeakyReLU(negative_slope)]
            channels = out
        self.features = nn.Sequential(*layers)
        self.score = nn.Linear(2 * channels, n_heads)
        nn.init.zeros_(self.score.weight)
        nn.init.constant_(self.score.bias, INITIAL_LOGIT)

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """Scores ``g`` of shape ``(B, K)`` in ``(0, 1)`` for Z-normalised slices ``u`` ``(B, 1, H, W)``."""
        x = u[:, 0].to(self.score.weight.dtype)  # float32 under mixed precision (the FFT needs it), else the model's
        k = torch.log1p(fft2c(x).abs())
        k = (k - k.mean(dim=(-2, -1), keepdim=True)) / k.std(dim=(-2, -1), keepdim=True).clamp_min(1e-6)
        f = self.features(torch.stack([x, k], dim=1))
        pooled = torch.cat([f.mean(dim=(-2, -1)), f.amax(dim=(-2, -1))], dim=1)
        return torch.sigmoid(self.score(pooled)).to(u.dtype)
