"""ResNet-18/34/50/101/152 in torchvision's layout, the encoders segmentation_models.pytorch users start from.

torchvision's ResNet (v1.5, He et al. 2016 with the stride on the 3x3 convolution): a 7x7
stride-2 stem (conv, BatchNorm, ReLU: the stride-2 feature ``P1``), a 3x3 stride-2 max-pool,
then four stages of residual blocks at strides 4, 8, 16, 32 (``P2`` .. ``P5``). BasicBlock
(ResNet-18/34: two 3x3 convs) or Bottleneck (50/101/152: 1x1, 3x3, 1x1 with 4x expansion); a
1x1 projection (conv + BatchNorm) on the shortcut where the shape changes. No conv has a bias.
The parameter counts equal torchvision's ``resnet18`` .. ``resnet152`` without ``fc``.

Layer names are torchvision's state-dict names with ``.`` written ``_`` (``layer3_0_conv2``,
``layer3_0_downsample_0``), so a torchvision, timm or segmentation_models.pytorch weights file
maps onto the layers one to one (:func:`load_torch_weights`).

Numerics follow PyTorch: symmetric explicit padding (``ZeroPadding2D`` before "valid" convs and
the max-pool; after a ReLU, zero padding equals PyTorch's -inf padding for the max-pool),
BatchNorm epsilon 1e-5, and ImageNet mean / std normalisation of 0..255 pixels inside the graph.

``output_stride`` 16 or 8 replaces the strides of the last stage(s) by dilations:
``dilation="torchvision"`` as torchvision's ``replace_stride_with_dilation`` (the first block of a
dilated stage keeps the previous rate, the others take the new one), ``"smp"`` as
segmentation_models.pytorch's ``make_dilated`` (every conv of the stage takes the new rate).
``depth`` (1..5) keeps only the first stages, as segmentation_models.pytorch's ``encoder_depth``
(PSPNet uses 3: the layers past stride 8 are not built at all).

A dilated encoder reports its deepest feature under the stride it really has (``P4`` at output
stride 16, and no ``P5``), as every keras_seg encoder does; the stage output it replaced at that
stride stays available as ``C<k>``, the output of the stage of nominal stride ``2**k`` (FPN's
naming: ``C4`` is ``layer3``'s stride-16 output at output stride 16; PAN reads it).
"""

import os
from typing import NamedTuple

import keras

from keras_seg.encoders.base import Encoder, level_key, load_weights_file
from keras_seg.layers.blocks import BN_EPSILON, BN_MOMENTUM
from keras_seg.layers.preprocessing import ImagePreprocessing
from keras_seg.utils import naming

layers = keras.layers


class ResNetSpec(NamedTuple):
    bottleneck: bool
    blocks: tuple


RESNETS = {
    "resnet18": ResNetSpec(False, (2, 2, 2, 2)),
    "resnet34": ResNetSpec(False, (3, 4, 6, 3)),
    "resnet50": ResNetSpec(True, (3, 4, 6, 3)),
    "resnet101": ResNetSpec(True, (3, 4, 23, 3)),
    "resnet152": ResNetSpec(True, (3, 8, 36, 3)),
}
WIDTHS = (64, 128, 256, 512)
OUTPUT_STRIDES = (8, 16, 32)
DILATIONS = ("torchvision", "smp")
# segmentation_models.pytorch's published ImageNet weights (torchvision's), on the Hugging Face Hub at a fixed revision.
IMAGENET = {
    "resnet18": ("smp-hub/resnet18.imagenet", "3f2325ff978283d47aa6a1d6878ca20565622683"),
    "resnet34": ("smp-hub/resnet34.imagenet", "7a57b34f723329ff020b3f8bc41771163c519d0c"),
    "resnet50": ("smp-hub/resnet50.imagenet", "00cb74e366966d59cd9a35af57e618af9f88efe9"),
    "resnet101": ("smp-hub/resnet101.imagenet", "cd7c15e8c51da86ae6a084515fdb962d0c94e7d1"),
    "resnet152": ("smp-hub/resnet152.imagenet", "951dd835e9d086628e447b484584c8983f9e1dd0"),
}


