"""Paired image/mask augmentation for ``tf.data`` pipelines.

An element is an unbatched pair: ``image`` float32 ``(H, W, C)`` with values in
``[0, 255]`` and ``mask`` int32 ``(H, W)`` of class indices; ``H`` and ``W`` may be
unknown statically and differ from element to element.

``Augment`` composes flips, scale, rotation and crop into one 3x3 projective matrix
(output pixel -> input coordinate) and resamples the image (bilinear) and the mask
(nearest) once each with that same matrix, so they cannot drift apart. Colour jitter
then touches the image only. ``from_keras`` adapts a Keras 3 augmentation layer or
``keras.layers.Pipeline`` to the same ``(image, mask, seed=None)`` signature.

Coordinates follow the pixel-centre convention: pixel ``i`` covers ``[i, i + 1)`` and
its centre is ``i + 0.5``; the projective op samples input pixel ``i`` at coordinate
``i``. The identity configuration is therefore bit-exact and a horizontal flip equals
``image[:, ::-1]``.
"""

import math
import numbers
import warnings

import keras
import tensorflow as tf

from keras_seg.utils import checks

# One random stream per quantity (folded into the seed), so enabling one option
# never changes the draws of another.
_STREAMS = {
    "flip_horizontal": 0,
    "flip_vertical": 1,
    "scale": 2,
    "rotation": 3,
    "crop": 4,
    "brightness": 5,
    "contrast": 6,
    "saturation": 7,
    "hue": 8,
}


