"""keras_seg.inference: masks at the original size, sliding windows, test-time augmentation."""

import os

import keras
import numpy as np
import pytest

import keras_seg
from keras_seg import inference

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def unet():
    keras.utils.set_random_seed(0)
    return keras_seg.models.UNet(3, widths=(4, 8, 16))


@pytest.fixture(scope="module")
def pointwise():
    """A per-pixel model (1x1 convolutions): any window, flip or padding leaves each pixel's logits alone."""
    keras.utils.set_random_seed(1)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 1, activation="relu")(inputs / 255.0)
    return keras.Model(inputs, keras.layers.Conv2D(3, 1)(x))


def images_of(*sizes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.uniform(0, 255, size=(h, w, 3)).astype("float32") for h, w in sizes]


def test_masks_come_back_at_each_images_own_size(unet):
    images = images_of((1, 1), (5, 7), (33, 47), (16, 16))
    masks = inference.predict_mask(unet, images)
    assert [m.shape for m in masks] == [(1, 1), (5, 7), (33, 47), (16, 16)]
    assert all(m.dtype == np.int32 and m.min() >= 0 and m.max() < 3 for m in masks)
    single = inference.predict_mask(unet, images[2])
    np.testing.assert_array_equal(single, masks[2])
    batch = np.stack(images_of((20, 12), (20, 12), (20, 12)))
    masks, probs = inference.predict_mask(unet, batch, batch_size=2, probabilities=True)
    assert masks.shape == (3, 20, 12) and probs.shape == (3, 20, 12, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(masks[1], inference.predict_mask(unet, batch[1]))


def test_padding_to_the_stride_is_cropped_back(unet):
    image = images_of((33, 47))[0]
    assert inference.model_stride(unet) == 8  # three poolings
    logits = inference.predict_logits(unet, image[None])[0]
    padded = np.pad(image, ((0, 7), (0, 1), (0, 0)), mode="reflect")  # 40 x 48
    by_hand = keras.ops.convert_to_numpy(unet(padded[None]))[0, :33, :47]
    np.testing.assert_allclose(logits, by_hand, atol=1e-5)
    assert inference.predict_logits(unet, image[None], pad_to=None).shape == (1, 33, 47, 3)


@pytest.mark.parametrize("window", [(33, 47), 64, (100, 200)])
def test_one_window_covering_the_image_is_exactly_plain_prediction(unet, window):
    image = images_of((33, 47))[0]
    plain = inference.predict_logits(unet, image[None])[0]
    slid = inference.sliding_window_logits(unet, image, window=window, blend="gaussian")
    np.testing.assert_array_equal(slid, plain)


@pytest.mark.parametrize("blend", ["uniform", "gaussian"])
@pytest.mark.parametrize("window, overlap", [(1, 0.0), (4, 0.5), ((7, 5), 0.25)])
def test_windows_of_a_per_pixel_model_reproduce_plain_prediction(pointwise, blend, window, overlap):
    image = images_of((13, 11))[0]
    plain = inference.predict_logits(pointwise, image[None], pad_to=None)[0]
    slid = inference.sliding_window_logits(pointwise, image, window=window, overlap=overlap, blend=blend,
                                           batch_size=7, pad_to=None)  # fmt: skip
    np.testing.assert_allclose(slid, plain, rtol=1e-5, atol=1e-5)


def test_window_placement_covers_the_image_and_ends_flush():
    from keras_seg.inference.sliding import window_starts

    assert window_starts(10, 4, 4) == [0, 4, 6]
    assert window_starts(10, 4, 3) == [0, 3, 6]
    assert window_starts(3, 8, 4) == [0]
    assert window_starts(1, 1, 1) == [0]


def test_flip_tta_of_a_flip_equivariant_model_changes_nothing(pointwise):
    image = images_of((9, 14))[0]
    plain = inference.predict_mask(pointwise, image, probabilities=True, pad_to=None)
    flipped = inference.predict_mask(pointwise, image, probabilities=True, pad_to=None,
                                     tta=inference.tta(flips=("horizontal", "vertical")))  # fmt: skip
    np.testing.assert_allclose(flipped[1], plain[1], atol=1e-6)
    np.testing.assert_array_equal(flipped[0], plain[0])


def test_flip_tta_averages_the_flipped_prediction_by_hand(unet):
    image = images_of((12, 20))[0]
    _, probs = inference.predict_mask(unet, image, probabilities=True, tta=inference.tta(flips=("horizontal",)))
    p = inference.to_probabilities(inference.predict_logits(unet, image[None])[0])
    q = inference.to_probabilities(inference.predict_logits(unet, image[None, :, ::-1])[0])[:, ::-1]
    np.testing.assert_allclose(probs, (p + q) / 2, atol=1e-6)


def test_multiscale_tta_composes_with_sliding_windows(unet):
    image = images_of((24, 30))[0]
    masks, probs = inference.predict_mask(unet, image, probabilities=True,
                                          sliding_window=inference.sliding_window(window=16, overlap=0.5),
                                          tta=inference.tta(flips=("horizontal",), scales=(0.5, 1.0, 1.75)))  # fmt: skip
    assert masks.shape == (24, 30) and probs.shape == (24, 30, 3)
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)