def _conv(x, filters, kernel, stride=1, dilation=1, *, name):
    """A bias-free conv with PyTorch's symmetric padding ``dilation * (kernel // 2)``."""
    pad = dilation * (kernel // 2)
    if pad:
        x = layers.ZeroPadding2D(pad, name=f"{name}_pad")(x)
    return layers.Conv2D(filters, kernel, strides=stride, dilation_rate=dilation, use_bias=False, name=name)(x)


def _bn(x, name):
    return layers.BatchNormalization(momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name)(x)


def _block(x, width, stride, dilation, bottleneck, downsample, name):
    shortcut = x
    if bottleneck:
        y = layers.ReLU(name=f"{name}_relu1")(_bn(_conv(x, width, 1, name=f"{name}_conv1"), f"{name}_bn1"))
        y = layers.ReLU(name=f"{name}_relu2")(_bn(_conv(y, width, 3, stride, dilation, name=f"{name}_conv2"), f"{name}_bn2"))
        y = _bn(_conv(y, width * 4, 1, name=f"{name}_conv3"), f"{name}_bn3")
    else:
        y = layers.ReLU(name=f"{name}_relu1")(_bn(_conv(x, width, 3, stride, dilation, name=f"{name}_conv1"), f"{name}_bn1"))
        y = _bn(_conv(y, width, 3, 1, dilation, name=f"{name}_conv2"), f"{name}_bn2")
    if downsample:
        shortcut = _bn(_conv(x, y.shape[-1], 1, stride, name=f"{name}_downsample_0"), f"{name}_downsample_1")
    return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([y, shortcut]))


@keras.saving.register_keras_serializable(package="keras_seg")
class ResNetEncoder(Encoder):
    """A torchvision-layout ResNet as a keras_seg encoder: ``{"P1": stride 2, ..., "P5": stride 32}``.

    Args:
        backbone: ``"resnet18"``, ``"resnet34"``, ``"resnet50"``, ``"resnet101"`` or ``"resnet152"``.
        in_channels: input channels (ImageNet statistics' mean for channels other than RGB).
        output_stride: 32, 16 or 8 (the later stages dilated).
        depth: the number of stages kept, 1..5 (``P1`` .. ``P<depth>``).
        dilation: ``"torchvision"`` or ``"smp"``, how a dilated stage's rates are laid out (see the module).
    """

    def __init__(self, backbone="resnet34", in_channels=3, output_stride=32, depth=5, dilation="torchvision", **kwargs):
        if backbone not in RESNETS:
            raise ValueError(f"backbone={backbone!r} is not a torchvision ResNet; expected one of {sorted(RESNETS)}.")
        if output_stride not in OUTPUT_STRIDES:
            raise ValueError(f"output_stride={output_stride!r} is not supported; use one of {OUTPUT_STRIDES}.")
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 5:
            raise ValueError(f"depth={depth!r} must be an int from 1 to 5: the number of stages (strides 2 to 32).")
        if dilation not in DILATIONS:
            raise ValueError(f"dilation={dilation!r} must be one of {DILATIONS}.")
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise ValueError(f"in_channels={in_channels!r} must be a positive int (3 for RGB).")
        spec = RESNETS[backbone]
        inputs = keras.Input((None, None, in_channels), name="image")
        x = ImagePreprocessing("torch", name="preprocessing")(inputs)
        x = layers.ReLU(name="relu")(_bn(_conv(x, 64, 7, 2, name="conv1"), "bn1"))
        pyramid = {"P1": x}
        stride, rate, channels = 2, 1, 64
        if depth >= 2:
            x = layers.ZeroPadding2D(1, name="maxpool_pad")(x)
            x = layers.MaxPooling2D(3, strides=2, name="maxpool")(x)
            stride *= 2
        for stage, (width, blocks) in enumerate(zip(WIDTHS, spec.blocks)):
            if stage + 2 > depth:
                break
            step = 1 if stage == 0 else 2
            previous = rate
            if stride * step > output_stride:  # this stage's stride becomes a dilation
                rate, step = rate * step, 1
            out = width * (4 if spec.bottleneck else 1)
            for i in range(blocks):
                first_rate = previous if dilation == "torchvision" else rate
                x = _block(x, width, step if i == 0 else 1, first_rate if i == 0 else rate, spec.bottleneck,
                           downsample=i == 0 and (step != 1 or channels != out), name=f"layer{stage + 1}_{i}")  # fmt: skip
                channels = out
            stride *= step
            key = level_key(stride)
            if key in pyramid and stride == output_stride:  # a dilated stage takes over the level; keep the earlier one
                pyramid[f"C{stage + 1}"] = pyramid[key]  # C<k>: the stage of nominal stride 2**k
            pyramid[key] = x
        kwargs.setdefault("name", naming.unique(f"{backbone}_encoder"))
        super().__init__(inputs, pyramid, **kwargs)
        self.backbone = backbone
        self.in_channels = in_channels
        self.output_stride = output_stride
        self.depth = depth
        self.dilation = dilation

    def get_config(self):
        config = super().get_config()
        config.update(backbone=self.backbone, in_channels=self.in_channels, output_stride=self.output_stride,
                      depth=self.depth, dilation=self.dilation)  # fmt: skip
        return config


