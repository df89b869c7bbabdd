"""Sliding windows and test-time augmentation as Keras models, so they save (``.keras``) and export.

``SlidingWindow(model, ...)`` and ``TTA(model, ...)`` wrap a segmentation model; calling
the wrapper runs the whole procedure in one graph of ``keras.ops`` (every backend), and
``model.save`` / ``keras.saving.load_model`` / ``model.export`` treat it as any model.
The window grid and the scaled sizes are computed from the image size when the graph is
built, so that size must be known then: eager calls and JAX always know it; a TensorFlow
SavedModel needs a fixed ``input_signature`` (see the README). ``TTA`` with flips only
works at any size.
"""

import keras
import numpy as np
from keras import ops

from keras_seg.inference.sliding import BLENDS
from keras_seg.inference.sliding import blend_weights
from keras_seg.inference.sliding import window_starts
from keras_seg.inference.tta import FLIPS
from keras_seg.inference.tta import check_tta
from keras_seg.utils import checks


def _static_size(images, what):
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        raise ValueError(
            f"{what} needs the image height and width when its graph is built, got shape {tuple(images.shape)}. "
            "Call it on arrays, or export it with a fixed input_signature such as (1, 512, 512, 3)."
        )
    return int(height), int(width)


class _Wrapper(keras.Model):
    """Holds the wrapped model under ``self.segmenter`` and serializes it with the wrapper's arguments."""

    def __init__(self, model, **kwargs):
        super().__init__(**kwargs)
        if isinstance(model, dict):
            model = keras.saving.deserialize_keras_object(model)
        self.segmenter = model

    def _probabilities(self, logits):
        if getattr(self.segmenter, "activation", None) in ("softmax", "sigmoid"):
            return logits
        return ops.sigmoid(logits) if logits.shape[-1] == 1 else ops.softmax(logits, axis=-1)

    def get_config(self):
        return {"name": self.name, "model": keras.saving.serialize_keras_object(self.segmenter)}


@keras.saving.register_keras_serializable(package="keras_seg")
class SlidingWindow(_Wrapper):
    """``SlidingWindow(model, window=512, overlap=0.5, blend="gaussian")(images)`` -> blended logits.

    The same procedure as :func:`keras_seg.inference.sliding_window_logits` (without
    padding to the stride), in the graph: windows flush with the edges, logits weighted
    ``uniform`` or ``gaussian`` and normalised. One window covering the image is a plain
    call of the model.
    """

    def __init__(self, model, window=512, overlap=0.5, blend="gaussian", **kwargs):
        super().__init__(model, **kwargs)
        if blend not in BLENDS:
            raise ValueError(f"blend={blend!r} is not supported; expected one of {BLENDS}.")
        if not 0.0 <= overlap < 1.0:
            raise ValueError(f"overlap={overlap!r} must be in [0, 1).")
        self.window = checks.image_size(window, "window")
        self.overlap = float(overlap)
        self.blend = blend

    def call(self, images):
        height, width = _static_size(images, "SlidingWindow")
        win = (min(self.window[0], height), min(self.window[1], width))
        if win == (height, width):
            return self.segmenter(images)
        step = tuple(max(1, int(round(w * (1.0 - self.overlap)))) for w in win)
        boxes = [(y, x) for y in window_starts(height, win[0], step[0]) for x in window_starts(width, win[1], step[1])]
        weights = blend_weights(win, self.blend)
        norm = np.zeros((height, width), "float32")
        for y, x in boxes:
            norm[y : y + win[0], x : x + win[1]] += weights
        weights = ops.convert_to_tensor(weights[None, :, :, None])
        total = 0.0
        for y, x in boxes:
            logits = ops.cast(self.segmenter(images[:, y : y + win[0], x : x + win[1], :]), "float32")
            placed = ops.pad(logits * weights, [[0, 0], [y, height - y - win[0]], [x, width - x - win[1]], [0, 0]])
            total = total + placed
        return total / ops.convert_to_tensor(norm[None, :, :, None])

    def get_config(self):
        return {**super().get_config(), "window": list(self.window), "overlap": self.overlap, "blend": self.blend}


@keras.saving.register_keras_serializable(package="keras_seg")
class TTA(_Wrapper):
    """``TTA(model, flips=("horizontal",), scales=(1.0,))(images)`` -> mean class probabilities.

    The same procedure as :func:`keras_seg.inference.tta_probabilities`: every scale and
    every subset of the flips, probabilities flipped back, resized back (bilinear) and
    averaged. The output is probabilities, not logits.
    """

    def __init__(self, model, flips=("horizontal",), scales=(1.0,), **kwargs):
        super().__init__(model, **kwargs)
        check_tta(tuple(flips), tuple(scales))
        self.flips = tuple(flips)
        self.scales = tuple(float(s) for s in scales)

    def call(self, images):
        from keras_seg.inference.tta import _flip_sets

        axes = {"horizontal": 2, "vertical": 1}
        total, count = 0.0, 0
        for scale in self.scales:
            if scale == 1.0:
                scaled, size, back = images, None, None
            else:
                height, width = _static_size(images, "TTA with scales other than 1")
                size = (max(1, int(round(height * scale))), max(1, int(round(width * scale))))
                scaled, back = ops.image.resize(images, size, interpolation="bilinear"), (height, width)
            for chosen in _flip_sets(self.flips):
                x = scaled
                for flip in chosen:
                    x = ops.flip(x, axis=axes[flip])
                probs = self._probabilities(ops.cast(self.segmenter(x), "float32"))
                for flip in chosen:
                    probs = ops.flip(probs, axis=axes[flip])
                if back is not None:
                    probs = ops.image.resize(probs, back, interpolation="bilinear")
                total, count = total + probs, count + 1
        return total / count

    def get_config(self):
        return {**super().get_config(), "flips": list(self.flips), "scales": list(self.scales)}


__all__ = ["FLIPS", "SlidingWindow", "TTA"]
