"""saved_models/shapes_unet.keras: the shipped model loads on every backend and still segments shapes."""

import os

import keras
import numpy as np
import pytest

import keras_seg
from keras_seg import training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODEL = os.path.join(ROOT, "saved_models", "shapes_unet.keras")


@pytest.fixture(scope="module")
def model():
    return keras.saving.load_model(MODEL)  # plain Keras loading after `import keras_seg`


def test_the_shipped_model_is_small_and_knows_its_classes(model):
    assert os.path.getsize(MODEL) <= 10 * 1024 * 1024
    state = training.read_state(MODEL)
    assert state["class_names"] == list(keras_seg.data.SHAPES_CLASSES)
    assert isinstance(model, keras_seg.models.UNet) and model.output_shape[-1] == 4


def test_the_shipped_model_segments_unseen_shapes(model):
    x, y = keras_seg.data.shapes_arrays("test", 32, 64)  # the model card's figures are on this split (more images)
    confusion = keras_seg.metrics.ConfusionMatrix(num_classes=4)
    confusion.update_state(y, model.predict(x.astype("float32"), batch_size=16, verbose=0))
    report = keras_seg.metrics.segmentation_report(confusion, class_names=keras_seg.data.SHAPES_CLASSES)
    assert report.mean_iou >= 0.88, report.text
    assert min(row["iou"] for row in report.per_class.values()) >= 0.8, report.text


def test_predict_mask_on_the_sample_images(model):
    from PIL import Image

    folder = os.path.join(ROOT, "saved_models", "samples")
    names = sorted(os.listdir(folder))
    assert len(names) == 4
    x, y = keras_seg.data.shapes_arrays("test", 4, 64)
    for name, image, truth in zip(names, x, y):
        np.testing.assert_array_equal(np.asarray(Image.open(os.path.join(folder, name))), image)
        agreement = np.mean(model.predict_mask(image.astype("float32")) == truth)
        assert agreement >= 0.95, (name, agreement)
