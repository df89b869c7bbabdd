"""Confusion-matrix math for segmentation metrics: pure ``keras.ops``, jit-safe, float32.

Conventions (shared by every metric in :mod:`keras_seg.metrics`):

* A confusion matrix is ``(K, K)`` float32 with **rows = ground truth** and
  **columns = prediction**: ``cm[t, p]`` is the (weighted) number of valid pixels
  labelled ``t`` and predicted ``p``.
* Labels and predictions are interpreted by :mod:`keras_seg.utils.labels`
  (index or one-hot targets, ``ignore_index``, logits / probabilities / class ids).
* A pixel whose true id or predicted id lies outside ``[0, K)`` (and is not
  ``ignore_index``) is **dropped** (weight 0). It never raises inside a graph and
  never lands in another cell; ``keras_seg.data`` validates masks before training.
* Counting uses ``ops.segment_sum`` over ``truth * K + pred`` with a static
  ``num_segments = K * K``, which compiles under ``jax.jit``, ``tf.function`` and
  torch on every backend (``ops.bincount`` is avoided: its output length is
  data dependent on JAX).
* Precision: counts are float32 (``sample_weight`` may be fractional). Integer
  counts are exact up to ``2**24`` (16.7M) pixels per cell per batch; beyond that,
  and when a streaming metric accumulates many batches, each addition carries a
  relative rounding error of at most ``2**-24``, which is far below anything a
  ratio such as IoU can show.
* Per-class ratios whose denominator is zero (a class absent from both truth and
  prediction for IoU / Dice; never predicted for precision; never present for
  recall) are NaN; means are taken over the non-NaN entries and are 0 when every
  entry is NaN.
"""

from keras import ops

from keras_seg.utils import labels as label_utils


def _check_num_classes(num_classes):
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ValueError(
            f"num_classes must be a Python int >= 2 (binary segmentation counts background "
            f"and foreground as 2 classes); got {num_classes!r}."
        )


def infer_num_classes(y_true, y_pred):
    """``K`` from static shapes: prediction channels (2 for one channel), else one-hot labels, else None."""
    y_true, y_pred = ops.convert_to_tensor(y_true), ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) == 4 and not label_utils._is_integer(y_pred) and y_pred.shape[-1] is not None:
        return max(int(y_pred.shape[-1]), 2)
    y_true_shape = tuple(y_true.shape)
    if len(y_true_shape) == 4 and y_true_shape[-1] is not None and y_true_shape[-1] > 1:
        return int(y_true_shape[-1])
    return None


def class_ids(y_true, y_pred, num_classes, ignore_index=None, from_logits=True, threshold=0.5):
    """True ids, predicted ids (both ``(B,H,W)`` int32) and a float32 validity mask.

    ``valid`` is 0 for ignored / void pixels and for ids outside ``[0, num_classes)``.
    ``num_classes=None`` (only used by pixel accuracy) infers it from the shapes
    when it can (:func:`infer_num_classes`); if it cannot, only negative ids are dropped.
    """
    y_true = ops.convert_to_tensor(y_true)
    y_pred = ops.convert_to_tensor(y_pred)
    if num_classes is None:
        num_classes = infer_num_classes(y_true, y_pred)
        if num_classes is None:
            truth, valid = label_utils.true_class_ids(y_true, 0, ignore_index=ignore_index)
            pred = label_utils.predicted_class_ids(y_pred, from_logits=from_logits, threshold=threshold)
            _check_same_grid(truth, pred, y_true, y_pred)
            in_range = ops.logical_and(ops.greater_equal(truth, 0), ops.greater_equal(pred, 0))
            return truth, pred, valid * ops.cast(in_range, "float32")
    _check_num_classes(num_classes)
    y_pred = ops.convert_to_tensor(y_pred)
    if len(y_pred.shape) == 4 and not label_utils._is_integer(y_pred):
        channels = y_pred.shape[-1]
        if channels is None:
            raise ValueError(
                "The number of channels of y_pred (its last dimension) must be known statically; "
                "got shape (..., None)."
            )
        if channels == 1 and num_classes != 2:
            raise ValueError(
                f"A one-channel (sigmoid) y_pred describes 2 classes, but num_classes={num_classes}. "
                "Use num_classes=2, or predict one channel per class."
            )
        if channels > 1 and channels != num_classes:
            raise ValueError(
                f"y_pred has {channels} channels but num_classes={num_classes}. "
                "Pass num_classes equal to the model's number of output channels."
            )
    truth, valid = label_utils.true_class_ids(y_true, num_classes, ignore_index=ignore_index)
    pred = label_utils.predicted_class_ids(y_pred, from_logits=from_logits, threshold=threshold)
    _check_same_grid(truth, pred, y_true, y_pred)
    in_range = ops.logical_and(
        ops.logical_and(ops.greater_equal(truth, 0), ops.less(truth, num_classes)),
        ops.logical_and(ops.greater_equal(pred, 0), ops.less(pred, num_classes)),
    )
    valid = valid * ops.cast(in_range, "float32")
    return truth, pred, valid


