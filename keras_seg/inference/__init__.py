"""Inference at any size: masks at each image's own resolution, sliding windows, test-time augmentation."""

from keras_seg.inference.predict import model_stride
from keras_seg.inference.predict import predict_logits
from keras_seg.inference.predict import predict_mask
from keras_seg.inference.predict import to_probabilities
from keras_seg.inference.sliding import sliding_window
from keras_seg.inference.sliding import sliding_window_logits
from keras_seg.inference.tta import tta
from keras_seg.inference.tta import tta_probabilities
from keras_seg.inference.wrappers import TTA
from keras_seg.inference.wrappers import SlidingWindow

__all__ = [
    "TTA",
    "SlidingWindow",
    "model_stride",
    "predict_logits",
    "predict_mask",
    "sliding_window",
    "sliding_window_logits",
    "to_probabilities",
    "tta",
    "tta_probabilities",
]
