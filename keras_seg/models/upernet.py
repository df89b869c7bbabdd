"""UPerNet (Xiao et al. 2018, "Unified Perceptual Parsing for Scene Understanding"): PPM on the deepest level, then FPN."""

import keras

from keras_seg.encoders import pyramid_channels
from keras_seg.layers.blocks import conv_bn_act, fpn_block, pyramid_pooling
from keras_seg.layers.resize import ResizeLike
from keras_seg.models.segmenter import Segmenter

layers = keras.layers


@keras.saving.register_keras_serializable(package="keras_seg")
class UPerNet(Segmenter):
    """UPerNet, as segmentation_models.pytorch builds it (``smp.UPerNet``).

    Each encoder level from stride 4 is normalised (LayerNorm over channels, epsilon 1e-6). The
    deepest goes through a pyramid pooling module (bins 1, 2, 3, 6; 1x1 conv-BN-ReLU of
    ``decoder_channels`` = 256 each, bilinearly resized back, concatenated after the feature,
    a 3x3 conv-BN-ReLU); an FPN then goes top-down (1x1 conv-BN-ReLU laterals, bilinear
    upsampling, addition) with a 3x3 conv-BN-ReLU on each of its levels. All levels are resized
    to stride 4, concatenated finest first and fused by a 3x3 conv-BN-ReLU; a 1x1 class conv and
    a x4 bilinear upsampling (``align_corners=True``).

    Args:
        num_classes: output channels.
        encoder: a name from ``keras_seg.encoders.list_encoders()`` (default ``"resnet34"``) or an
            encoder model with levels from stride 4.
        encoder_weights: ``None``, ``"imagenet"`` or a weights file (named encoders).
        input_shape: ``(H, W, C)``; ``(None, None, 3)`` takes any size.
        encoder_depth: encoder stages (3..5).
        decoder_channels: the decoder's width (256).
        upsampling: the head's final upsampling factor (4).
        activation: ``None`` (logits), ``"softmax"`` or ``"sigmoid"``.
    """

    def __init__(
        self,
        num_classes,
        encoder="resnet34",
        encoder_weights=None,
        input_shape=(None, None, 3),
        encoder_depth=5,
        decoder_channels=256,
        upsampling=4,
        activation=None,
        **kwargs,
    ):
        if encoder_depth < 3:
            raise ValueError(f"encoder_depth={encoder_depth!r}: UPerNet needs at least 3 encoder stages.")
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, encoder_depth=encoder_depth, activation=activation,
                         decoder_channels=int(decoder_channels), upsampling=int(upsampling), **kwargs)  # fmt: skip

    def decoder(self, features, *, num_classes, encoder, decoder_channels, upsampling):
        keys = [k for k in pyramid_channels(encoder) if int(k[1:]) >= 2]  # strides 4 and up: SMP's features[2:]
        if len(keys) < 2:
            raise ValueError(f"UPerNet needs encoder levels from stride 4 and a deeper one; this encoder has "
                             f"{list(pyramid_channels(encoder))}.")  # fmt: skip
        normed = {k: layers.LayerNormalization(epsilon=1e-6, name=f"norm_{k}")(features[k]) for k in keys}
        x = pyramid_pooling(normed[keys[-1]], decoder_channels, (1, 2, 3, 6), name="psp", input_first=True)
        fpn = [conv_bn_act(x, decoder_channels, 3, name="psp_out")]
        for key in reversed(keys[:-1]):
            fpn.append(fpn_block(fpn[-1], normed[key], decoder_channels, name=f"fpn_{key}", lateral_norm="batch",
                                 interpolation="bilinear"))  # fmt: skip
        fpn = [fpn[0]] + [conv_bn_act(y, decoder_channels, 3, name=f"fpn_{k}_out") for y, k in zip(fpn[1:], reversed(keys[:-1]))]
        finest = fpn[-1]
        resized = [y if y is finest else ResizeLike("bilinear", name=f"fuse_up_{i}")([y, finest]) for i, y in enumerate(fpn)]
        x = layers.Concatenate(name="fuse_concat")(resized[::-1])
        x = conv_bn_act(x, decoder_channels, 3, name="fuse")
        return self.head(x, num_classes, kernel_size=1, upsampling=upsampling)
