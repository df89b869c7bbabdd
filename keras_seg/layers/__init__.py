"""Layers and blocks shared by several keras_seg architectures."""

from keras_seg.layers.blocks import aspp, conv_bn_act, double_conv
from keras_seg.layers.preprocessing import ImagePreprocessing
from keras_seg.layers.resize import ResizeLike
from keras_seg.layers.upsample import Conv2DTranspose

__all__ = ["Conv2DTranspose", "ImagePreprocessing", "ResizeLike", "aspp", "conv_bn_act", "double_conv"]
