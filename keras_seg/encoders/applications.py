"""Encoders from ``keras.applications``: each family with its preprocessing and feature table.

``ApplicationEncoder("keras_resnet50", weights="imagenet", in_channels=3, output_stride=32)``
builds the classification network without its top, finds the feature of each
stride, and returns a functional model ``RGB in [0, 255] -> {"P1": ..., "P5": ...}``
with the family's ``preprocess_input`` done by an :class:`ImagePreprocessing` layer
inside the graph.

The feature table of a family is derived from its graph rather than typed by
hand: every layer's nominal stride is the product of the ``strides`` of the
layers before it, and the feature at stride ``s`` is the last layer whose output
has stride ``s`` (e.g. ResNet50: ``conv1_relu``, ``conv2_block3_out``, ...,
``conv5_block3_out``; MobileNetV2: ``block_1_expand_relu``, ...,
``out_relu``). A family whose natural feature differs names it in ``features``
(ResNetV2 downsamples at the *end* of a stage, so its stage outputs are the next
block's ``preact_relu``). ``tests/test_encoders.py`` prints and checks the table
of every family.

``output_stride`` 16 or 8 replaces the strides after that point by dilations
(the "atrous" trick of DeepLab): stride-2 layers become stride 1, later kernels
get dilation ``s / output_stride``, padding layers in front of them become
"same" padding, and every weight keeps its shape, so ImageNet weights load
unchanged.
"""

import math
import os
from typing import NamedTuple

import keras
import numpy as np

from keras_seg.encoders.base import Encoder, level_key
from keras_seg.encoders.mit import MIT_ENCODERS
from keras_seg.encoders.mobilenetv3 import MOBILENETS
from keras_seg.encoders.resnet import RESNETS
from keras_seg.layers.conv import Conv2D, DepthwiseConv2D
from keras_seg.layers.preprocessing import ImagePreprocessing
from keras_seg.utils import naming

_A = "keras.applications"


def _resnetv2(blocks):
    b2, b3, b4 = blocks
    return {
        4: f"conv2_block{b2}_preact_relu",
        8: f"conv3_block{b3}_preact_relu",
        16: f"conv4_block{b4}_preact_relu",
    }


class Family(NamedTuple):
    """One ``keras.applications`` family: how to build it, normalise its input, and read its features."""

    constructor: str  # the keras.applications function
    preprocessing: str  # ImagePreprocessing mode for RGB input
    features: dict = {}  # {stride: layer name} where the graph rule picks the wrong layer
    # Mode for input with other than 3 channels, where it differs: keras' ConvNeXt drops its
    # built-in RGB normalisation then, so keras_seg normalises with ImageNet statistics instead.
    preprocessing_other_channels: str = None


_CONVNEXT = {"preprocessing": "none", "preprocessing_other_channels": "torch"}
FAMILIES = {
    "vgg16": Family("VGG16", "caffe"),
    "vgg19": Family("VGG19", "caffe"),
    # keras.applications' ResNet50/101/152 (Caffe layout: stride on the first 1x1 conv, conv biases). The names
    # "resnet50" .. "resnet152" are torchvision's layout (keras_seg.encoders.resnet); these keep the old
    # networks under a "keras_" name, and configs saved under the old names still load (ALIASES).
    "keras_resnet50": Family("ResNet50", "caffe"),
    "keras_resnet101": Family("ResNet101", "caffe"),
    "keras_resnet152": Family("ResNet152", "caffe"),
    "resnet50v2": Family("ResNet50V2", "tf", _resnetv2((3, 4, 6))),
    "resnet101v2": Family("ResNet101V2", "tf", _resnetv2((3, 4, 23))),
    "resnet152v2": Family("ResNet152V2", "tf", _resnetv2((3, 8, 36))),
    "mobilenetv2": Family("MobileNetV2", "tf"),
    "mobilenetv3small": Family("MobileNetV3Small", "none"),
    "mobilenetv3large": Family("MobileNetV3Large", "none"),
    **{f"efficientnetb{i}": Family(f"EfficientNetB{i}", "none") for i in range(8)},
    **{f"efficientnetv2b{i}": Family(f"EfficientNetV2B{i}", "none") for i in range(4)},
    "efficientnetv2s": Family("EfficientNetV2S", "none"),
    "convnexttiny": Family("ConvNeXtTiny", **_CONVNEXT),
    "convnextsmall": Family("ConvNeXtSmall", **_CONVNEXT),
    "convnextbase": Family("ConvNeXtBase", **_CONVNEXT),
    "densenet121": Family("DenseNet121", "torch"),
    "xception": Family("Xception", "tf"),
}

