"""Figures for a person to look at: training curves, sample predictions, confusion matrices.

matplotlib is imported inside each function. Figures are built with
``matplotlib.figure.Figure`` (no pyplot), so nothing needs a display, no global
backend is switched under the caller (a notebook keeps its own), and no figure
stays open. Every file is written atomically; parent folders are created.
"""

import csv
import math
import os

import numpy as np

from keras_seg.utils.io import atomic_path
from keras_seg.viz.palette import (
    IGNORE_COLOR,
    as_image,
    as_mask,
    as_palette,
    check_same_size,
    colorize,
    legend_entries,
)

LEARNING_RATE_KEYS = ("learning_rate", "lr")
_MISSING = ("", "NA", "nan")  # what a Keras CSVLogger writes for an absent value


def plot_history(history, path, title=None):
    """Plot training curves: one panel per quantity, train and ``val_`` curves together.

    Panels: the loss first, then each metric, then the learning rate (log scale) if logged.
    The x axis is the epoch, counted from 1.

    Args:
        history: a dict of per-epoch lists (``keras.callbacks.History.history``, or the
            ``History`` object itself), or the path of a ``keras.callbacks.CSVLogger`` file.
        path: destination image file (``.png``, ``.pdf``, ``.svg``...).
        title: optional figure title.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    series = _read_history(history)
    epochs = series.pop("epoch", None)
    panels = _history_panels(series)
    ncols = min(3, len(panels))
    nrows = math.ceil(len(panels) / ncols)
    fig = Figure(figsize=(4.5 * ncols, 3.2 * nrows), layout="constrained")
    axes = fig.subplots(nrows, ncols, squeeze=False).ravel()
    for ax, (name, curves) in zip(axes, panels):
        for label, values in curves:
            x = np.arange(1, len(values) + 1) if epochs is None else epochs[: len(values)] + 1
            ax.plot(x, values, marker="o" if len(values) <= 20 else None, label=label)
        if name not in LEARNING_RATE_KEYS:
            ax.legend()
        elif np.all(np.concatenate([values for _, values in curves]) > 0):
            ax.set_yscale("log")
        ax.set(title=name, xlabel="epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    if title:
        fig.suptitle(title)
    return _save_figure(fig, path)


def plot_samples(images, truths, predictions, path, palette=None, class_names=None, ignore_index=None):
    """Plot a grid with one row per sample: image | truth | prediction (colourised).

    Args:
        images: ``(N, H, W, 3)`` (or grayscale ``(N, H, W)``) with values in [0, 255].
        truths: ``(N, H, W)`` or ``(N, H, W, 1)`` class ids.
        predictions: ``(N, H, W)`` or ``(N, H, W, 1)`` class ids (argmax of the logits).
        path: destination image file.
        palette: ``(K, 3)`` colours; defaults to the VOC palette.
        class_names: names indexed by class id; when given, a legend lists the colour of
            each class present in the truths or predictions (and of void pixels).
        ignore_index: class id of void pixels, drawn in (224, 224, 192).

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    if not len(images) == len(truths) == len(predictions) > 0:
        raise ValueError(
            f"plot_samples needs the same number (at least 1) of images, truths and predictions; "
            f"got {len(images)}, {len(truths)} and {len(predictions)}."
        )
    rows = [_sample_row(*sample, palette, ignore_index) for sample in zip(images, truths, predictions)]
    height, width = rows[0][0].shape[:2]
    panel = 3.0 * min(1.0, width / height), 3.0 * min(1.0, height / width)
    fig = Figure(figsize=(3 * panel[0], len(rows) * panel[1] + 0.6), layout="constrained")
    axes = fig.subplots(len(rows), 3, squeeze=False)
    for row_axes, row in zip(axes, rows):
        for ax, picture in zip(row_axes, row):
            ax.imshow(picture, interpolation="nearest")
            ax.set_axis_off()
    for ax, column in zip(axes[0], ("image", "truth", "prediction")):
        ax.set_title(column)
    if class_names is not None:
        masks = [as_mask(m) for m in (*truths, *predictions)]
        _add_class_legend(fig, masks, class_names, as_palette(palette), ignore_index)
    return _save_figure(fig, path)


