"""MA-Net (Fan et al. 2020, "MA-Net: A Multi-Scale Attention Network for Liver and Tumor Segmentation")."""

import math

import keras
from keras import ops

from keras_seg.encoders import deepest_stride, level_key, pyramid_channels
from keras_seg.layers.blocks import conv_bn_act
from keras_seg.layers.resize import ResizeLike, Upsample
from keras_seg.models.segmenter import Segmenter

layers = keras.layers
REDUCTION = 16  # the squeeze-excitation reduction of the MFAB blocks


@keras.saving.register_keras_serializable(package="keras_seg")
class PositionAttention(layers.Layer):
    """The attention of MA-Net's position-wise attention block, as segmentation_models.pytorch computes it.

    ``PositionAttention()([center, top, bottom])`` with ``center``, ``top`` ``(B, H, W, P)`` and
    ``bottom`` ``(B, H, W, C)``: the position map ``center @ top^T`` ``(B, HW, HW)`` goes through
    one softmax over all of its ``HW * HW`` entries (not per row: SMP's ``Softmax(dim=1)`` of the
    flattened map), multiplies ``bottom``, and the ``(B, HW, C)`` result is laid out as SMP's
    ``reshape(B, C, H, W)`` of it lays it out (a reshape, not a transpose). No weights.
    """

    def call(self, inputs):
        center, top, bottom = inputs
        shape = ops.shape(bottom)
        batch, height, width, channels = shape[0], shape[1], shape[2], bottom.shape[-1]
        positions = height * width
        center = ops.reshape(center, (batch, positions, -1))
        top = ops.reshape(top, (batch, positions, -1))
        scores = ops.matmul(center, ops.transpose(top, (0, 2, 1)))  # (B, HW, HW)
        # softmax written out: ops.softmax warns (on every eager call) for the one score of a 1x1 map, where it is right
        scores = ops.reshape(scores, (batch, -1))
        weights = ops.exp(scores - ops.max(scores, axis=-1, keepdims=True))
        weights = weights / ops.sum(weights, axis=-1, keepdims=True)
        weights = ops.reshape(weights, (batch, positions, positions))
        mixed = ops.matmul(weights, ops.reshape(bottom, (batch, positions, channels)))  # (B, HW, C)
        # SMP reads this (B, HW, C) memory as (B, C, H, W): channel c, position p is element c * HW + p.
        mixed = ops.transpose(ops.reshape(mixed, (batch, channels, positions)), (0, 2, 1))
        return ops.reshape(mixed, (batch, height, width, channels))

    def compute_output_shape(self, input_shapes):
        return tuple(input_shapes[2])


def _squeeze_excite(x, reduced, name):
    y = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(x)
    y = layers.Conv2D(reduced, 1, activation="relu", name=f"{name}_reduce")(y)
    return layers.Conv2D(int(x.shape[-1]), 1, activation="sigmoid", name=f"{name}_expand")(y)


@keras.saving.register_keras_serializable(package="keras_seg")
class MANet(Segmenter):
    """MA-Net, as segmentation_models.pytorch builds it (``smp.MAnet``).

    Centre: a position-wise attention block (PAB) on the deepest feature: 1x1 convs to
    ``decoder_pab_channels`` (64) for the two sides of the position map, a 3x3 conv for the values
    (:class:`PositionAttention`), the result added to the input and a 3x3 conv. Then one block
    per level: where there is a skip, a multi-scale fusion attention block (MFAB: 3x3
    conv-BN-ReLU, 1x1 conv-BN-ReLU to the skip's channels, nearest x2 upsampling, channel
    attention (squeeze-excitation, reduction 16) of both the upsampled map and the skip,
    summed, gating the map, concatenated with the skip, two 3x3 conv-BN-ReLU); the last block,
    without a skip, upsamples and applies two 3x3 conv-BN-ReLU. A 3x3 class conv.

    Args:
        num_classes: output channels.
        encoder: a name from ``keras_seg.encoders.list_encoders()`` (default ``"resnet34"``) or an
            encoder model.
        encoder_weights: ``None``, ``"imagenet"`` or a weights file (named encoders).
        input_shape: ``(H, W, C)``; ``(None, None, 3)`` takes any size.
        encoder_depth: encoder stages (one decoder block each).
        decoder_channels: one width per block (``(256, 128, 64, 32, 16)``).
        decoder_pab_channels: the width of the position map's projections (64).
        activation: ``None`` (logits), ``"softmax"`` or ``"sigmoid"``.
    """

    def __init__(
        self,
        num_classes,
        encoder="resnet34",
        encoder_weights=None,
        input_shape=(None, None, 3),
        encoder_depth=5,
        decoder_channels=(256, 128, 64, 32, 16),
        decoder_pab_channels=64,
        activation=None,
        **kwargs,
    ):
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, encoder_depth=encoder_depth, activation=activation,
                         decoder_channels=[int(c) for c in decoder_channels],
                         decoder_pab_channels=int(decoder_pab_channels), **kwargs)  # fmt: skip

    def decoder(self, features, *, num_classes, encoder, decoder_channels, decoder_pab_channels):
        pab_channels, reduction = decoder_pab_channels, REDUCTION
        levels = pyramid_channels(encoder)
        steps = int(round(math.log2(deepest_stride(encoder))))
        if len(decoder_channels) != steps:
            raise ValueError(f"decoder_channels={decoder_channels} has {len(decoder_channels)} entries, but the encoder's "
                             f"deepest feature has stride {2**steps}, which needs {steps} x2 upsampling blocks.")  # fmt: skip
        head = features[level_key(2**steps)]
        channels = int(head.shape[-1])
        top = layers.Conv2D(pab_channels, 1, name="pab_top")(head)
        center = layers.Conv2D(pab_channels, 1, name="pab_center")(head)
        bottom = layers.Conv2D(channels, 3, padding="same", name="pab_bottom")(head)
        x = layers.Add(name="pab_add")([head, PositionAttention(name="pab_attention")([center, top, bottom])])
        x = layers.Conv2D(channels, 3, padding="same", name="pab_out")(x)
        for i, width in enumerate(decoder_channels):
            skip = level_key(2 ** (steps - i - 1))  # a level the encoder lacks (a MiT's stride 2) has no skip
            skip = skip if skip in levels else None
            name = f"decoder{i}"
            if skip:
                skip_x, skip_channels = features[skip], levels[skip]
                x = conv_bn_act(x, int(x.shape[-1]), 3, name=f"{name}_hl1")
                x = conv_bn_act(x, skip_channels, 1, name=f"{name}_hl2")
                x = ResizeLike("nearest", "asymmetric", name=f"{name}_up")([x, skip_x])
                reduced = max(1, skip_channels // reduction)
                attention = layers.Add(name=f"{name}_attention")(
                    [_squeeze_excite(x, reduced, f"{name}_se_hl"), _squeeze_excite(skip_x, reduced, f"{name}_se_ll")]
                )
                x = layers.Multiply(name=f"{name}_gate")([x, attention])
                x = layers.Concatenate(name=f"{name}_concat")([x, skip_x])
            else:
                x = Upsample(2, "nearest", name=f"{name}_up")(x)
            x = conv_bn_act(x, width, 3, name=f"{name}_1")
            x = conv_bn_act(x, width, 3, name=f"{name}_2")
        return self.head(x, num_classes, kernel_size=3)
