import numpy as np
import pytest

from keras_seg.losses.class_weights import class_pixel_counts, compute_class_weights


def test_inverse_frequency_hand_computed():
    # 4 pixels: class 0 x3, class 1 x1. N=4, K=2 -> w0 = 4/(2*3) = 0.6667, w1 = 4/(2*1) = 2.
    masks = np.array([[[0, 0], [0, 1]]])
    np.testing.assert_allclose(compute_class_weights(masks, 2), [4 / 6, 2.0], rtol=1e-6)


def test_balanced_data_gives_ones():
    masks = np.array([[[0, 1], [2, 3]]] * 3)
    np.testing.assert_allclose(compute_class_weights(masks, 4), np.ones(4), rtol=1e-6)


def test_median_frequency_hand_computed():
    # image A = [0,0,1,1], image B = [0,0,0,2]; N0=5, N1=2, N2=1.
    # pixels of images containing k: class 0 in both (8), class 1 in A (4), class 2 in B (4).
    # f = [5/8, 2/4, 1/4] = [.625, .5, .25]; median .5 -> w = [.8, 1, 2].
    masks = np.array([[[0, 0], [1, 1]], [[0, 0], [0, 2]]])
    np.testing.assert_allclose(compute_class_weights(masks, 3, method="median_frequency"), [0.8, 1.0, 2.0], rtol=1e-6)


def test_ignore_index_and_sources_agree():
    # 255 is skipped: valid pixels are [0, 1, 1, 1] -> N=4, w0 = 4/(2*1) = 2, w1 = 4/(2*3) = 0.6667.
    masks = np.array([[[0, 255], [1, 1]], [[1, 255], [255, 255]]], dtype=np.uint8)
    expected = [2.0, 4 / 6]
    np.testing.assert_allclose(compute_class_weights(masks, 2, ignore_index=255), expected, rtol=1e-6)
    # A list of differently sized masks, (image, mask) pairs with a channel axis, and one-hot masks.
    as_list = [masks[0], masks[1][:1]]
    np.testing.assert_allclose(compute_class_weights(as_list, 2, ignore_index=255), expected, rtol=1e-6)
    pairs = [(np.zeros((2, 2, 3)), m[..., None]) for m in masks]
    np.testing.assert_allclose(compute_class_weights(pairs, 2, ignore_index=255), expected, rtol=1e-6)
    one_hot = (masks[..., None] == np.arange(2)).astype("float32")  # 255 -> all-zero row (void)
    np.testing.assert_allclose(compute_class_weights(one_hot, 2), expected, rtol=1e-6)


def test_tf_dataset_of_dicts():
    tf = pytest.importorskip("tensorflow")
    masks = np.array([[[0, 0], [0, 1]]] * 4, dtype=np.int32)
    ds = tf.data.Dataset.from_tensor_slices({"images": np.zeros((4, 2, 2, 3)), "segmentation_masks": masks}).batch(3)
    np.testing.assert_allclose(compute_class_weights(ds, 2), [4 / 6, 2.0], rtol=1e-6)


def test_absent_class_gets_zero_weight_with_warning():
    with pytest.warns(UserWarning, match=r"\[2\]"):
        w = compute_class_weights(np.array([[0, 1]]), 3)
    # N=2, K=3: w0 = w1 = 2/(3*1) = 0.6667, w2 = 0.
    np.testing.assert_allclose(w, [2 / 3, 2 / 3, 0.0], rtol=1e-6)


def test_errors_name_the_bad_value():
    with pytest.raises(ValueError, match=r"\[7\].*outside \[0, 3\)"):
        class_pixel_counts(np.array([[0, 7]]), 3)
    with pytest.raises(ValueError, match="method='median'"):
        compute_class_weights(np.array([[0, 1]]), 2, method="median")
    with pytest.raises(ValueError, match="No valid pixels"):
        compute_class_weights(np.full((1, 2, 2), 255), 2, ignore_index=255)
