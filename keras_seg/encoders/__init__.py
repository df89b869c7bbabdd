"""Encoders: image -> feature pyramid ``{"P<k>": feature at stride 2**k}``.

``build_encoder`` turns what a user passes as ``encoder=`` into an encoder model:
a name from :func:`list_encoders` (a ``keras.applications`` family, or ``"mit_b0"`` ..
``"mit_b5"``, SegFormer's Mix Transformer), a keras_seg :class:`Encoder`, any functional
model with a pyramid dict output, or a keras-hub / keras-cv backbone with ``pyramid_outputs``.
"""

import keras

from keras_seg.encoders.applications import FAMILIES, OUTPUT_STRIDES, ApplicationEncoder, _unknown, list_encoders
from keras_seg.encoders.base import Encoder, deepest_stride, level_key, level_stride, pyramid_channels, wrap_backbone
from keras_seg.encoders.mit import MIT_ENCODERS, MiTEncoder, mit_encoder
from keras_seg.encoders.unet import UNetEncoder


def output_strides(name):
    """The output strides a named encoder can be built with: (8, 16, 32) by dilation, (32,) for a transformer."""
    if name in MIT_ENCODERS:
        return (32,)
    if name not in FAMILIES:
        raise _unknown(name)
    return OUTPUT_STRIDES


def build_encoder(encoder, weights=None, in_channels=3, output_stride=None):
    """The encoder model for ``encoder=``; ``output_stride=None`` keeps the encoder's own (32 for a name)."""
    if isinstance(encoder, str) and encoder in MIT_ENCODERS:
        return mit_encoder(encoder, weights, in_channels=in_channels, output_stride=output_stride)
    if isinstance(encoder, str):
        return ApplicationEncoder(encoder, weights=weights, in_channels=in_channels, output_stride=output_stride or 32)
    if isinstance(encoder, dict):  # a serialized encoder, as stored in a model config
        encoder = keras.saving.deserialize_keras_object(encoder)
    if not isinstance(encoder, keras.Model):
        raise TypeError(
            f"encoder={encoder!r} is not supported: pass a name ({', '.join(list_encoders())}), "
            "a keras_seg Encoder, or a keras.Model whose output is a dict keyed 'P1'..'P5'."
        )
    if weights is not None:
        raise ValueError(
            f"encoder_weights={weights!r} only applies to an encoder given by name; a model passed as "
            "encoder= is used with the weights it has. Load them into it first."
        )
    model = wrap_backbone(encoder)
    channels = model.input_shape[-1]
    if channels is not None and channels != in_channels:
        raise ValueError(f"The encoder takes {channels} input channels but input_shape asks for {in_channels}.")
    own = deepest_stride(model)
    if output_stride is not None and output_stride != own:
        raise ValueError(
            f"output_stride={output_stride} but the given encoder's deepest feature has stride {own}; "
            f"pass output_stride=None (or {own}), or build the encoder with the stride you want."
        )
    return model


__all__ = [
    "ApplicationEncoder",
    "Encoder",
    "FAMILIES",
    "MIT_ENCODERS",
    "MiTEncoder",
    "OUTPUT_STRIDES",
    "UNetEncoder",
    "build_encoder",
    "deepest_stride",
    "level_key",
    "level_stride",
    "list_encoders",
    "output_strides",
    "pyramid_channels",
    "wrap_backbone",
]
