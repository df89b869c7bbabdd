"""Tests for keras_seg.data.augment: exactness, image/mask alignment, fill, determinism, tf.data."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_seg.data.augment import Augment
from keras_seg.data.augment import from_keras

pytestmark = pytest.mark.once  # augmentation runs in tf.data: backend-independent

IGNORE = 255
# Corners of the RGB cube without black: no colour is a blend of the others or of the
# black fill, so a pixel that shows a palette colour cannot be a mix of other classes.
PALETTE = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [255, 0, 255], [0, 255, 255], [255, 255, 255]],
    dtype="float32",
)
K = len(PALETTE)
# Every geometric option at once, the configuration the alignment test exercises.
FULL_GEOMETRY = dict(
    crop_size=(48, 48), scale=(0.5, 2.0), rotation=30, flip_horizontal=True, flip_vertical=True, ignore_index=IGNORE
)


def seed(i):
    return tf.constant([i, 0], tf.int64)


@pytest.fixture
def pair():
    """A random 37x50 image and 5-class mask (odd sizes catch half-pixel mistakes)."""
    rng = np.random.default_rng(0)
    image = rng.uniform(0, 255, (37, 50, 3)).astype("float32")
    mask = rng.integers(0, 5, (37, 50)).astype("int32")
    return image, mask


@pytest.fixture
def palette_pair():
    """A 64x64 mask of random 8x8 class blocks and the image that paints each class its colour."""
    rng = np.random.default_rng(1)
    mask = np.kron(rng.integers(0, K, (8, 8)), np.ones((8, 8), dtype=int)).astype("int32")
    return PALETTE[mask], mask


def numpy_pair(image, mask):
    return image.numpy(), mask.numpy()


def neighbours(array, pad):
    """The 3x3 neighbourhood of every pixel, as 9 shifted copies; outside the array is ``pad``."""
    padded = np.pad(array, 1, constant_values=pad)
    height, width = array.shape
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return np.stack([padded[1 + dy : 1 + dy + height, 1 + dx : 1 + dx + width] for dy, dx in shifts])


def uniform_interior(mask):
    """Pixels whose 3x3 neighbourhood is one class (outside the output counts as ignore)."""
    return np.all(neighbours(mask, IGNORE) == mask, axis=0) & (mask != IGNORE)


def agreement(image, mask, tol=8.0):
    """Two fractions of pixels where image colour and mask label agree.

    ``interior``: over uniform 3x3 mask neighbourhoods, the colour is the class colour
    (bilinear blending only happens at class borders). ``pure``: over pixels showing a
    palette colour, the mask holds that colour's class (sensitive to a 1-pixel drift).
    """
    interior = uniform_interior(mask)
    class_colour = PALETTE[np.where(mask == IGNORE, 0, mask)]
    interior_ok = np.abs(image - class_colour).max(-1) <= tol
    distance = np.abs(image[:, :, None, :] - PALETTE).max(-1)
    pure = distance.min(-1) <= tol
    pure_ok = distance.argmin(-1) == mask
    return interior_ok[interior].mean(), pure_ok[pure].mean()


# --- exactness -------------------------------------------------------------------------


def test_identity_is_bit_exact(pair):
    image, mask = pair
    for crop_size in (None, (37, 50)):
        out_image, out_mask = numpy_pair(*Augment(crop_size=crop_size, scale=None, flip_horizontal=False)(image, mask))
        np.testing.assert_array_equal(out_image, image)
        np.testing.assert_array_equal(out_mask, mask)
        assert out_mask.dtype == np.int32


def test_flips_equal_numpy_flips_exactly(pair):
    image, mask = pair
    augment = Augment(scale=None, flip_horizontal=True, flip_vertical=True)
    seen = set()
    for i in range(24):
        out_image, out_mask = numpy_pair(*augment(image, mask, seed=seed(i)))
        matches = [
            (fy, fx)
            for fy in (1, -1)
            for fx in (1, -1)
            if np.array_equal(out_image, image[::fy, ::fx]) and np.array_equal(out_mask, mask[::fy, ::fx])
        ]
        assert len(matches) == 1, "output is not an exact flip of the input"
        seen.update(matches)
    assert len(seen) == 4, f"not every flip combination occurred: {seen}"


def test_crop_without_scale_is_an_exact_window(pair):
    image, mask = pair
    out_image, out_mask = numpy_pair(*Augment(crop_size=(20, 30), scale=None, flip_horizontal=False)(image, mask))
    windows = [
        (y, x)
        for y in range(37 - 20 + 1)
        for x in range(50 - 30 + 1)
        if np.array_equal(image[y : y + 20, x : x + 30], out_image)
    ]
    assert len(windows) == 1
    y, x = windows[0]
    np.testing.assert_array_equal(out_mask, mask[y : y + 20, x : x + 30])


def test_fixed_scale_follows_pixel_centre_convention(pair):
    image, mask = pair
    image, mask = image[:36], mask[:36]  # even sizes
    # x2: output pixel j samples input (j + 0.5) / 2 - 0.5, whose nearest pixel is j // 2.
    _, up = numpy_pair(*Augment(crop_size=(72, 100), scale=(2.0, 2.0), flip_horizontal=False)(image, mask))
    np.testing.assert_array_equal(up, mask.repeat(2, 0).repeat(2, 1))
    # x0.5: output pixel j samples input 2j + 0.5, the centre of a 2x2 block.
    down_image, down = numpy_pair(*Augment(crop_size=(18, 25), scale=(0.5, 0.5), flip_horizontal=False)(image, mask))
    np.testing.assert_allclose(down_image, image.reshape(18, 2, 25, 2, 3).mean((1, 3)), atol=1e-3)
    np.testing.assert_array_equal(down, mask[1::2, 1::2])  # the tie rounds away from zero


# --- alignment -------------------------------------------------------------------------


def test_image_and_mask_stay_aligned(palette_pair):
    image, mask = palette_pair
    augment = Augment(**FULL_GEOMETRY)
    outputs = [numpy_pair(*augment(image, mask, seed=seed(i))) for i in range(40)]
    aligned = np.mean([agreement(out_image, out_mask) for out_image, out_mask in outputs], axis=0)
    assert aligned.min() >= 0.999, f"interior/pure agreement {aligned}"
    # The same check on a mask drifted by 1 or 2 pixels fails clearly: the test detects drift.
    for shift, ceiling in ((1, 0.98), (2, 0.9)):
        for axis in (0, 1):
            drifted = np.mean([agreement(im, np.roll(m, shift, axis=axis)) for im, m in outputs], axis=0)
            assert drifted.min() < ceiling, f"a {shift}-pixel drift along axis {axis} went unnoticed: {drifted}"


# --- out-of-image pixels -----------------------------------------------------------------


def test_ignore_index_marks_exactly_the_filled_pixels(palette_pair):
    image, mask = palette_pair
    augment = Augment(scale=(0.5, 0.7), rotation=45, ignore_index=IGNORE, fill_value=0.0)
    for i in range(10):
        out_image, out_mask = numpy_pair(*augment(image, mask, seed=seed(i)))
        assert set(np.unique(out_mask)) <= set(range(K)) | {IGNORE}
        is_fill = np.all(out_image == 0.0, axis=-1)  # black is no class colour
        ignored = out_mask == IGNORE
        assert ignored.any() and is_fill.any()
        assert not (is_fill & ~ignored).any(), "fill colour under a class label"
        # Ignored pixels away from the image edge (no labelled neighbour) are pure fill;
        # at the edge bilinear sampling may still blend in a little of the image.
        assert is_fill[neighbours(ignored, False).all(axis=0)].all(), "an ignored pixel far from the image is not fill"


def test_without_ignore_index_edges_are_replicated(palette_pair):
    image, mask = palette_pair
    augment = Augment(crop_size=(96, 96), scale=(0.5, 0.7), rotation=45, ignore_index=None, fill_value=0.0)
    for i in range(10):
        out_image, out_mask = numpy_pair(*augment(image, mask, seed=seed(i)))
        assert set(np.unique(out_mask)) <= set(range(K)), "a label outside the classes appeared"
        assert not np.all(out_image == 0.0, axis=-1).any(), "fill_value used despite ignore_index=None"


def test_crop_larger_than_image_places_it_inside(pair):
    image, mask = pair
    augment = Augment(crop_size=(50, 64), scale=None, flip_horizontal=False, ignore_index=IGNORE, fill_value=7.0)
    out_image, out_mask = numpy_pair(*augment(image, mask, seed=seed(3)))
    assert out_image.shape == (50, 64, 3) and out_mask.shape == (50, 64)
    rows, cols = np.nonzero(out_mask != IGNORE)
    y, x = rows.min(), cols.min()
    np.testing.assert_array_equal(out_mask[y : y + 37, x : x + 50], mask)
    np.testing.assert_array_equal(out_image[y : y + 37, x : x + 50], image)
    assert (out_mask != IGNORE).sum() == mask.size
    assert np.all(out_image[out_mask == IGNORE] == 7.0)


# --- shapes, determinism, tf.data ----------------------------------------------------------


@pytest.mark.parametrize("crop_size", [(16, 24), (64, 64), None])
def test_output_shapes_and_dtypes(pair, crop_size):
    image, mask = pair
    out_image, out_mask = Augment(crop_size=crop_size, rotation=10, ignore_index=IGNORE)(image, mask)
    expected = crop_size or (37, 50)
    assert out_image.shape == (*expected, 3) and out_image.dtype == tf.float32
    assert out_mask.shape == expected and out_mask.dtype == tf.int32


def test_same_seed_same_output_different_seed_different_output(pair):
    image, mask = pair
    augment = Augment(crop_size=(32, 32), rotation=20, brightness=0.2, contrast=0.2, saturation=0.2, hue=0.1)
    first = numpy_pair(*augment(image, mask, seed=seed(5)))
    again = numpy_pair(*augment(image, mask, seed=tf.constant([5, 0], tf.int32)))
    other = numpy_pair(*augment(image, mask, seed=seed(6)))
    for a, b in zip(first, again):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(first[0], other[0])
    unseeded = [numpy_pair(*augment(image, mask))[0] for _ in range(2)]
    assert not np.array_equal(*unseeded)


def test_tf_data_map_with_unknown_shapes_is_deterministic():
    sizes = [(40, 56), (33, 47), (64, 32), (20, 20)]

    def generate():
        for height, width in sizes:
            yield np.full((height, width, 3), 100.0, "float32"), np.ones((height, width), "int32")

    signature = (tf.TensorSpec((None, None, 3), tf.float32), tf.TensorSpec((None, None), tf.int32))
    pairs = tf.data.Dataset.from_generator(generate, output_signature=signature)
    seeds = tf.data.Dataset.random(seed=0).batch(2)

    def pipeline(augment):
        ds = tf.data.Dataset.zip((pairs, seeds))
        return ds.map(lambda p, s: augment(p[0], p[1], seed=s), num_parallel_calls=tf.data.AUTOTUNE)

    cropped = pipeline(Augment(crop_size=(32, 32), rotation=15, brightness=0.1, ignore_index=IGNORE))
    assert cropped.element_spec[0].shape == (32, 32, 3) and cropped.element_spec[1].shape == (32, 32)
    first, second = list(cropped.batch(4).as_numpy_iterator()), list(cropped.batch(4).as_numpy_iterator())
    np.testing.assert_array_equal(first[0][0], second[0][0])
    np.testing.assert_array_equal(first[0][1], second[0][1])
    assert set(np.unique(first[0][1])) <= {1, IGNORE}

    resized = [image.shape for image, _ in pipeline(Augment(rotation=15)).as_numpy_iterator()]
    assert resized == [(*size, 3) for size in sizes]


# --- colour jitter ---------------------------------------------------------------------------


def test_colour_jitter_keeps_range_and_leaves_mask_alone(pair):
    image, mask = pair
    augment = Augment(scale=None, flip_horizontal=False, brightness=0.5, contrast=0.5, saturation=0.5, hue=0.5)
    for i in range(5):
        out_image, out_mask = numpy_pair(*augment(image, mask, seed=seed(i)))
        assert out_image.min() >= 0.0 and out_image.max() <= 255.0
        assert not np.array_equal(out_image, image)
        np.testing.assert_array_equal(out_mask, mask)


def test_saturation_needs_rgb(pair):
    image, mask = pair
    with pytest.raises(ValueError, match="3 channels"):
        Augment(saturation=0.2)(image[..., :1], mask)
    out_image, _ = Augment(brightness=0.2, contrast=0.2)(image[..., :1], mask)  # fine on grey
    assert out_image.shape[-1] == 1


# --- arguments and config --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(scale=(2, 1)), ValueError, r"scale=\(2, 1\).*Did you mean scale=\(1.0, 2.0\)"),
        (dict(scale=(0, 1)), ValueError, r"0 < min <= max"),
        (dict(scale=1.5), ValueError, r"scale=1.5 must be \(min, max\)"),
        (dict(crop_size=(0, 5)), ValueError, r"crop_size=\(0, 5\) must be .*positive"),
        (dict(crop_size=(32, 32, 3)), ValueError, r"\(height, width\)"),
        (dict(hue=0.7), ValueError, r"hue=0.7 is outside \[0.0, 0.5\]"),
        (dict(rotation=-10), ValueError, r"rotation=-10.0 .*Pass the magnitude, rotation=10.0"),
        (dict(brightness=1.5), ValueError, r"brightness=1.5 is outside"),
        (dict(flip_horizontal="yes"), TypeError, r"flip_horizontal must be True or False"),
        (dict(ignore_index=2.5), TypeError, r"ignore_index must be an int"),
        (dict(fill_value="black"), TypeError, r"fill_value must be a number"),
    ],
)
def test_argument_validation(kwargs, error, match):
    with pytest.raises(error, match=match):
        Augment(**kwargs)


def test_input_validation(pair):
    image, mask = pair
    augment = Augment()
    with pytest.raises(ValueError, match="unbatched pair"):
        augment(image[None], mask[None])
    with pytest.raises(TypeError, match="integer class indices"):
        augment(image, mask.astype("float32"))
    with pytest.raises(ValueError, match="same height and width"):
        augment(image, mask[:-1])


def test_config_round_trip():
    augment = Augment(crop_size=64, scale=(0.75, 1.5), rotation=5, brightness=0.1, ignore_index=255, fill_value=3)
    config = json.loads(json.dumps(augment.get_config()))
    assert config["crop_size"] == [64, 64]
    assert Augment.from_config(config).get_config() == augment.get_config()


# --- Keras layers ------------------------------------------------------------------------------


def test_from_keras_random_flip(pair):
    image, mask = pair
    augment = from_keras(keras.layers.RandomFlip("horizontal", seed=1))
    out_image, out_mask = augment(image, mask)
    assert out_image.dtype == tf.float32 and out_mask.dtype == tf.int32 and out_mask.shape == (37, 50)
    out_image, out_mask = numpy_pair(out_image, out_mask)
    flipped = np.array_equal(out_mask, mask[:, ::-1])
    assert flipped or np.array_equal(out_mask, mask)
    np.testing.assert_allclose(out_image, image[:, ::-1] if flipped else image)
    with pytest.warns(UserWarning, match="seed is ignored"):
        augment(image, mask, seed=seed(0))


def test_from_keras_rejects_non_layers():
    with pytest.raises(TypeError, match="keras.layers.RandomFlip"):
        from_keras(lambda data: data)
