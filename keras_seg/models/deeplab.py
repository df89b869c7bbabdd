"""DeepLabV3 (Chen et al. 2017) and DeepLabV3+ (Chen et al. 2018): atrous convolutions and ASPP."""

import keras

from keras_seg.encoders import deepest_stride, level_key, pyramid_channels
from keras_seg.layers.blocks import aspp, conv_bn_act
from keras_seg.layers.resize import ResizeLike
from keras_seg.models.segmenter import Segmenter


def default_rates(output_stride):
    """The paper's rates: (6, 12, 18) at output stride 16, doubled at 8 (halved at 32)."""
    return tuple(int(r * 16 // output_stride) for r in (6, 12, 18))


class _DeepLab(Segmenter):
    """What the DeepLab pair shares: a dilated encoder (output stride 16 when the encoder can be dilated) and ASPP."""

    dilate_by_default = True

    @staticmethod
    def _aspp(features, encoder, atrous_rates, aspp_channels, aspp_dropout, separable):
        """ASPP on the deepest feature; returns it and the rates used (the paper's for the encoder's stride)."""
        rates = [int(r) for r in (atrous_rates or default_rates(deepest_stride(encoder)))]
        deepest = list(pyramid_channels(encoder))[-1]
        x = aspp(features[deepest], aspp_channels, rates, separable=separable, dropout=aspp_dropout, name="aspp")
        return x, rates


@keras.saving.register_keras_serializable(package="keras_seg")
class DeepLabV3(_DeepLab):
    """DeepLabV3: a dilated encoder (output stride 16 by default), ASPP, a 3x3 conv and class scores.

    ASPP has a 1x1 branch, three 3x3 atrous branches with ``atrous_rates``
    ((6, 12, 18) at output stride 16, (12, 24, 36) at 8) and image pooling, each
    ``aspp_channels`` wide; then torchvision's ``DeepLabHead``: 3x3 conv-BN-ReLU
    and a 1x1 class conv, bilinearly resized to the input (half-pixel, as torchvision;
    ``align_corners=True``: upsampled by the output stride with ``align_corners=True``, as
    segmentation_models.pytorch's ``DeepLabV3``).
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
        align_corners=False,
        activation=None,
        **kwargs,
    ):
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, output_stride=output_stride, activation=activation,
                         atrous_rates=atrous_rates, aspp_channels=aspp_channels, aspp_dropout=aspp_dropout,
                         separable=separable, align_corners=bool(align_corners), **kwargs)  # fmt: skip

    def decoder(self, features, *, num_classes, encoder, atrous_rates, aspp_channels, aspp_dropout, separable,
                align_corners):  # fmt: skip
        x, rates = self._aspp(features, encoder, atrous_rates, aspp_channels, aspp_dropout, separable)
        x = conv_bn_act(x, aspp_channels, 3, separable=separable, name="head_refine")
        upsampling = deepest_stride(encoder) if align_corners else 1  # else: resized to the input, half-pixel
        return self.head(x, num_classes, name="head", upsampling=upsampling), {"atrous_rates": rates}


@keras.saving.register_keras_serializable(package="keras_seg")
class DeepLabV3Plus(_DeepLab):
    """DeepLabV3+: ASPP on the deep feature, fused with a 48-channel projection of the stride-4 feature.

    As segmentation_models.pytorch builds it: ASPP (separable atrous convs by
    default) and a separable 3x3 conv-BN-ReLU; bilinear upsampling to stride 4;
    concatenation with ``low_level_channels`` 1x1 conv-BN-ReLU of the stride-4
    feature; a 3x3 (separable) conv-BN-ReLU of ``decoder_channels``; a 1x1 class
    conv, upsampled x4 to the input. Both upsamplings are bilinear with
    ``align_corners=True``, as in segmentation_models.pytorch (``align_corners=False``:
    half-pixel; ``.keras`` files written before this argument existed load with False, as
    they were trained).
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
        align_corners=True,
        activation=None,
        **kwargs,
    ):
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, output_stride=output_stride, activation=activation,
                         atrous_rates=atrous_rates, aspp_channels=aspp_channels, aspp_dropout=aspp_dropout,
                         separable=separable, low_level_channels=low_level_channels,
                         decoder_channels=decoder_channels, align_corners=bool(align_corners), **kwargs)  # fmt: skip

    @classmethod
    def from_config(cls, config):
        # Files written before align_corners existed resized half-pixel: they keep doing so.
        return super().from_config(dict({"align_corners": False}, **config))

    def decoder(self, features, *, num_classes, encoder, atrous_rates, aspp_channels, aspp_dropout, separable,
                low_level_channels, decoder_channels, align_corners):  # fmt: skip
        low_key = level_key(4)
        if low_key not in features:
            raise ValueError(
                f"DeepLabV3Plus needs a stride-4 feature ('{low_key}') from the encoder; this one has "
                f"{list(pyramid_channels(encoder))}."
            )
        x, rates = self._aspp(features, encoder, atrous_rates, aspp_channels, aspp_dropout, separable)
        x = conv_bn_act(x, aspp_channels, 3, separable=separable, name="aspp_refine")
        low = conv_bn_act(features[low_key], low_level_channels, 1, name="low_level")
        coordinates = "align_corners" if align_corners else "half_pixel"
        x = ResizeLike("bilinear", coordinates, name="aspp_up")([x, low])
        x = keras.layers.Concatenate(name="decoder_concat")([x, low])
        x = conv_bn_act(x, decoder_channels, 3, separable=separable, name="decoder")
        return self.head(x, num_classes, name="head", upsampling=4 if align_corners else 1), {"atrous_rates": rates}