def plot_confusion_matrix(matrix, path, class_names=None, normalize=True):
    """Plot a confusion matrix as a heat map with the value written in each cell.

    Args:
        matrix: ``(K, K)`` pixel counts; rows are true classes, columns predicted ones.
        path: destination image file.
        class_names: ``K`` names for the tick labels; defaults to the class ids.
        normalize: divide each row by its sum (a row with no pixels stays 0), so the
            diagonal is the per-class recall.

    Returns:
        ``path``.
    """
    from matplotlib.figure import Figure

    counts = _as_counts(matrix)
    k = len(counts)
    names = [str(i) for i in range(k)] if class_names is None else [str(n) for n in class_names]
    if len(names) != k:
        raise ValueError(f"class_names has {len(names)} names but the matrix is {k}x{k}; pass {k} names.")
    values = _row_normalize(counts) if normalize else counts
    size = min(20.0, max(4.0, 0.5 * k + 2))
    fig = Figure(figsize=(size + 1, size), layout="constrained")
    ax = fig.subplots()
    heat = ax.imshow(values, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(heat, ax=ax, shrink=0.8)
    _write_cells(ax, values, "{:.2f}".format if normalize else _count_label, fontsize=max(4, min(10, 120 / k)))
    ax.set_xticks(range(k), names, rotation=45, ha="right")
    ax.set_yticks(range(k), names)
    ax.set(xlabel="predicted", ylabel="true")
    ax.set_title("confusion matrix (rows normalised)" if normalize else "confusion matrix (pixels)")
    return _save_figure(fig, path)


def _read_history(history):
    """A history dict, ``History`` object or CSVLogger path -> ``{name: float array}``."""
    if isinstance(history, (str, os.PathLike)):
        return _read_csv_history(history)
    history = getattr(history, "history", history)
    if not isinstance(history, dict) or not history:
        raise ValueError(
            f"history must be a non-empty dict of per-epoch lists, a keras History, or a CSV path; "
            f"got {type(history).__name__} {history!r:.80}."
        )
    return {name: np.asarray(values, dtype=np.float64).ravel() for name, values in history.items()}


def _read_csv_history(path):
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise ValueError(f"The history file {os.fspath(path)!r} has no rows; train for an epoch first.")
    return {name: np.array([_csv_float(path, name, row[name]) for row in rows]) for name in rows[0]}


def _csv_float(path, column, text):
    if text is None or text.strip() in _MISSING:
        return np.nan
    try:
        return float(text)
    except ValueError:
        raise ValueError(f"Column {column!r} of {os.fspath(path)!r} holds {text!r}, not a number.") from None


def _history_panels(series):
    """``[(name, [(label, values), ...]), ...]``: loss first, metrics, learning rate last."""
    families = []
    for name in series:
        family = name.removeprefix("val_")
        if family not in families and family not in LEARNING_RATE_KEYS:
            families.append(family)
    families.sort(key=lambda family: family != "loss")
    families += [name for name in LEARNING_RATE_KEYS if name in series]
    return [(family, _curves(series, family)) for family in families]


def _curves(series, family):
    """``[("train", values), ("val", values)]`` for the keys of ``family`` that were logged."""
    keys = (("train", family), ("val", f"val_{family}"))
    return [(label, series[key]) for label, key in keys if key in series]


def _sample_row(image, truth, prediction, palette, ignore_index):
    """One sample -> ``(image uint8, truth colours, prediction colours)``."""
    image = as_image(image)
    truth, prediction = as_mask(truth), as_mask(prediction)
    check_same_size(image, truth)
    check_same_size(image, prediction)
    return (
        np.round(image).astype(np.uint8),
        colorize(truth, palette, ignore_index),
        colorize(prediction, palette, ignore_index),
    )


def _add_class_legend(fig, masks, class_names, palette, ignore_index):
    """A legend below the grid: one swatch per class present in ``masks``, plus void if any."""
    handles = [_swatch(palette[c], name) for c, name in legend_entries(masks, class_names, ignore_index)]
    if ignore_index is not None and any(np.any(m == ignore_index) for m in masks):
        handles.append(_swatch(IGNORE_COLOR, f"void ({ignore_index})"))
    fig.legend(handles=handles, loc="outside lower center", ncol=max(1, min(len(handles), 5)), frameon=False)


def _swatch(color, label):
    from matplotlib.patches import Patch

    return Patch(facecolor=np.asarray(color) / 255, edgecolor="black", label=label)


def _as_counts(matrix):
    counts = np.asarray(matrix, dtype=np.float64)
    if counts.ndim != 2 or counts.shape[0] != counts.shape[1] or counts.size == 0:
        raise ValueError(f"A confusion matrix must be square (K, K) with K >= 1; got shape {counts.shape}.")
    if not (np.isfinite(counts).all() and counts.min() >= 0):
        raise ValueError(
            f"A confusion matrix holds pixel counts (finite, >= 0); got min {counts.min()}, "
            f"max {counts.max()}. Pass the counts, not a normalised or log matrix."
        )
    return counts


def _row_normalize(counts):
    totals = counts.sum(axis=1, keepdims=True)
    return np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)


def _write_cells(ax, values, label, fontsize):
    """Write ``label(value)`` in each cell, white on dark cells."""
    threshold = values.max() / 2
    for (row, col), value in np.ndenumerate(values):
        color = "white" if value > threshold else "black"
        ax.text(col, row, label(value), ha="center", va="center", color=color, fontsize=fontsize)


def _count_label(count):
    """Short enough for a heat-map cell: 950 -> '950', 1234 -> '1.2k', 5600000 -> '5.6M'."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if count >= scale:
            return f"{count / scale:.1f}{suffix}"
    return f"{count:g}"


def _save_figure(fig, path):
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100)
    return path
