"""Segmentation architectures: ``encoder -> decoder + head -> logits at the input's H x W``."""

from keras_seg.models.deeplab import DeepLabV3, DeepLabV3Plus
from keras_seg.models.fcn import FCN
from keras_seg.models.segformer import SegFormer
from keras_seg.models.segmenter import Segmenter
from keras_seg.models.unet import UNet

ARCHITECTURES = {"fcn": FCN, "unet": UNet, "deeplabv3": DeepLabV3, "deeplabv3plus": DeepLabV3Plus, "segformer": SegFormer}


def get(name):
    """The model class for an architecture name (``"unet"``, ``"deeplabv3plus"``, ...)."""
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}; available: {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[key]


__all__ = ["ARCHITECTURES", "DeepLabV3", "DeepLabV3Plus", "FCN", "SegFormer", "Segmenter", "UNet", "get"]
