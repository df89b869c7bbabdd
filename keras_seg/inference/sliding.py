"""Sliding-window inference: logits of a large image from overlapping windows, blended.

Windows of ``window`` pixels are placed every ``stride`` pixels (the last one flush with
the image's edge), batched ``batch_size`` at a time through the model, and their logits
accumulated with a per-pixel weight: ``uniform`` (plain averaging) or ``gaussian``
(centre pixels count more, as nnU-Net does; sigma = window / 8). Memory beyond the model's
own is the image, one ``(H, W, K)`` float32 sum and one ``(H, W)`` weight map.
When one window covers the whole image, the result is plain prediction, exactly.
"""

import numpy as np

from keras_seg.inference.predict import predict_logits
from keras_seg.utils import checks

BLENDS = ("uniform", "gaussian")


def window_starts(length, window, stride):
    """Start offsets covering ``[0, length)`` with windows of ``window``, every ``stride``, the last flush."""
    if window >= length:
        return [0]
    starts = list(range(0, length - window + 1, stride))
    if starts[-1] != length - window:
        starts.append(length - window)
    return starts


def blend_weights(window, blend):
    """``(h, w)`` float32 weights of one window's pixels."""
    if blend == "uniform":
        return np.ones(window, dtype="float32")
    axes = []
    for size in window:
        centre, sigma = (size - 1) / 2.0, max(size / 8.0, 1e-3)
        axes.append(np.exp(-0.5 * ((np.arange(size) - centre) / sigma) ** 2))
    weights = np.outer(axes[0], axes[1])
    return np.maximum(weights / weights.max(), 1e-3).astype("float32")  # edges keep a little weight


def sliding_window_logits(model, image, window=512, overlap=0.5, stride=None, blend="gaussian", batch_size=4,
                          pad_to="auto"):  # fmt: skip
    """Logits ``(H, W, K)`` of one image ``(H, W, C)`` by sliding windows.

    Args:
        window: window size, an int or ``(height, width)``; clipped to the image's size.
        overlap: fraction of a window shared with the next, in ``[0, 1)`` (ignored if ``stride`` given).
        stride: step between windows in pixels, an int or ``(height, width)``.
        blend: ``"uniform"`` or ``"gaussian"``.
        batch_size: windows per model call; it bounds the model's activation memory.
        pad_to: see :func:`keras_seg.inference.predict_logits` (applied to each window).
    """
    image = np.asarray(image, dtype="float32")
    if image.ndim != 3:
        raise ValueError(f"sliding_window_logits takes one image (H, W, C); got shape {image.shape}.")
    win, _ = check_sliding_window(window, overlap, stride, blend, batch_size)
    height, width = image.shape[:2]
    win = (min(win[0], height), min(win[1], width))
    if win == (height, width):  # one window: exactly plain prediction
        return predict_logits(model, image[None], pad_to)[0]
    if stride is None:
        step = tuple(max(1, int(round(w * (1.0 - overlap)))) for w in win)
    else:
        step = checks.image_size(stride, "stride")
    boxes = [(y, x) for y in window_starts(height, win[0], step[0]) for x in window_starts(width, win[1], step[1])]
    weights = blend_weights(win, blend)
    total, norm = None, np.zeros((height, width), dtype="float32")
    for i in range(0, len(boxes), batch_size):
        chunk = boxes[i : i + batch_size]
        crops = np.stack([image[y : y + win[0], x : x + win[1]] for y, x in chunk])
        logits = predict_logits(model, crops, pad_to)
        if total is None:
            total = np.zeros((height, width, logits.shape[-1]), dtype="float32")
        for (y, x), part in zip(chunk, logits):
            total[y : y + win[0], x : x + win[1]] += part * weights[..., None]
            norm[y : y + win[0], x : x + win[1]] += weights
    return total / norm[..., None]


def check_sliding_window(window, overlap, stride, blend, batch_size):
    """``(window, stride)`` as ``(h, w)`` tuples (stride None when not given); ValueError naming a bad value."""
    if blend not in BLENDS:
        raise ValueError(f"blend={blend!r} is not supported; expected one of {BLENDS}.")
    if isinstance(overlap, bool) or not isinstance(overlap, (int, float)) or not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap={overlap!r} must be in [0, 1): the share of a window its neighbour repeats.")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size={batch_size!r} must be a positive int.")
    return checks.image_size(window, "window"), checks.image_size(stride, "stride")


def sliding_window(window=512, overlap=0.5, stride=None, blend="gaussian", batch_size=4):
    """A sliding-window config for :func:`keras_seg.inference.predict_mask` (``sliding_window=``), checked now."""
    check_sliding_window(window, overlap, stride, blend, batch_size)
    return {"window": window, "overlap": overlap, "stride": stride, "blend": blend, "batch_size": batch_size}