ALIASES = {"resnet50": "keras_resnet50", "resnet101": "keras_resnet101", "resnet152": "keras_resnet152"}
OUTPUT_STRIDES = (8, 16, 32)
_STRIDED = (
    keras.layers.Conv2D,
    keras.layers.DepthwiseConv2D,
    keras.layers.SeparableConv2D,
    keras.layers.MaxPooling2D,
    keras.layers.AveragePooling2D,
)
_KERNEL = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
_GLOBAL = (keras.layers.GlobalAveragePooling2D, keras.layers.GlobalMaxPooling2D)
_SKIPPING = {keras.layers.Conv2D: Conv2D, keras.layers.DepthwiseConv2D: DepthwiseConv2D}


def list_encoders():
    """Names accepted by ``encoder=`` (besides a model object): the torchvision-layout ResNets and
    MobileNetV3s, the keras.applications families, then MiT b0..b5."""
    return sorted(RESNETS, key=lambda n: int(n[6:])) + sorted(MOBILENETS) + sorted(FAMILIES) + sorted(MIT_ENCODERS)


def _unknown(name):
    return ValueError(
        f"Unknown encoder {name!r}. Available: {', '.join(list_encoders())}; "
        "or pass a keras.Model with pyramid outputs as encoder=."
    )


# ----------------------------------------------------------------------------- graph analysis


def _io(layer):
    """The layer's input tensors (a list) and output tensor in the graph that calls it.

    Read from its call node: for a nested model ``layer.output`` is the output of
    the model's *own* graph, not of the call in the enclosing one.
    """
    node = layer._inbound_nodes[0]
    return list(node.input_tensors), node.output_tensors[0]


def _stride_of(layer):
    if isinstance(layer, keras.Model):  # nested blocks (ConvNeXt's stem and downsampling layers)
        return int(np.prod([_stride_of(sub) for sub in layer.layers]))
    strides = getattr(layer, "strides", 1) if isinstance(layer, _STRIDED) else 1
    return int(strides[0] if isinstance(strides, (list, tuple)) else strides)


def _topological(model):
    """The model's layers, inputs first (``model.layers`` is not always in graph order)."""
    ordered = []
    for depth in sorted(model._nodes_by_depth, reverse=True):
        for node in model._nodes_by_depth[depth]:
            if node.operation not in ordered:
                ordered.append(node.operation)
    return ordered


def analyse(model):
    """Nominal input stride of every layer, and each tensor's consumers.

    Returns ``(s_in, s_out, consumers)``: dicts keyed by layer name giving the
    stride of the layer's (first) input and of its output, ``None`` for
    globally pooled tensors (squeeze-excitation branches), and a dict
    ``id(tensor) -> [layers]``.
    """
    stride_by_tensor, s_in, s_out, consumers = {}, {}, {}, {}
    for layer in _topological(model):
        ins, output = _io(layer)
        if isinstance(layer, keras.layers.InputLayer):
            stride_by_tensor[id(output)] = 1
            s_out[layer.name] = 1
            continue
        for t in ins:
            consumers.setdefault(id(t), []).append(layer)
        first = stride_by_tensor.get(id(ins[0]))
        s_in[layer.name] = first
        if first is None or isinstance(layer, _GLOBAL):
            out = None
        else:
            out = first * _stride_of(layer)
        s_out[layer.name] = out
        stride_by_tensor[id(output)] = out
    return s_in, s_out, consumers


def feature_layers(model, overrides=None):
    """``{stride: layer_name}``: the last layer at each stride (1 only for a conv), plus overrides.

    Padding layers do not count (they belong to the next, strided layer).
    """
    _, s_out, _ = analyse(model)
    table = {}
    for layer in _topological(model):
        stride = s_out.get(layer.name)
        if stride is None or stride > 32 or len(_io(layer)[1].shape) != 4:
            continue
        if isinstance(layer, keras.layers.ZeroPadding2D):  # the next stage's padding, not a feature
            continue
        table[stride] = layer
    found = {s: layer.name for s, layer in table.items() if s > 1 or isinstance(layer, keras.layers.Conv2D)}
    found.update(overrides or {})
    return dict(sorted(found.items()))


