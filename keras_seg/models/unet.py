"""U-Net (Ronneberger, Fischer & Brox 2015): the classic network, or a decoder on any encoder."""

import math

import keras

from keras_seg.encoders import UNetEncoder, deepest_stride, level_key
from keras_seg.layers.blocks import conv_bn_act, double_conv
from keras_seg.layers.resize import ResizeLike, Upsample
from keras_seg.layers.upsample import Conv2DTranspose
from keras_seg.models.segmenter import Segmenter

DEFAULT_DECODER_CHANNELS = (256, 128, 64, 32, 16)


@keras.saving.register_keras_serializable(package="keras_seg")
class UNet(Segmenter):
    """U-Net.

    ``encoder=None`` builds the classic U-Net of the seed document: a
    :class:`~keras_seg.encoders.UNetEncoder` with ``widths`` (64-128-256-512 and a
    1024 bottleneck), then per level a 2x2 stride-2 transposed conv, the skip
    concatenated (``[skip, up]``; a size mismatch from odd input sizes is resized
    away, nearest-neighbour, like the reference's ``interpolate``) and a
    DoubleConv; a 1x1 conv gives the classes. With 3 input channels, 1 class and
    the default widths it has exactly the reference's 31,043,521 trainable
    parameters.

    With an encoder (a name from ``keras_seg.encoders.list_encoders()`` such as
    ``"resnet50"`` or ``"efficientnetb0"``, or a model): the
    segmentation_models.pytorch decoder. From the deepest feature, each block
    upsamples x2 (nearest), concatenates the encoder feature at that stride when
    there is one, and applies two 3x3 conv-BN-ReLU of ``decoder_channels[i]``; a
    3x3 conv gives the classes. ``decoder_channels`` has one entry per x2 step
    (5 for a stride-32 encoder; by default ``(256, 128, 64, 32, 16)`` cut to fit).
    """

    def __init__(
        self,
        num_classes,
        encoder=None,
        encoder_weights=None,
        input_shape=(None, None, 3),
        widths=(64, 128, 256, 512),
        decoder_channels=None,
        output_stride=None,
        activation=None,
        **kwargs,
    ):
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, output_stride=output_stride, activation=activation,
                         widths=[int(w) for w in widths], decoder_channels=decoder_channels, **kwargs)  # fmt: skip

    @property
    def classic(self):
        """True for the seed's U-Net: the plain :class:`~keras_seg.encoders.UNetEncoder` and the transposed-conv decoder."""
        return isinstance(self.encoder, UNetEncoder)

    def make_encoder(self, encoder, encoder_weights, input_shape, output_stride, encoder_depth=5, *, widths, **options):
        if encoder is None:  # the classic U-Net builds its own plain encoder from widths
            if encoder_weights is not None:
                raise ValueError("encoder_weights applies to a named encoder; the classic U-Net (encoder=None) starts from random weights.")
            encoder = UNetEncoder(widths=widths, in_channels=input_shape[-1])
        return super().make_encoder(encoder, encoder_weights, input_shape, output_stride, encoder_depth)

    def decoder(self, features, *, num_classes, encoder, widths, decoder_channels):
        if isinstance(encoder, UNetEncoder):  # the classic decoder, level for level with the plain encoder
            return self.head(self._classic_decoder(features, encoder.widths), num_classes, name="head")
        steps = int(round(math.log2(deepest_stride(encoder))))
        if decoder_channels is None:
            decoder_channels = DEFAULT_DECODER_CHANNELS[:steps]
        decoder_channels = [int(c) for c in decoder_channels]
        if len(decoder_channels) != steps:
            raise ValueError(
                f"decoder_channels={decoder_channels} has {len(decoder_channels)} entries, but the encoder's "
                f"deepest feature has stride {2**steps}, which needs {steps} x2 upsampling blocks."
            )
        x = self._decoder(features, steps, decoder_channels)
        return self.head(x, num_classes, kernel_size=3, name="head"), {"decoder_channels": decoder_channels}

    @staticmethod
    def _classic_decoder(features, widths):
        x = features[level_key(2 ** len(widths))]
        for level in reversed(range(len(widths))):
            skip = features[level_key(2**level)]
            x = Conv2DTranspose(widths[level], 2, strides=2, name=f"up{level}_transpose")(x)
            x = ResizeLike("nearest", name=f"up{level}_match")([x, skip])
            x = keras.layers.Concatenate(name=f"up{level}_concat")([skip, x])
            x = double_conv(x, widths[level], name=f"up{level}")
        return x

    @staticmethod
    def _decoder(features, steps, channels):
        x = features[level_key(2**steps)]
        for i, width in enumerate(channels):
            key = level_key(2 ** (steps - i - 1))
            name = f"decoder{i}"
            if key in features:
                skip = features[key]
                x = ResizeLike("nearest", name=f"{name}_up")([x, skip])
                x = keras.layers.Concatenate(name=f"{name}_concat")([x, skip])
            else:
                x = Upsample(2, "nearest", name=f"{name}_up")(x)
            x = conv_bn_act(x, width, 3, name=f"{name}_1")
            x = conv_bn_act(x, width, 3, name=f"{name}_2")
        return x
