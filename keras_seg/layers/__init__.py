"""Layers and blocks shared by several keras_seg architectures.

The blocks come twice, from one definition: graph functions (``conv_bn_act``, ``aspp``, ...)
that keras_seg's functional models are built with, and layer classes (``ConvBNAct``, ``ASPP``,
...) for a subclassed ``keras.Model`` of your own. See :mod:`keras_seg.layers.blocks`.
"""

from keras_seg.layers.blocks import (
    ASPP, AdaptiveAveragePooling2D, ConvBNAct, DoubleConv, FPNBlock, GroupNormalization, PyramidPooling,
    SegmentationHead, aspp,
    conv_bn_act, double_conv, fpn_block, pyramid_pooling, segmentation_head,
)  # fmt: skip
from keras_seg.layers.conv import Conv2D, DepthwiseConv2D
from keras_seg.layers.preprocessing import ImagePreprocessing
from keras_seg.layers.resize import ResizeLike, Upsample
from keras_seg.layers.upsample import Conv2DTranspose, ReLUAfterTransposeConv

__all__ = [
    "ASPP", "AdaptiveAveragePooling2D", "Conv2D", "Conv2DTranspose", "ConvBNAct", "DepthwiseConv2D", "DoubleConv", "FPNBlock", "GroupNormalization",
    "ImagePreprocessing", "PyramidPooling", "ReLUAfterTransposeConv", "ResizeLike", "SegmentationHead", "Upsample", "aspp", "conv_bn_act", "double_conv", "fpn_block",
    "pyramid_pooling", "segmentation_head",
]  # fmt: skip
