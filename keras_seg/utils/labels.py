"""Label, prediction and weight conventions shared by every loss and metric.

One place decides what a label tensor means, so that a loss and a metric never
disagree about which pixels count:

* ``y_pred`` is ``(B, H, W, C)``: logits or probabilities with ``C`` channels.
* ``y_true`` is either an *index mask* ``(B, H, W)`` or ``(B, H, W, 1)`` holding
  class ids (any int or float dtype), or a *dense* target ``(B, H, W, C)``
  (one-hot for ``"multiclass"``, multi-hot for ``"multilabel"``) with the same
  ``C`` as ``y_pred``.
* ``mode`` is ``"multiclass"`` (softmax over ``C >= 2`` channels), ``"binary"``
  (``C == 1``, sigmoid) or ``"multilabel"`` (``C`` independent sigmoids). When
  ``mode=None`` it is inferred: ``C == 1`` means binary, otherwise multiclass
  (multilabel must be asked for, since a multi-hot target looks like a one-hot one).
* Valid pixels: with an index mask, a pixel whose label equals ``ignore_index``
  is void. With a dense multiclass target, a pixel whose one-hot row is all
  zeros is void (that is how a one-hot encoder writes an ignored label).
  Index labels outside ``[0, C)`` (``[0, 1]`` for binary) that are not
  ``ignore_index`` are void too, in losses as in metrics, on every backend (no
  error inside the graph, and they never count as another class);
  keras_seg.data checks masks when a dataset is built and ``keras_seg.training``
  checks the first batch, so this does not happen silently.
* Float index masks: a value within 1e-3 of a whole number is that class (254.9999
  after a resize is 255); any other value (0.5, say: a probability map or a mask resized
  bilinearly) is void, never rounded into a class. In ``"binary"`` mode float labels are
  soft targets in [0, 1] and are kept as given.
* Labels and predictions must cover the same pixels: a label ``(B, H, W)`` against
  predictions ``(B, H', W', C)`` is a ValueError naming both shapes (when they are known
  when the loss or metric is traced).

Everything here is ``keras.ops`` only, jit-safe, and returns float32.
"""

import keras
from keras import ops

MODES = ("multiclass", "binary", "multilabel")


def resolve_mode(mode, num_channels):
    """Return the loss/metric mode for a prediction with ``num_channels`` channels."""
    if num_channels is None:
        raise ValueError(
            "The number of channels of y_pred (its last dimension) must be known "
            "statically; got shape (..., None). Build the model with a fixed "
            "num_classes."
        )
    if mode is None:
        return "binary" if num_channels == 1 else "multiclass"
    if mode not in MODES:
        raise ValueError(f"mode={mode!r} is not supported; expected one of {MODES} or None (infer).")
    if mode == "binary" and num_channels != 1:
        raise ValueError(
            f"mode='binary' expects y_pred with 1 channel, got {num_channels}. "
            "Use mode='multiclass' (softmax) or mode='multilabel' (one sigmoid per channel)."
        )
    if mode == "multiclass" and num_channels < 2:
        raise ValueError(
            "mode='multiclass' expects y_pred with at least 2 channels, got 1. "
            "Use mode='binary' for a single sigmoid channel."
        )
    return mode


def is_dense(y_true, num_channels):
    """True when ``y_true`` is a dense (one-hot / multi-hot) target of ``num_channels``."""
    return len(y_true.shape) == 4 and num_channels > 1 and y_true.shape[-1] == num_channels


def index_labels(y_true):
    """``(B,H,W)`` or ``(B,H,W,1)`` class ids -> ``(B,H,W)`` int32."""
    rank = len(y_true.shape)
    if rank == 4:
        if y_true.shape[-1] != 1:
            raise ValueError(
                f"An index mask must have shape (B, H, W) or (B, H, W, 1); got {tuple(y_true.shape)}. "
                "A (B, H, W, K) target must have K equal to the number of predicted channels."
            )
        y_true = ops.squeeze(y_true, axis=-1)
    elif rank != 3:
        raise ValueError(
            f"Labels must be (B, H, W), (B, H, W, 1) or (B, H, W, K); got rank {rank} "
            f"with shape {tuple(y_true.shape)}."
        )
    # Round before casting so float masks (e.g. 254.9999 after resizing) map to the intended id.
    if not _is_integer(y_true):
        y_true = ops.round(y_true)
    return ops.cast(y_true, "int32")


WHOLE_TOLERANCE = 1e-3


def whole_numbers(y_true):
    """1.0 where a float index mask ``(B, H, W)`` / ``(B, H, W, 1)`` holds a whole number (within 1e-3), else 0.0;
    ``None`` for an integer mask (every value is whole)."""
    y_true = ops.convert_to_tensor(y_true)
    if _is_integer(y_true):
        return None
    if len(y_true.shape) == 4:
        y_true = ops.squeeze(y_true, axis=-1)
    y_true = ops.cast(y_true, "float32")
    return ops.cast(ops.abs(y_true - ops.round(y_true)) <= WHOLE_TOLERANCE, "float32")


def check_same_grid(y_true, y_pred, truth_shape=None):
    """Raise ``ValueError`` naming both shapes when labels and predictions cover different (B, H, W) grids.

    Only statically known sizes are compared (nothing is checked inside a compiled graph).
    ``truth_shape``: the labels' ``(B, H, W)`` when ``y_true`` is not laid out that way.
    """
    t_shape = tuple(truth_shape if truth_shape is not None else y_true.shape)[:3]
    p_shape = tuple(y_pred.shape)[:3]
    if len(t_shape) != len(p_shape) or any(a is not None and b is not None and a != b for a, b in zip(t_shape, p_shape)):
        raise ValueError(
            f"Labels and predictions describe different pixel grids: y_true has shape {tuple(y_true.shape)} and y_pred "
            f"{tuple(y_pred.shape)}, so their (batch, height, width) {t_shape} and {p_shape} differ. Resize the "
            "masks to the model's output (nearest-neighbour), or the predictions to the masks."
        )