class Augment:
    """Random paired geometry and colour augmentation for one ``(image, mask)`` pair.

    Geometry, applied in one resampling pass:

    * horizontal / vertical flip, each with probability 0.5 when enabled;
    * scale ``s`` drawn uniformly in log space from ``scale=(min, max)``;
    * rotation by an angle drawn uniformly from ``[-rotation, rotation]`` degrees
      about the image centre;
    * crop: with ``crop_size=(h, w)`` the output is exactly ``h x w``, a random window
      of the scaled image (integer offset, uniform over the valid range). Where the
      scaled image is smaller than the window, the image lands at a random position
      inside it and the rest is padding. ``crop_size=None`` uses the input's size
      as the window, so ``scale`` then zooms in or out at a random position.

    Out-of-image pixels (padding, rotated-in corners): with ``ignore_index`` set, the
    mask gets ``ignore_index`` and the image gets ``fill_value`` there, so losses and
    metrics skip them. With ``ignore_index=None`` both image and mask replicate their
    nearest edge pixel instead, so no label is invented arbitrarily (the edge class is
    extended) and ``fill_value`` is unused.

    Colour jitter on the image only, after the warp, in this order; each result is
    clipped to ``[0, 255]``; zero disables each:

    * ``brightness``: add ``delta * 255``, ``delta ~ U(-brightness, brightness)``;
    * ``contrast``: scale around each channel's mean by ``U(1 - contrast, 1 + contrast)``
      (``tf.image.adjust_contrast``);
    * ``saturation``: ``tf.image.adjust_saturation`` by ``U(1 - s, 1 + s)`` (RGB only);
    * ``hue``: ``tf.image.adjust_hue`` by ``U(-hue, hue)`` (RGB only).

    Randomness: ``augment(image, mask, seed)`` with an int32/int64 tensor ``seed`` of
    shape ``[2]`` uses stateless ops only, so the same seed gives bit-identical
    output; without a seed ordinary ``tf.random`` ops are used. Works eagerly and
    inside ``tf.data.Dataset.map(..., num_parallel_calls=tf.data.AUTOTUNE)``.

    Example:

    ```python
    augment = Augment(crop_size=(512, 512), rotation=10, brightness=0.2, ignore_index=255)
    train_ds = train_ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    ```

    Args:
        crop_size: ``None``, an int, or ``(height, width)`` of positive ints.
        scale: ``(min, max)`` with ``0 < min <= max``; ``None`` or ``(1, 1)`` disables.
        rotation: maximum absolute angle in degrees, in ``[0, 180]``.
        flip_horizontal: flip left-right with probability 0.5.
        flip_vertical: flip top-bottom with probability 0.5.
        brightness: in ``[0, 1]``, a fraction of the 255 range.
        contrast: in ``[0, 1]``.
        saturation: in ``[0, 1]``.
        hue: in ``[0, 0.5]``, a fraction of the hue circle.
        ignore_index: mask label for out-of-image pixels, or ``None`` for edge
            replication (see above).
        fill_value: image value for out-of-image pixels when ``ignore_index`` is set.
    """

    def __init__(
        self,
        crop_size=None,
        scale=(0.5, 2.0),
        rotation=0.0,
        flip_horizontal=True,
        flip_vertical=False,
        brightness=0.0,
        contrast=0.0,
        saturation=0.0,
        hue=0.0,
        ignore_index=None,
        fill_value=0.0,
    ):
        self.crop_size = checks.image_size(crop_size, "crop_size")
        self.scale = _check_scale(scale)
        self.rotation = _check_range(
            "rotation", rotation, 0.0, 180.0, "degrees; angles are drawn from [-rotation, rotation]"
        )
        self.flip_horizontal = _check_bool("flip_horizontal", flip_horizontal)
        self.flip_vertical = _check_bool("flip_vertical", flip_vertical)
        self.brightness = _check_range("brightness", brightness, 0.0, 1.0, "a fraction of 255")
        self.contrast = _check_range("contrast", contrast, 0.0, 1.0, "the factor is drawn from [1 - c, 1 + c]")
        self.saturation = _check_range("saturation", saturation, 0.0, 1.0, "the factor is drawn from [1 - s, 1 + s]")
        self.hue = _check_range("hue", hue, 0.0, 0.5, "a fraction of the hue circle; 0.5 already spans it")
        self.ignore_index = _check_ignore_index(ignore_index)
        self.fill_value = _check_number("fill_value", fill_value)

    def get_config(self):
        """The constructor arguments, JSON-serializable."""
        return {
            "crop_size": None if self.crop_size is None else list(self.crop_size),
            "scale": None if self.scale is None else list(self.scale),
            "rotation": self.rotation,
            "flip_horizontal": self.flip_horizontal,
            "flip_vertical": self.flip_vertical,
            "brightness": self.brightness,
            "contrast": self.contrast,
            "saturation": self.saturation,
            "hue": self.hue,
            "ignore_index": self.ignore_index,
            "fill_value": self.fill_value,
        }

    @classmethod
    def from_config(cls, config):
        """Rebuild from ``get_config()``."""
        return cls(**config)

    def __repr__(self):
        args = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({args})"

    def __call__(self, image, mask, seed=None):
        """Augment one pair.

        Args:
            image: ``(H, W, C)`` with values in ``[0, 255]``; cast to float32.
            mask: integer ``(H, W)`` class indices; cast to int32.
            seed: optional int32/int64 tensor of shape ``[2]``; given, the output is a
                pure function of ``(image, mask, seed)``.

        Returns:
            ``(image float32 (h, w, C), mask int32 (h, w))`` with ``(h, w) = crop_size``,
            or the input's size when ``crop_size`` is ``None``.
        """
        image, mask = _check_pair(image, mask)
        if seed is not None:
            seed = tf.convert_to_tensor(seed)
        if (self.saturation or self.hue) and image.shape[-1] != 3:
            raise ValueError(
                f"saturation and hue need RGB images with 3 channels, got image shape {image.shape}. "
                "Set saturation=0 and hue=0 for other images."
            )
        in_size = tf.shape(image)[:2]
        out_size = in_size if self.crop_size is None else tf.constant(self.crop_size, tf.int32)
        transform = self._sample_transform(in_size, out_size, seed)
        image, mask = self._warp(image, mask, transform, out_size)
        return self._jitter(image, seed), mask

    def _sample_transform(self, in_size, out_size, seed):
        """Draw flips, scale, angle and crop offset; return the 8 projective parameters."""
        flips = tf.stack(
            [
                _random_sign(seed, "flip_horizontal", self.flip_horizontal),
                _random_sign(seed, "flip_vertical", self.flip_vertical),
            ]
        )
        low, high = self.scale or (1.0, 1.0)
        scale = tf.exp(_uniform(seed, "scale", math.log(low), math.log(high))) if low != high else tf.constant(low)
        angle = _uniform(seed, "rotation", -self.rotation, self.rotation) * (math.pi / 180.0)
        in_size = tf.cast(in_size[::-1], tf.float32)  # (width, height): x first
        out_size = tf.cast(out_size[::-1], tf.float32)
        offset = _crop_offset(_uniform(seed, "crop", 0.0, 1.0, shape=[2]), scale * in_size, out_size)
        return _projective_transform(in_size, flips, scale, angle, offset)

    def _warp(self, image, mask, transform, out_size):
        """Resample image (bilinear) and mask (nearest) with the same transform."""
        fill_mode = "NEAREST" if self.ignore_index is None else "CONSTANT"
        mask_fill = 0 if self.ignore_index is None else self.ignore_index  # 0: unused by NEAREST
        image = _apply_transform(image, transform, out_size, "BILINEAR", fill_mode, self.fill_value)
        mask = _apply_transform(mask[..., None], transform, out_size, "NEAREST", fill_mode, mask_fill)[..., 0]
        if self.crop_size is not None:
            image.set_shape([*self.crop_size, image.shape[-1]])
            mask.set_shape(self.crop_size)
        return image, mask

    def _jitter(self, image, seed):
        """Colour jitter of the image, each step clipped to [0, 255]."""
        if self.brightness:
            delta = _uniform(seed, "brightness", -self.brightness, self.brightness)
            image = _clip(image + 255.0 * delta)
        if self.contrast:
            factor = _uniform(seed, "contrast", 1.0 - self.contrast, 1.0 + self.contrast)
            image = _clip(tf.image.adjust_contrast(image, factor))
        if self.saturation:
            factor = _uniform(seed, "saturation", 1.0 - self.saturation, 1.0 + self.saturation)
            image = _clip(255.0 * tf.image.adjust_saturation(image / 255.0, factor))
        if self.hue:
            delta = _uniform(seed, "hue", -self.hue, self.hue)
            image = _clip(255.0 * tf.image.adjust_hue(image / 255.0, delta))
        return image


