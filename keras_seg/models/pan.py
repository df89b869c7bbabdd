"""PAN (Li et al. 2018, "Pyramid Attention Network for Semantic Segmentation")."""

import keras

from keras_seg.encoders import pyramid_channels
from keras_seg.layers.blocks import conv_bn_act
from keras_seg.layers.resize import ResizeLike
from keras_seg.models.segmenter import Segmenter

layers = keras.layers


def _resize(x, like, name):
    return ResizeLike("bilinear", "align_corners", name=name)([x, like])


@keras.saving.register_keras_serializable(package="keras_seg")
class PAN(Segmenter):
    """PAN, as segmentation_models.pytorch builds it (``smp.PAN``).

    The encoder runs at output stride 16 (its last stage dilated). Feature Pyramid Attention on
    the deepest feature: a 1x1 conv-BN-ReLU branch (``decoder_channels``, 32) multiplied by an
    attention map made of a U-shaped pyramid (max-pool then 7x7, 5x5 and 3x3 conv-BN-ReLU of one
    channel, each level upsampled and added), plus a global-pooling branch. Then Global
    Attention Upsample blocks towards strides 16 (the stage the dilation replaced), 8 and 4: the
    coarser map, bilinearly upsampled (``align_corners=True``), plus the 3x3 conv-BN-ReLU of the
    encoder feature gated by a sigmoid of the coarser map's global average (1x1 conv-BN). A 3x3
    class conv and a x4 bilinear upsampling. All convs have biases, as in SMP.

    Args:
        num_classes: output channels.
        encoder: a name from ``keras_seg.encoders.list_encoders()`` (default ``"resnet34"``) or an
            encoder model.
        encoder_weights: ``None``, ``"imagenet"`` or a weights file (named encoders).
        input_shape: ``(H, W, C)``; ``(None, None, 3)`` takes any size.
        output_stride: 16 (default) or 32.
        encoder_depth: encoder stages (3..5).
        decoder_channels: the decoder's width (32).
        upsampling: the head's final upsampling factor (4).
        activation: ``None`` (logits), ``"softmax"`` or ``"sigmoid"``.
    """

    dilate_by_default = True  # output stride 16 when the encoder can be dilated

    def __init__(
        self,
        num_classes,
        encoder="resnet34",
        encoder_weights=None,
        input_shape=(None, None, 3),
        output_stride=None,
        encoder_depth=5,
        decoder_channels=32,
        upsampling=4,
        activation=None,
        **kwargs,
    ):
        if output_stride not in (None, 16, 32):
            raise ValueError(f"output_stride={output_stride!r}: PAN runs its encoder at output stride 16 or 32.")
        if encoder_depth < 3:
            raise ValueError(f"encoder_depth={encoder_depth!r}: PAN needs at least 3 encoder stages.")
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, output_stride=output_stride, encoder_depth=encoder_depth,
                         activation=activation, decoder_channels=int(decoder_channels), upsampling=int(upsampling),
                         **kwargs)  # fmt: skip

    def decoder(self, features, *, num_classes, encoder, decoder_channels, upsampling):
        levels = list(pyramid_channels(encoder))
        stages = [features[k] for k in levels if int(k[1:]) >= 2]  # strides 4 and up: SMP's features[2:]
        deepest_level = int(levels[-1][1:])
        if f"C{deepest_level}" in features:  # the stage output the dilated last stage replaced (SMP's features[-2])
            stages.insert(-1, features[f"C{deepest_level}"])
        if len(stages) < 2:
            raise ValueError(f"PAN needs encoder levels from stride 4 and a deeper one; this encoder has {levels}.")
        x = self._feature_pyramid_attention(stages[-1], decoder_channels)
        for i, low in reversed(list(enumerate(stages[:-1]))[-3:]):  # GAU towards stride 16 (or 32), 8, 4
            x = self._global_attention_upsample(low, x, decoder_channels, name=f"gau{i + 1}")
        return self.head(x, num_classes, kernel_size=3, upsampling=upsampling)

    @staticmethod
    def _feature_pyramid_attention(x, channels):
        glob = layers.GlobalAveragePooling2D(keepdims=True, name="fpa_pool")(x)
        glob = _resize(conv_bn_act(glob, channels, 1, use_bias=True, name="fpa_global"), x, "fpa_global_up")
        middle = conv_bn_act(x, channels, 1, use_bias=True, name="fpa_mid")
        d1 = conv_bn_act(layers.MaxPooling2D(2, name="fpa_down1_pool")(x), 1, 7, use_bias=True, name="fpa_down1")
        d2 = conv_bn_act(layers.MaxPooling2D(2, name="fpa_down2_pool")(d1), 1, 5, use_bias=True, name="fpa_down2")
        d3 = layers.MaxPooling2D(2, name="fpa_down3_pool")(d2)
        d3 = conv_bn_act(conv_bn_act(d3, 1, 3, use_bias=True, name="fpa_down3_1"), 1, 3, use_bias=True, name="fpa_down3_2")
        y = layers.Add(name="fpa_add2")([conv_bn_act(d2, 1, 5, use_bias=True, name="fpa_conv2"), _resize(d3, d2, "fpa_up3")])
        y = layers.Add(name="fpa_add1")([conv_bn_act(d1, 1, 7, use_bias=True, name="fpa_conv1"), _resize(y, d1, "fpa_up2")])
        y = layers.Multiply(name="fpa_gate")([_resize(y, x, "fpa_up1"), middle])
        return layers.Add(name="fpa_out")([y, glob])

    @staticmethod
    def _global_attention_upsample(low, high, channels, name):
        gate = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(high)
        gate = conv_bn_act(gate, channels, 1, use_bias=True, activation="sigmoid", name=f"{name}_gate")
        low = conv_bn_act(low, channels, 3, use_bias=True, name=f"{name}_conv")
        return layers.Add(name=f"{name}_add")([_resize(high, low, f"{name}_up"), layers.Multiply(name=f"{name}_mul")([low, gate])])
