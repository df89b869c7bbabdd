"""The plain encoder of the classic U-Net (Ronneberger et al. 2015), as the seed describes it."""

import keras

from keras_seg.encoders.base import Encoder, level_key
from keras_seg.layers.blocks import double_conv
from keras_seg.layers.preprocessing import ImagePreprocessing
from keras_seg.utils import naming


@keras.saving.register_keras_serializable(package="keras_seg")
class UNetEncoder(Encoder):
    """DoubleConv blocks (conv3x3-BN-ReLU twice, conv biases on) with 2x2 max-pooling between them.

    With ``widths=(64, 128, 256, 512)`` the pyramid is ``P0`` (64 channels, full
    resolution), ``P1`` (128), ``P2`` (256), ``P3`` (512) and the bottleneck ``P4``
    (1024 channels at stride 16). Inputs in [0, 255] are scaled to [0, 1].
    """

    def __init__(self, widths=(64, 128, 256, 512), in_channels=3, **kwargs):
        widths = [int(w) for w in widths]
        if not widths or min(widths) < 1:
            raise ValueError(f"widths={widths!r} must be a non-empty list of positive channel counts.")
        inputs = keras.Input((None, None, in_channels), name="image")
        x = ImagePreprocessing("unit", name="preprocessing")(inputs)
        pyramid = {}
        for level, width in enumerate(widths):
            x = double_conv(x, width, name=f"down{level}")
            pyramid[level_key(2**level)] = x
            x = keras.layers.MaxPooling2D(2, name=f"pool{level}")(x)
        pyramid[level_key(2 ** len(widths))] = double_conv(x, widths[-1] * 2, name="bottleneck")
        kwargs.setdefault("name", naming.unique("unet_encoder"))
        super().__init__(inputs, pyramid, **kwargs)
        self.widths = widths
        self.in_channels = in_channels

    def get_config(self):
        config = super().get_config()
        config.update(widths=list(self.widths), in_channels=self.in_channels)
        return config
