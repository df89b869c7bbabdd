"""PSPNet (Zhao et al. 2017, "Pyramid Scene Parsing Network"): pyramid pooling on a shallow encoder."""

import keras

from keras_seg.encoders import pyramid_channels
from keras_seg.layers.blocks import conv_bn_act, pyramid_pooling
from keras_seg.models.segmenter import Segmenter

POOL_SIZES = (1, 2, 3, 6)


@keras.saving.register_keras_serializable(package="keras_seg")
class PSPNet(Segmenter):
    """PSPNet, as segmentation_models.pytorch builds it (``smp.PSPNet``).

    The encoder keeps ``encoder_depth`` stages (3: its deepest feature at stride 8; the deeper
    stages are not built at all). On that feature, the pyramid pooling module: adaptive average
    pooling to 1x1, 2x2, 3x3 and 6x6 bins, each a 1x1 conv-BN-ReLU to a quarter
    of the feature's channels (no BatchNorm on the 1x1 bin: the conv has a bias), bilinearly
    upsampled back (``align_corners=True``) and concatenated before the feature; a 1x1
    conv-BN-ReLU to ``psp_out_channels`` (512), spatial dropout (0.2), a 3x3 class conv and a x8
    bilinear upsampling (``upsampling``: from stride 8 to the input).

    Args:
        num_classes: output channels.
        encoder: a name from ``keras_seg.encoders.list_encoders()`` (default ``"resnet34"``) or an
            encoder model (its deepest level is pooled).
        encoder_weights: ``None``, ``"imagenet"`` or a weights file (named encoders).
        input_shape: ``(H, W, C)``; ``(None, None, 3)`` takes any size.
        encoder_depth: encoder stages kept (3).
        psp_out_channels, psp_dropout: the module's output width (512) and spatial dropout (0.2).
        upsampling: the head's final upsampling factor (8).
        activation: ``None`` (logits), ``"softmax"`` or ``"sigmoid"``.
    """

    def __init__(
        self,
        num_classes,
        encoder="resnet34",
        encoder_weights=None,
        input_shape=(None, None, 3),
        encoder_depth=3,
        psp_out_channels=512,
        psp_dropout=0.2,
        upsampling=8,
        activation=None,
        **kwargs,
    ):
        super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                         input_shape=input_shape, encoder_depth=encoder_depth, activation=activation,
                         psp_out_channels=int(psp_out_channels), psp_dropout=float(psp_dropout),
                         upsampling=int(upsampling), **kwargs)  # fmt: skip

    def decoder(self, features, *, num_classes, encoder, psp_out_channels, psp_dropout, upsampling):
        deepest, channels = list(pyramid_channels(encoder).items())[-1]
        x = pyramid_pooling(features[deepest], channels // len(POOL_SIZES), POOL_SIZES, name="psp",
                            norm_pooled_to_one=False, coordinates="align_corners")  # fmt: skip
        x = conv_bn_act(x, psp_out_channels, 1, name="psp_project")
        if psp_dropout:
            x = keras.layers.SpatialDropout2D(psp_dropout, name="psp_dropout")(x)
        return self.head(x, num_classes, kernel_size=3, upsampling=upsampling)
