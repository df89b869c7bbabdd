"""Masks at each image's own resolution, from any keras_seg model (host side, NumPy + ``keras.ops``).

The building block is :func:`predict_logits`: one image ``(H, W, C)`` -> logits ``(H, W, K)``,
padded to the model's stride on the way in and cropped back on the way out.
:func:`predict_mask` adds batches and lists of differently sized images, sliding windows
(:mod:`keras_seg.inference.sliding`), test-time augmentation (:mod:`keras_seg.inference.tta`)
and the final argmax (or threshold, for a one-channel binary model).
"""

import numpy as np


def model_stride(model):
    """The factor input sizes should be a multiple of: the encoder's deepest stride (32 if unknown)."""
    from keras_seg.encoders.base import deepest_stride

    encoder = getattr(model, "encoder", None)
    try:
        return int(deepest_stride(encoder)) if encoder is not None else 32
    except (TypeError, ValueError):
        return 32


def pad_to_multiple(image, multiple):
    """Pad ``(H, W, C)`` at the bottom and right, by reflection, to multiples of ``multiple``."""
    height, width = image.shape[:2]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    mode = "reflect" if min(height, width) > 1 else "edge"
    return np.pad(image, ((0, pad_h), (0, pad_w), (0, 0)), mode=mode)


def predict_logits(model, images, pad_to="auto"):
    """Logits ``(N, H, W, K)`` float32 for a batch ``(N, H, W, C)`` of equal-sized images.

    ``pad_to="auto"`` pads to the model's stride (:func:`model_stride`) and crops the
    logits back, so no feature map is resized to an odd size; an int pads to that
    multiple; ``None`` feeds the images as they are.
    """
    images = np.asarray(images, dtype="float32")
    height, width = images.shape[1:3]
    multiple = model_stride(model) if pad_to == "auto" else pad_to
    if multiple and multiple > 1:
        images = np.stack([pad_to_multiple(image, multiple) for image in images])
    logits = model.predict_on_batch(images)  # the backend's compiled predict step (jit on JAX, tf.function on TF)
    return np.asarray(logits, dtype="float32")[:, :height, :width]


def to_probabilities(logits, activation=None):
    """Softmax over classes (sigmoid for one channel); ``activation`` says the model already applied one."""
    if activation in ("softmax", "sigmoid"):
        return logits
    if logits.shape[-1] == 1:
        return 1.0 / (1.0 + np.exp(-logits))
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def to_labels(scores, threshold=0.5, probabilities=True):
    """Class ids from scores ``(..., K)``: argmax, or ``score > threshold`` for one channel."""
    if scores.shape[-1] == 1:
        if not probabilities:
            scores = 1.0 / (1.0 + np.exp(-scores))
        return (scores[..., 0] > threshold).astype("int32")
    return np.argmax(scores, axis=-1).astype("int32")


