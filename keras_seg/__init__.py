"""keras_seg: semantic segmentation for Keras 3 on TensorFlow, JAX and PyTorch."""

from keras_seg.version import __version__
from keras_seg import encoders
from keras_seg import layers
from keras_seg import losses
from keras_seg import metrics
from keras_seg import models

__all__ = ["__version__", "encoders", "layers", "losses", "metrics", "models"]
