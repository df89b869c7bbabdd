"""Checks that stop bad training data early, with a message naming the value and the fix.

:func:`out_of_range` is the one definition of a bad label (used by the folder readers
on every mask file and by :func:`check_batch` on arrays); :func:`check_batch` looks at
one batch of ``(images, masks)`` against what a model expects, before ``fit`` spends
minutes compiling. Inside the graph nothing raises: losses and metrics treat a label
outside ``[0, num_classes)`` like ``ignore_index`` (see :mod:`keras_seg.utils.labels`).
"""

import numpy as np


def out_of_range(mask, num_classes, ignore_index=None, limit=5):
    """The sorted distinct labels of ``mask`` outside ``[0, num_classes)`` that are not ``ignore_index`` (at most ``limit``)."""
    mask = np.asarray(mask)
    bad = (mask < 0) | (mask >= num_classes)
    if ignore_index is not None:
        bad &= mask != ignore_index
    if not bad.any():
        return []
    return np.unique(mask[bad])[:limit].tolist()


def label_range_message(where, values, num_classes, ignore_index):
    """The error text for masks holding ``values`` outside the classes."""
    void = f" and are not ignore_index={ignore_index}" if ignore_index is not None else ""
    hint = "" if ignore_index is not None else " (or pass the void label as ignore_index, e.g. 255)"
    return (
        f"{where}: label values {values} are outside [0, {num_classes}){void}; the data has more classes than "
        f"the {num_classes} given. Fix the masks, or give every class a name / set num_classes to match{hint}."
    )


def check_batch(images, masks, *, num_classes, ignore_index=None, channels=None, where="the data"):
    """Raise a ``ValueError`` naming the problem if ``(images, masks)`` cannot train a ``num_classes`` model.

    Checks: images ``(B, H, W, C)`` with ``C == channels`` (when given) and finite values;
    masks ``(B, H, W)``, ``(B, H, W, 1)`` or one-hot ``(B, H, W, num_classes)`` of the
    same ``B, H, W``; integer class indices (a float mask must hold whole numbers) in
    ``[0, num_classes)`` or equal to ``ignore_index``. A one-channel model
    (``num_classes == 1``, binary) takes labels 0 and 1.
    """
    images, masks = np.asarray(images), np.asarray(masks)
    if images.ndim != 4:
        hint = " (a single image? add a batch axis)" if images.ndim == 3 else ""
        raise ValueError(
            f"Images in {where} have shape {images.shape}; expected (batch, height, width, channels){hint}. "
            "Batch the dataset (keras_seg.data.prepare) and give grayscale images a channel axis."
        )
    if channels is not None and images.shape[-1] != channels:
        raise ValueError(
            f"Images in {where} have {images.shape[-1]} channels but the model takes {channels}; convert the "
            f"images (e.g. grayscale to RGB) or build the model with input_shape=(None, None, {images.shape[-1]})."
        )
    if images.dtype.kind == "f" and not np.isfinite(images).all():
        raise ValueError(f"Images in {where} contain NaN or infinite pixel values; clean or drop those images.")
    if masks.ndim == 4 and masks.shape[-1] == 1:
        masks = masks[..., 0]
    one_hot = masks.ndim == 4 and masks.shape[-1] == num_classes and num_classes > 1
    if masks.ndim != 3 and not one_hot:
        raise ValueError(
            f"Masks in {where} have shape {masks.shape}; expected (batch, height, width) class indices "
            f"(or one-hot (batch, height, width, {num_classes})). An RGB colour mask must be mapped to class "
            "indices first (keras_seg.data.from_folders(..., colors=[...]))."
        )
    if masks.shape[:3] != images.shape[:3]:
        raise ValueError(
            f"Images in {where} are {images.shape[:3]} (batch, height, width) but their masks are "
            f"{masks.shape[:3]}; each mask must match its image pixel for pixel."
        )
    if one_hot:
        return
    if masks.dtype.kind == "f":
        if not np.isfinite(masks).all() or not np.array_equal(masks, np.round(masks)):
            shown = np.unique(masks[~np.isfinite(masks) | (masks != np.round(masks))])[:5].tolist()
            raise ValueError(
                f"Masks in {where} are float with non-integer values {shown}; masks hold class indices. "
                "Resize masks with nearest-neighbour interpolation, and threshold probability maps "
                "(e.g. (mask > 0.5).astype('int32'))."
            )
    elif masks.dtype.kind not in "iub":
        raise ValueError(f"Masks in {where} have dtype {masks.dtype}; expected integer class indices.")
    classes = max(num_classes, 2)  # a one-channel (binary) model takes labels 0 and 1
    values = out_of_range(masks, classes, ignore_index)
    if values:
        raise ValueError(label_range_message(f"Masks in {where}", values, classes, ignore_index))


def first_batch(data, where="the data"):
    """``(images, masks)`` of the first batch of a ``tf.data.Dataset`` or an ``(x, y)`` tuple, else ``None``.

    An empty dataset raises a ``ValueError`` (``fit`` would otherwise run zero steps).
    """
    if isinstance(data, (tuple, list)) and len(data) >= 2:
        return (data[0], data[1]) if all(isinstance(part, np.ndarray) for part in data[:2]) else None
    take = getattr(data, "take", None)
    if take is None or not hasattr(data, "element_spec"):
        return None  # a generator or PyDataset: fit reports what it finds
    for element in take(1).as_numpy_iterator():
        if isinstance(element, (tuple, list)) and len(element) >= 2 and all(
            isinstance(part, np.ndarray) for part in element[:2]
        ):
            return element[0], element[1]
        return None  # dict inputs or targets: a custom model's business
    raise ValueError(f"{where} is empty: the dataset yields no batch. Check the folders / file lists it reads.")