def _check_same_grid(truth, pred, y_true, y_pred):
    label_utils.check_same_grid(y_true, pred, truth_shape=truth.shape)


def confusion_matrix_from_ids(truth, pred, weights, num_classes):
    """``(K, K)`` float32 matrix from int ids and float weights of the same shape.

    Ids outside ``[0, K)`` must carry weight 0; they are clipped so the segment
    index is always in range.
    """
    truth = ops.clip(ops.reshape(ops.cast(truth, "int32"), (-1,)), 0, num_classes - 1)
    pred = ops.clip(ops.reshape(ops.cast(pred, "int32"), (-1,)), 0, num_classes - 1)
    weights = ops.reshape(ops.cast(weights, "float32"), (-1,))
    flat = segment_sum_static(weights, truth * num_classes + pred, num_classes * num_classes)
    return ops.reshape(flat, (num_classes, num_classes))


def segment_sum_static(data, segment_ids, num_segments):
    """``ops.segment_sum`` with a static number of segments (jit-safe)."""
    return ops.segment_sum(data, segment_ids, num_segments=num_segments)


def batch_confusion_matrix(
    y_true,
    y_pred,
    num_classes,
    ignore_index=None,
    sample_weight=None,
    from_logits=True,
    threshold=0.5,
):
    """Confusion matrix ``(K, K)`` (rows truth, cols prediction) of one batch, float32.

    Args:
        y_true: ``(B,H,W)`` / ``(B,H,W,1)`` class ids or ``(B,H,W,K)`` one-hot.
        y_pred: ``(B,H,W,K)`` logits or probabilities, ``(B,H,W,1)`` binary
            logits / probabilities, or ``(B,H,W)`` integer class ids.
        num_classes: ``K``.
        ignore_index: label id excluded from the count.
        sample_weight: ``None``, scalar, ``(B,)``, ``(B,H,W)`` or ``(B,H,W,1)``.
        from_logits: only matters for one-channel predictions (sigmoid first).
        threshold: decision threshold on the probability for one-channel predictions.
    """
    truth, pred, valid = class_ids(
        y_true, y_pred, num_classes, ignore_index=ignore_index, from_logits=from_logits, threshold=threshold
    )
    weights = label_utils.pixel_weights(sample_weight, valid)
    return confusion_matrix_from_ids(truth, pred, weights, num_classes)


def batch_correct_and_total(
    y_true,
    y_pred,
    num_classes=None,
    ignore_index=None,
    sample_weight=None,
    from_logits=True,
    threshold=0.5,
):
    """Weighted count of correctly classified valid pixels, and of valid pixels (float32 scalars)."""
    truth, pred, valid = class_ids(
        y_true, y_pred, num_classes, ignore_index=ignore_index, from_logits=from_logits, threshold=threshold
    )
    weights = label_utils.pixel_weights(sample_weight, valid)
    correct = ops.sum(weights * ops.cast(ops.equal(truth, pred), "float32"))
    return correct, ops.sum(weights)


