"""MobileNetV3-Large and -Small in torchvision's layout, the encoders of torchvision's mobile segmentation models.

torchvision's ``mobilenet_v3_large`` / ``mobilenet_v3_small`` ``features`` (Howard et al. 2019): a
3x3 stride-2 stem (conv, BatchNorm, hard-swish), inverted residual blocks (a 1x1 expansion where
the width changes, a depthwise conv, squeeze-excitation with a hard-sigmoid gate in some, a 1x1
projection; ReLU or hard-swish) and a last 1x1 conv to 960 (576) channels. keras.applications'
MobileNetV3 differs (its squeeze-excitation widths, where its features are read), so it cannot
hold torchvision's weights; this encoder can, tensor for tensor.

Layer names are torchvision's state-dict names with ``.`` written ``_`` (``features_4_block_2_fc1``),
so a torchvision weights file maps onto the layers one to one. Numerics follow PyTorch:
symmetric explicit padding, BatchNorm epsilon 1e-3 (torchvision's for MobileNetV3), and ImageNet
mean / std normalisation of 0..255 pixels inside the graph.

The pyramid levels are where torchvision's segmentation models read them (``_segm_mobilenetv3``:
the output of each stage's first, downsampling block, and of the last conv as the deepest):
``P1`` = ``features[0]``, ``P2`` = ``features[2]``, ``P3`` = ``features[4]`` (40 channels: the
"low" feature of LR-ASPP), ``P4`` = ``features[7]``, ``P5`` = the last conv. ``output_stride=16``
dilates the last stage as torchvision's ``dilated=True`` (depthwise convs at rate 2, no stride):
then ``P4`` is the last conv at stride 16 and ``features[7]``'s output stays as ``C4``.
"""

import os
from typing import NamedTuple

import keras

from keras_seg.encoders.base import Encoder, level_key, load_weights_file
from keras_seg.layers.conv import DepthwiseConv2D
from keras_seg.layers.preprocessing import ImagePreprocessing
from keras_seg.utils import naming

layers = keras.layers
BN_EPSILON, BN_MOMENTUM = 1e-3, 0.99  # torchvision's MobileNetV3: BatchNorm2d(eps=0.001, momentum=0.01)


class Block(NamedTuple):
    kernel: int
    expanded: int
    out: int
    se: bool
    activation: str  # "RE" (ReLU) or "HS" (hard-swish)
    stride: int


