"""Building blocks shared by several architectures: as graph functions, and as Keras layers.

Each block is written once, as a pair: a function that makes its sublayers (named from
``name``) and a forward function that applies them. The graph functions (``conv_bn_act``,
``double_conv``, ``aspp``, ``pyramid_pooling``, ``fpn_block``, ``segmentation_head``) apply the
sublayers to a symbolic tensor, so keras_seg's models stay flat functional graphs (one static
graph for ``summary()``, saving, export, and the same weights paths as the files earlier
versions wrote). The layer classes (:class:`ConvBNAct`, :class:`DoubleConv`, :class:`ASPP`,
:class:`PyramidPooling`, :class:`FPNBlock`, :class:`SegmentationHead`) hold the same sublayers
and run the same forward function in ``call``, for a user's own subclassed ``keras.Model``.

Normalisation uses PyTorch's defaults (BatchNorm momentum 0.1 in PyTorch terms, i.e. Keras
``momentum=0.9``; epsilon 1e-5; GroupNorm epsilon 1e-5), so parameter counts and behaviour
match the reference implementations.
"""

import keras
import numpy as np
from keras import ops

from keras_seg.layers.conv import Conv2D, DepthwiseConv2D
from keras_seg.layers.resize import ResizeLike, Upsample

layers = keras.layers
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5
NORMS = ("batch", "group", None)
GROUPS = 32  # GroupNorm groups (segmentation_models.pytorch's FPN)


# ---------------------------------------------------------------------------------------------- conv-norm-act