# ----------------------------------------------------------------------------- per-class values


def _parts(cm):
    cm = ops.cast(ops.convert_to_tensor(cm), "float32")
    tp = ops.diagonal(cm)
    support = ops.sum(cm, axis=1)  # truth count per class
    predicted = ops.sum(cm, axis=0)  # prediction count per class
    return tp, support, predicted


def _ratio(num, den):
    """num / den, NaN where den == 0 (no division by zero is ever evaluated)."""
    safe = ops.where(den > 0, den, ops.ones_like(den))
    return ops.where(den > 0, num / safe, ops.full_like(den, float("nan")))


def iou_per_class(cm):
    """IoU_k = TP / (TP + FP + FN); NaN where the union is empty."""
    tp, support, predicted = _parts(cm)
    return _ratio(tp, support + predicted - tp)


def dice_per_class(cm):
    """Dice_k (F1) = 2 TP / (2 TP + FP + FN) = 2 TP / (support + predicted); NaN if both are 0."""
    tp, support, predicted = _parts(cm)
    return _ratio(2.0 * tp, support + predicted)


def precision_per_class(cm):
    """Precision_k = TP / predicted_k; NaN where class k is never predicted."""
    tp, _, predicted = _parts(cm)
    return _ratio(tp, predicted)


def recall_per_class(cm):
    """Recall_k = TP / support_k; NaN where class k never occurs in the truth."""
    tp, support, _ = _parts(cm)
    return _ratio(tp, support)


def support_per_class(cm):
    """Number of (weighted) valid truth pixels per class: the row sums."""
    return _parts(cm)[1]


def nanmean(values):
    """Mean over non-NaN entries; 0 when every entry is NaN."""
    values = ops.cast(values, "float32")
    present = ops.logical_not(ops.isnan(values))
    total = ops.sum(ops.where(present, values, ops.zeros_like(values)))
    count = ops.sum(ops.cast(present, "float32"))
    return ops.where(count > 0, total / ops.maximum(count, 1.0), ops.zeros_like(total))


def mean_iou(cm):
    """Mean IoU over classes with a non-empty union (0 when there is none)."""
    return nanmean(iou_per_class(cm))


def mean_dice(cm):
    """Mean Dice over classes present in truth or prediction (0 when there is none)."""
    return nanmean(dice_per_class(cm))


def pixel_accuracy(cm):
    """Correct valid pixels / valid pixels (0 when there is no valid pixel)."""
    cm = ops.cast(ops.convert_to_tensor(cm), "float32")
    total = ops.sum(cm)
    correct = ops.sum(ops.diagonal(cm))
    return ops.where(total > 0, correct / ops.where(total > 0, total, ops.ones_like(total)), ops.zeros_like(total))


NORMALIZATIONS = ("true", "pred", "all", None)


def normalize_confusion_matrix(cm, normalize=None):
    """Normalise rows (``"true"``), columns (``"pred"``) or the whole matrix (``"all"``).

    Rows / columns that sum to zero stay zero. ``None`` returns the counts.
    """
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize={normalize!r} is not supported; expected one of {NORMALIZATIONS}.")
    cm = ops.cast(ops.convert_to_tensor(cm), "float32")
    if normalize is None:
        return cm
    if normalize == "true":
        den = ops.sum(cm, axis=1, keepdims=True)
    elif normalize == "pred":
        den = ops.sum(cm, axis=0, keepdims=True)
    else:
        den = ops.sum(cm)
    return ops.where(den > 0, cm / ops.where(den > 0, den, ops.ones_like(den)), ops.zeros_like(cm))
