"""Input normalisation inside the graph, so every keras_seg model takes RGB values in [0, 255]."""

import keras
import numpy as np
from keras import ops

# ImageNet statistics in RGB order, on the [0, 255] scale.
_IMAGENET_MEAN = np.array([0.485, 0.456, 0.406]) * 255.0
_IMAGENET_STD = np.array([0.229, 0.224, 0.225]) * 255.0
_CAFFE_MEAN_RGB = np.array([123.68, 116.779, 103.939])

MODES = ("caffe", "tf", "torch", "unit", "none")


def _per_channel(values, channels):
    """RGB statistics for ``channels`` inputs: as is for 3, their mean repeated otherwise."""
    values = np.asarray(values, dtype="float32")
    return values if channels == 3 else np.full((channels,), values.mean(), dtype="float32")


@keras.saving.register_keras_serializable(package="keras_seg")
class ImagePreprocessing(keras.layers.Layer):
    """The ``preprocess_input`` of a ``keras.applications`` family, as a layer.

    Modes (input: pixel values in [0, 255]):

    * ``"caffe"`` (VGG, ResNet): RGB -> BGR, minus the ImageNet mean, no scaling.
    * ``"tf"`` (ResNetV2, MobileNetV2, Xception): ``x / 127.5 - 1``.
    * ``"torch"`` (DenseNet): ``(x / 255 - mean) / std`` with ImageNet statistics.
    * ``"unit"``: ``x / 255`` (the plain U-Net encoder).
    * ``"none"``: identity, for families that normalise inside their own graph
      (EfficientNet, EfficientNetV2, MobileNetV3, ConvNeXt).

    For inputs with other than 3 channels (grayscale, RGB+NIR) the mean of the
    RGB statistics is used for every channel and no channel swap happens.
    """

    def __init__(self, mode="tf", **kwargs):
        super().__init__(**kwargs)
        if mode not in MODES:
            raise ValueError(f"mode={mode!r} is not a preprocessing mode; expected one of {MODES}.")
        self.mode = mode

    def call(self, x):
        x = ops.cast(x, self.compute_dtype)
        channels = x.shape[-1]
        if self.mode == "none":
            return x
        if self.mode == "unit":
            return x / 255.0
        if self.mode == "tf":
            return x / 127.5 - 1.0
        if self.mode == "caffe":
            mean = _per_channel(_CAFFE_MEAN_RGB, channels)
            if channels == 3:
                x = ops.flip(x, axis=-1)
                mean = mean[::-1].copy()
            return x - ops.convert_to_tensor(mean, self.compute_dtype)
        mean = _per_channel(_IMAGENET_MEAN, channels)
        std = _per_channel(_IMAGENET_STD, channels)
        return (x - ops.convert_to_tensor(mean, self.compute_dtype)) / ops.convert_to_tensor(std, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["mode"] = self.mode
        return config
