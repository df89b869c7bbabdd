"""Segmentation datasets as ``tf.data`` pipelines; they feed ``model.fit`` on every Keras backend.

Every loader returns an unbatched dataset of ``(image float32 (H, W, 3) in [0, 255],
mask int32 (H, W))``; :func:`prepare` shuffles, augments (:class:`Augment`), sizes,
batches and prefetches it.
"""

from keras_seg.data.augment import Augment
from keras_seg.data.augment import from_keras
from keras_seg.data.catalog import DATASETS
from keras_seg.data.catalog import DatasetInfo
from keras_seg.data.catalog import load
from keras_seg.data.folders import VOC_CLASSES
from keras_seg.data.folders import CheckReport
from keras_seg.data.folders import check_pairs
from keras_seg.data.folders import from_folders
from keras_seg.data.folders import from_pairs
from keras_seg.data.folders import read_image
from keras_seg.data.folders import read_mask
from keras_seg.data.folders import voc
from keras_seg.data.pets import CLASS_NAMES as PETS_CLASSES
from keras_seg.data.pets import pets_from_tfds
from keras_seg.data.pipeline import prepare
from keras_seg.data.shapes import CLASS_NAMES as SHAPES_CLASSES
from keras_seg.data.shapes import shapes_arrays
from keras_seg.utils.validate import check_batch
from keras_seg.data.pets import pets  # noqa: E402  (the function replaces the submodule's name here)
from keras_seg.data.shapes import shapes  # noqa: E402

__all__ = [
    "DATASETS",
    "PETS_CLASSES",
    "SHAPES_CLASSES",
    "VOC_CLASSES",
    "Augment",
    "CheckReport",
    "DatasetInfo",
    "check_batch",
    "check_pairs",
    "from_folders",
    "from_keras",
    "from_pairs",
    "load",
    "pets",
    "pets_from_tfds",
    "prepare",
    "read_image",
    "read_mask",
    "shapes",
    "shapes_arrays",
    "voc",
]
