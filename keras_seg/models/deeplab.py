"""DeepLabV3 (Chen et al. 2017) and DeepLabV3+ (Chen et al. 2018): atrous convolutions and ASPP."""

import keras

from keras_seg.encoders import deepest_stride, level_key, output_strides, pyramid_channels
from keras_seg.layers.blocks import aspp, conv_bn_act
from keras_seg.layers.resize import ResizeLike
from keras_seg.models.segmenter import Segmenter, check_num_classes


def default_rates(output_stride):
    """The paper's rates: (6, 12, 18) at output stride 16, doubled at 8 (halved at 32)."""
    return tuple(int(r * 16 // output_stride) for r in (6, 12, 18))


class _DeepLab(Segmenter):
    """Shared arguments and configuration of the DeepLab pair."""

    def _store(self, output_stride, atrous_rates, aspp_channels, aspp_dropout, separable):
        self.output_stride = output_stride
        self.atrous_rates = list(atrous_rates)
        self.aspp_channels = aspp_channels
        self.aspp_dropout = aspp_dropout
        self.separable = separable

    @staticmethod
    def _context(encoder, encoder_weights, input_shape, output_stride, atrous_rates, aspp_channels, aspp_dropout, separable):
        """Encoder (output stride 16 for a named one that can be dilated, else 32), its features, and ASPP on the deepest."""
        if output_stride is None and isinstance(encoder, str):
            output_stride = 16 if 16 in output_strides(encoder) else 32  # a transformer (MiT) keeps stride 32
        inputs, enc, features = Segmenter.build_encoder(encoder, encoder_weights, input_shape, output_stride)
        stride = deepest_stride(enc)
        rates = tuple(int(r) for r in (atrous_rates or default_rates(stride)))
        deepest = list(pyramid_channels(enc))[-1]
        x = aspp(features[deepest], aspp_channels, rates, separable=separable, dropout=aspp_dropout, name="aspp")
        return inputs, enc, features, x, output_stride, rates

    def get_config(self):
        config = super().get_config()
        config.update(
            output_stride=self.output_stride,
            atrous_rates=self.atrous_rates,
            aspp_channels=self.aspp_channels,
            aspp_dropout=self.aspp_dropout,
            separable=self.separable,
        )
        return config


@keras.saving.register_keras_serializable(package="keras_seg")
class DeepLabV3(_DeepLab):
    """DeepLabV3: a dilated encoder (output stride 16 by default), ASPP, a 3x3 conv and class scores.

    ASPP has a 1x1 branch, three 3x3 atrous branches with ``atrous_rates``
    ((6, 12, 18) at output stride 16, (12, 24, 36) at 8) and image pooling, each
    ``aspp_channels`` wide; then torchvision's ``DeepLabHead``: 3x3 conv-BN-ReLU
    and a 1x1 class conv, bilinearly resized to the input.
    ``separable=True`` uses depthwise-separable atrous convolutions.
    """

    def __init__(
        self,
        num_classes,
        encoder="resnet50",
        encoder_weights=None,
        input_shape=(None, None, 3),
        output_stride=None,
        atrous_rates=None,
        aspp_channels=256,
        aspp_dropout=0.5,
        separable=False,
        activation=None,
        **kwargs,
    ):
        num_classes = check_num_classes(num_classes)
        inputs, enc, _, x, output_stride, rates = self._context(
            encoder, encoder_weights, input_shape, output_stride, atrous_rates, aspp_channels, aspp_dropout, separable
        )
        x = conv_bn_act(x, aspp_channels, 3, separable=separable, name="head_refine")
        logits = self.head(x, inputs, num_classes, activation, name="head")
        super().__init__(
            inputs, logits, encoder=enc, num_classes=num_classes, encoder_weights=encoder_weights,
            input_shape=input_shape, activation=activation, **kwargs,
        )
        self._store(output_stride, rates, aspp_channels, aspp_dropout, separable)


@keras.saving.register_keras_serializable(package="keras_seg")
class DeepLabV3Plus(_DeepLab):
    """DeepLabV3+: ASPP on the deep feature, fused with a 48-channel projection of the stride-4 feature.

    As segmentation_models.pytorch builds it: ASPP (separable atrous convs by
    default) and a separable 3x3 conv-BN-ReLU; bilinear upsampling to stride 4;
    concatenation with ``low_level_channels`` 1x1 conv-BN-ReLU of the stride-4
    feature; a 3x3 (separable) conv-BN-ReLU of ``decoder_channels``; a 1x1 class
    conv, bilinearly resized to the input.
    """

    def __init__(
        self,
        num_classes,
        encoder="resnet50",
        encoder_weights=None,
        input_shape=(None, None, 3),
        output_stride=None,
        atrous_rates=None,
        aspp_channels=256,
        aspp_dropout=0.5,
        separable=True,
        low_level_channels=48,
        decoder_channels=256,
        activation=None,
        **kwargs,
    ):
        num_classes = check_num_classes(num_classes)
        inputs, enc, features, x, output_stride, rates = self._context(
            encoder, encoder_weights, input_shape, output_stride, atrous_rates, aspp_channels, aspp_dropout, separable
        )
        low_key = level_key(4)
        if low_key not in features:
            raise ValueError(
                f"DeepLabV3Plus needs a stride-4 feature ('{low_key}') from the encoder; this one has "
                f"{list(pyramid_channels(enc))}."
            )
        x = conv_bn_act(x, aspp_channels, 3, separable=separable, name="aspp_refine")
        low = conv_bn_act(features[low_key], low_level_channels, 1, name="low_level")
        x = ResizeLike("bilinear", name="aspp_up")([x, low])
        x = keras.layers.Concatenate(name="decoder_concat")([x, low])
        x = conv_bn_act(x, decoder_channels, 3, separable=separable, name="decoder")
        logits = self.head(x, inputs, num_classes, activation, name="head")
        super().__init__(
            inputs, logits, encoder=enc, num_classes=num_classes, encoder_weights=encoder_weights,
            input_shape=input_shape, activation=activation, **kwargs,
        )
        self._store(output_stride, rates, aspp_channels, aspp_dropout, separable)
        self.low_level_channels = low_level_channels
        self.decoder_channels = decoder_channels

    def get_config(self):
        config = super().get_config()
        config.update(low_level_channels=self.low_level_channels, decoder_channels=self.decoder_channels)
        return config
