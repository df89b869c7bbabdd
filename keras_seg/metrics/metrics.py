"""Streaming segmentation metrics built on one accumulated confusion matrix.

Every class here is a thin subclass of :class:`ConfusionMatrixMetric`, which owns
the ``(K, K)`` float32 variable (rows = truth, cols = prediction, created with
``aggregation="sum"`` so data-parallel training sums it across replicas), the
update and the reset. See :mod:`keras_seg.metrics.confusion` for the conventions
(absent classes, out-of-range labels, float32 precision).

The metrics accept what the model outputs: ``(B,H,W,K)`` logits or probabilities
(argmax), ``(B,H,W,1)`` binary logits (``from_logits=True``: sigmoid then
``> threshold``) or probabilities (``from_logits=False``), or integer class ids
``(B,H,W)``. Labels are index masks ``(B,H,W)`` / ``(B,H,W,1)`` or one-hot
``(B,H,W,K)``. All computation is float32, also under mixed precision.
"""

import keras
from keras import ops

from keras_seg.metrics import confusion

_register = keras.saving.register_keras_serializable(package="keras_seg")


class SegmentationMetric(keras.metrics.Metric):
    """Base class: one float32 state variable, summed batch after batch.

    Holds the constructor arguments shared by every metric, the variable
    (``aggregation="sum"``), ``update_state`` and ``reset_state``. A subclass
    says what the state is (:meth:`_state_shape`, :meth:`_batch_state`) and how
    to read it (:meth:`result`). ``from_logits`` and ``threshold`` only matter
    for one-channel (binary) predictions.
    """

    _requires_num_classes = True

    def __init__(
        self,
        num_classes,
        ignore_index=None,
        from_logits=True,
        threshold=0.5,
        name=None,
        dtype=None,
    ):
        super().__init__(name=name, dtype=dtype)
        if num_classes is not None or self._requires_num_classes:
            confusion._check_num_classes(num_classes)
        if ignore_index is not None and (not isinstance(ignore_index, int) or isinstance(ignore_index, bool)):
            raise ValueError(f"ignore_index must be an int or None; got {ignore_index!r}.")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.from_logits = bool(from_logits)
        self.threshold = float(threshold)
        self._dtype_arg = dtype
        # float32 whatever the dtype policy: counts must never be float16.
        self._state = self.add_variable(
            shape=self._state_shape(),
            initializer="zeros",
            dtype="float32",
            aggregation="sum",
            name=self._state_name,
        )

    _state_name = "state"

    def _state_shape(self):
        raise NotImplementedError

    def _batch_state(self, y_true, y_pred, sample_weight):
        raise NotImplementedError

    def update_state(self, y_true, y_pred, sample_weight=None):
        self._state.assign(self._state + self._batch_state(y_true, y_pred, sample_weight))

    def reset_state(self):
        self._state.assign(ops.zeros(self._state_shape(), dtype="float32"))

    def get_config(self):
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "from_logits": self.from_logits,
            "threshold": self.threshold,
            "name": self.name,
            "dtype": self._dtype_arg,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class ConfusionMatrixMetric(SegmentationMetric):
    """A metric whose state is the ``(K, K)`` confusion matrix (rows truth, cols prediction)."""

    _state_name = "total_confusion_matrix"

    def _state_shape(self):
        return (self.num_classes, self.num_classes)

    def _batch_state(self, y_true, y_pred, sample_weight):
        return confusion.batch_confusion_matrix(
            y_true,
            y_pred,
            self.num_classes,
            ignore_index=self.ignore_index,
            sample_weight=sample_weight,
            from_logits=self.from_logits,
            threshold=self.threshold,
        )

    @property
    def total_cm(self):
        """The accumulated confusion-matrix variable."""
        return self._state

    def confusion_matrix(self):
        """The accumulated ``(K, K)`` float32 counts (rows truth, cols prediction)."""
        return ops.copy(self._state)

    def per_class_result(self):
        """Per-class IoU ``(K,)``; NaN for classes absent from both truth and prediction."""
        return confusion.iou_per_class(self._state)


@_register
class MeanIoU(ConfusionMatrixMetric):
    """Mean intersection-over-union over the classes present in truth or prediction.

    A class absent from both (empty union) is left out of the mean; if no class is
    present the result is 0. :meth:`per_class_result` gives the ``(K,)`` IoUs with
    NaN for absent classes, :meth:`confusion_matrix` the accumulated counts.

    Example:
        >>> model.compile(..., metrics=[keras_seg.metrics.MeanIoU(21, ignore_index=255)])
    """

    def __init__(self, num_classes, ignore_index=None, from_logits=True, threshold=0.5, name="mean_iou", dtype=None):
        super().__init__(num_classes, ignore_index, from_logits, threshold, name=name, dtype=dtype)

    def result(self):
        return confusion.mean_iou(self._state)