def from_keras(layer):
    """Adapt a Keras 3 image-augmentation layer to the ``(image, mask, seed=None)`` signature.

    ``layer`` is any Keras 3 image preprocessing layer that accepts
    ``{"images": ..., "segmentation_masks": ...}`` (``keras.layers.RandomFlip``,
    ``RandomRotation``, ``RandomZoom``, ...) or a ``keras.layers.Pipeline`` of them.
    The mask is passed as ``(H, W, 1)`` and returned as int32 ``(H, W)``; the image is
    returned as float32. Usable eagerly and in ``tf.data.Dataset.map`` on every backend.

    Two differences from ``Augment``: Keras' layers fill out-of-image mask pixels with
    the layer's own ``fill_mode`` (e.g. constant 0, a real class, or reflection), not an
    ignore label; and they draw randomness from their own seed generator (construct
    them with ``seed=...``), so a per-element ``seed`` cannot be honoured: it is
    accepted for signature compatibility and ignored with a warning.
    """
    if not isinstance(layer, keras.layers.Layer):
        raise TypeError(
            f"from_keras expects a Keras layer such as keras.layers.RandomFlip() or "
            f"keras.layers.Pipeline([...]), got {layer!r}."
        )

    def augment(image, mask, seed=None):
        if seed is not None:
            warnings.warn(
                f"{layer.name} draws from its own seed generator; the per-element seed is ignored. "
                "Construct the Keras layer with seed=... for reproducible augmentation.",
                stacklevel=2,
            )
        image, mask = _check_pair(image, mask)
        outputs = layer({"images": image, "segmentation_masks": tf.cast(mask[..., None], tf.float32)}, training=True)
        image = tf.cast(_to_tf(outputs["images"]), tf.float32)
        mask = tf.cast(tf.round(_to_tf(outputs["segmentation_masks"])), tf.int32)[..., 0]
        return image, mask

    return augment


def _to_tf(x):
    """A tf tensor from a layer output (eager JAX/torch backends return their own arrays)."""
    return x if tf.is_tensor(x) else tf.convert_to_tensor(keras.ops.convert_to_numpy(x))


def _check_pair(image, mask):
    """Convert to float32 (H, W, C) / int32 (H, W) and check ranks and matching sizes."""
    image = tf.cast(tf.convert_to_tensor(image), tf.float32)
    mask = tf.convert_to_tensor(mask)
    if not mask.dtype.is_integer:
        raise TypeError(f"mask must hold integer class indices, got dtype {mask.dtype.name}. Cast it to int32.")
    mask = tf.cast(mask, tf.int32)
    if image.shape.rank != 3 or mask.shape.rank != 2:
        raise ValueError(
            f"Expected one unbatched pair: image (H, W, C) and mask (H, W), got shapes {image.shape} and "
            f"{mask.shape}. Augment before batching, and squeeze a trailing mask channel."
        )
    if not image.shape[:2].is_compatible_with(mask.shape):
        raise ValueError(f"image {image.shape} and mask {mask.shape} must have the same height and width.")
    if image.shape[:2].is_fully_defined() and mask.shape.is_fully_defined():
        return image, mask
    check = tf.debugging.assert_equal(
        tf.shape(image)[:2], tf.shape(mask), message="image and mask must have the same height and width"
    )
    with tf.control_dependencies([check]):
        return tf.identity(image), tf.identity(mask)


