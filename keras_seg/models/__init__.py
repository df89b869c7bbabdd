"""Segmentation architectures: ``encoder -> decoder + head -> logits at the input's H x W``."""

from keras_seg.models.deeplab import DeepLabV3, DeepLabV3Plus
from keras_seg.models.fcn import FCN
from keras_seg.models.fpn import FPN
from keras_seg.models.linknet import LinkNet
from keras_seg.models.lraspp import LRASPP
from keras_seg.models.manet import MANet
from keras_seg.models.pan import PAN
from keras_seg.models.pspnet import PSPNet
from keras_seg.models.segformer import SegFormer
from keras_seg.models.segmenter import Segmenter
from keras_seg.models.unet import UNet
from keras_seg.models.unetplusplus import UNetPlusPlus
from keras_seg.models.upernet import UPerNet

ARCHITECTURES = {
    "fcn": FCN, "unet": UNet, "unetplusplus": UNetPlusPlus, "fpn": FPN, "pspnet": PSPNet, "linknet": LinkNet,
    "manet": MANet, "pan": PAN, "upernet": UPerNet, "deeplabv3": DeepLabV3, "deeplabv3plus": DeepLabV3Plus,
    "segformer": SegFormer, "lraspp": LRASPP,
}  # fmt: skip


def from_smp(path, arch=None, **kwargs):
    """A keras_seg model from a segmentation_models.pytorch checkpoint: :func:`keras_seg.convert.smp.from_smp`."""
    from keras_seg.convert.smp import from_smp as load  # weight import lives in keras_seg.convert

    return load(path, arch, **kwargs)


def from_torchvision(arch, path, **kwargs):
    """A keras_seg model from a torchvision segmentation model's weights: :func:`keras_seg.convert.torchvision.from_torchvision`."""
    from keras_seg.convert.torchvision import from_torchvision as load

    return load(arch, path, **kwargs)


def get(name):
    """The model class for an architecture name (``"unet"``, ``"deeplabv3plus"``, ``"unet++"``, ...)."""
    key = str(name).lower().replace("-", "").replace("_", "").replace("++", "plusplus")
    if key not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}; available: {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[key]


__all__ = [
    "ARCHITECTURES", "DeepLabV3", "DeepLabV3Plus", "FCN", "FPN", "LRASPP", "LinkNet", "MANet", "PAN", "PSPNet",
    "SegFormer", "Segmenter", "UNet", "UNetPlusPlus", "UPerNet", "from_smp", "from_torchvision", "get",
]  # fmt: skip
