"""Moved to :mod:`keras_seg.convert.huggingface` (weight import lives in ``keras_seg.convert``); kept as an alias."""

from keras_seg.convert.huggingface import *  # noqa: F401,F403
from keras_seg.convert.huggingface import load_encoder, load_segformer, read_checkpoint, segformer_config  # noqa: F401