def test_arguments_are_checked(unet):
    image = images_of((8, 8))[0]
    with pytest.raises(ValueError, match="blend='box'"):
        inference.sliding_window_logits(unet, image, window=4, blend="box")
    with pytest.raises(ValueError, match="overlap=1.0"):
        inference.sliding_window_logits(unet, image, window=4, overlap=1.0)
    with pytest.raises(ValueError, match="window=0"):
        inference.sliding_window_logits(unet, image, window=0)
    with pytest.raises(ValueError, match=r"flips \['diagonal'\]"):
        inference.predict_mask(unet, image, tta=inference.tta(flips=("diagonal",)))
    with pytest.raises(ValueError, match=r"images\[1\] has shape \(8, 8\)"):
        inference.predict_mask(unet, [image, image[..., 0]])


def test_sliding_window_agrees_with_whole_image_prediction_for_a_trained_model():
    model = keras.saving.load_model(os.path.join(ROOT, "saved_models", "shapes_unet.keras"))
    x, _ = keras_seg.data.shapes_arrays("test", 16, 64)
    mosaic = np.concatenate([np.concatenate(list(row), axis=1) for row in x.reshape(4, 4, 64, 64, 3)], axis=0)
    whole = inference.predict_mask(model, mosaic.astype("float32"))
    slid = inference.predict_mask(model, mosaic.astype("float32"),
                                  sliding_window=inference.sliding_window(window=96, overlap=0.5, batch_size=8))  # fmt: skip
    assert whole.shape == slid.shape == (256, 256)
    assert np.mean(whole == slid) >= 0.95


# ------------------------------------------------------------------------------------------ Keras wrappers


def test_sliding_window_model_matches_the_host_procedure_and_saves(unet, tmp_path):
    image = images_of((24, 30))[0]
    wrapper = inference.SlidingWindow(unet, window=16, overlap=0.5, blend="gaussian")
    got = keras.ops.convert_to_numpy(wrapper(image[None]))[0]
    want = inference.sliding_window_logits(unet, image, window=16, overlap=0.5, blend="gaussian", pad_to=None)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(inference.SlidingWindow(unet, window=64)(image[None])),
                               keras.ops.convert_to_numpy(unet(image[None])), atol=1e-6)  # fmt: skip
    path = str(tmp_path / "sliding.keras")
    wrapper.save(path)
    again = keras.saving.load_model(path)
    assert isinstance(again, inference.SlidingWindow) and again.window == (16, 16) and again.blend == "gaussian"
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(image[None]))[0], got, atol=1e-5)


def test_tta_model_matches_the_host_procedure_and_saves(unet, tmp_path):
    image = images_of((16, 20))[0]
    wrapper = inference.TTA(unet, flips=("horizontal", "vertical"), scales=(0.5, 1.0, 1.5))
    got = keras.ops.convert_to_numpy(wrapper(image[None]))[0]

    def logits(x):
        return keras.ops.convert_to_numpy(unet(x[None]))[0]

    want = inference.tta_probabilities(logits, image, flips=("horizontal", "vertical"), scales=(0.5, 1.0, 1.5))
    np.testing.assert_allclose(got, want, atol=1e-5)
    path = str(tmp_path / "tta.keras")
    wrapper.save(path)
    again = keras.saving.load_model(path)
    assert again.flips == ("horizontal", "vertical") and again.scales == (0.5, 1.0, 1.5)
    np.testing.assert_allclose(keras.ops.convert_to_numpy(again(image[None]))[0], got, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="SavedModel export runs on TensorFlow")