@_register
class IoU(ConfusionMatrixMetric):
    """IoU of one class (``class_id``), logged as its own metric (default name ``iou_{k}``).

    The result is NaN while the class is absent from both truth and prediction
    (undefined, neither 0 nor 1), matching ``MeanIoU.per_class_result()``.
    """

    def __init__(
        self, num_classes, class_id, ignore_index=None, from_logits=True, threshold=0.5, name=None, dtype=None
    ):
        if not isinstance(class_id, int) or isinstance(class_id, bool) or not 0 <= class_id < num_classes:
            raise ValueError(f"class_id must be an int in [0, {num_classes}); got {class_id!r}.")
        self.class_id = class_id
        super().__init__(
            num_classes, ignore_index, from_logits, threshold, name=name or f"iou_{class_id}", dtype=dtype
        )

    def result(self):
        return confusion.iou_per_class(self._state)[self.class_id]

    def get_config(self):
        return {**super().get_config(), "class_id": self.class_id}


@_register
class DiceScore(ConfusionMatrixMetric):
    """Mean Dice (F1) over the classes present in truth or prediction (same rule as MeanIoU).

    :meth:`per_class_result` returns the ``(K,)`` Dice scores, NaN for absent classes.
    """

    def __init__(self, num_classes, ignore_index=None, from_logits=True, threshold=0.5, name="dice", dtype=None):
        super().__init__(num_classes, ignore_index, from_logits, threshold, name=name, dtype=dtype)

    def per_class_result(self):
        return confusion.dice_per_class(self._state)

    def result(self):
        return confusion.mean_dice(self._state)


@_register
class PixelAccuracy(SegmentationMetric):
    """Correctly classified valid pixels / valid pixels (0 before any valid pixel).

    ``num_classes`` is optional here: when ``None`` it is read from the number of
    prediction channels (2 for a one-channel binary output) or, for integer
    predictions, from a one-hot ``y_true``; with integer predictions and index
    labels it stays unknown and only negative ids are dropped as out of range.
    The state is two float32 numbers, ``[correct, total]``.
    """

    _requires_num_classes = False
    _state_name = "correct_and_total"

    def __init__(
        self, num_classes=None, ignore_index=None, from_logits=True, threshold=0.5, name="pixel_accuracy", dtype=None
    ):
        super().__init__(num_classes, ignore_index, from_logits, threshold, name=name, dtype=dtype)

    def _state_shape(self):
        return (2,)

    def _batch_state(self, y_true, y_pred, sample_weight):
        correct, total = confusion.batch_correct_and_total(
            y_true,
            y_pred,
            self.num_classes,
            ignore_index=self.ignore_index,
            sample_weight=sample_weight,
            from_logits=self.from_logits,
            threshold=self.threshold,
        )
        return ops.stack([correct, total])

    def result(self):
        correct, total = self._state[0], self._state[1]
        return ops.where(total > 0, correct / ops.where(total > 0, total, ops.ones_like(total)), ops.zeros_like(total))


@_register
class ConfusionMatrix(ConfusionMatrixMetric):
    """The accumulated ``(K, K)`` confusion matrix (rows truth, cols prediction).

    ``normalize``: ``None`` (weighted pixel counts), ``"true"`` (each row sums to 1:
    recall on the diagonal), ``"pred"`` (each column sums to 1: precision on the
    diagonal) or ``"all"``. Empty rows / columns stay 0.

    Keras' progress bar prints the mean of a non-scalar result; read the matrix from
    ``evaluate(..., return_dict=True)``, the metric itself, or pass the metric to
    :func:`keras_seg.metrics.segmentation_report`.
    """

    def __init__(
        self,
        num_classes,
        ignore_index=None,
        from_logits=True,
        threshold=0.5,
        normalize=None,
        name="confusion_matrix",
        dtype=None,
    ):
        if normalize not in confusion.NORMALIZATIONS:
            raise ValueError(
                f"normalize={normalize!r} is not supported; expected one of {confusion.NORMALIZATIONS}."
            )
        self.normalize = normalize
        super().__init__(num_classes, ignore_index, from_logits, threshold, name=name, dtype=dtype)

    def result(self):
        return confusion.normalize_confusion_matrix(self._state, self.normalize)

    def get_config(self):
        return {**super().get_config(), "normalize": self.normalize}
