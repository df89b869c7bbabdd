"""LinkNet (Chaurasia & Culurciello 2017): a light decoder that adds the encoder's features back at each scale."""

import keras

from keras_seg.encoders import pyramid_channels
from keras_seg.layers.blocks import BN_EPSILON, BN_MOMENTUM, conv_bn_act
from keras_seg.layers.resize import ResizeLike
from keras_seg.layers.upsample import ReLUAfterTransposeConv
from keras_seg.models.segmenter import Segmenter


@keras.saving.register_keras_serializable(package="keras_seg")
class LinkNet(Segmenter):
    """LinkNet, as segmentation_models.pytorch builds it (``smp.Linknet``).

    From the deepest feature, one block per encoder level: a 1x1 conv-BN-ReLU to a quarter of
    its channels, a 4x4 stride-2 transposed conv (with bias) -BN-ReLU, a 1x1 conv-BN-ReLU to the
    channels of the next finer encoder feature, which is then added (the last block, at full
    resolution, goes to ``prefinal_channels`` = 32 and has no skip); a 1x1 class conv.

    Args:
        num_classes: output channels.
        encoder: a name from ``keras_seg.encoders.list_encoders()`` (default ``"resnet34"``) or an
            encoder model with levels at every stride from 2 to its deepest.
        encoder_weights: ``None``, ``"imagenet"`` or a weights file (named encoders).
        input_shape: ``(H, W, C)``; ``(None, None, 3)`` takes any size.
        encoder_depth: encoder stages (one decoder block each).
        prefinal_channels: the width of the last block (32).
        activation: ``None`` (logits), ``"softmax"`` or ``"sigmoid"``.
    """

    def __init__(
        self,
        num_classes,
        encoder="resnet34",
        encoder_weights=None,
        input_shape=(None, None, 3),
        encoder_depth=5,
        prefinal_channels=32,
        activation=None,
        **kwargs,
    ):
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, encoder_depth=encoder_depth, activation=activation,
                         prefinal_channels=int(prefinal_channels), **kwargs)  # fmt: skip

    def decoder(self, features, *, num_classes, encoder, prefinal_channels):
        levels = pyramid_channels(encoder)
        keys = list(levels)[::-1]  # deepest first
        x = features[keys[0]]
        for i, key in enumerate(keys):
            skip = keys[i + 1] if i + 1 < len(keys) else None
            out = levels[skip] if skip else prefinal_channels
            inner = int(x.shape[-1]) // 4
            name = f"decoder{i}"
            x = conv_bn_act(x, inner, 1, name=f"{name}_reduce")
            x = keras.layers.Conv2DTranspose(inner, 4, strides=2, padding="same", name=f"{name}_transpose")(x)
            x = keras.layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_transpose_bn")(x)
            x = ReLUAfterTransposeConv(name=f"{name}_transpose_relu")(x)  # a GPU-delegate TRANSPOSE_CONV
            x = conv_bn_act(x, out, 1, name=f"{name}_expand")
            if skip:
                x = ResizeLike("nearest", name=f"{name}_match")([x, features[skip]])  # odd sizes; identity otherwise
                x = keras.layers.Add(name=f"{name}_add")([x, features[skip]])
        return self.head(x, num_classes, kernel_size=1)
