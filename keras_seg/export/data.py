"""Calibration and verification images from whatever a user has: a tf.data pipeline, arrays, a list.

Everything becomes NumPy here, so the same data can be fed to the Keras model, to a
TFLite converter, to onnxruntime's calibrator, or saved to ``.npy`` for the child
process that converts a JAX / PyTorch model. No TensorFlow import (a tf.data
dataset is only iterated, and it exists only if TensorFlow does).
"""

import numpy as np

DEFAULT_NUM_CALIBRATION = 100
DEFAULT_NUM_VERIFY = 32
SYNTHETIC_IMAGES = 4
SYNTHETIC_SIZE = (128, 128)


def collect(data, what, limit, size=None, channels=None):
    """``(images float32 (N, H, W, C), masks int32 (N, H, W) or None)`` from ``data``.

    ``data``: a ``tf.data.Dataset`` of images or ``(images, masks)`` (batched or not),
    an array of images ``(N, H, W, C)`` or one image ``(H, W, C)``, a tuple
    ``(images, masks)`` of arrays, or a list of images (sizes may differ). At most
    ``limit`` images are taken. Every image is resized (bilinear; masks nearest) to
    ``size`` ``(H, W)`` when given, else to the first image's size. ``channels``: the number
    the model takes, checked.
    """
    pairs = []
    for image, mask in _examples(data, what):
        pairs.append((image, mask))
        if limit is not None and len(pairs) >= limit:
            break
    if not pairs:
        raise ValueError(f"{what} holds no images; pass a non-empty dataset or array of images (N, H, W, C).")
    with_masks = [m is not None for _, m in pairs]
    if any(with_masks) and not all(with_masks):
        raise ValueError(f"{what} gives masks for some images and not for others; give all or none.")
    size = tuple(size) if size is not None else pairs[0][0].shape[:2]
    found = sorted({p[0].shape[-1] for p in pairs})
    if found != [channels or found[0]]:
        raise ValueError(f"{what} has images with {' and '.join(map(str, found))} channels; the model takes "
                         f"{channels or found[0]}. Images are (N, H, W, C) or (H, W, C).")  # fmt: skip
    images = np.stack([_resize_image(image, size) for image, _ in pairs]).astype("float32")
    masks = np.stack([_resize_mask(mask, size) for _, mask in pairs]) if all(with_masks) else None
    return images, masks


def synthetic(size, count=SYNTHETIC_IMAGES, channels=3):
    """The default verification images: ``count`` images of keras_seg's ``shapes`` test split at ``size``.

    Deterministic (the same on every machine and every call); textured backgrounds with
    shapes on them look more like photographs than noise does, so label agreement means
    something. Sizes under 16 pixels, or other than 3 channels, get seeded uniform noise.
    """
    height, width = size
    if channels == 3 and min(height, width) >= 16:
        from keras_seg.data.shapes import shapes_arrays

        return shapes_arrays("test", count, (height, width), seed=0)[0].astype("float32")
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (count, height, width, channels)).astype("float32")


def as_uint8(images):
    """Images rounded and clipped to [0, 255], as a uint8 artifact receives them."""
    return np.clip(np.round(images), 0, 255).astype("uint8")


# ---------------------------------------------------------------------------------------------- helpers


def _examples(data, what):
    """Yield ``(image (H, W, C), mask (H, W) or None)`` one at a time."""
    if _is_tf_dataset(data):
        for element in data.as_numpy_iterator():
            yield from _split(element, what)
        return
    if isinstance(data, tuple) and len(data) == 2 and np.ndim(data[0]) == 4:
        images, masks = np.asarray(data[0]), np.asarray(data[1])
        if len(images) != len(masks):
            raise ValueError(f"{what}: {len(images)} images but {len(masks)} masks.")
        for image, mask in zip(images, masks):
            yield _image(image, what), _mask(mask, image, what)
        return
    if isinstance(data, (list, tuple)):
        for image in data:
            yield _image(np.asarray(image), what), None
        return
    array = _to_numpy(data)
    if array.ndim == 3:
        array = array[None]
    if array.ndim != 4:
        raise ValueError(
            f"{what} has shape {array.shape}; expected images (N, H, W, C), one image (H, W, C), "
            "a tuple (images, masks), or a tf.data.Dataset."
        )
    for image in array:
        yield _image(image, what), None


def _split(element, what):
    if isinstance(element, dict):
        image = element.get("image", element.get("images"))
        mask = element.get("mask", element.get("masks"))
        if image is None:
            raise ValueError(f"{what}: a dataset of dicts needs an 'image' key; got keys {sorted(element)}.")
    elif isinstance(element, tuple):
        image, mask = element[0], element[1] if len(element) > 1 else None
    else:
        image, mask = element, None
    image = np.asarray(image)
    if image.ndim == 4:  # a batched dataset
        for i in range(image.shape[0]):
            yield _image(image[i], what), None if mask is None else _mask(np.asarray(mask)[i], image[i], what)
    else:
        yield _image(image, what), None if mask is None else _mask(np.asarray(mask), image, what)


def _image(image, what):
    image = np.asarray(image)
    if image.ndim != 3:
        raise ValueError(f"{what}: an image has shape {image.shape}; expected (H, W, C).")
    return image.astype("float32")


def _mask(mask, image, what):
    mask = np.asarray(mask)
    if mask.ndim == 3 and mask.shape[-1] == 1:
        mask = mask[..., 0]
    elif mask.ndim == 3:  # one-hot
        mask = mask.argmax(-1)
    if mask.shape != image.shape[:2]:
        raise ValueError(f"{what}: a mask of shape {mask.shape} goes with an image of shape {image.shape}.")
    return mask.astype("int32")


def _resize_image(image, size):
    if image.shape[:2] == tuple(size):
        return image
    import keras

    return keras.ops.convert_to_numpy(keras.ops.image.resize(image, size, interpolation="bilinear", antialias=False))


def _resize_mask(mask, size):
    if mask.shape == tuple(size):
        return mask
    rows = np.minimum((np.arange(size[0]) + 0.5) * mask.shape[0] / size[0], mask.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(size[1]) + 0.5) * mask.shape[1] / size[1], mask.shape[1] - 1).astype(int)
    return mask[rows][:, cols]


def _is_tf_dataset(data):
    return type(data).__module__.startswith("tensorflow") and hasattr(data, "as_numpy_iterator")


def _to_numpy(data):
    if hasattr(data, "detach"):  # torch
        data = data.detach().cpu()
    return np.asarray(data)