def _dilation_changes(model, output_stride):
    """Config updates ``{layer_name: {...}}`` that turn strides past ``output_stride`` into dilations."""
    s_in, _, consumers = analyse(model)
    changes = {}
    for layer in model.layers:
        stride_in = s_in.get(layer.name)
        if stride_in is None:
            continue
        st = _stride_of(layer)
        update = {}
        if isinstance(layer, keras.Model) and stride_in * st > output_stride and (st > 1 or stride_in > output_stride):
            raise ValueError(
                f"output_stride={output_stride} needs dilating layers nested inside {layer.name!r}, "
                f"which this encoder family does not allow; use output_stride=32 with it."
            )
        if st > 1 and stride_in * st > output_stride:
            update["strides"] = 1
        rate = stride_in // output_stride if stride_in > output_stride else 1
        if isinstance(layer, _KERNEL):
            kernel = layer.kernel_size[0]
            if rate > 1 and kernel > 1:
                dilation = layer.dilation_rate[0] if isinstance(layer.dilation_rate, (list, tuple)) else layer.dilation_rate
                update["dilation_rate"] = rate * int(dilation)
            if update and kernel > 1 and layer.padding == "valid":
                update["padding"] = "same"
        elif isinstance(layer, (keras.layers.MaxPooling2D, keras.layers.AveragePooling2D)) and update:
            update["padding"] = "same"
        if update:
            changes[layer.name] = update
    # Explicit padding in front of a layer that now pads "same" must go.
    for layer in model.layers:
        if isinstance(layer, keras.layers.ZeroPadding2D):
            users = consumers.get(id(_io(layer)[1]), [])
            if users and all(changes.get(u.name, {}).get("padding") == "same" for u in users):
                changes[layer.name] = {"padding": ((0, 0), (0, 0))}
    return changes


def dilate(model, output_stride):
    """A copy of ``model`` (same weights) whose deepest stride is ``output_stride``."""
    changes = _dilation_changes(model, output_stride)
    if not changes:
        return model

    def clone(layer):
        config = layer.get_config()
        update = changes.get(layer.name, {})
        config.update(update)
        cls = layer.__class__
        if "dilation_rate" in update:  # keras_seg's drop-in subclasses skip the taps that read only padding
            cls = _SKIPPING.get(cls, cls)
        return cls.from_config(config)

    dilated = keras.models.clone_model(model, clone_function=clone)
    for old, new in zip(model.layers, dilated.layers):
        new.set_weights(old.get_weights())
    return dilated


# ----------------------------------------------------------------------------- weights


def adapt_weights(source, target):
    """Copy every weight of ``source`` into ``target`` (same architecture, other input channels).

    A tensor whose shape differs only in the input-channel axis (the first
    convolution's kernel; per-channel normalisation statistics) is adapted the
    way segmentation_models.pytorch does: for 1 channel the RGB kernels are
    summed (statistics averaged); for ``C`` channels the RGB slices repeat
    cyclically and kernels are scaled by ``3 / C`` so activations keep their scale.
    """
    src_layers = [l for l in source.layers if l.weights]
    dst_layers = [l for l in target.layers if l.weights]
    by_name = {l.name: l for l in src_layers}
    # Explicitly named layers pair by name (a family may drop a layer for C != 3, as ConvNeXt drops
    # its RGB normalisation); auto-named ones (name_1, name_2 differ between builds) pair in order.
    unmatched_src = [l for l in src_layers if l.name not in {d.name for d in dst_layers}]
    unmatched_dst = [l for l in dst_layers if l.name not in by_name]
    pairs = [(by_name[d.name], d) for d in dst_layers if d.name in by_name] + list(zip(unmatched_src, unmatched_dst))
    for src, dst in pairs:
        values = []
        for w_src, w_dst in zip(src.get_weights(), dst.weights):
            shape = tuple(w_dst.shape)
            values.append(w_src if w_src.shape == shape else _adapt(w_src, shape))
        dst.set_weights(values)


def _adapt(w, shape):
    if w.ndim == 4:  # (kh, kw, in, out): adapt the input-channel axis
        channels = shape[2]
        if channels == 1:
            return w.sum(axis=2, keepdims=True)
        idx = np.arange(channels) % w.shape[2]
        return w[:, :, idx, :] * (w.shape[2] / channels)
    if w.ndim == 1:
        channels = shape[0]
        return np.full(shape, w.mean(), w.dtype) if channels == 1 else w[np.arange(channels) % w.shape[0]]
    raise ValueError(f"Cannot adapt a weight of shape {w.shape} to {shape}.")


