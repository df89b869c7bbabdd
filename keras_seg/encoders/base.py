"""The encoder contract: an image goes in, a feature pyramid keyed by stride comes out.

An encoder is a functional Keras model whose output is a dict
``{"P1": (B, H/2, W/2, C1), "P2": (B, H/4, W/4, C2), ..., "P5": (B, H/32, W/32, C5)}``:
key ``"P<k>"`` holds the feature at stride ``2**k`` (``"P0"`` at full resolution,
where an encoder has one). These are keras-hub's ``pyramid_outputs`` keys, so a
keras-hub backbone plugs in directly. An encoder may skip levels (ConvNeXt has no
stride-2 feature; Xception's first features are coarser); a dilated encoder
(``output_stride`` 16 or 8) reports its deepest features under the stride they
really have, so ``"P5"`` is absent and ``"P4"`` (or ``"P3"``) is the deepest. The stage
output that a dilated stage replaced at its stride may stay available under ``"C<k>"`` (the
stage of nominal stride ``2**k``, FPN's naming); keys other than ``"P<k>"`` are extras that only
the decoders asking for them read (PAN reads ``"C4"``).

keras_seg's own encoders (:class:`Encoder` subclasses) also put their input
preprocessing inside the graph: they take RGB pixel values in [0, 255].
"""

import math

import keras

from keras_seg.utils import naming


def level_key(stride):
    """``4 -> "P2"``."""
    return f"P{int(round(math.log2(stride)))}"


def is_level(key):
    """True for a pyramid level key ``"P<k>"`` (not an extra such as ``"C4"``)."""
    return isinstance(key, str) and key.startswith("P") and key[1:].isdigit()


def level_stride(key):
    """``"P2" -> 4``."""
    if not is_level(key):
        raise ValueError(f"Pyramid keys must look like 'P0'..'P5' (feature at stride 2**k); got {key!r}.")
    return 2 ** int(key[1:])


def pyramid_channels(encoder):
    """``{"P2": 256, ...}`` for a model whose output is a pyramid dict, sorted by stride."""
    outputs = encoder.output
    if not isinstance(outputs, dict) or not outputs:
        raise ValueError(
            f"Encoder {encoder.name!r} must output a dict of features keyed 'P1'..'P5' "
            f"(stride 2**k); its output is {type(outputs).__name__}. Build it as "
            "keras.Model(inputs, {'P2': c2, 'P3': c3, 'P4': c4, 'P5': c5})."
        )
    keys = sorted((k for k in outputs if is_level(k)), key=level_stride)
    if not keys:
        raise ValueError(f"Encoder {encoder.name!r} outputs {sorted(outputs)}, none of them a level 'P1'..'P5'.")
    return {k: int(outputs[k].shape[-1]) for k in keys}


def deepest_stride(encoder):
    return max(level_stride(k) for k in pyramid_channels(encoder))


@keras.saving.register_keras_serializable(package="keras_seg")
class Encoder(keras.Model):
    """Base class of keras_seg's encoders: a functional model ``image -> {"P<k>": feature}``.

    Subclasses build their graph in ``__init__`` and hand the input and the
    pyramid dict to this constructor; ``get_config`` returns their own
    constructor arguments (never the functional graph), so a saved model
    rebuilds the encoder from its arguments and then loads the weights.
    """

    def __init__(self, inputs, pyramid, **kwargs):
        super().__init__(inputs=inputs, outputs=dict(pyramid), **kwargs)
        self.pyramid_channels = pyramid_channels(self)

    @property
    def strides(self):
        """The strides of the pyramid levels, finest first."""
        return [level_stride(k) for k in self.pyramid_channels]

    def get_config(self):
        return {"name": self.name, "trainable": self.trainable}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def wrap_backbone(model):
    """A model with pyramid outputs as a keras_seg encoder model (used as is).

    Accepts a keras_seg :class:`Encoder`, any functional model whose output is a
    ``"P<k>"`` dict, or a keras-hub / keras-cv backbone exposing
    ``pyramid_outputs`` (wrapped as ``keras.Model(backbone.inputs, backbone.pyramid_outputs)``;
    such backbones expect their own preprocessing, which the caller applies).
    """
    if isinstance(model, Encoder):
        return model
    pyramid = getattr(model, "pyramid_outputs", None)
    if isinstance(pyramid, dict) and pyramid and not isinstance(model.output, dict):
        model = keras.Model(model.inputs, dict(pyramid), name=naming.unique(f"{model.name}_pyramid"))
    pyramid_channels(model)  # validates the output structure with a clear message
    return model


def load_weights_file(encoder, path, load_torch, rgb_encoder):
    """Load ``encoder_weights=path`` into ``encoder``: a ``.weights.h5`` of it, or a PyTorch weights file.

    ``load_torch(encoder, tensors, where=...)`` sets weights from the file's tensors by their
    PyTorch names. For an encoder built with ``in_channels != 3`` the file (made for RGB) goes into
    ``rgb_encoder()``, the same encoder on 3 channels, and the first kernel is adapted from it
    (:func:`keras_seg.encoders.applications.adapt_weights`, as for every encoder).
    """
    if str(path).endswith(".weights.h5"):
        encoder.load_weights(path)
        return encoder
    from keras_seg.convert.tensors import read_weights

    tensors, where = read_weights(path), f"{path}: "
    if encoder.in_channels == 3:
        load_torch(encoder, tensors, where=where)
        return encoder
    from keras_seg.encoders.applications import adapt_weights

    rgb = rgb_encoder()
    load_torch(rgb, tensors, where=where)
    adapt_weights(rgb, encoder)
    return encoder