def test_wrappers_export_to_saved_model_and_tflite(unet, tmp_path):
    import tensorflow as tf

    image = images_of((24, 32))[0][None]
    model = inference.TTA(inference.SlidingWindow(unet, window=16, overlap=0.5), flips=("horizontal",))
    want = keras.ops.convert_to_numpy(model(image))
    path = str(tmp_path / "saved")
    model.export(path, format="tf_saved_model", input_signature=[keras.InputSpec(shape=(1, 24, 32, 3), dtype="float32")], verbose=False)
    reloaded = tf.saved_model.load(path)
    np.testing.assert_allclose(reloaded.serve(tf.constant(image)).numpy(), want, atol=1e-5)
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_content=tf.lite.TFLiteConverter.from_saved_model(path).convert())
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image)
    interpreter.invoke()
    np.testing.assert_allclose(interpreter.get_tensor(interpreter.get_output_details()[0]["index"]), want, atol=1e-5)
    dynamic = inference.SlidingWindow(unet, window=16)
    dynamic(image)  # built on an array, then traced for unknown sizes
    with pytest.raises(ValueError, match="needs the image height and width"):
        dynamic.export(str(tmp_path / "dynamic"), format="tf_saved_model", verbose=False,
                       input_signature=[keras.InputSpec(shape=(1, None, None, 3), dtype="float32")])  # fmt: skip


def test_non_finite_pixels_are_an_error_naming_how_many_and_where(unet):
    """One NaN pixel makes the whole image NaN and label 0: refused, with the count and the place."""
    image = images_of((64, 64))[0]
    image[10:14, 20:24, 1] = np.nan
    with pytest.raises(ValueError, match=r"images\[0\] has 16 pixel\(s\) with non-finite values \(16 NaN values in the "
                                         r"batch\), in rows 10\.\.13, columns 20\.\.23.*np\.nan_to_num"):  # fmt: skip
        inference.predict_mask(unet, image)
    batch = np.stack(images_of((16, 16), (16, 16), (16, 16)))
    batch[2, 0, 0, 0] = np.inf
    batch[1, 5, 6, :] = -np.inf
    with pytest.raises(ValueError, match=r"images\[1\] has 1 pixel\(s\).*4 infinite values.*1 more image"):
        unet.predict_mask(batch)
    listed = images_of((8, 8), (12, 8))
    listed[1][3, 4, 0] = np.nan
    with pytest.raises(ValueError, match=r"images\[1\] has 1 pixel\(s\).*rows 3\.\.3, columns 4\.\.4"):
        inference.predict_mask(unet, listed, probabilities=True)


def test_an_empty_batch_gives_empty_results(unet):
    masks = inference.predict_mask(unet, np.zeros((0, 24, 16, 3), "float32"))
    assert masks.shape == (0, 24, 16) and masks.dtype == np.int32
    masks, probs = unet.predict_mask(np.zeros((0, 24, 16, 3), "float32"), probabilities=True)
    assert masks.shape == (0, 24, 16) and probs.shape == (0, 24, 16, 3)
    assert inference.predict_mask(unet, []) == []


def test_configs_are_checked_when_made():
    for kwargs, message in (({"window": 0}, "window=0"), ({"overlap": -0.1}, "overlap=-0.1"),
                            ({"blend": "box"}, "blend='box'"), ({"batch_size": 0}, "batch_size=0"),
                            ({"window": 64, "stride": (8, 0)}, r"stride=\(8, 0\)")):  # fmt: skip
        with pytest.raises(ValueError, match=message):
            inference.sliding_window(**kwargs)
    with pytest.raises(ValueError, match=r"scales=\(0\.0,\)"):
        inference.tta(scales=(0.0,))
