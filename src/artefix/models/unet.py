"""The U-Net-shaped SRResNet branch of the dual-domain model.

One branch maps ``(B, in_channels, H, W)`` to ``(B, out_channels, H, W)``. ``H`` and ``W`` should be
multiples of :attr:`SRResUNet.stride` ``= 2**depth`` (the dual-domain model pads for you); other sizes
run, but each upsampling then resizes unevenly to its skip's size. With base
width ``b`` and depth ``D`` the layers are, by resolution level ``l`` (level ``l`` has ``H / 2**l`` rows):

1. a stem block at level 0 with ``b`` channels;
2. ``D`` strided blocks; strided block ``d = 0..D-1`` (the paper's "downsampling depth" ``d``) has
   ``b * 2**d`` channels and takes level ``d`` to level ``d + 1``;
3. ``D`` upsampling blocks, from level ``D`` back to level 0; the block arriving at level ``l`` upsamples
   x2, concatenates the skip of level ``l`` (the stem or the output of strided block ``l - 1``) and has
   ``max(skip_channels // 2, b)`` channels (half its skip, as U-Net's up-convolution halves channels);
4. an output block at level 0 with ``b`` channels;
5. a 1x1 convolution to ``out_channels`` (the residual heads; ``K`` separate 1x1 convolutions with one
   output each are the same operator as one 1x1 convolution with ``K`` outputs).

That is ``2 D + 2`` blocks: twelve for the paper's ``D = 5``.
"""

from __future__ import annotations

import torch
from torch import nn

from artefix.models.blocks import ConvBlock, UpBlock, _check_positive


def encoder_widths(base_width: int, depth: int) -> list[int]:
    """Channels of the stem and the strided blocks, ``[b, b, 2b, ..., b 2**(depth-1)]``."""
    return [base_width] + [base_width * 2**d for d in range(depth)]


def decoder_widths(base_width: int, depth: int) -> list[int]:
    """Channels of the upsampling blocks, deepest first: ``max(skip // 2, b)`` for levels ``depth-1..0``."""
    skips = encoder_widths(base_width, depth)[:-1]
    return [max(skips[level] // 2, base_width) for level in reversed(range(depth))]


class SRResUNet(nn.Module):
    """U-Net of SRResNet-style conv blocks (see the module docstring for the layer plan).

    Args:
        in_channels: Input channels (1 for an image, 2 for real and imaginary k-space).
        out_channels: Output channels of the final 1x1 convolution.
        base_width: Channels ``b`` at full resolution (paper: 64).
        depth: Number of strided (and of upsampling) blocks ``D`` (paper: 5).
        convs_per_block: 3x3 convolutions per block (paper: 3).
        negative_slope: LeakyReLU slope (paper: 0.2).

    Shapes:
        ``(B, in_channels, H, W) -> (B, out_channels, H, W)``, ``H, W`` ideally multiples of ``2**depth``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        base_width: int = 64,
        depth: int = 5,
        convs_per_block: int = 3,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        _check_positive("out_channels", out_channels)
        _check_positive("base_width", base_width)
        _check_positive("depth", depth)
        self.depth = depth
        enc = encoder_widths(base_width, depth)
        self.stem = ConvBlock(in_channels, enc[0], convs_per_block, 1, negative_slope)
        self.down = nn.ModuleList(
            ConvBlock(enc[d], enc[d + 1], convs_per_block, 2, negative_slope) for d in range(depth)
        )
        ups: list[UpBlock] = []
        channels = enc[-1]
        for level, width in zip(reversed(range(depth)), decoder_widths(base_width, depth), strict=True):
            ups.append(UpBlock(channels, enc[level], width, convs_per_block, negative_slope))
            channels = width
        self.up = nn.ModuleList(ups)
        self.out_block = ConvBlock(channels, base_width, convs_per_block, 1, negative_slope)
        self.head = nn.Conv2d(base_width, out_channels, kernel_size=1)

    @property
    def stride(self) -> int:
        """Total downsampling factor ``2**depth``; ``H`` and ``W`` should be multiples of it."""
        return 2**self.depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Run the branch: ``(B, C_in, H, W) -> (B, C_out, H, W)``."""
        skips = [self.stem(x)]
        for block in self.down:
            skips.append(block(skips[-1]))
        y = skips.pop()
        for block in self.up:
            y = block(y, skips.pop())
        return self.head(self.out_block(y))
