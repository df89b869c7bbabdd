"""UNet++ (Zhou et al. 2018, "UNet++: A Nested U-Net Architecture for Medical Image Segmentation")."""

import keras

from keras_seg.encoders import MiTEncoder, pyramid_channels
from keras_seg.layers.blocks import conv_bn_act
from keras_seg.layers.resize import ResizeLike, Upsample
from keras_seg.models.segmenter import Segmenter


@keras.saving.register_keras_serializable(package="keras_seg")
class UNetPlusPlus(Segmenter):
    """UNet++, as segmentation_models.pytorch builds it (``smp.UnetPlusPlus``): dense nested skip pathways.

    Node ``x_{d}_{l}`` (``d`` its depth in the nest, ``l`` the decoder level) upsamples the node
    below it (nearest x2), concatenates every earlier node of its level and the encoder feature
    there, and applies two 3x3 conv-BN-ReLU; the outer nodes ``x_0_l`` are the U-Net decoder
    (``decoder_channels`` wide), the inner ones have the skip's width. The last node upsamples to
    full resolution without a skip; a 3x3 class conv.

    Args:
        num_classes: output channels.
        encoder: a name from ``keras_seg.encoders.list_encoders()`` (default ``"resnet34"``) or an
            encoder model with a level at every stride from 2 to its deepest (a Mix Transformer,
            whose first level is at stride 4, is refused, as in segmentation_models.pytorch).
        encoder_weights: ``None``, ``"imagenet"`` or a weights file (named encoders).
        input_shape: ``(H, W, C)``; ``(None, None, 3)`` takes any size.
        encoder_depth: encoder stages (one decoder level each).
        decoder_channels: one width per level (``(256, 128, 64, 32, 16)``).
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
        activation=None,
        **kwargs,
    ):
        if isinstance(encoder, str) and encoder.startswith("mit_"):
            raise ValueError(f"UNetPlusPlus does not take encoder={encoder!r}: its nested skips need a feature at "
                             "every stride from 2, and a Mix Transformer starts at stride 4. Use UNet, FPN or "
                             "SegFormer with it.")  # fmt: skip
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, encoder_depth=encoder_depth, activation=activation,
                         decoder_channels=[int(c) for c in decoder_channels], **kwargs)  # fmt: skip

    def decoder(self, features, *, num_classes, encoder, decoder_channels):
        levels = pyramid_channels(encoder)
        keys = list(levels)[::-1]  # deepest first
        strides = [int(k[1:]) for k in keys]
        if isinstance(encoder, MiTEncoder) or strides != list(range(strides[0], strides[0] - len(keys), -1)):
            raise ValueError(f"UNetPlusPlus needs encoder levels at consecutive strides (x2 apart); this encoder has "
                             f"{list(levels)}.")  # fmt: skip
        if len(decoder_channels) != len(keys):
            raise ValueError(f"decoder_channels={decoder_channels} has {len(decoder_channels)} entries, but the encoder "
                             f"has {len(keys)} levels ({list(levels)}): give one width per level.")  # fmt: skip
        f = [features[k] for k in keys]
        skip_channels = [levels[k] for k in keys[1:]] + [0]
        depth = len(keys) - 1
        x = {}

        def node(d, l, below, skips, width):
            name = f"x_{d}_{l}"
            if skips:
                y = ResizeLike("nearest", "asymmetric", name=f"{name}_up")([below, skips[-1]])
                y = keras.layers.Concatenate(name=f"{name}_concat")([y] + skips)
            else:
                y = Upsample(2, "nearest", name=f"{name}_up")(below)
            y = conv_bn_act(y, width, 3, name=f"{name}_1")
            return conv_bn_act(y, width, 3, name=f"{name}_2")

        for l in range(depth):
            for d in range(depth - l):
                if l == 0:
                    x[(d, d)] = node(d, d, f[d], [f[d + 1]], decoder_channels[d] if d == 0 else skip_channels[d])
                else:
                    top = d + l
                    skips = [x[(i, top)] for i in range(d + 1, top + 1)] + [f[top + 1]]
                    width = decoder_channels[top] if d == 0 else skip_channels[top]
                    x[(d, top)] = node(d, top, x[(d, top - 1)], skips, width)
        out = node(0, depth, x[(0, depth - 1)], [], decoder_channels[-1])
        return self.head(out, num_classes, kernel_size=3)
