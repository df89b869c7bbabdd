"""A per-class text report from a confusion matrix (host-side, for people)."""

import dataclasses

import keras
import numpy as np

from keras_seg.metrics import confusion


@dataclasses.dataclass
class SegmentationReport:
    """Result of :func:`segmentation_report`.

    Attributes:
        per_class: ``{class_name: {"iou", "dice", "precision", "recall", "support"}}``
            (float values; NaN where undefined, see :mod:`keras_seg.metrics.confusion`).
        mean_iou: mean IoU over classes present in truth or prediction.
        mean_dice: mean Dice over the same classes.
        pixel_accuracy: correct valid pixels / valid pixels.
        confusion_matrix: the ``(K, K)`` float64 numpy counts (rows truth, cols prediction).
        text: the printable table (also ``str(report)``).
    """

    per_class: dict
    mean_iou: float
    mean_dice: float
    pixel_accuracy: float
    confusion_matrix: np.ndarray
    text: str

    def to_dict(self):
        """Plain-Python dict (JSON-serialisable apart from NaN)."""
        return {
            "per_class": {name: dict(values) for name, values in self.per_class.items()},
            "mean_iou": self.mean_iou,
            "mean_dice": self.mean_dice,
            "pixel_accuracy": self.pixel_accuracy,
        }

    def __str__(self):
        return self.text


def _as_matrix(confusion_matrix):
    if hasattr(confusion_matrix, "total_cm") and hasattr(confusion_matrix, "confusion_matrix"):
        confusion_matrix = confusion_matrix.confusion_matrix()  # a keras_seg metric: raw counts
    cm = np.asarray(keras.ops.convert_to_numpy(confusion_matrix), dtype=np.float64)
    if cm.ndim != 2 or cm.shape[0] != cm.shape[1] or cm.shape[0] < 1:
        raise ValueError(
            f"segmentation_report expects a square (K, K) confusion matrix (rows truth, cols prediction) "
            f"or a keras_seg MeanIoU/ConfusionMatrix metric; got shape {cm.shape}."
        )
    return cm


def segmentation_report(confusion_matrix, class_names=None, digits=4):
    """Per-class IoU, Dice, precision, recall and truth pixel count, plus the means.

    Args:
        confusion_matrix: ``(K, K)`` counts (numpy array or tensor, rows = truth,
            cols = prediction), or a keras_seg metric object such as
            :class:`~keras_seg.metrics.MeanIoU` or
            :class:`~keras_seg.metrics.ConfusionMatrix` (its accumulated counts are used).
        class_names: optional ``K`` names; defaults to ``"0" .. "K-1"``.
        digits: decimals shown in the text table.

    Returns:
        A :class:`SegmentationReport`; ``print(report)`` shows the table.
    """
    cm = _as_matrix(confusion_matrix)
    k = cm.shape[0]
    if class_names is None:
        class_names = [str(i) for i in range(k)]
    class_names = [str(n) for n in class_names]
    if len(class_names) != k:
        raise ValueError(f"class_names has {len(class_names)} names but the confusion matrix has {k} classes.")
    if len(set(class_names)) != k:
        raise ValueError(f"class_names must be unique; got {class_names}.")

    cm32 = cm.astype("float32")
    columns = {
        "iou": confusion.iou_per_class(cm32),
        "dice": confusion.dice_per_class(cm32),
        "precision": confusion.precision_per_class(cm32),
        "recall": confusion.recall_per_class(cm32),
    }
    columns = {key: np.asarray(keras.ops.convert_to_numpy(v), dtype=np.float64) for key, v in columns.items()}
    support = cm.sum(axis=1)
    per_class = {}
    for i, name in enumerate(class_names):
        row = {key: float(columns[key][i]) for key in columns}
        row["support"] = float(support[i])
        per_class[name] = row
    mean_iou = float(keras.ops.convert_to_numpy(confusion.mean_iou(cm32)))
    mean_dice = float(keras.ops.convert_to_numpy(confusion.mean_dice(cm32)))
    accuracy = float(keras.ops.convert_to_numpy(confusion.pixel_accuracy(cm32)))

    def fmt(x):
        return "-" if np.isnan(x) else f"{x:.{digits}f}"

    def fmt_count(x):
        return f"{int(x)}" if float(x).is_integer() else f"{x:.{digits}f}"

    header = ["class", "IoU", "Dice", "precision", "recall", "pixels"]
    rows = [
        [name, fmt(r["iou"]), fmt(r["dice"]), fmt(r["precision"]), fmt(r["recall"]), fmt_count(r["support"])]
        for name, r in per_class.items()
    ]
    widths = [max(len(header[j]), *(len(r[j]) for r in rows)) for j in range(len(header))]

    def line(cells):
        return "  ".join(
            c.ljust(widths[j]) if j == 0 else c.rjust(widths[j]) for j, c in enumerate(cells)
        ).rstrip()

    lines = [line(header), line(["-" * w for w in widths])]
    lines += [line(r) for r in rows]
    lines += [
        "",
        f"mean IoU        {fmt(mean_iou)}",
        f"mean Dice       {fmt(mean_dice)}",
        f"pixel accuracy  {fmt(accuracy)}",
        "(- : undefined, class absent from truth and/or prediction; left out of the means)",
    ]
    return SegmentationReport(
        per_class=per_class,
        mean_iou=mean_iou,
        mean_dice=mean_dice,
        pixel_accuracy=accuracy,
        confusion_matrix=cm,
        text="\n".join(lines),
    )
