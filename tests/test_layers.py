"""nodelib.layers: the convolutional pieces of every classifier."""
from __future__ import annotations

import pytest
import torch

from nodelib.layers import ConcatConv, ConvODEFunc, ConvResBlock, conv_class, group_norm, head, stem
from nodelib.utils import count_parameters


def test_group_norm_picks_a_divisor():
    assert group_norm(64).num_groups == 32
    assert group_norm(69).num_groups == 23
    assert group_norm(37).num_groups == 1


def test_time_enters_as_a_channel():
    torch.manual_seed(0)
    conv = ConcatConv(4, 4)
    x = torch.randn(2, 4, 5, 5)
    assert not torch.allclose(conv(torch.tensor(0.0), x), conv(torch.tensor(1.0), x))
    # a constant time channel: changing t by 1 adds the convolution of a channel of ones with the time weights
    ones = torch.ones(2, 1, 5, 5)
    expected = torch.nn.functional.conv2d(ones, conv.conv.weight[:, :1], padding=1)
    torch.testing.assert_close(conv(torch.tensor(1.0), x) - conv(torch.tensor(0.0), x), expected)


@pytest.mark.parametrize("dims,shape", [(1, (2, 8, 11)), (2, (2, 8, 6, 6))])
def test_every_layer_keeps_channels_first_and_dims_as_a_keyword(dims, shape):
    x = torch.randn(*shape)
    assert ConvODEFunc(8, dims=dims)(torch.tensor(0.5), x).shape == x.shape
    assert ConvResBlock(8, dims=dims)(x).shape == x.shape
    assert head(8, 5, dims=dims)(x).shape == (2, 5)
    assert stem(1, 8, "small", dims=dims)(torch.randn(2, 1, *shape[2:])).shape[1] == 8
    # the formulas of chapter 5: 2 k^d C^2 + 4C for a residual block, 2((C + 1) k^d C + C) + 6C for the field
    k = 3 ** dims
    assert count_parameters(ConvResBlock(8, dims=dims)) == 2 * k * 64 + 32
    assert count_parameters(ConvODEFunc(8, dims=dims)) == 2 * (9 * k * 8 + 8) + 48


def test_bad_dims_and_stems_are_named():
    with pytest.raises(ValueError, match="dims must be 1"):
        conv_class(3)
    with pytest.raises(ValueError, match="stem must be one of"):
        stem(1, 8, "big")