# torchvision's _mobilenet_v3_conf: (kernel, expanded, out, squeeze-excitation, activation, stride) after the 16-wide stem.
MOBILENETS = {
    "mobilenet_v3_large": ([Block(*b) for b in (
        (3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
        (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
        (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
        (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
        (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1))], 960),
    "mobilenet_v3_small": ([Block(*b) for b in (
        (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
        (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
        (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
        (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1))], 576),
}  # fmt: skip
ACTIVATIONS = {"RE": "relu", "HS": "hard_silu"}


def make_divisible(value, divisor=8):
    """torchvision's ``_make_divisible``: the nearest multiple of ``divisor``, never 10 % below ``value``."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn(x, filters, kernel, stride=1, dilation=1, groups=False, activation=None, *, name):
    """torchvision's Conv2dNormActivation: a bias-free conv with padding ``(kernel - 1) // 2 * dilation``, BN, activation."""
    pad = (kernel - 1) // 2 * dilation
    if pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    conv = DepthwiseConv2D if groups else layers.Conv2D
    args = {} if groups else {"filters": filters}
    x = conv(kernel_size=kernel, strides=stride, dilation_rate=dilation, use_bias=False, name=f"{name}_0", **args)(x)
    x = layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=f"{name}_1")(x)
    return layers.Activation(activation, name=f"{name}_2")(x) if activation else x


def _inverted_residual(x, block, dilation, name):
    inputs, parts = x, 0
    activation = ACTIVATIONS[block.activation]
    if block.expanded != x.shape[-1]:
        x = _conv_bn(x, block.expanded, 1, activation=activation, name=f"{name}_block_{parts}")
        parts += 1
    stride = 1 if dilation > 1 else block.stride
    x = _conv_bn(x, block.expanded, block.kernel, stride, dilation, groups=True, activation=activation,
                 name=f"{name}_block_{parts}")  # fmt: skip
    parts += 1
    if block.se:  # torchvision's SqueezeExcitation: pool, fc1 (ReLU), fc2 (hard-sigmoid), scale
        se = f"{name}_block_{parts}"
        gate = layers.GlobalAveragePooling2D(keepdims=True, name=f"{se}_avgpool")(x)
        gate = layers.Conv2D(make_divisible(block.expanded // 4), 1, activation="relu", name=f"{se}_fc1")(gate)
        gate = layers.Conv2D(block.expanded, 1, activation="hard_sigmoid", name=f"{se}_fc2")(gate)
        x = layers.Multiply(name=f"{se}_scale")([x, gate])
        parts += 1
    x = _conv_bn(x, block.out, 1, name=f"{name}_block_{parts}")
    if block.stride == 1 and inputs.shape[-1] == block.out:
        x = layers.Add(name=f"{name}_add")([x, inputs])
    return x


@keras.saving.register_keras_serializable(package="keras_seg")
class MobileNetV3Encoder(Encoder):
    """A torchvision-layout MobileNetV3 as a keras_seg encoder (see the module for its levels).

    Args:
        backbone: ``"mobilenet_v3_large"`` or ``"mobilenet_v3_small"``.
        in_channels: input channels (ImageNet statistics' mean for channels other than RGB).
        output_stride: 32, or 16 (the last stage dilated, torchvision's ``dilated=True``).
    """

    def __init__(self, backbone="mobilenet_v3_large", in_channels=3, output_stride=32, **kwargs):
        if backbone not in MOBILENETS:
            raise ValueError(f"backbone={backbone!r} is not a torchvision MobileNetV3; expected one of {sorted(MOBILENETS)}.")
        if output_stride not in (16, 32):
            raise ValueError(f"output_stride={output_stride!r}: a torchvision MobileNetV3 runs at 32, or 16 dilated.")
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels={in_channels!r} must be a positive int (3 for RGB).")
        blocks, last = MOBILENETS[backbone]
        inputs = keras.Input((None, None, in_channels), name="image")
        x = ImagePreprocessing("torch", name="preprocessing")(inputs)
        x = _conv_bn(x, 16, 3, 2, activation="hard_silu", name="features_0")
        pyramid, stride = {"P1": x}, 2
        dilation = 1
        for i, block in enumerate(blocks, start=1):
            if block.stride == 2 and stride * 2 > output_stride:  # the last stage: dilated instead of strided
                dilation = 2
            x = _inverted_residual(x, block, dilation, name=f"features_{i}")
            if block.stride == 2 and dilation == 1:
                stride *= 2
                pyramid[level_key(stride)] = x  # the stage's first (downsampling) block, as torchvision reads it
        x = _conv_bn(x, last, 1, activation="hard_silu", name=f"features_{len(blocks) + 1}")
        if dilation > 1:  # dilated: the last conv takes over the stride-16 level, features[7] stays as C4
            pyramid[f"C{stride.bit_length() - 1}"] = pyramid[level_key(stride)]
        pyramid[level_key(stride)] = x  # the deepest level is the last conv (torchvision's "high" / "out")
        kwargs.setdefault("name", naming.unique(f"{backbone}_encoder"))
        super().__init__(inputs, pyramid, **kwargs)
        self.backbone = backbone
        self.in_channels = in_channels
        self.output_stride = output_stride

    def get_config(self):
        config = super().get_config()
        config.update(backbone=self.backbone, in_channels=self.in_channels, output_stride=self.output_stride)
        return config


def mobilenetv3_encoder(name, weights=None, in_channels=3, output_stride=32):
    """The encoder for ``encoder="mobilenet_v3_large"`` / ``"mobilenet_v3_small"``, with ``encoder_weights``.

    ``weights``: None, or a torchvision weights file (``mobilenet_v3_large-8738ca79.pth``; ``.pth``
    needs PyTorch, a ``.safetensors`` copy is read with numpy) or a ``.weights.h5`` of this encoder.
    For ``in_channels != 3`` the pretrained first kernel is adapted as for every encoder.
    ``"imagenet"`` is not downloaded here: torchvision publishes ``.pth`` files only, so it says
    which file to get.
    """
    encoder = MobileNetV3Encoder(name, in_channels=in_channels, output_stride=output_stride)
    if weights is None:
        return encoder
    if weights == "imagenet":
        raise ValueError(
            f"encoder_weights='imagenet' for {name!r}: torchvision publishes these weights as a .pth file "
            f"(torchvision.models.MobileNet_V3_{name.split('_')[-1].capitalize()}_Weights.IMAGENET1K_V1); download it "
            "and pass its path as encoder_weights='/path/to/file.pth' (PyTorch reads it), or use "
            f"encoder='mobilenetv3{name.split('_')[-1]}' (keras.applications' MobileNetV3, with Keras' ImageNet weights)."
        )
    if not os.path.isfile(str(weights)):
        raise FileNotFoundError(f"encoder_weights={weights!r}: no such file. Pass None or a torchvision weights file.")
    rgb = lambda: MobileNetV3Encoder(name, in_channels=3, output_stride=output_stride)  # noqa: E731
    return load_weights_file(encoder, weights, load_torch_weights, rgb)


def load_torch_weights(encoder, tensors, prefix="features.", where=""):
    """Set the encoder's weights from torchvision names (``features.4.block.2.fc1.weight``); ``prefix`` is the
    names' start in the file (``"backbone."`` in torchvision's segmentation models). The classifier is left out."""
    from keras_seg.convert.tensors import assign_weights

    tensors = {"features." + k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    pairs = [(layer, layer.name.replace("_", ".")) for layer in encoder.layers if layer.weights]
    return assign_weights(pairs, tensors, where=where)
