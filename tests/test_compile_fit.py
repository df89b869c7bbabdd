"""End to end on the active backend: keras_seg losses and metrics inside compile / fit / save."""

import keras
import numpy as np
import pytest

import keras_seg
from keras_seg import losses as L
from keras_seg import metrics as M


def _data(channels, n=8, size=12, seed=0):
    """Images whose class is a simple function of the pixel, so a 1x1-conv net can learn it."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(n, size, size, 3)).astype("float32")
    if channels == 1:
        y = (x[..., 0] > 0.5).astype("int32")
    else:
        y = np.digitize(x[..., 0], [1 / 3, 2 / 3]).astype("int32")
        y[:, 0, :] = 255  # one void row per image, ignored by every loss and metric below
    return x, y


def _model(channels):
    inputs = keras.Input((None, None, 3))
    h = keras.layers.Conv2D(8, 1, activation="relu")(inputs)
    outputs = keras.layers.Conv2D(channels, 1, dtype="float32")(h)
    return keras.Model(inputs, outputs)


LOSSES = {
    "ce": (lambda: L.CrossEntropyLoss(ignore_index=255, class_weights=[1.0, 2.0, 1.0]), 3),
    "dice": (lambda: L.DiceLoss(ignore_index=255), 3),
    "generalized_dice": (lambda: L.GeneralizedDiceLoss(ignore_index=255), 3),
    "tversky": (lambda: L.TverskyLoss(alpha=0.3, beta=0.7, ignore_index=255), 3),
    "focal_tversky": (lambda: L.FocalTverskyLoss(ignore_index=255), 3),
    "focal": (lambda: L.FocalLoss(gamma=2.0, ignore_index=255), 3),
    "jaccard": (lambda: L.JaccardLoss(ignore_index=255), 3),
    "lovasz_softmax": (lambda: L.LovaszSoftmaxLoss(ignore_index=255), 3),
    "lovasz_hinge": (lambda: L.LovaszHingeLoss(), 1),
    "binary_dice": (lambda: L.DiceLoss(mode="binary"), 1),
    "ce+dice": (lambda: 0.5 * L.CrossEntropyLoss(ignore_index=255) + L.DiceLoss(ignore_index=255), 3),
}


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_fit_lowers_each_loss(name):
    make_loss, channels = LOSSES[name]
    x, y = _data(channels)
    model = _model(channels)
    metrics = [M.MeanIoU(num_classes=max(channels, 2), ignore_index=255)]
    model.compile(optimizer=keras.optimizers.Adam(0.05), loss=make_loss(), metrics=metrics)
    before = model.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    model.fit(x, y, batch_size=4, epochs=8, verbose=0)
    after = model.evaluate(x, y, verbose=0, return_dict=True)
    assert np.isfinite(after["loss"])
    assert after["loss"] < 0.9 * before, (before, after)


def test_compiled_model_round_trips_through_keras_file(tmp_path):
    x, y = _data(3)
    model = _model(3)
    model.compile(
        optimizer="adam",
        loss=0.5 * L.CrossEntropyLoss(ignore_index=255) + L.DiceLoss(ignore_index=255),
        metrics=[M.MeanIoU(3, ignore_index=255), M.DiceScore(3, ignore_index=255), M.PixelAccuracy(ignore_index=255)],
    )
    model.fit(x, y, batch_size=4, epochs=1, verbose=0)
    expected = model.evaluate(x, y, verbose=0, return_dict=True)
    path = tmp_path / "model.keras"
    model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects: registration does it
    got = reloaded.evaluate(x, y, verbose=0, return_dict=True)
    assert set(got) == set(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], rtol=1e-5, atol=1e-6, err_msg=key)
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


def test_metrics_in_fit_match_a_numpy_recomputation():
    x, y = _data(3)
    model = _model(3)
    model.compile(optimizer="adam", loss=L.CrossEntropyLoss(ignore_index=255), metrics=[M.MeanIoU(3, ignore_index=255)])
    got = model.evaluate(x, y, batch_size=3, verbose=0, return_dict=True)["mean_iou"]
    pred = np.argmax(model.predict(x, verbose=0), -1)
    valid = y != 255
    ious = []
    for k in range(3):  # IoU_k = |P∩G| / |P∪G| over valid pixels; classes with an empty union left out
        p, g = (pred == k) & valid, (y == k) & valid
        union = (p | g).sum()
        if union:
            ious.append((p & g).sum() / union)
    np.testing.assert_allclose(got, np.mean(ious), rtol=1e-5)


def test_mixed_precision_training_keeps_float32_loss():
    keras.config.set_dtype_policy("mixed_bfloat16")
    x, y = _data(3)
    inputs = keras.Input((None, None, 3))
    logits = keras.layers.Conv2D(3, 1)(keras.layers.Conv2D(8, 1, activation="relu")(inputs))  # bfloat16 logits
    model = keras.Model(inputs, logits)
    loss = L.CrossEntropyLoss(ignore_index=255) + L.DiceLoss(ignore_index=255)
    value = loss(y, model(x))
    assert keras.backend.standardize_dtype(value.dtype) == "float32"
    model.compile(optimizer="adam", loss=loss, metrics=[M.MeanIoU(3, ignore_index=255)])
    history = model.fit(x, y, batch_size=4, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))


def test_package_exports():
    assert keras_seg.__version__
    for name in ["CrossEntropyLoss", "DiceLoss", "compute_class_weights"]:
        assert hasattr(keras_seg.losses, name)
    for name in ["MeanIoU", "IoU", "DiceScore", "PixelAccuracy", "ConfusionMatrix", "segmentation_report"]:
        assert hasattr(keras_seg.metrics, name)


def test_the_first_training_step_is_traced_once_and_a_loaded_model_still_resumes(tmp_path):
    """Segmenter.make_train_function creates the optimizer's variables before the first step: on TensorFlow a
    step that creates them is traced twice (here: 2 traces of the loss before the fix, 1 after). A Python
    counter in the loss counts the traces."""
    traces = []

    def counted(y_true, y_pred):
        traces.append(1)
        return keras.ops.mean(keras.ops.square(y_pred - y_true))

    model = keras_seg.models.UNet(1, widths=(4, 8))
    model.compile(optimizer="adam", loss=counted)
    assert not model.optimizer.built
    x, y = np.zeros((2, 16, 16, 3), "float32"), np.ones((2, 16, 16, 1), "float32")
    for _ in range(2):
        model.train_on_batch(x, y)
    assert model.optimizer.built and int(model.optimizer.iterations) == 2
    if keras.backend.backend() == "tensorflow":  # (JAX and PyTorch add Keras' symbolic build; PyTorch runs eagerly)
        assert len(traces) == 1, traces
    # a compiled .keras file comes back compiled, optimizer state included (Keras' own loading path)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.saving.load_model(path, custom_objects={"counted": counted})
    assert int(loaded.optimizer.iterations) == 2
    loaded.train_on_batch(x, y)
    assert int(loaded.optimizer.iterations) == 3
