"""The convolutional pieces every classifier of the book is made of (chapters 5-8).

One architecture family serves every data set of the seeds, in 1-D (heartbeats: ``(B, C, L)``) and 2-D (images:
``(B, C, H, W)``): a *stem* of downsampling convolutions, a *body* that keeps the shape (residual blocks, or
an ODE block whose field is :class:`ConvODEFunc`), and a *head* (GroupNorm, ReLU, pooling, a linear layer).
The chapters' models (:mod:`nodelib.classification`, :mod:`nodelib.ace`, :mod:`nodelib.gode`) are built from
these; every layer takes its channels first and the number of spatial dimensions as the keyword ``dims``
(2 by default).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

__all__ = ["STEMS", "group_norm", "conv_class", "ConcatConv", "ConvODEFunc", "ConvResBlock", "stem", "head"]

STEMS = ("chen", "small")


def group_norm(channels: int, max_groups: int = 32) -> nn.GroupNorm:
    """GroupNorm with the largest number of groups ``<= max_groups`` that divides ``channels``.

    64 channels give the seeds' ``GroupNorm(32, 64)``; 69 (64 plus 5 augmented) give 23 groups of 3.
    """
    groups = max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


def conv_class(dims: int) -> type[nn.Module]:
    """``nn.Conv1d`` for signals (``dims=1``), ``nn.Conv2d`` for images (``dims=2``)."""
    if dims not in (1, 2):
        raise ValueError(f"dims must be 1 (signals) or 2 (images), got {dims!r}")
    return nn.Conv1d if dims == 1 else nn.Conv2d


class ConcatConv(nn.Module):
    """A convolution that sees the time as one extra input channel, constant over space: ``conv([t; x])``."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, padding: int = 1, *,
                 dims: int = 2) -> None:
        super().__init__()
        self.conv = conv_class(dims)(in_channels + 1, out_channels, kernel_size, padding=padding)

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        time_channel = x[:, :1].mul(0).add(t)  # same shape, dtype and device as one channel of x
        return self.conv(torch.cat([time_channel, x], dim=1))


class ConvODEFunc(nn.Module):
    """The vector field of the ODE block: GN-ReLU-ConcatConv-GN-ReLU-ConcatConv-GN (3x3 or width-3 kernels)."""

    def __init__(self, channels: int, *, dims: int = 2) -> None:
        super().__init__()
        self.norm1 = group_norm(channels)
        self.conv1 = ConcatConv(channels, channels, dims=dims)
        self.norm2 = group_norm(channels)
        self.conv2 = ConcatConv(channels, channels, dims=dims)
        self.norm3 = group_norm(channels)
        self.relu = nn.ReLU()

    def forward(self, t: Tensor, x: Tensor) -> Tensor:
        out = self.conv1(t, self.relu(self.norm1(x)))
        out = self.conv2(t, self.relu(self.norm2(out)))
        return self.norm3(out)


class ConvResBlock(nn.Module):
    """A pre-activation residual block, ``x + conv(ReLU(GN(conv(ReLU(GN(x))))))``, convolutions without bias."""

    def __init__(self, channels: int, *, dims: int = 2) -> None:
        super().__init__()
        conv = conv_class(dims)
        self.gn1 = group_norm(channels)
        self.conv1 = conv(channels, channels, 3, padding=1, bias=False)
        self.gn2 = group_norm(channels)
        self.conv2 = conv(channels, channels, 3, padding=1, bias=False)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        out = self.conv1(self.relu(self.gn1(x)))
        out = self.conv2(self.relu(self.gn2(out)))
        return x + out


def stem(in_channels: int, width: int = 64, kind: str = "chen", *, dims: int = 2) -> nn.Sequential:
    """The downsampling convolutions in front of the body.

    ``"chen"``: conv 3 (no padding), then two stride-2 convs of kernel 4 with GroupNorm-ReLU between (the stem of
    torchdiffeq's MNIST example and of Facci & Zurlo's ECG networks: 28x28 -> 6x6, 187 -> 46). ``"small"``: a
    padded conv 3 and one stride-2 conv (8x8 digits -> 4x4), for inputs too small for three convolutions.
    """
    conv = conv_class(dims)
    if kind == "chen":
        return nn.Sequential(
            conv(in_channels, width, 3, 1), group_norm(width), nn.ReLU(inplace=True),
            conv(width, width, 4, 2, 1), group_norm(width), nn.ReLU(inplace=True),
            conv(width, width, 4, 2, 1),
        )
    if kind == "small":
        return nn.Sequential(
            conv(in_channels, width, 3, 1, 1), group_norm(width), nn.ReLU(inplace=True),
            conv(width, width, 4, 2, 1),
        )
    raise ValueError(f"stem must be one of {STEMS}, got {kind!r}")


def head(channels: int, n_classes: int, *, dims: int = 2) -> nn.Sequential:
    """GroupNorm, ReLU, global average pooling, flatten and a linear layer to ``n_classes`` logits."""
    pool = nn.AdaptiveAvgPool1d(1) if dims == 1 else nn.AdaptiveAvgPool2d((1, 1))
    return nn.Sequential(group_norm(channels), nn.ReLU(inplace=True), pool, nn.Flatten(), nn.Linear(channels, n_classes))
