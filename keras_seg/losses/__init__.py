"""Segmentation losses: pure functions in ``functional``, serializable classes here."""

from keras_seg.losses import functional
from keras_seg.losses.class_weights import compute_class_weights
from keras_seg.losses.losses import CompositeLoss
from keras_seg.losses.losses import CrossEntropyLoss
from keras_seg.losses.losses import DiceLoss
from keras_seg.losses.losses import FocalLoss
from keras_seg.losses.losses import FocalTverskyLoss
from keras_seg.losses.losses import GeneralizedDiceLoss
from keras_seg.losses.losses import JaccardLoss
from keras_seg.losses.losses import LovaszHingeLoss
from keras_seg.losses.losses import LovaszSoftmaxLoss
from keras_seg.losses.losses import SegmentationLoss
from keras_seg.losses.losses import TverskyLoss
from keras_seg.losses.spec import from_string

__all__ = [
    "CompositeLoss",
    "CrossEntropyLoss",
    "DiceLoss",
    "FocalLoss",
    "FocalTverskyLoss",
    "GeneralizedDiceLoss",
    "JaccardLoss",
    "LovaszHingeLoss",
    "LovaszSoftmaxLoss",
    "SegmentationLoss",
    "TverskyLoss",
    "compute_class_weights",
    "from_string",
    "functional",
]
