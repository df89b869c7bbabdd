"""Encoders: image -> feature pyramid ``{"P<k>": feature at stride 2**k}``.

``build_encoder`` turns what a user passes as ``encoder=`` into an encoder model:
a name from :func:`list_encoders` (a torchvision-layout ResNet or MobileNetV3, a
``keras.applications`` family, or ``"mit_b0"`` .. ``"mit_b5"``, SegFormer's Mix Transformer), a
keras_seg :class:`Encoder`, any functional model with a pyramid dict output, or a keras-hub /
keras-cv backbone with ``pyramid_outputs``.
"""

import keras

from keras_seg.encoders.applications import ALIASES, FAMILIES, OUTPUT_STRIDES, ApplicationEncoder, _unknown, list_encoders
from keras_seg.encoders.base import (
    Encoder, deepest_stride, is_level, level_key, level_stride, pyramid_channels, wrap_backbone,
)  # fmt: skip
from keras_seg.encoders.mit import MIT_ENCODERS, MiTEncoder, mit_encoder
from keras_seg.encoders.mobilenetv3 import MOBILENETS, MobileNetV3Encoder, mobilenetv3_encoder
from keras_seg.encoders.resnet import RESNETS, ResNetEncoder, resnet_encoder
from keras_seg.encoders.unet import UNetEncoder


def output_strides(name):
    """The output strides a named encoder can be built with: (8, 16, 32) by dilation, (32,) for a transformer."""
    if name in MIT_ENCODERS:
        return (32,)
    if name in MOBILENETS:
        return (16, 32)
    if name not in FAMILIES and name not in RESNETS and name not in ALIASES:
        raise _unknown(name)
    return OUTPUT_STRIDES


def build_encoder(encoder, weights=None, in_channels=3, output_stride=None, depth=5):
    """The encoder model for ``encoder=``; ``output_stride=None`` keeps the encoder's own (32 for a name).

    ``depth`` (1..5): the number of stages a named encoder keeps (segmentation_models.pytorch's
    ``encoder_depth``): levels past stride ``2**depth`` are left out of the pyramid, and a ResNet
    does not build them at all.
    """
    if isinstance(encoder, str) and encoder in RESNETS:
        return resnet_encoder(encoder, weights, in_channels=in_channels, output_stride=output_stride or 32, depth=depth)
    if isinstance(encoder, str) and encoder in MOBILENETS:
        return truncate(mobilenetv3_encoder(encoder, weights, in_channels, output_stride or 32), depth) if depth != 5 else (
            mobilenetv3_encoder(encoder, weights, in_channels, output_stride or 32))  # fmt: skip
    if isinstance(encoder, str) and encoder in MIT_ENCODERS:
        if depth != 5:
            raise ValueError(f"The Mix Transformer {encoder!r} supports depth=5 only (encoder_depth in "
                             "segmentation_models.pytorch): its four stages all feed the decoder.")  # fmt: skip
        return mit_encoder(encoder, weights, in_channels=in_channels, output_stride=output_stride)
    if isinstance(encoder, str):
        return ApplicationEncoder(encoder, weights=weights, in_channels=in_channels, output_stride=output_stride or 32,
                                  depth=depth)  # fmt: skip
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
    return truncate(model, depth) if depth != 5 else model


def truncate(encoder, depth):
    """The encoder with only its levels up to stride ``2**depth`` (``depth`` 1..5), as a model of those outputs."""
    if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 5:
        raise ValueError(f"depth={depth!r} must be an int from 1 to 5: the number of encoder stages (strides 2 to 32).")
    kept = {k: v for k, v in encoder.output.items() if is_level(k) and level_stride(k) <= 2**depth}
    if not kept:
        raise ValueError(f"depth={depth} keeps none of {encoder.name}'s levels {sorted(pyramid_channels(encoder))}.")
    if len(kept) == len(pyramid_channels(encoder)):
        return encoder
    return keras.Model(encoder.inputs, kept, name=f"{encoder.name}_depth{depth}")


__all__ = [
    "ApplicationEncoder",
    "Encoder",
    "FAMILIES",
    "MIT_ENCODERS",
    "MOBILENETS",
    "MobileNetV3Encoder",
    "MiTEncoder",
    "OUTPUT_STRIDES",
    "RESNETS",
    "ResNetEncoder",
    "UNetEncoder",
    "build_encoder",
    "deepest_stride",
    "is_level",
    "level_key",
    "level_stride",
    "list_encoders",
    "output_strides",
    "resnet_encoder",
    "truncate",
    "pyramid_channels",
    "wrap_backbone",
]
