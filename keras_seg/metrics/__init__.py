"""Segmentation metrics: streaming confusion-matrix metrics and a text report."""

from keras_seg.metrics import confusion
from keras_seg.metrics.metrics import (
    ConfusionMatrix,
    ConfusionMatrixMetric,
    DiceScore,
    IoU,
    MeanIoU,
    PixelAccuracy,
)
from keras_seg.metrics.report import SegmentationReport, segmentation_report

__all__ = [
    "ConfusionMatrix",
    "ConfusionMatrixMetric",
    "DiceScore",
    "IoU",
    "MeanIoU",
    "PixelAccuracy",
    "SegmentationReport",
    "confusion",
    "segmentation_report",
]
