"""LR-ASPP (Howard et al. 2019, "Searching for MobileNetV3"): the Lite Reduced ASPP head for phones."""

import keras

from keras_seg.encoders import level_key, level_stride, pyramid_channels
from keras_seg.layers.blocks import conv_bn_act
from keras_seg.layers.resize import ResizeLike
from keras_seg.models.segmenter import Segmenter


@keras.saving.register_keras_serializable(package="keras_seg")
class LRASPP(Segmenter):
    """LR-ASPP: a mobile-class head on MobileNetV3, as torchvision's ``lraspp_mobilenet_v3_large``.

    On the deepest feature (stride 16 by default: the encoder's last stage is dilated, as
    torchvision does) two branches: a 1x1 conv-BN-ReLU of ``inter_channels`` (128), multiplied
    by a gate made of global average pooling, a 1x1 conv (no bias) and a sigmoid. The product is
    upsampled (bilinear) to the stride-8 feature and classified by a 1x1 conv; a second 1x1
    conv classifies the stride-8 feature itself (the "low" branch), and the two are added. The
    class scores are resized to the input.

    Args:
        num_classes: output channels.
        encoder: ``"mobilenetv3large"`` (default) or ``"mobilenetv3small"``, any other name from
            ``keras_seg.encoders.list_encoders()``, or an encoder model; it needs a stride-8
            feature and a deeper one.
        encoder_weights: ``None``, ``"imagenet"`` or a weights file (named encoders).
        input_shape: ``(H, W, C)``; ``(None, None, 3)`` takes any size.
        output_stride: 16 (default for an encoder that can be dilated, as torchvision) or 32.
        inter_channels: width of the high-level branch (128).
        low_level_stride: the stride of the "low" feature (8).
        activation: ``None`` (logits), ``"softmax"`` or ``"sigmoid"``.
    """

    dilate_by_default = True  # output stride 16 when the encoder can be dilated

    def __init__(
        self,
        num_classes,
        encoder="mobilenetv3large",
        encoder_weights=None,
        input_shape=(None, None, 3),
        output_stride=None,
        inter_channels=128,
        low_level_stride=8,
        activation=None,
        **kwargs,
    ):
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, output_stride=output_stride, activation=activation,
                         inter_channels=int(inter_channels), low_level_stride=int(low_level_stride),
                         **kwargs)  # fmt: skip

    def decoder(self, features, *, num_classes, encoder, inter_channels, low_level_stride):
        levels = list(pyramid_channels(encoder))
        low_key, high_key = level_key(low_level_stride), levels[-1]
        if low_key not in features or level_stride(high_key) <= low_level_stride:
            raise ValueError(
                f"LRASPP needs a stride-{low_level_stride} feature ('{low_key}') and a deeper one from the encoder; "
                f"this one has {levels}. Pass low_level_stride= one of its strides, or another encoder."
            )
        high, low = features[high_key], features[low_key]
        x = conv_bn_act(high, inter_channels, 1, name="lraspp_cbr")
        gate = keras.layers.GlobalAveragePooling2D(keepdims=True, name="lraspp_pool")(high)
        gate = keras.layers.Conv2D(inter_channels, 1, use_bias=False, name="lraspp_scale")(gate)
        gate = keras.layers.Activation("sigmoid", name="lraspp_sigmoid")(gate)
        x = keras.layers.Multiply(name="lraspp_gate")([x, gate])
        x = ResizeLike("bilinear", name="lraspp_up")([x, low])
        high_scores = keras.layers.Conv2D(num_classes, 1, name="high_classifier")(x)
        low_scores = keras.layers.Conv2D(num_classes, 1, name="low_classifier")(low)
        return keras.layers.Add(name="lraspp_scores")([low_scores, high_scores])
