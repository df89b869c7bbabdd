"""The base of every keras_seg architecture: wiring, configuration, ``predict_mask``.

An architecture subclasses :class:`Segmenter` and builds its graph in ``__init__``
(keras-hub's task style): ``inputs -> encoder -> decoder + head -> logits``, then
hands ``inputs`` and ``logits`` to :meth:`Segmenter.__init__`. The result is one
static functional graph, so ``summary()``, ``.keras`` saving and export see every
layer. ``get_config`` returns the constructor arguments only (the encoder
serialized as an object, never its download source), and ``from_config``
calls the constructor: a ``.keras`` file reloads with ``keras.saving.load_model``
after ``import keras_seg``, without downloading anything.
"""

import keras
import numpy as np

from keras_seg.encoders import build_encoder, pyramid_channels
from keras_seg.layers.resize import ResizeLike

ACTIVATIONS = (None, "softmax", "sigmoid")


def check_num_classes(num_classes):
    if isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(
            f"num_classes={num_classes!r} must be a positive int: the number of output channels "
            "(1 for a binary mask with a sigmoid, K >= 2 for K classes with a softmax)."
        )
    return int(num_classes)


def check_input_shape(input_shape):
    """``(H, W, C)``: H and W positive ints or None (any size), C a positive int; ValueError naming the value."""
    try:
        input_shape = tuple(input_shape)
    except TypeError:
        input_shape = (input_shape,)

    def size(v, allow_none):
        return (v is None and allow_none) or (isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 1)

    if len(input_shape) != 3 or not all(size(v, True) for v in input_shape[:2]) or not size(input_shape[-1], False):
        raise ValueError(
            f"input_shape={input_shape!r} must be (height, width, channels): height and width positive ints or "
            "None (any size), channels a positive int, e.g. (None, None, 3) for RGB images of any size."
        )
    return tuple(None if v is None else int(v) for v in input_shape)


class Segmenter(keras.Model):
    """Base class: a functional model ``image (B, H, W, C) in [0, 255] -> logits (B, H, W, num_classes)``.

    Subclasses call :meth:`build_encoder` to get ``(inputs, encoder, features)``,
    build their decoder on ``features``, finish with :meth:`head`, and pass the
    result to this constructor together with their own arguments.
    """

    def __init__(self, inputs, outputs, *, encoder, num_classes, encoder_weights, input_shape, activation, **kwargs):
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)
        self.encoder = encoder
        self.num_classes = num_classes
        self.encoder_weights = encoder_weights
        self.input_shape_arg = tuple(input_shape)
        self.activation = activation

    # ------------------------------------------------------------------ graph helpers

    @staticmethod
    def build_encoder(encoder, encoder_weights, input_shape, output_stride):
        """``(inputs, encoder_model, features)`` for the arguments every architecture takes."""
        input_shape = check_input_shape(input_shape)
        encoder = build_encoder(encoder, encoder_weights, input_shape[-1], output_stride)
        inputs = keras.Input(input_shape, name="image")
        features = encoder(inputs)
        return inputs, encoder, features

    @staticmethod
    def head(x, inputs, num_classes, activation, kernel_size=1, name="head"):
        """Class scores from ``x`` by a conv, then :meth:`finish`."""
        x = keras.layers.Conv2D(num_classes, kernel_size, padding="same", name=f"{name}_conv")(x)
        return Segmenter.finish(x, inputs, activation)

    @staticmethod
    def finish(scores, inputs, activation):
        """Scores resized to the input's H x W (bilinear), then the activation; float32 whatever the policy."""
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not supported; expected one of {ACTIVATIONS}.")
        x = ResizeLike("bilinear", dtype="float32", name="logits")([scores, inputs])
        if activation is not None:
            x = keras.layers.Activation(activation, dtype="float32", name=activation)(x)
        return x

    # ------------------------------------------------------------------ user API

    @property
    def pyramid_channels(self):
        return pyramid_channels(self.encoder)

    def freeze_encoder(self):
        """Stop training the encoder (its BatchNorm layers then run in inference mode). Re-``compile`` after."""
        self.encoder.trainable = False

    def unfreeze_encoder(self):
        """Train the encoder again. Re-``compile`` after."""
        self.encoder.trainable = True

    def predict_mask(self, images, batch_size=8, threshold=0.5, probabilities=False, sliding_window=None, tta=None):
        """Integer label maps at each image's own size; see :func:`keras_seg.inference.predict_mask`.

        ``images``: one image ``(H, W, C)`` -> ``(H, W)``; a batch ``(N, H, W, C)`` ->
        ``(N, H, W)``; a list of images of any sizes -> a list. Multiclass: argmax over
        classes; one channel: probability above ``threshold``. ``sliding_window`` and
        ``tta`` take the configs of :func:`keras_seg.inference.sliding_window` and
        :func:`keras_seg.inference.tta`.
        """
        from keras_seg.inference import predict_mask

        return predict_mask(self, images, batch_size=batch_size or 8, threshold=threshold,
                            probabilities=probabilities, sliding_window=sliding_window, tta=tta)  # fmt: skip

    # ------------------------------------------------------------------ serialization

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "encoder_weights": None,  # the weights travel with the saved model
            "input_shape": list(self.input_shape_arg),
            "activation": self.activation,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("encoder"), dict):
            config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
