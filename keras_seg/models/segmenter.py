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

import contextlib

import keras
import numpy as np

from keras_seg.encoders import build_encoder, output_strides, pyramid_channels
from keras_seg.layers.blocks import segmentation_head
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

    The wiring every architecture shares lives here, once: the checks of ``num_classes``,
    ``input_shape`` and ``activation``; the encoder built from ``encoder`` /
    ``encoder_weights`` / ``output_stride`` (:meth:`make_encoder`); its features fed to the
    architecture's :meth:`decoder`; the class scores resized to the input and finished
    (:meth:`finish`); every constructor argument stored under its own name and returned by
    ``get_config``. An architecture's file holds its constructor signature and docstring, one
    ``super().__init__(...)`` call that forwards its arguments, and its :meth:`decoder`::

        class MyNet(Segmenter):
            def __init__(self, num_classes, encoder="resnet34", encoder_weights=None,
                         input_shape=(None, None, 3), width=64, activation=None, **kwargs):
                super().__init__(num_classes=num_classes, encoder=encoder, encoder_weights=encoder_weights,
                                 input_shape=input_shape, activation=activation, width=width, **kwargs)

            def decoder(self, features, *, num_classes, encoder, width):
                x = conv_bn_act(features["P5"], width, 3, name="decoder")
                return self.head(x, num_classes)

    Keyword arguments beyond the shared ones are the architecture's own options: they reach
    :meth:`decoder` (and :meth:`make_encoder`) by name, and are stored as attributes. A decoder
    returns the class scores at any stride, or ``(scores, resolved)`` where ``resolved`` holds
    options it filled in (a default width, atrous rates), stored instead of the given value;
    :meth:`make_encoder` likewise returns the encoder or ``(encoder, {"output_stride": ...})``.
    """

    dilate_by_default = False  # True: an encoder named by a string runs at output stride 16 when it can

    def __init__(self, *, num_classes, encoder, encoder_weights=None, input_shape=(None, None, 3), output_stride=None,
                 encoder_depth=5, activation=None, name=None, trainable=True, dtype=None, **options):  # fmt: skip
        num_classes = check_num_classes(num_classes)
        input_shape = check_input_shape(input_shape)
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation={activation!r} is not supported; expected one of {ACTIVATIONS}.")
        if isinstance(encoder_depth, bool) or not isinstance(encoder_depth, int) or not 1 <= encoder_depth <= 5:
            raise ValueError(f"encoder_depth={encoder_depth!r} must be an int from 1 to 5: the number of encoder stages.")
        enc = self.make_encoder(encoder, encoder_weights, input_shape, output_stride, encoder_depth, **options)
        if isinstance(enc, tuple):  # (encoder, {"output_stride": the stride it was built with})
            enc, resolved = enc
            output_stride = resolved.get("output_stride", output_stride)
        inputs = keras.Input(input_shape, name="image")
        features = enc(inputs)
        scores = self.decoder(features, num_classes=num_classes, encoder=enc, **options)
        if isinstance(scores, tuple):
            scores, resolved = scores
            options = dict(options, **resolved)
        logits = self.finish(scores, inputs, activation)
        keras_kwargs = {"name": name, "trainable": trainable} | ({"dtype": dtype} if dtype is not None else {})
        super().__init__(inputs=inputs, outputs=logits, **keras_kwargs)
        self.encoder = enc
        self.num_classes = num_classes
        self.encoder_weights = encoder_weights
        self.input_shape_arg = tuple(input_shape)
        self.output_stride = output_stride
        self.encoder_depth = encoder_depth
        self.activation = activation
        self.builds_own_encoder = encoder is None  # rebuilt from the options, not stored in the config
        self._options = list(options)
        for key, value in options.items():
            setattr(self, key, list(value) if isinstance(value, tuple) else value)

    # ------------------------------------------------------------------ what an architecture provides

    def make_encoder(self, encoder, encoder_weights, input_shape, output_stride, encoder_depth=5, **options):
        """The encoder model for the ``encoder`` argument (a name, a model, or a serialized encoder).

        Architectures that build their own default encoder (the classic U-Net, SegFormer's MiT)
        override this. Those with ``dilate_by_default`` (DeepLab, LR-ASPP, PAN) build an encoder
        named by a string at output stride 16 when it dilates (``output_stride=None``, full depth).
        """
        if encoder is None:
            raise ValueError(f"{type(self).__name__} needs an encoder: pass encoder= a name from "
                             "keras_seg.encoders.list_encoders() or an encoder model.")  # fmt: skip
        if output_stride is None and self.dilate_by_default and isinstance(encoder, str) and encoder_depth == 5:
            output_stride = 16 if 16 in output_strides(encoder) else 32  # a transformer (MiT) keeps stride 32
            built = build_encoder(encoder, encoder_weights, input_shape[-1], output_stride, depth=encoder_depth)
            return built, {"output_stride": output_stride}
        return build_encoder(encoder, encoder_weights, input_shape[-1], output_stride, depth=encoder_depth)

    def decoder(self, features, *, num_classes, encoder, **options):
        """Class scores ``(B, h, w, num_classes)`` from the encoder's ``features`` (``{"P<k>": tensor}``)."""
        raise NotImplementedError(f"{type(self).__name__} must define decoder(features, *, num_classes, encoder, ...).")

    # ------------------------------------------------------------------ graph helpers

    @staticmethod
    def head(x, num_classes, kernel_size=1, name="head", upsampling=1, coordinates="align_corners"):
        """Class scores from ``x``: a conv with ``num_classes`` filters, upsampled bilinearly by ``upsampling``
        (segmentation_models.pytorch's ``SegmentationHead``, ``align_corners=True``; see
        :func:`keras_seg.layers.segmentation_head`)."""
        return segmentation_head(x, num_classes, name=name, kernel_size=kernel_size, upsampling=upsampling,
                                 coordinates=coordinates)  # fmt: skip

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

    def make_train_function(self, force=False):
        """Keras' training step, with the optimizer's variables created first (as Keras does when it loads a
        compiled model). Keras on TensorFlow otherwise creates them inside the first trace of the step, and
        TensorFlow traces a function that creates variables twice, once to create them and once to run: every
        first ``fit`` / ``train_on_batch`` after ``compile`` would trace the step twice (a small U-Net's first
        step without XLA: 13.5 s -> 7.3 s on a 2-core CPU). Done here, not in ``compile``: Keras does not call
        a model's own ``compile`` when it loads a compiled model."""
        optimizer = getattr(self, "optimizer", None)
        if optimizer is not None and not optimizer.built:
            tensorflow = keras.backend.backend() == "tensorflow"  # under the strategy compile captured (Mirrored)
            with self.distribute_strategy.scope() if tensorflow else contextlib.nullcontext():
                optimizer.build(self.trainable_variables)
        return super().make_train_function(force=force)

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

    def save_to_preset(self, directory, **kwargs):
        """Write this model as a keras-hub-style preset directory; see :func:`keras_seg.presets.save_to_preset`."""
        from keras_seg.presets import save_to_preset

        return save_to_preset(self, directory, **kwargs)

    @classmethod
    def from_preset(cls, handle, **kwargs):
        """The model of a preset (a directory, ``hf://owner/name`` or ``kaggle://...``); see
        :func:`keras_seg.presets.from_preset`. On an architecture class (``UNet.from_preset``) the preset must
        hold that architecture; ``kwargs`` override constructor arguments of its config."""
        from keras_seg.presets import from_preset

        return from_preset(handle, cls=cls, **kwargs)

    # ------------------------------------------------------------------ serialization

    def get_config(self):
        """The constructor arguments, by name (the encoder as a serialized object, or None when built from options)."""
        import inspect

        accepted = inspect.signature(type(self).__init__).parameters
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "num_classes": self.num_classes,
            "encoder": None if self.builds_own_encoder else keras.saving.serialize_keras_object(self.encoder),
            "encoder_weights": None,  # the weights travel with the saved model
            "input_shape": list(self.input_shape_arg),
            "output_stride": self.output_stride,
            "encoder_depth": self.encoder_depth,
            "activation": self.activation,
        }
        for key in self._options:
            value = getattr(self, key)
            config[key] = list(value) if isinstance(value, (tuple, list)) else value
        return {key: value for key, value in config.items() if key in accepted or key in ("name", "trainable")}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config.get("encoder"), dict):
            config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)
