"""keras_seg: semantic segmentation for Keras 3 on TensorFlow, JAX and PyTorch."""

from keras_seg.version import __version__
from keras_seg import losses
from keras_seg import metrics

__all__ = ["__version__", "losses", "metrics"]