def predict_mask(
    model,
    images,
    *,
    batch_size=8,
    probabilities=False,
    sliding_window=None,
    tta=None,
    threshold=0.5,
    pad_to="auto",
):
    """Integer label maps at each image's original resolution.

    Args:
        model: a keras_seg model (or any Keras model mapping ``(B, H, W, C)`` to ``(B, H, W, K)``).
        images: one image ``(H, W, C)``, a batch ``(N, H, W, C)``, or a list of images of
            different sizes; pixel values as the model expects them ([0, 255] for keras_seg).
        batch_size: images per model call (equal-sized images only; windows are batched
            by :class:`~keras_seg.inference.SlidingWindowConfig`'s own ``batch_size``).
        probabilities: also return the class probabilities ``(H, W, K)`` per image.
        sliding_window: ``None``, or a :func:`~keras_seg.inference.sliding_window` config:
            ``dict(window=512, overlap=0.5, blend="gaussian", batch_size=4)``.
        tta: ``None``, or a :func:`~keras_seg.inference.tta` config:
            ``dict(flips=("horizontal",), scales=(0.75, 1.0, 1.25))``.
        threshold: for one-channel (binary) models.
        pad_to: see :func:`predict_logits`.

    Returns:
        Like the input: ``(H, W)`` for one image, ``(N, H, W)`` for a batch, a list for a
        list (int32). With ``probabilities=True``, a pair ``(masks, probabilities)``.
    """
    from keras_seg.inference.sliding import sliding_window_logits
    from keras_seg.inference.tta import tta_probabilities

    single, batch, items = _as_items(images)
    activation = getattr(model, "activation", None)
    if batch is not None and len(batch) == 0:  # an empty batch: empty results of the right shapes
        masks = np.zeros(batch.shape[:3], "int32")
        return (masks, np.zeros(batch.shape[:3] + (int(model.output_shape[-1]),), "float32")) if probabilities else masks

    # Without TTA and without probabilities asked for, labels come straight from the logits
    # (same argmax), sparing the (H, W, K) softmax and its temporaries on large images.
    as_probabilities = probabilities or tta is not None

    def scores_of(group):  # (N, H, W, C) equal sizes -> scores (N, H, W, K)
        if tta is not None:
            return np.stack([
                tta_probabilities(lambda x: logits_of(x[None])[0], image, activation=activation, **tta)
                for image in group
            ])  # fmt: skip
        logits = logits_of(group)
        return to_probabilities(logits, activation) if as_probabilities else logits

    def logits_of(group):
        if sliding_window is not None:
            return np.stack([sliding_window_logits(model, image, pad_to=pad_to, **sliding_window) for image in group])
        return predict_logits(model, group, pad_to)

    def labels_of(scores):
        is_probability = as_probabilities or activation in ("softmax", "sigmoid")
        return to_labels(scores, threshold, probabilities=is_probability)

    if batch is not None:  # one array of equal-sized images: chunks of batch_size
        scores = np.concatenate([scores_of(batch[i : i + batch_size]) for i in range(0, len(batch), batch_size)])
        masks = labels_of(scores)
        if single:
            masks, scores = masks[0], scores[0]
    else:
        scores = [scores_of(np.asarray(image, "float32")[None])[0] for image in items]
        masks = [labels_of(s) for s in scores]
    return (masks, scores) if probabilities else masks


def _as_items(images):
    """``(single, batch_array_or_None, list_or_None)`` with every image checked: ``(H, W, C)``, finite pixels."""
    if isinstance(images, (list, tuple)):
        items = [np.asarray(image) for image in images]
        for i, image in enumerate(items):
            if image.ndim != 3:
                raise ValueError(f"images[{i}] has shape {image.shape}; each image must be (height, width, channels).")
            check_finite(image[None], first=i)
        return False, None, items
    array = np.asarray(images)
    if array.ndim not in (3, 4):
        raise ValueError(
            f"images of shape {array.shape} are not (H, W, C), (N, H, W, C) or a list of (H, W, C) images."
        )
    batch = array[None] if array.ndim == 3 else array
    check_finite(batch)
    return array.ndim == 3, batch.astype("float32"), None


def check_finite(images, first=0):
    """Raise ``ValueError`` when a batch ``(N, H, W, C)`` holds NaN or infinite pixels, saying how many and where.

    A model answers NaN everywhere for one NaN pixel (every convolution spreads it), and the
    argmax of NaN is class 0: a silent, wrong mask. ``first`` numbers the images in the message.
    """
    if images.dtype.kind not in "fc":
        return
    bad = ~np.isfinite(images)
    if not bad.any():
        return
    where = np.argwhere(bad.any(axis=-1))  # (image, row, column) of each bad pixel
    image = where[0, 0]
    pixels = where[where[:, 0] == image][:, 1:]
    (top, left), (bottom, right) = pixels.min(axis=0), pixels.max(axis=0)
    kinds = ", ".join(f"{int(n)} {k}" for k, n in (("NaN", np.isnan(images).sum()), ("infinite", np.isinf(images).sum())) if n)
    others = len(np.unique(where[:, 0])) - 1
    more = f"; {others} more image(s) have some too" if others else ""
    raise ValueError(
        f"images[{first + int(image)}] has {len(pixels)} pixel(s) with non-finite values ({kinds} values in the batch), "
        f"in rows {top}..{bottom}, columns {left}..{right}{more}. The model would answer NaN for the whole image "
        "and label it class 0: replace them first, e.g. np.nan_to_num(images, nan=0.0, posinf=255.0, neginf=0.0)."
    )
