import pytest
import torch
from torch import nn

from artefix.models.blocks import ConvBlock, UpBlock
from artefix.models.unet import SRResUNet, decoder_widths, encoder_widths


def _conv_params(cin: int, cout: int) -> int:
    # 3x3 kernel without bias + batch-norm scale and shift
    return 9 * cin * cout + 2 * cout


def test_conv_block_layout_and_parameter_count():
    block = ConvBlock(5, 7, convs=3, negative_slope=0.2)
    kinds = [type(m) for m in block]
    assert kinds == [nn.Conv2d, nn.BatchNorm2d, nn.LeakyReLU] * 3
    convs = [m for m in block if isinstance(m, nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) and c.padding == (1, 1) and c.bias is None for c in convs)
    assert [c.stride for c in convs] == [(1, 1)] * 3
    assert all(m.negative_slope == 0.2 for m in block if isinstance(m, nn.LeakyReLU))
    assert sum(p.numel() for p in block.parameters()) == _conv_params(5, 7) + 2 * _conv_params(7, 7)


@pytest.mark.parametrize(("h", "w"), [(8, 8), (9, 6), (7, 13)])
def test_conv_block_stride_halves_rounding_up(h, w):
    x = torch.randn(2, 3, h, w)
    assert ConvBlock(3, 4)(x).shape == (2, 4, h, w)
    strided = ConvBlock(3, 4, stride=2)
    assert [m.stride for m in strided if isinstance(m, nn.Conv2d)] == [(2, 2), (1, 1), (1, 1)]
    assert strided(x).shape == (2, 4, (h + 1) // 2, (w + 1) // 2)


def test_conv_block_leaky_relu_slope_on_negative_inputs():
    # One 3x3 conv whose kernel is a centred delta and an identity batch norm in eval mode:
    # the block is exactly LeakyReLU(x / sqrt(1 + eps)), LeakyReLU(t) = max(t, 0.2 t).
    block = ConvBlock(1, 1, convs=1, negative_slope=0.2).eval()
    with torch.no_grad():
        block[0].weight.zero_()
        block[0].weight[0, 0, 1, 1] = 1.0
    x = torch.linspace(-3, 3, 25).reshape(1, 1, 5, 5)
    t = x / (1 + block[1].eps) ** 0.5
    torch.testing.assert_close(block(x), torch.where(t > 0, t, 0.2 * t), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"in_channels": 0, "out_channels": 4}, "in_channels"),
        ({"in_channels": 2, "out_channels": 4, "stride": 3}, "stride"),
        ({"in_channels": 2, "out_channels": 4, "convs": 0}, "convs"),
        ({"in_channels": 2, "out_channels": 4, "negative_slope": -1.0}, "negative_slope"),
    ],
)
def test_conv_block_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConvBlock(**kwargs)


def test_up_block_upsamples_to_skip_size_and_concatenates():
    up = UpBlock(in_channels=6, skip_channels=3, out_channels=5, convs=2)
    assert up.block[0].in_channels == 9
    x, skip = torch.randn(2, 6, 4, 5), torch.randn(2, 3, 8, 10)
    assert up(x, skip).shape == (2, 5, 8, 10)


def test_paper_widths_and_twelve_blocks():
    assert encoder_widths(64, 5) == [64, 64, 128, 256, 512, 1024]
    assert decoder_widths(64, 5) == [256, 128, 64, 64, 64]
    net = SRResUNet(1, 4, base_width=64, depth=5)
    blocks = [m for m in net.modules() if isinstance(m, ConvBlock)]
    assert len(blocks) == 12
    strided = [b for b in blocks if b[0].stride == (2, 2)]
    assert [b.out_channels for b in strided] == [64 * 2**d for d in range(5)]
    assert all(sum(isinstance(m, nn.Conv2d) for m in b) == 3 for b in blocks)
    assert net.stride == 32


def test_unet_parameter_count_matches_the_layer_plan():
    b, depth, cin, cout = 4, 2, 2, 8
    net = SRResUNet(cin, cout, base_width=b, depth=depth, convs_per_block=3)

    def block(ci, co):
        return _conv_params(ci, co) + 2 * _conv_params(co, co)

    expected = block(cin, 4) + block(4, 4) + block(4, 8)  # stem, strided d=0, d=1
    expected += block(8 + 4, 4) + block(4 + 4, 4)  # upsampling: max(skip // 2, b) channels
    expected += block(4, 4) + (4 * cout + cout)  # output block, 1x1 head with bias
    assert sum(p.numel() for p in net.parameters()) == expected


@pytest.mark.parametrize("shape", [(2, 2, 16, 24), (1, 2, 12, 13)])
def test_unet_preserves_size(shape):
    # 12 and 13 are not multiples of the stride 8: upsampling resizes to each skip's size
    net = SRResUNet(2, 3, base_width=4, depth=3).eval()
    assert net(torch.randn(shape)).shape == (shape[0], 3, *shape[2:])
