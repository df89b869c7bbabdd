"""Test-time augmentation: average class probabilities over flips and scales.

For every scale ``s`` and every flip combination (the identity always included), the
image is resized to ``s`` times its size (bilinear), flipped, predicted, and the
probabilities are flipped back, resized to the original size and averaged.
"""

import itertools

import numpy as np

from keras_seg.inference.predict import to_probabilities

FLIPS = ("horizontal", "vertical")


def tta(flips=("horizontal",), scales=(1.0,)):
    """A TTA config for :func:`keras_seg.inference.predict_mask` (``tta=``), checked now."""
    check_tta(tuple(flips), tuple(scales))
    return {"flips": tuple(flips), "scales": tuple(scales)}


def check_tta(flips, scales):
    unknown = [f for f in flips if f not in FLIPS]
    if unknown:
        raise ValueError(f"flips {unknown} are not supported; use any of {FLIPS}.")
    if not scales or any(not s > 0 for s in scales):
        raise ValueError(f"scales={scales!r} must be positive factors such as (0.75, 1.0, 1.25).")


def tta_probabilities(predict_logits_fn, image, flips=("horizontal",), scales=(1.0,), activation=None):
    """Mean probabilities ``(H, W, K)`` of one image ``(H, W, C)`` under flips and scales.

    ``predict_logits_fn`` maps one image ``(h, w, C)`` to logits ``(h, w, K)`` (plain or
    sliding-window prediction).
    """
    check_tta(flips, scales)
    image = np.asarray(image, dtype="float32")
    height, width = image.shape[:2]
    total, count = 0.0, 0
    axes = {"horizontal": 1, "vertical": 0}
    for scale in scales:
        size = (max(1, int(round(height * scale))), max(1, int(round(width * scale))))
        scaled = image if size == (height, width) else _resize(image, size)
        for chosen in _flip_sets(flips):
            x = scaled
            for flip in chosen:
                x = np.flip(x, axis=axes[flip])
            probs = to_probabilities(predict_logits_fn(np.ascontiguousarray(x)), activation)
            for flip in chosen:
                probs = np.flip(probs, axis=axes[flip])
            total = total + (probs if size == (height, width) else _resize(probs, (height, width)))
            count += 1
    return (total / count).astype("float32")


def _flip_sets(flips):
    """Every subset of ``flips``: (), (h,), (v,), (h, v)."""
    return [c for r in range(len(flips) + 1) for c in itertools.combinations(flips, r)]


def _resize(array, size):
    import keras

    return np.asarray(keras.ops.convert_to_numpy(keras.ops.image.resize(array, size, interpolation="bilinear")))