def _conv_bn_act_parts(filters, kernel_size, name, dilation_rate=1, separable=False, use_bias=False,
                       activation="relu", norm="batch"):  # fmt: skip
    if norm not in NORMS:
        raise ValueError(f"norm={norm!r} is not supported; expected one of {NORMS}.")
    parts = []
    if separable and kernel_size > 1:
        parts.append(DepthwiseConv2D(kernel_size, padding="same", dilation_rate=dilation_rate, use_bias=False,
                                     name=f"{name}_depthwise"))  # fmt: skip
        parts.append(layers.Conv2D(filters, 1, use_bias=use_bias, name=f"{name}_pointwise"))
    else:
        parts.append(Conv2D(filters, kernel_size, padding="same", dilation_rate=dilation_rate, use_bias=use_bias,
                            name=f"{name}_conv"))  # fmt: skip
    if norm == "batch":
        parts.append(layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_bn"))
    elif norm == "group":
        parts.append(GroupNormalization(GROUPS, epsilon=BN_EPSILON, name=f"{name}_gn"))
    if activation is not None:
        parts.append(layers.Activation(activation, name=f"{name}_{activation}"))
    return parts


def _chain(parts, x):
    for part in parts:
        x = part(x)
    return x


def conv_bn_act(x, filters, kernel_size=3, *, name, dilation_rate=1, separable=False, use_bias=False, activation="relu",
                norm="batch"):  # fmt: skip
    """Conv (or depthwise-separable conv) -> BatchNorm (or GroupNorm, or none) -> activation, "same" padding."""
    return _chain(_conv_bn_act_parts(filters, kernel_size, name, dilation_rate, separable, use_bias, activation, norm), x)


def _double_conv_parts(filters, name, use_bias=True):
    return _conv_bn_act_parts(filters, 3, f"{name}_1", use_bias=use_bias) + _conv_bn_act_parts(
        filters, 3, f"{name}_2", use_bias=use_bias
    )


def double_conv(x, filters, *, name, use_bias=True):
    """The U-Net block: two 3x3 conv -> BN -> ReLU (conv biases on, as in the reference)."""
    return _chain(_double_conv_parts(filters, name, use_bias), x)


# ---------------------------------------------------------------------------------------------- ASPP


def _aspp_parts(channels, rates, name, separable=False, dropout=0.5):
    return {
        "branches": [_conv_bn_act_parts(channels, 1, f"{name}_b0")] + [
            _conv_bn_act_parts(channels, 3, f"{name}_b{i}", dilation_rate=rate, separable=separable)
            for i, rate in enumerate(rates, start=1)
        ],
        "pool": [layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")]
        + _conv_bn_act_parts(channels, 1, f"{name}_pool_proj"),
        "pool_resize": ResizeLike("bilinear", name=f"{name}_pool_resize"),
        "concat": layers.Concatenate(name=f"{name}_concat"),
        "project": _conv_bn_act_parts(channels, 1, f"{name}_project")
        + ([layers.Dropout(dropout, name=f"{name}_dropout")] if dropout else []),
    }


def _aspp_forward(parts, x):
    branches = [_chain(branch, x) for branch in parts["branches"]]
    branches.append(parts["pool_resize"]([_chain(parts["pool"], x), x]))
    return _chain(parts["project"], parts["concat"](branches))


def aspp(x, channels, rates, *, name, separable=False, dropout=0.5):
    """Atrous Spatial Pyramid Pooling (Chen et al. 2017).

    Five parallel branches on ``x``: a 1x1 conv, one 3x3 conv per dilation rate in
    ``rates``, and image pooling (global average -> 1x1 conv -> BN -> ReLU -> resized
    back); concatenated, projected by a 1x1 conv -> BN -> ReLU, then dropout.
    """
    return _aspp_forward(_aspp_parts(channels, rates, name, separable, dropout), x)


# ---------------------------------------------------------------------------------------------- pyramid pooling


def _pyramid_pooling_parts(channels, sizes, name, norm_pooled_to_one=True, coordinates="half_pixel"):
    branches = []
    for size in sizes:
        norm = "batch" if size > 1 or norm_pooled_to_one else None  # PSPNet: no BatchNorm on a 1x1 map
        branches.append([AdaptiveAveragePooling2D(size, name=f"{name}_pool{size}")]
                        + _conv_bn_act_parts(channels, 1, f"{name}_pool{size}", use_bias=norm is None, norm=norm))  # fmt: skip
    interpolation = {"align_corners": "bilinear", "half_pixel": "bilinear"}[coordinates]
    return {
        "branches": branches,
        "resize": [ResizeLike(interpolation, coordinates, name=f"{name}_pool{size}_up") for size in sizes],
        "concat": layers.Concatenate(name=f"{name}_concat"),
    }


def _pyramid_pooling_forward(parts, x, input_first):
    pooled = [resize([_chain(branch, x), x]) for branch, resize in zip(parts["branches"], parts["resize"])]
    return parts["concat"]([x] + pooled if input_first else pooled + [x])


def pyramid_pooling(x, channels, sizes=(1, 2, 3, 6), *, name, input_first=False, norm_pooled_to_one=True,
                    coordinates="half_pixel"):  # fmt: skip
    """The pyramid pooling module of PSPNet (Zhao et al. 2017): ``x`` with its pooled context, concatenated.

    Per bin size ``s``: adaptive average pooling to ``s x s`` (PyTorch's bins), a 1x1
    conv-BN-ReLU to ``channels``, resized back to ``x``'s size. ``norm_pooled_to_one=False``
    drops the BatchNorm (and gives the conv a bias) for the 1x1 bin, as
    segmentation_models.pytorch's PSPNet does; ``input_first`` puts ``x`` before the pooled maps
    (UPerNet) rather than after them (PSPNet); ``coordinates`` as :class:`ResizeLike`'s.
    """
    parts = _pyramid_pooling_parts(channels, sizes, name, norm_pooled_to_one, coordinates)
    return _pyramid_pooling_forward(parts, x, input_first)


# ---------------------------------------------------------------------------------------------- FPN fusion


def _fpn_block_parts(channels, name, lateral_norm=None, interpolation="nearest", coordinates="half_pixel"):
    activation = "relu" if lateral_norm else None
    return {
        "lateral": _conv_bn_act_parts(channels, 1, f"{name}_lateral", use_bias=lateral_norm is None,
                                      activation=activation, norm=lateral_norm),  # fmt: skip
        "resize": ResizeLike(interpolation, coordinates, name=f"{name}_up"),
        "add": layers.Add(name=f"{name}_add"),
    }


def _fpn_block_forward(parts, state, lateral):
    lateral = _chain(parts["lateral"], lateral)
    return parts["add"]([parts["resize"]([state, lateral]), lateral])


def fpn_block(state, lateral, channels, *, name, lateral_norm=None, interpolation="nearest", coordinates="half_pixel"):
    """A top-down FPN step (Lin et al. 2017): the coarser ``state`` resized to ``lateral`` plus its 1x1 projection.

    ``lateral_norm=None``: a plain 1x1 conv with a bias and nearest upsampling (FPN as
    segmentation_models.pytorch builds it); ``"batch"`` with ``interpolation="bilinear"``:
    1x1 conv-BN-ReLU (UPerNet).
    """
    return _fpn_block_forward(_fpn_block_parts(channels, name, lateral_norm, interpolation, coordinates), state, lateral)


# ---------------------------------------------------------------------------------------------- head


def _segmentation_head_parts(num_classes, name, kernel_size=1, upsampling=1, coordinates="align_corners"):
    parts = [layers.Conv2D(num_classes, kernel_size, padding="same", name=f"{name}_conv")]
    if upsampling > 1:
        parts.append(Upsample(upsampling, "bilinear", coordinates, name=f"{name}_up"))
    return parts


def segmentation_head(x, num_classes, *, name="head", kernel_size=1, upsampling=1, coordinates="align_corners"):
    """Class scores: a conv with ``num_classes`` filters (with bias), then bilinear upsampling by ``upsampling``.

    segmentation_models.pytorch's ``SegmentationHead`` (its upsampling with ``align_corners=True``).
    """
    return _chain(_segmentation_head_parts(num_classes, name, kernel_size, upsampling, coordinates), x)


# ---------------------------------------------------------------------------------------------- layers


@keras.saving.register_keras_serializable(package="keras_seg")
class GroupNormalization(layers.GroupNormalization):
    """``keras.layers.GroupNormalization`` (same arguments, weights and numbers) computed on rank-4 tensors.

    Keras reshapes ``(B, H, W, C)`` to ``(B, H, W, G, C / G)``, a rank-5 tensor that the LiteRT GPU
    delegate cannot hold, so an exported FPN fell back to the CPU at every GroupNorm. Here the
    statistics come from ``(B, H * W, G, C / G)`` (rank 4), in float32 whatever the dtype policy.
    Other layouts (``axis`` not last, inputs not 4-D) use Keras' own computation.
    """

    def call(self, inputs):
        if len(inputs.shape) != 4 or self.axis not in (-1, 3):
            return super().call(inputs)
        shape = ops.shape(inputs)
        channels = inputs.shape[-1]
        x = ops.reshape(ops.cast(inputs, "float32"), (shape[0], -1, self.groups, channels // self.groups))
        mean, variance = ops.moments(x, axes=(1, 3), keepdims=True)
        x = ops.reshape((x - mean) * ops.rsqrt(variance + self.epsilon), shape)
        if self.scale:
            x = x * ops.cast(self.gamma, "float32")
        if self.center:
            x = x + ops.cast(self.beta, "float32")
        return ops.cast(x, self.compute_dtype)


@keras.saving.register_keras_serializable(package="keras_seg")
class AdaptiveAveragePooling2D(layers.Layer):
    """PyTorch's ``nn.AdaptiveAvgPool2d(size)``, channels last, for any input size (also unknown ones).

    Output bin ``i`` of an axis of length ``L`` averages ``[floor(i L / s), ceil((i + 1) L / s))``:
    the bins overlap when ``s`` does not divide ``L``, exactly as in PyTorch. Computed as two
    small averaging matrices (``(s, H)`` and ``(s, W)``) applied by ``einsum``, which every
    backend differentiates and every export format runs; ``size=1`` is a global average.
    """

    def __init__(self, size, **kwargs):
        super().__init__(**kwargs)
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"size={size!r} must be a positive int (the pooled map is size x size).")
        self.size = size

    def call(self, x):
        if self.size == 1:
            return ops.mean(x, axis=(1, 2), keepdims=True)
        shape = ops.shape(x)
        rows, cols = _bins(shape[1], self.size, x.dtype), _bins(shape[2], self.size, x.dtype)
        return ops.einsum("qw,bpwc->bpqc", cols, ops.einsum("ph,bhwc->bpwc", rows, x))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.size, self.size, input_shape[-1])

    def get_config(self):
        config = super().get_config()
        config["size"] = self.size
        return config


def _bins(length, size, dtype):
    """The ``(size, length)`` averaging matrix of PyTorch's adaptive average pooling along one axis."""
    if isinstance(length, int):  # a static size (JAX, PyTorch, a fixed-size graph): a constant
        start = np.arange(size) * length // size
        end = ((np.arange(size) + 1) * length + size - 1) // size
        inside = (np.arange(length)[None, :] >= start[:, None]) & (np.arange(length)[None, :] < end[:, None])
        return ops.convert_to_tensor(inside / (end - start)[:, None], dtype)
    index = ops.arange(size, dtype="int32")
    length = ops.cast(length, "int32")
    start = (index * length) // size
    end = ((index + 1) * length + size - 1) // size
    position = ops.arange(length, dtype="int32")[None, :]
    inside = ops.logical_and(position >= start[:, None], position < end[:, None])
    return ops.cast(inside, dtype) / ops.cast(end - start, dtype)[:, None]


class _Block(layers.Layer):
    """A block layer: sublayers made in ``__init__`` by a ``_parts`` function, applied by its forward function."""

    def build(self, input_shape):
        shapes = input_shape if isinstance(input_shape, (list, tuple)) and isinstance(input_shape[0], (list, tuple)) else None
        symbolic = [keras.KerasTensor(s) for s in shapes] if shapes else keras.KerasTensor(input_shape)
        self.call(symbolic)  # builds every sublayer at its input shape
        self.built = True


@keras.saving.register_keras_serializable(package="keras_seg")
class ConvBNAct(_Block):
    """Conv (or depthwise-separable conv) -> BatchNorm / GroupNorm / none -> activation: :func:`conv_bn_act` as a layer."""

    def __init__(self, filters, kernel_size=3, dilation_rate=1, separable=False, use_bias=False, activation="relu",
                 norm="batch", **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.options = dict(filters=filters, kernel_size=kernel_size, dilation_rate=dilation_rate, separable=separable,
                            use_bias=use_bias, activation=activation, norm=norm)  # fmt: skip
        self.parts = _conv_bn_act_parts(name=self.name, **self.options)

    def call(self, x):
        return _chain(self.parts, x)

    def get_config(self):
        return dict(super().get_config(), **self.options)


@keras.saving.register_keras_serializable(package="keras_seg")
class DoubleConv(_Block):
    """Two 3x3 conv -> BN -> ReLU, the U-Net block: :func:`double_conv` as a layer."""

    def __init__(self, filters, use_bias=True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.use_bias = filters, use_bias
        self.parts = _double_conv_parts(filters, self.name, use_bias)

    def call(self, x):
        return _chain(self.parts, x)

    def get_config(self):
        return dict(super().get_config(), filters=self.filters, use_bias=self.use_bias)


@keras.saving.register_keras_serializable(package="keras_seg")
class ASPP(_Block):
    """Atrous Spatial Pyramid Pooling: :func:`aspp` as a layer."""

    def __init__(self, channels=256, rates=(6, 12, 18), separable=False, dropout=0.5, **kwargs):
        super().__init__(**kwargs)
        self.channels, self.rates, self.separable, self.dropout = channels, [int(r) for r in rates], separable, dropout
        self.parts = _aspp_parts(channels, self.rates, self.name, separable, dropout)

    def call(self, x):
        return _aspp_forward(self.parts, x)

    def get_config(self):
        return dict(super().get_config(), channels=self.channels, rates=self.rates, separable=self.separable,
                    dropout=self.dropout)  # fmt: skip


@keras.saving.register_keras_serializable(package="keras_seg")
class PyramidPooling(_Block):
    """PSPNet's pyramid pooling module: :func:`pyramid_pooling` as a layer (output: input and pooled maps)."""

    def __init__(self, channels, sizes=(1, 2, 3, 6), input_first=False, norm_pooled_to_one=True,
                 coordinates="half_pixel", **kwargs):  # fmt: skip
        super().__init__(**kwargs)
        self.options = dict(channels=channels, sizes=[int(s) for s in sizes], norm_pooled_to_one=norm_pooled_to_one,
                            coordinates=coordinates)  # fmt: skip
        self.input_first = input_first
        self.parts = _pyramid_pooling_parts(name=self.name, **self.options)

    def call(self, x):
        return _pyramid_pooling_forward(self.parts, x, self.input_first)

    def get_config(self):
        return dict(super().get_config(), input_first=self.input_first, **self.options)


@keras.saving.register_keras_serializable(package="keras_seg")
class FPNBlock(_Block):
    """A top-down FPN / UPerNet fusion step: ``FPNBlock(channels)([state, lateral])``, :func:`fpn_block` as a layer."""

    def __init__(self, channels, lateral_norm=None, interpolation="nearest", coordinates="half_pixel", **kwargs):
        super().__init__(**kwargs)
        self.options = dict(channels=channels, lateral_norm=lateral_norm, interpolation=interpolation,
                            coordinates=coordinates)  # fmt: skip
        self.parts = _fpn_block_parts(name=self.name, **self.options)

    def call(self, inputs):
        state, lateral = inputs
        return _fpn_block_forward(self.parts, state, lateral)

    def get_config(self):
        return dict(super().get_config(), **self.options)


@keras.saving.register_keras_serializable(package="keras_seg")
class SegmentationHead(_Block):
    """Class scores: conv, bilinear upsampling, optional activation; :func:`segmentation_head` as a layer."""

    def __init__(self, num_classes, kernel_size=1, upsampling=1, coordinates="align_corners", activation=None, **kwargs):
        super().__init__(**kwargs)
        self.options = dict(num_classes=num_classes, kernel_size=kernel_size, upsampling=upsampling,
                            coordinates=coordinates)  # fmt: skip
        self.activation = activation
        self.parts = _segmentation_head_parts(name=self.name, **self.options)
        if activation is not None:
            self.parts.append(layers.Activation(activation, name=f"{self.name}_{activation}"))

    def call(self, x):
        return _chain(self.parts, x)

    def get_config(self):
        return dict(super().get_config(), activation=self.activation, **self.options)