def one_hot(labels, num_classes):
    """One-hot by comparison: identical on every backend, all-zero rows for out-of-range ids."""
    classes = ops.arange(num_classes, dtype="int32")
    return ops.cast(ops.equal(ops.expand_dims(labels, -1), classes), "float32")


def prepare_targets(y_true, num_channels, mode, ignore_index=None):
    """Dense float32 targets ``(B,H,W,C)`` and a float32 validity mask ``(B,H,W)``.

    Void pixels (see the module docstring) have an all-zero target row and
    ``valid == 0``.
    """
    y_true = ops.convert_to_tensor(y_true)
    if is_dense(y_true, num_channels):
        targets = ops.cast(y_true, "float32")
        if mode == "multiclass":
            valid = ops.cast(ops.sum(targets, axis=-1) > 0, "float32")
        else:
            valid = ops.ones_like(targets[..., 0])
        return targets, valid
    if mode == "multilabel":
        raise ValueError(
            f"mode='multilabel' needs multi-hot targets of shape (B, H, W, {num_channels}); "
            f"got {tuple(y_true.shape)}. Pass one channel per class, or use mode='multiclass'."
        )
    labels = index_labels(y_true)
    if ignore_index is None:
        valid = ops.ones(ops.shape(labels), dtype="float32")
    else:
        valid = ops.cast(ops.not_equal(labels, ignore_index), "float32")
    if mode != "binary" and not _is_integer(y_true):
        valid = valid * whole_numbers(y_true)
    if mode == "binary":
        soft = ops.convert_to_tensor(y_true)
        if len(soft.shape) == 4:
            soft = ops.squeeze(soft, axis=-1)
        # Binary targets may be soft (floats in [0, 1]); keep them as given.
        if _is_integer(soft):
            valid = valid * _in_range(labels, 2)
            targets = ops.cast(labels, "float32")
        else:
            targets = ops.cast(soft, "float32")
        targets = ops.expand_dims(targets * valid, -1)
        return targets, valid
    valid = valid * _in_range(labels, num_channels)
    return one_hot(labels, num_channels) * ops.expand_dims(valid, -1), valid


def _in_range(labels, num_classes):
    """1.0 where ``0 <= label < num_classes``, else 0.0 (float32)."""
    return ops.cast(ops.logical_and(labels >= 0, labels < num_classes), "float32")


def true_class_ids(y_true, num_classes, ignore_index=None):
    """Ground truth as ``(B,H,W)`` int32 class ids plus a float32 validity mask.

    Accepts index masks, and one-hot targets ``(B,H,W,num_classes)`` (all-zero rows void).
    """
    y_true = ops.convert_to_tensor(y_true)
    if is_dense(y_true, num_classes):
        valid = ops.cast(ops.sum(ops.cast(y_true, "float32"), axis=-1) > 0, "float32")
        return ops.cast(ops.argmax(y_true, axis=-1), "int32"), valid
    labels = index_labels(y_true)
    if ignore_index is None:
        valid = ops.ones(ops.shape(labels), dtype="float32")
    else:
        valid = ops.cast(ops.not_equal(labels, ignore_index), "float32")
    if not _is_integer(y_true):
        valid = valid * whole_numbers(y_true)
    return labels, valid


def predicted_class_ids(y_pred, from_logits=True, threshold=0.5):
    """Predictions as ``(B,H,W)`` int32 class ids.

    * integer ``(B,H,W)`` / ``(B,H,W,1)``: already class ids;
    * one channel: logits (``from_logits=True``) go through a sigmoid, then ``> threshold``;
    * several channels: argmax (the same for logits and probabilities).
    """
    y_pred = ops.convert_to_tensor(y_pred)
    rank = len(y_pred.shape)
    if _is_integer(y_pred) or rank == 3:
        return index_labels(y_pred)
    if rank != 4:
        raise ValueError(
            f"Predictions must be (B, H, W, C) scores or (B, H, W) class ids; got shape {tuple(y_pred.shape)}."
        )
    if y_pred.shape[-1] == 1:
        scores = ops.cast(y_pred[..., 0], "float32")
        if from_logits:
            scores = ops.sigmoid(scores)
        return ops.cast(scores > threshold, "int32")
    return ops.cast(ops.argmax(y_pred, axis=-1), "int32")


def pixel_weights(sample_weight, valid):
    """Broadcast a ``sample_weight`` to the ``(B,H,W)`` pixel grid and fold in ``valid``.

    Accepts ``None``, a scalar, ``(B,)``, ``(B,1)``, ``(B,H,W)`` or ``(B,H,W,1)``.
    """
    if sample_weight is None:
        return valid
    w = ops.cast(ops.convert_to_tensor(sample_weight), "float32")
    rank = len(w.shape)
    if rank == 4:
        if w.shape[-1] != 1:
            raise ValueError(
                f"A pixel sample_weight must be (B, H, W) or (B, H, W, 1); got {tuple(w.shape)}."
            )
        w = ops.squeeze(w, axis=-1)
    elif rank == 1 or (rank == 2 and w.shape[-1] == 1):
        w = ops.reshape(w, (-1, 1, 1))
    elif rank not in (0, 3):
        raise ValueError(
            f"sample_weight must be a scalar, (B,), (B, H, W) or (B, H, W, 1); got shape {tuple(w.shape)}."
        )
    return ops.broadcast_to(w, ops.shape(valid)) * valid


def _is_integer(x):
    dtype = keras.backend.standardize_dtype(x.dtype)
    return "int" in dtype or dtype == "bool"
