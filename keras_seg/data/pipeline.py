"""From unbatched ``(image, mask)`` pairs to the batches ``model.fit`` reads (on any Keras backend)."""

from keras_seg.utils import checks

RESIZE_MODES = ("stretch", "pad")


def prepare(
    ds,
    batch_size,
    image_size=None,
    *,
    augment=None,
    shuffle=None,
    resize="stretch",
    ignore_index=None,
    fill_value=0.0,
    cache=False,
    seed=0,
    drop_remainder=False,
):
    """Shuffle, augment, bring to one size, batch and prefetch.

    Args:
        ds: unbatched ``tf.data.Dataset`` of ``(image (H, W, C), mask (H, W))``, as
            the loaders in :mod:`keras_seg.data` return.
        batch_size: images per batch.
        image_size: ``(height, width)`` (or an int) every image is brought to after
            augmentation; ``None`` keeps the sizes (they must then agree for batching).
        augment: a callable ``(image, mask, seed) -> (image, mask)`` such as
            :class:`keras_seg.data.Augment`; it gets a fresh stateless seed per element
            and epoch, derived from ``seed``, so a run is reproducible.
        shuffle: shuffle buffer size (``None``: no shuffling, e.g. for validation).
        resize: ``"stretch"`` resizes to ``image_size`` (image bilinear, mask nearest
            neighbour); ``"pad"`` scales to fit inside it keeping the aspect ratio and
            pads the rest: the image with ``fill_value``, the mask with ``ignore_index``
            (required, so padding is never counted as a class).
        cache: keep the decoded, un-augmented data in memory after the first epoch.
        seed: seed of the shuffling and augmentation streams.
        drop_remainder: drop a last, smaller batch.

    Returns:
        A ``tf.data.Dataset`` of ``(images float32 (B, h, w, C), masks int32 (B, h, w))``.
    """
    import tensorflow as tf

    if resize not in RESIZE_MODES:
        raise ValueError(f"resize={resize!r} is not supported; expected one of {RESIZE_MODES}.")
    if resize == "pad" and ignore_index is None:
        raise ValueError("resize='pad' needs an ignore_index for the padded mask pixels, e.g. ignore_index=255.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive integer.")
    size = checks.image_size(image_size)
    _check_spec(ds)
    if ds.element_spec[1].dtype.is_floating:
        ds = ds.map(_whole_numbers, num_parallel_calls=tf.data.AUTOTUNE)
    if cache:
        ds = ds.cache()
    if shuffle:
        ds = ds.shuffle(int(shuffle), seed=seed, reshuffle_each_iteration=True)
    if augment is not None:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        ds = tf.data.Dataset.zip((ds, seeds)).map(
            lambda pair, s: augment(pair[0], pair[1], seed=s), num_parallel_calls=tf.data.AUTOTUNE
        )
    if size is not None:
        fit = _stretch if resize == "stretch" else _pad
        ds = ds.map(lambda x, y: fit(x, y, size, ignore_index, fill_value), num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.map(_canonical, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)


def _check_spec(ds):
    """Refuse, before any batch is read, elements that cannot be (image (H, W, C), mask (H, W))."""
    spec = getattr(ds, "element_spec", None)
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise ValueError(
            f"prepare() takes a dataset of (image, mask) pairs; its elements are {spec}. Map it to pairs first, "
            "e.g. ds.map(lambda d: (d['image'], d['mask']))."
        )
    image, mask = (s.shape for s in spec)
    if image.rank == 4 or (mask.rank == 3 and image.rank == 4):
        raise ValueError(f"The dataset is already batched (images {image}); pass unbatched pairs, or ds.unbatch().")
    if image.rank is not None and image.rank != 3:
        raise ValueError(
            f"Images have shape {image}; expected (height, width, channels). A grayscale (height, width) image "
            "needs a channel axis: ds.map(lambda x, y: (x[..., None], y))."
        )
    if mask.rank is not None and (mask.rank not in (2, 3) or (mask.rank == 3 and mask[-1] not in (1, None))):
        raise ValueError(
            f"Masks have shape {mask}; expected (height, width) class indices (or (height, width, 1)). A colour "
            "mask must be mapped to class indices first (keras_seg.data.from_folders(..., colors=[...]))."
        )


def _whole_numbers(image, mask):
    """A float mask must hold class indices: whole numbers (checked in the graph, for every element)."""
    import tensorflow as tf

    whole = tf.debugging.assert_equal(
        mask, tf.round(mask), message="keras_seg.data.prepare: a float mask has non-integer values; masks hold "
        "class indices (resize masks with nearest-neighbour, threshold probability maps)",
    )  # fmt: skip
    with tf.control_dependencies([whole]):
        return image, tf.identity(mask)


def _canonical(image, mask):
    import tensorflow as tf

    mask = tf.cast(mask, tf.int32)
    if mask.shape.rank == 3:
        mask = tf.squeeze(mask, axis=-1)
    return tf.cast(image, tf.float32), mask


def _stretch(image, mask, size, ignore_index, fill_value):
    import tensorflow as tf

    image = tf.image.resize(image, size, method="bilinear")
    mask = tf.image.resize(tf.cast(mask, tf.int32)[..., None], size, method="nearest")[..., 0]
    return image, mask


def _pad(image, mask, size, ignore_index, fill_value):
    """Scale to fit inside ``size`` keeping the aspect ratio, then pad bottom/right."""
    import tensorflow as tf

    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = tf.reduce_min(tf.constant(size, tf.float32) / shape)
    inner = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), 1)
    image = tf.image.resize(image, inner, method="bilinear")
    mask = tf.image.resize(tf.cast(mask, tf.int32)[..., None], inner, method="nearest")[..., 0]
    pad = [[0, size[0] - inner[0]], [0, size[1] - inner[1]]]
    image = tf.pad(image - fill_value, pad + [[0, 0]]) + fill_value
    mask = tf.pad(mask - ignore_index, pad) + ignore_index
    return tf.ensure_shape(image, [size[0], size[1], None]), tf.ensure_shape(mask, list(size))
