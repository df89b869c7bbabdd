"""The classic U-Net written directly in PyTorch: the reference ``keras-seg bench`` times against.

The network of the seed document, layer for layer: per level a DoubleConv (3x3 conv with
bias, BatchNorm, ReLU, twice), 2x2 max pooling, a 1024-channel bottleneck, 2x2 stride-2
transposed convs, the skip concatenated first (``[skip, up]``), nearest resize when odd
sizes disagree, a 1x1 conv to the classes. With 3 input channels, 1 output channel and the
default widths it has 31,043,521 parameters -- the same as ``keras_seg.models.UNet(1)``.

It lives in the package (not only in ``benchmarks/``) so that ``keras-seg bench`` works from an
installed copy. Only PyTorch is needed to import it.
"""

import torch
from torch import nn


def double_conv(in_channels, out_channels):
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class TorchUNet(nn.Module):
    """``TorchUNet(in_channels=3, out_channels=1, widths=(64, 128, 256, 512))``: NCHW in, logits out."""

    def __init__(self, in_channels=3, out_channels=1, widths=(64, 128, 256, 512)):
        super().__init__()
        self.encoder = nn.ModuleList()
        for width in widths:
            self.encoder.append(double_conv(in_channels, width))
            in_channels = width
        self.pool = nn.MaxPool2d(2, 2)
        self.bottleneck = double_conv(widths[-1], widths[-1] * 2)
        self.up = nn.ModuleList(nn.ConvTranspose2d(w * 2, w, kernel_size=2, stride=2) for w in reversed(widths))
        self.decoder = nn.ModuleList(double_conv(w * 2, w) for w in reversed(widths))
        self.head = nn.Conv2d(widths[0], out_channels, kernel_size=1)

    def forward(self, x):
        skips = []
        for block in self.encoder:
            x = block(x)
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, block, skip in zip(self.up, self.decoder, reversed(skips)):
            x = up(x)
            if x.shape[2:] != skip.shape[2:]:
                x = nn.functional.interpolate(x, size=skip.shape[2:])
            x = block(torch.cat([skip, x], dim=1))
        return self.head(x)


def count_parameters(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