def resnet_encoder(name, weights=None, in_channels=3, output_stride=32, depth=5, dilation="torchvision"):
    """The encoder for ``encoder="resnet34"`` etc., with ``encoder_weights``: None, ``"imagenet"`` or a file.

    ``"imagenet"``: torchvision's ImageNet weights as segmentation_models.pytorch publishes them
    (``smp-hub/<name>.imagenet`` on the Hugging Face Hub), downloaded once into keras_seg's cache;
    offline a ConnectionError within seconds says which file to pass instead. A path: a torchvision
    (``resnet34-b627a593.pth``), timm or segmentation_models.pytorch weights file (``.pth`` / ``.bin``
    need PyTorch, ``.safetensors`` is read with numpy), or a ``.weights.h5`` of this encoder.
    For ``in_channels != 3`` the pretrained first kernel is adapted as for every encoder.
    """
    encoder = ResNetEncoder(name, in_channels=in_channels, output_stride=output_stride, depth=depth, dilation=dilation)
    if weights is None:
        return encoder
    if weights == "imagenet":
        from keras_seg.convert.tensors import fetch

        repo, revision = IMAGENET[name]
        weights = fetch(
            f"https://huggingface.co/{repo}/resolve/{revision}/model.safetensors",
            os.path.join(repo.replace("/", "--"), revision, "model.safetensors"),
            what=f"the ImageNet weights of {name}",
            fix=(f"Offline, download torchvision's {name} weights (torchvision.models.{name.replace('resnet', 'ResNet')}"
                 f"_Weights.IMAGENET1K_V1, a .pth file) or {repo}'s model.safetensors elsewhere and pass the path as "
                 "encoder_weights='/path/to/file'; or encoder_weights=None for random initialisation."),
        )  # fmt: skip
    if not os.path.isfile(str(weights)):
        raise FileNotFoundError(
            f"encoder_weights={weights!r}: no such file. For {name!r} pass None, 'imagenet', or a torchvision / timm / "
            "segmentation_models.pytorch weights file (.pth, .safetensors) or a .weights.h5 of this encoder."
        )
    rgb = lambda: ResNetEncoder(name, in_channels=3, output_stride=output_stride, depth=depth, dilation=dilation)  # noqa: E731
    return load_weights_file(encoder, weights, load_torch_weights, rgb)


def load_torch_weights(encoder, tensors, prefix="", where=""):
    """Set a :class:`ResNetEncoder`'s weights from a torchvision-named state dict (``conv1.weight``, ``layer1.0.bn1.*``).

    ``prefix``: the names' common prefix in a whole model's state dict (``"encoder."`` in
    segmentation_models.pytorch, ``"backbone."`` in torchvision's segmentation models). The
    classifier (``fc.*``) and the stages this encoder does not build (``depth < 5``) are left out;
    every other tensor must be used and every weight set.
    """
    from keras_seg.convert.tensors import assign_weights

    tensors = {k[len(prefix):]: v for k, v in tensors.items() if k.startswith(prefix)}
    built = {layer.name.split("_")[0] for layer in encoder.layers if layer.weights}
    skipped = ["fc."] + [f"layer{i}." for i in range(1, 5) if f"layer{i}" not in built]
    pairs = [(layer, layer.name.replace("_", ".")) for layer in encoder.layers if layer.weights]
    return assign_weights(pairs, tensors, ignored=tuple(skipped), where=where)
