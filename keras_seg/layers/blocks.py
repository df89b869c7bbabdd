"""Building blocks shared by several architectures, as functions that apply Keras layers.

Each function takes a symbolic tensor and returns one, creating its layers with
names derived from ``name``, so models stay plain functional graphs (one static
graph for ``summary()``, saving and export). Batch normalisation uses PyTorch's
defaults (momentum 0.1 in PyTorch terms, i.e. Keras ``momentum=0.9``, epsilon 1e-5)
so parameter counts and behaviour match the reference implementations.
"""

import keras

from keras_seg.layers.resize import ResizeLike

layers = keras.layers
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


def conv_bn_act(x, filters, kernel_size=3, *, name, dilation_rate=1, separable=False, use_bias=False, activation="relu"):
    """Conv (or depthwise-separable conv) -> BatchNorm -> activation, "same" padding."""
    if separable and kernel_size > 1:
        x = layers.DepthwiseConv2D(
            kernel_size, padding="same", dilation_rate=dilation_rate, use_bias=False, name=f"{name}_depthwise"
        )(x)
        x = layers.Conv2D(filters, 1, use_bias=use_bias, name=f"{name}_pointwise")(x)
    else:
        x = layers.Conv2D(
            filters, kernel_size, padding="same", dilation_rate=dilation_rate, use_bias=use_bias, name=f"{name}_conv"
        )(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn")(x)
    if activation is not None:
        x = layers.Activation(activation, name=f"{name}_{activation}")(x)
    return x


def double_conv(x, filters, *, name, use_bias=True):
    """The U-Net block: two 3x3 conv -> BN -> ReLU (conv biases on, as in the reference)."""
    x = conv_bn_act(x, filters, 3, use_bias=use_bias, name=f"{name}_1")
    return conv_bn_act(x, filters, 3, use_bias=use_bias, name=f"{name}_2")


def aspp(x, channels, rates, *, name, separable=False, dropout=0.5):
    """Atrous Spatial Pyramid Pooling (Chen et al. 2017).

    Five parallel branches on ``x``: a 1x1 conv, one 3x3 conv per dilation rate in
    ``rates``, and image pooling (global average -> 1x1 conv -> BN -> ReLU -> resized
    back); concatenated, projected by a 1x1 conv -> BN -> ReLU, then dropout.
    """
    branches = [conv_bn_act(x, channels, 1, name=f"{name}_b0")]
    for i, rate in enumerate(rates, start=1):
        branches.append(conv_bn_act(x, channels, 3, dilation_rate=rate, separable=separable, name=f"{name}_b{i}"))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    pooled = conv_bn_act(pooled, channels, 1, name=f"{name}_pool_proj")
    branches.append(ResizeLike("bilinear", name=f"{name}_pool_resize")([pooled, x]))
    y = layers.Concatenate(name=f"{name}_concat")(branches)
    y = conv_bn_act(y, channels, 1, name=f"{name}_project")
    if dropout:
        y = layers.Dropout(dropout, name=f"{name}_dropout")(y)
    return y
