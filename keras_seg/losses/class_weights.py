"""Class weights for imbalanced segmentation data, computed from masks on the host (NumPy)."""

import numpy as np

METHODS = ("inverse_frequency", "median_frequency")


def class_pixel_counts(masks_or_dataset, num_classes, ignore_index=None):
    """Count pixels per class over a whole collection of masks.

    Returns ``(counts, image_counts)``: ``counts[k]`` is the number of pixels of
    class ``k``; ``image_counts[k]`` the number of pixels in the images where class
    ``k`` occurs at all (the denominator of median-frequency balancing).
    Pixels equal to ``ignore_index`` are skipped; any other label outside
    ``[0, num_classes)`` is an error that names the value.
    """
    counts = np.zeros(num_classes, dtype=np.int64)
    image_counts = np.zeros(num_classes, dtype=np.int64)
    for mask in _iter_masks(masks_or_dataset, num_classes):  # 1-D labels of one image
        labels = mask
        if ignore_index is not None:
            labels = labels[labels != ignore_index]
        bad = (labels < 0) | (labels >= num_classes)
        if bad.any():
            values = np.unique(labels[bad])[:10].tolist()
            raise ValueError(
                f"Mask values {values} are outside [0, {num_classes}) and are not "
                f"ignore_index={ignore_index}. Fix num_classes, or pass the void label as ignore_index."
            )
        per_image = np.bincount(labels, minlength=num_classes)
        counts += per_image
        image_counts += np.where(per_image > 0, labels.size, 0)
    return counts, image_counts


def compute_class_weights(masks_or_dataset, num_classes, method="inverse_frequency", ignore_index=None):
    """Per-class loss weights from label frequencies.

    Args:
        masks_or_dataset: integer masks as an array ``(N, H, W)`` / ``(N, H, W, 1)``
            (or one-hot ``(N, H, W, num_classes)``), a list of such arrays of any
            sizes, or any iterable / ``tf.data.Dataset`` yielding masks, ``(image, mask)``
            pairs or dicts with a ``"segmentation_masks"`` or ``"mask"`` key, batched or not.
        num_classes: number of classes ``K``.
        method: ``"inverse_frequency"``: ``w_k = N / (K * N_k)`` with ``N`` the number
            of valid pixels and ``N_k`` those of class ``k`` (a balanced dataset gives
            all ones). ``"median_frequency"`` (Eigen & Fergus 2015):
            ``f_k = N_k / (pixels of the images containing k)``, ``w_k = median(f) / f_k``,
            the median taken over the classes that occur.
        ignore_index: label that is not counted (e.g. 255).

    Returns:
        ``np.ndarray`` of shape ``(K,)``, float32. A class that never occurs gets
        weight 0 (it cannot contribute to a loss on this data); a warning names it.
    """
    if method not in METHODS:
        raise ValueError(f"method={method!r} is not supported; expected one of {METHODS}.")
    if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
        raise ValueError(f"num_classes must be a positive integer, got {num_classes!r}.")
    counts, image_counts = class_pixel_counts(masks_or_dataset, num_classes, ignore_index)
    total = counts.sum()
    if total == 0:
        raise ValueError("No valid pixels found: the masks are empty or every pixel equals ignore_index.")
    present = counts > 0
    weights = np.zeros(num_classes, dtype=np.float64)
    if method == "inverse_frequency":
        weights[present] = total / (num_classes * counts[present])
    else:
        freq = counts[present] / image_counts[present]
        weights[present] = np.median(freq) / freq
    if not present.all():
        import warnings

        warnings.warn(
            f"Classes {np.flatnonzero(~present).tolist()} never occur in the masks; their weight is 0.",
            stacklevel=2,
        )
    return weights.astype(np.float32)


def _iter_masks(source, num_classes):
    """Yield the labels of each image as a 1-D integer array from the inputs compute_class_weights accepts."""
    if hasattr(source, "as_numpy_iterator"):  # tf.data.Dataset
        source = source.as_numpy_iterator()
    if not isinstance(source, (list, tuple)) and hasattr(source, "__array__"):
        yield from _split_images(np.asarray(source), num_classes)
        return
    for item in source:
        if isinstance(item, dict):
            key = next((k for k in ("segmentation_masks", "mask", "masks") if k in item), None)
            if key is None:
                raise ValueError(
                    f"Dataset elements are dicts with keys {sorted(item)}; "
                    "expected a 'segmentation_masks' or 'mask' key."
                )
            item = item[key]
        elif isinstance(item, (tuple, list)) and len(item) >= 2:
            item = item[1]  # (image, mask[, sample_weight])
        yield from _split_images(np.asarray(item), num_classes)


def _split_images(mask, num_classes):
    """(H,W), (H,W,1), (N,H,W), (N,H,W,1) or one-hot (N,H,W,K) -> 1-D labels per image."""
    if mask.ndim == 4 and mask.shape[-1] == num_classes and num_classes > 1:
        void = mask.sum(axis=-1) == 0  # all-zero one-hot rows are void pixels
        for labels, image_void in zip(mask.argmax(axis=-1), void):
            yield labels[~image_void].astype(np.int64)
        return
    if mask.ndim == 4 or (mask.ndim == 3 and mask.shape[-1] == 1):
        if mask.shape[-1] != 1:
            raise ValueError(
                f"Masks of shape {mask.shape} are neither index masks (N, H, W[, 1]) "
                f"nor one-hot (N, H, W, {num_classes})."
            )
        mask = mask[..., 0]
    if mask.dtype.kind == "f":
        mask = np.rint(mask)
    mask = mask.astype(np.int64)
    if mask.ndim == 2:
        yield mask.reshape(-1)
    elif mask.ndim == 3:
        yield from mask.reshape(mask.shape[0], -1)
    else:
        raise ValueError(f"Expected masks of rank 2 to 4, got shape {mask.shape}.")
