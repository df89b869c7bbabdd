"""keras_seg: semantic segmentation for Keras 3 on TensorFlow, JAX and PyTorch."""

import importlib

from keras_seg.version import __version__
from keras_seg.utils import quiet as _quiet

if _quiet.invoked_as_cli():  # the keras-seg command: no backend start-up noise (KERAS_SEG_BACKEND_LOGS=1 keeps it)
    with _quiet.quiet_backend_start():
        _quiet.start_backend()
from keras_seg import encoders
from keras_seg import export
from keras_seg import inference
from keras_seg import layers
from keras_seg import losses
from keras_seg import metrics
from keras_seg import models
from keras_seg import presets
from keras_seg import training
from keras_seg import viz

__all__ = ["__version__", "data", "encoders", "export", "inference", "layers", "losses", "metrics", "models", "presets",
           "training", "viz"]


def __getattr__(name):
    """``keras_seg.data`` is imported on first use: it needs TensorFlow (tf.data), the rest does not."""
    if name == "data":
        return importlib.import_module("keras_seg.data")
    raise AttributeError(f"module 'keras_seg' has no attribute {name!r}")