def _uniform(seed, stream, minval, maxval, shape=()):
    """U(minval, maxval), stateless from ``seed`` folded with ``stream`` when given."""
    if minval == maxval:
        return tf.fill(shape, tf.constant(minval, tf.float32))
    if seed is None:
        return tf.random.uniform(shape, minval, maxval)
    stream_seed = tf.random.experimental.stateless_fold_in(seed, _STREAMS[stream])
    return tf.random.stateless_uniform(shape, stream_seed, minval, maxval)


def _random_sign(seed, stream, enabled):
    """-1.0 with probability 0.5 when enabled, else 1.0."""
    if not enabled:
        return tf.constant(1.0)
    return tf.where(_uniform(seed, stream, 0.0, 1.0) < 0.5, -1.0, 1.0)


def _crop_offset(uniform, scaled_size, window):
    """Integer window offset, uniform over the valid range, from uniform draws in [0, 1).

    The valid range is ``[0, scaled - window]`` when the scaled image is larger than the
    window and ``[scaled - window, 0]`` (image placed inside the window) otherwise.
    """
    slack = scaled_size - window
    low = tf.math.ceil(tf.minimum(slack, 0.0))
    high = tf.math.floor(tf.maximum(slack, 0.0))
    return tf.minimum(low + tf.math.floor(uniform * (high - low + 1.0)), high)


def _projective_transform(in_size, flips, scale, angle, offset):
    """The 8 parameters of the output-index -> input-index map, as ``(1, 8)`` float32.

    Forward map in pixel-centre coordinates ``p = index + 0.5``, with ``c`` the input
    centre: ``q = s * c + s * R F (p - c) - offset``. Its inverse, for output index
    ``j``: ``i = c - 0.5 + A (j + 0.5 + offset - s * c)`` with ``A = F R^T / s``.
    Every quantity is a multiple of 0.5 when there is no scale or rotation, so the
    identity and pure flips are exact in float32.
    """
    cos, sin = tf.cos(angle), tf.sin(angle)
    flip_x, flip_y = flips[0], flips[1]
    a = tf.reshape(tf.stack([flip_x * cos, flip_x * sin, -flip_y * sin, flip_y * cos]), (2, 2)) / scale
    centre = in_size / 2.0
    shift = centre - 0.5 + tf.linalg.matvec(a, 0.5 + offset - scale * centre)
    params = tf.stack([a[0, 0], a[0, 1], shift[0], a[1, 0], a[1, 1], shift[1], 0.0, 0.0])
    return params[None]


def _apply_transform(image, transform, out_size, interpolation, fill_mode, fill_value):
    """``ImageProjectiveTransformV3`` on one (H, W, C) image."""
    return tf.raw_ops.ImageProjectiveTransformV3(
        images=image[None],
        transforms=transform,
        output_shape=out_size,
        fill_value=tf.cast(fill_value, tf.float32),
        interpolation=interpolation,
        fill_mode=fill_mode,
    )[0]


def _clip(image):
    return tf.clip_by_value(image, 0.0, 255.0)


def _check_bool(name, value):
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r}.")
    return value


def _check_number(name, value):
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {value!r}.")
    return float(value)


def _check_range(name, value, low, high, meaning):
    value = _check_number(name, value)
    if not low <= value <= high:
        hint = f" Pass the magnitude, {name}={abs(value)!r}." if value < 0 else ""
        raise ValueError(f"{name}={value!r} is outside [{low}, {high}] ({meaning}); 0 disables it.{hint}")
    return value


def _check_scale(scale):
    if scale is None:
        return None
    if not isinstance(scale, (tuple, list)) or len(scale) != 2:
        raise ValueError(f"scale={scale!r} must be (min, max), e.g. scale=(0.5, 2.0), or None to disable.")
    low, high = (_check_number("scale", v) for v in scale)
    if not 0 < low <= high:
        hint = f" Did you mean scale={(high, low)!r}?" if 0 < high < low else ""
        raise ValueError(f"scale={tuple(scale)!r} must be (min, max) with 0 < min <= max.{hint}")
    return (low, high)


def _check_ignore_index(ignore_index):
    if ignore_index is not None and (isinstance(ignore_index, bool) or not isinstance(ignore_index, numbers.Integral)):
        raise TypeError(f"ignore_index must be an int label such as 255, or None, got {ignore_index!r}.")
    return None if ignore_index is None else int(ignore_index)
