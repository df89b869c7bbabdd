"""FPN (Lin et al. 2017, "Feature Pyramid Networks"), with the segmentation branch of Kirillov et al. 2019."""

import keras

from keras_seg.encoders import pyramid_channels as levels_of
from keras_seg.layers.blocks import conv_bn_act, fpn_block
from keras_seg.layers.resize import ResizeLike
from keras_seg.models.segmenter import Segmenter

MERGE_POLICIES = ("add", "cat")


@keras.saving.register_keras_serializable(package="keras_seg")
class FPN(Segmenter):
    """FPN, as segmentation_models.pytorch builds it (``smp.FPN``).

    Top-down pyramid: a 1x1 conv of the stride-32 feature to ``pyramid_channels`` (256), then
    at strides 16, 8 and 4 the coarser level upsampled x2 (``interpolation``, nearest) plus a
    1x1 conv (with bias) of the encoder feature. Each pyramid level goes through a segmentation
    branch of 3x3 conv-GroupNorm(32)-ReLU blocks to ``segmentation_channels`` (128), each
    followed by a x2 bilinear upsampling (``align_corners=True``) until stride 4 (three blocks
    from stride 32, none more at stride 4); the four are merged (``"add"``, or ``"cat"``: four
    times the channels), spatial dropout (0.2), a 1x1 class conv and a x4 bilinear upsampling.

    Args:
        num_classes: output channels.
        encoder: a name from ``keras_seg.encoders.list_encoders()`` (default ``"resnet34"``) or an
            encoder model with levels at strides 4, 8, 16 and 32.
        encoder_weights: ``None``, ``"imagenet"`` or a weights file (named encoders).
        input_shape: ``(H, W, C)``; ``(None, None, 3)`` takes any size.
        encoder_depth: encoder stages (3..5); the pyramid starts at the deepest one.
        decoder_pyramid_channels: the width of the top-down pyramid (256; the decoder arguments keep
            segmentation_models.pytorch's names).
        decoder_segmentation_channels: the width of each level's segmentation block (128).
        decoder_merge_policy: how the four levels are merged, ``"add"`` or ``"cat"``.
        decoder_dropout: spatial dropout after the merge (0.2).
        decoder_interpolation: the top-down upsampling, ``"nearest"`` (default) or ``"bilinear"``.
        upsampling: the head's final upsampling factor (4: from stride 4 to the input).
        activation: ``None`` (logits), ``"softmax"`` or ``"sigmoid"``.
    """

    def __init__(
        self,
        num_classes,
        encoder="resnet34",
        encoder_weights=None,
        input_shape=(None, None, 3),
        encoder_depth=5,
        decoder_pyramid_channels=256,
        decoder_segmentation_channels=128,
        decoder_merge_policy="add",
        decoder_dropout=0.2,
        decoder_interpolation="nearest",
        upsampling=4,
        activation=None,
        **kwargs,
    ):
        if decoder_merge_policy not in MERGE_POLICIES:
            raise ValueError(f"decoder_merge_policy={decoder_merge_policy!r} must be one of {MERGE_POLICIES}.")
        if encoder_depth < 3:
            raise ValueError(f"encoder_depth={encoder_depth!r}: FPN needs at least 3 encoder stages (strides 2 to 8).")
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, encoder_depth=encoder_depth, activation=activation,
                         decoder_pyramid_channels=int(decoder_pyramid_channels),
                         decoder_segmentation_channels=int(decoder_segmentation_channels),
                         decoder_merge_policy=decoder_merge_policy, decoder_dropout=float(decoder_dropout),
                         decoder_interpolation=decoder_interpolation, upsampling=int(upsampling), **kwargs)  # fmt: skip

    def decoder(self, features, *, num_classes, encoder, decoder_pyramid_channels, decoder_segmentation_channels,
                decoder_merge_policy, decoder_dropout, decoder_interpolation, upsampling):  # fmt: skip
        pyramid_channels, segmentation_channels = decoder_pyramid_channels, decoder_segmentation_channels
        merge_policy, dropout, interpolation = decoder_merge_policy, decoder_dropout, decoder_interpolation
        keys = list(levels_of(encoder))[-4:]  # C2..C5 in the paper: the encoder's four deepest levels
        if len(keys) < 4:
            raise ValueError(f"FPN needs four encoder levels (strides 4 to 32 by default); this encoder has {keys}.")
        state = keras.layers.Conv2D(pyramid_channels, 1, name=f"fpn_{keys[-1]}")(features[keys[-1]])
        pyramid = [state]  # deepest first
        for key in reversed(keys[:-1]):
            state = fpn_block(state, features[key], pyramid_channels, name=f"fpn_{key}", interpolation=interpolation)
            pyramid.append(state)
        branches = []
        for level, x in zip(range(3, -1, -1), pyramid):  # level: x2 upsamplings to the finest of the four
            for i in range(max(level, 1)):
                x = conv_bn_act(x, segmentation_channels, 3, norm="group", name=f"seg_{keys[level]}_{i}")
                if level:  # x2, bilinear with align_corners, to the next finer level's size (odd inputs too)
                    finer = features[keys[level - 1 - i]]
                    x = ResizeLike("bilinear", "align_corners", name=f"seg_{keys[level]}_{i}_up")([x, finer])
            branches.append(x)
        merge = keras.layers.Add if merge_policy == "add" else keras.layers.Concatenate
        x = merge(name="seg_merge")(branches)
        if dropout:
            x = keras.layers.SpatialDropout2D(dropout, name="seg_dropout")(x)
        return self.head(x, num_classes, kernel_size=1, upsampling=upsampling)
