"""Building blocks of the SRResNet-style U-Net branches.

A *block* is ``n`` repetitions of ``3x3 convolution -> batch normalisation -> LeakyReLU(0.2)``
(the paper's "three 2D convolutional layers ... followed by batch normalization layers and a LeakyReLU
activation with a slope of 0.2"). A *strided* block makes its first convolution stride 2, halving the
height and width; an *upsampling* block doubles the resolution (nearest neighbour), concatenates the
U-Net skip of that resolution along the channels and then runs a block.

All tensors are ``(B, C, H, W)`` float tensors.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _check_positive(name: str, value: int) -> None:
    if int(value) != value or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


class ConvBlock(nn.Sequential):
    """``convs`` x (3x3 conv -> BatchNorm -> LeakyReLU), optionally strided.

    Each convolution maps ``y = LeakyReLU(BN(W * x))`` with ``LeakyReLU(t) = max(t, s t)``. The
    convolutions carry no bias, because the batch normalisation that follows has its own shift.

    Args:
        in_channels: Channels of the input.
        out_channels: Channels of every convolution in the block.
        convs: Number of convolutions (the paper uses 3).
        stride: Stride of the first convolution (1, or 2 to halve ``H`` and ``W``, rounding up).
        negative_slope: Slope ``s`` of the LeakyReLU for negative inputs (paper: 0.2).

    Shapes:
        ``(B, in_channels, H, W) -> (B, out_channels, ceil(H / stride), ceil(W / stride))``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        convs: int = 3,
        stride: int = 1,
        negative_slope: float = 0.2,
    ) -> None:
        _check_positive("in_channels", in_channels)
        _check_positive("out_channels", out_channels)
        _check_positive("convs", convs)
        if stride not in (1, 2):
            raise ValueError(f"stride must be 1 or 2, got {stride!r}")
        if not negative_slope >= 0.0:
            raise ValueError(f"negative_slope must be >= 0, got {negative_slope!r}")
        layers: list[nn.Module] = []
        for i in range(convs):
            layers += [
                nn.Conv2d(
                    in_channels if i == 0 else out_channels,
                    out_channels,
                    kernel_size=3,
                    stride=stride if i == 0 else 1,
                    padding=1,
                    bias=False,
                ),
                nn.BatchNorm2d(out_channels),
                nn.LeakyReLU(negative_slope, inplace=True),
            ]
        super().__init__(*layers)
        self.in_channels = in_channels
        self.out_channels = out_channels


class UpBlock(nn.Module):
    """Nearest-neighbour upsampling to the skip's size, channel concatenation, then a :class:`ConvBlock`.

    Args:
        in_channels: Channels of the low-resolution input.
        skip_channels: Channels of the skip connection.
        out_channels: Channels of the block's convolutions.
        convs: Number of convolutions.
        negative_slope: LeakyReLU slope.

    Shapes:
        ``x: (B, in_channels, h, w)``, ``skip: (B, skip_channels, H, W)`` with ``H <= 2h``, ``W <= 2w``
        -> ``(B, out_channels, H, W)``.
    """

    def __init__(
        self,
        in_channels: int,
        skip_channels: int,
        out_channels: int,
        convs: int = 3,
        negative_slope: float = 0.2,
    ) -> None:
        super().__init__()
        _check_positive("skip_channels", skip_channels)
        self.block = ConvBlock(in_channels + skip_channels, out_channels, convs, 1, negative_slope)
        self.out_channels = out_channels

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        """Upsample ``x`` to ``skip``'s height and width, concatenate, convolve."""
        x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        return self.block(torch.cat([x, skip], dim=1))
