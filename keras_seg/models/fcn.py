"""FCN (Long, Shelhamer & Darrell 2015): fully convolutional scoring with skip fusion."""

import keras

from keras_seg.encoders import level_key, pyramid_channels
from keras_seg.layers.blocks import conv_bn_act
from keras_seg.layers.resize import ResizeLike
from keras_seg.models.segmenter import Segmenter

VARIANTS = {"32s": (), "16s": (16,), "8s": (16, 8)}


@keras.saving.register_keras_serializable(package="keras_seg")
class FCN(Segmenter):
    """Fully Convolutional Network with FCN-32s / 16s / 8s skip fusion.

    The deepest feature goes through a 3x3 conv-BN-ReLU of ``head_channels``
    (torchvision's ``FCNHead``: dropout, then a 1x1 class-score conv). ``"16s"`` adds
    a 1x1 score of the stride-16 feature to the upsampled deep score, ``"8s"``
    then also the stride-8 score (only levels finer than the encoder's deepest
    feature are fused). Upsampling is bilinear (Long et al. initialise their
    deconvolutions to bilinear), and the final scores are resized to the input.

    Args:
        num_classes: output channels.
        encoder: a name from ``keras_seg.encoders.list_encoders()`` (default VGG16)
            or an encoder model.
        encoder_weights: ``None``, ``"imagenet"`` or a weights file (named encoders).
        input_shape: ``(H, W, C)``; ``(None, None, 3)`` takes any size.
        variant: ``"32s"``, ``"16s"`` or ``"8s"``.
        output_stride: 32, 16 or 8 for a named encoder (dilation past that stride).
        head_channels, dropout: the deep head's width and dropout rate.
        activation: ``None`` (logits), ``"softmax"`` or ``"sigmoid"``.
    """

    def __init__(
        self,
        num_classes,
        encoder="vgg16",
        encoder_weights=None,
        input_shape=(None, None, 3),
        variant="8s",
        output_stride=None,
        head_channels=512,
        dropout=0.1,
        activation=None,
        **kwargs,
    ):
        if variant not in VARIANTS:
            raise ValueError(f"variant={variant!r} is not an FCN variant; expected one of {sorted(VARIANTS)}.")
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, output_stride=output_stride, activation=activation, variant=variant,
                         head_channels=head_channels, dropout=dropout, **kwargs)  # fmt: skip

    def decoder(self, features, *, num_classes, encoder, variant, head_channels, dropout):
        deepest = list(pyramid_channels(encoder))[-1]
        x = conv_bn_act(features[deepest], head_channels, 3, name="fcn_head")
        if dropout:
            x = keras.layers.Dropout(dropout, name="fcn_head_dropout")(x)
        x = keras.layers.Conv2D(num_classes, 1, name=f"score_{deepest}")(x)
        for stride in VARIANTS[variant]:
            key = level_key(stride)
            if key not in features or key == deepest:  # a dilated encoder may have no finer level there
                continue
            skip = keras.layers.Conv2D(num_classes, 1, name=f"score_{key}")(features[key])
            x = ResizeLike("bilinear", name=f"up_to_{key}")([x, skip])
            x = keras.layers.Add(name=f"fuse_{key}")([x, skip])
        return x