def _build_application(name, in_channels, weights):
    constructor = FAMILIES[name].constructor
    fn = getattr(keras.applications, constructor)

    def build(channels, w):
        return fn(include_top=False, weights=w, input_shape=(None, None, channels))

    if weights is not None and weights != "imagenet" and not os.path.exists(str(weights)):
        raise FileNotFoundError(
            f"encoder_weights={weights!r}: no such file. Pass None (random init), 'imagenet', or the path of a "
            f"weights file of {_A}.{constructor}(include_top=False), e.g. the *_notop.h5 file Keras caches in "
            "~/.keras/models/ or one written with model.save_weights('x.weights.h5')."
        )
    if weights is None:
        return build(in_channels, None)
    try:
        pretrained = build(3, weights)
    except Exception as error:  # download failures surface as many exception types
        if weights != "imagenet":
            raise
        raise ConnectionError(  # an OSError: the command line reports it in one line
            f"Could not get the ImageNet weights of {_A}.{constructor} ({type(error).__name__}: {error}). "
            "Keras downloads them once to ~/.keras/models/; offline, copy that *_notop.h5 file there, or pass its "
            "path as encoder_weights='/path/to/file.h5' (or encoder_weights=None for random initialisation)."
        ) from None
    if in_channels == 3:
        return pretrained
    model = build(in_channels, None)
    adapt_weights(pretrained, model)
    return model


# ----------------------------------------------------------------------------- the encoder


@keras.saving.register_keras_serializable(package="keras_seg")
class ApplicationEncoder(Encoder):
    """A ``keras.applications`` network as a keras_seg encoder.

    Args:
        backbone: a ``keras.applications`` family of :func:`list_encoders` (``"keras_resnet50"``,
            ``"mobilenetv2"``, ...); ``"resnet50"`` / ``"resnet101"`` / ``"resnet152"`` (the names
            these had before keras_seg 0.2) mean the ``keras_`` ones here.
        weights: ``None`` (random), ``"imagenet"`` (Keras' download and cache) or
            the path of a weights file of that ``keras.applications`` model.
        in_channels: input channels; pretrained first-layer kernels are adapted.
        output_stride: 32 (no dilation), 16 or 8.
        depth: the number of stages kept, 1..5 (segmentation_models.pytorch's ``encoder_depth``):
            levels past stride ``2**depth`` are left out, and so are the layers only they need.

    At ``output_stride`` 16 or 8 the stage outputs that the dilated deepest feature replaced
    stay available as ``"C<k>"`` (see :mod:`keras_seg.encoders.base`).
    """

    def __init__(self, backbone="keras_resnet50", weights=None, in_channels=3, output_stride=32, depth=5, **kwargs):
        backbone = ALIASES.get(backbone, backbone)
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 5:
            raise ValueError(f"depth={depth!r} must be an int from 1 to 5: the number of stages (strides 2 to 32).")
        if backbone in MIT_ENCODERS:
            raise ValueError(f"{backbone!r} is not a keras.applications family: build it with "
                             f"keras_seg.encoders.build_encoder({backbone!r}) or MiTEncoder.")
        if backbone not in FAMILIES:
            raise _unknown(backbone)
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride={output_stride!r} is not supported; use one of {OUTPUT_STRIDES}.")
        if not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels={in_channels!r} must be a positive int (3 for RGB).")
        family = FAMILIES[backbone]
        mode = family.preprocessing
        if in_channels != 3 and family.preprocessing_other_channels:
            mode = family.preprocessing_other_channels
        app = _build_application(backbone, in_channels, weights)
        table = feature_layers(app, family.features)
        kept = {s: name for s, name in table.items() if s <= 2**depth}
        output_stride = min(output_stride, max(kept))
        if output_stride < max(table):
            app = dilate(app, output_stride)
        # Levels finer than output_stride keep their features; the deepest feature, which a
        # dilated network computes at stride output_stride, takes that level, and the stage
        # outputs it replaced stay as extras C<k>.
        levels = {level_key(s): name for s, name in kept.items() if s < output_stride}
        levels[level_key(output_stride)] = kept[max(kept)]
        levels.update({f"C{int(math.log2(s))}": name for s, name in kept.items() if output_stride <= s < max(kept)})
        operations = {op.name: op for op in _topological(app)}
        features = keras.Model(
            app.input,
            {key: _io(operations[name])[1] for key, name in levels.items()},
            name=naming.unique(f"{backbone}_features"),
        )
        inputs = keras.Input((None, None, in_channels), name="image")
        x = ImagePreprocessing(mode, name="preprocessing")(inputs)
        pyramid = features(x)
        kwargs.setdefault("name", naming.unique(f"{backbone}_encoder"))
        super().__init__(inputs, pyramid, **kwargs)
        self.backbone = backbone
        self.in_channels = in_channels
        self.output_stride = output_stride
        self.depth = depth
        self.feature_table = table

    def get_config(self):
        config = super().get_config()
        # Weights travel with the saved model, so a reload never downloads.
        config.update(backbone=self.backbone, in_channels=self.in_channels, output_stride=self.output_stride,
                      depth=self.depth)  # fmt: skip
        return config
