"""Run MediaPipe Tasks' ImageSegmenter on a ``.tflite`` file, as a phone app would, in a child process.

    result = keras_seg.export.mediapipe_segment("model.tflite", images)   # uint8 RGB (N, H, W, 3)
    result.labels, result.category_masks, result.confidence_masks

MediaPipe's Python ``vision.ImageSegmenter`` runs the same C++ graph as Android, iOS and the
web: it reads the file's metadata, preprocesses the image, runs the model and computes the masks.
It runs here in a child process that runs this file as a script and imports MediaPipe and NumPy
only: MediaPipe bundles its own TFLite and absl, which do not always coexist with
TensorFlow's in one process (a conversion after MediaPipe has run was seen to crash).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
from typing import NamedTuple

import numpy as np


class SegmenterResult(NamedTuple):
    labels: list  # segmenter.labels: the class names MediaPipe read from the file
    category_masks: np.ndarray  # (N, H, W) uint8: the argmax (one channel: 0 foreground, 255 background); a list for mixed sizes
    confidence_masks: np.ndarray  # (N, H, W, K) float32: the scores after the file's activation; a list for mixed sizes


def mediapipe_segment(path, images, timeout=600):
    """MediaPipe's ImageSegmenter on ``images`` (uint8 RGB ``(N, H, W, 3)``, or a list of ``(H, W, 3)``).

    The masks come back at each image's size: arrays ``(N, H, W)`` / ``(N, H, W, K)`` when the images
    share one size, else a list per image.
    """
    import importlib.util

    if importlib.util.find_spec("mediapipe") is None:
        raise ImportError('Running a .tflite in MediaPipe needs mediapipe: pip install "keras-seg[export]"')
    with tempfile.TemporaryDirectory(prefix="keras_seg_mediapipe_") as scratch:
        inputs, outputs = os.path.join(scratch, "images.npz"), os.path.join(scratch, "masks.npz")
        np.savez(inputs, *[np.ascontiguousarray(np.asarray(image, dtype=np.uint8)) for image in images])
        # This file as a script, not ``-m keras_seg...``: the child must not import keras_seg (Keras, TensorFlow).
        done = subprocess.run([sys.executable, os.path.abspath(__file__), os.fspath(path), inputs, outputs],
                              capture_output=True, text=True, timeout=timeout)  # fmt: skip
        if done.returncode != 0 or not os.path.exists(outputs):
            last = (done.stderr.strip().splitlines() or ["no output"])[-1]
            raise RuntimeError(f"MediaPipe's ImageSegmenter failed on {path} (exit {done.returncode}): {last}")
        with np.load(outputs) as saved:
            count = len([key for key in saved.files if key.startswith("category_")])
            categories = [saved[f"category_{i}"] for i in range(count)]
            confidences = [saved[f"confidence_{i}"] for i in range(count)]
            labels = json.loads(str(saved["labels"]))
        if len({c.shape for c in categories}) <= 1:  # one size: arrays (N, H, W) and (N, H, W, K)
            return SegmenterResult(labels, np.stack(categories) if categories else np.zeros((0, 0, 0), np.uint8),
                                   np.stack(confidences) if confidences else np.zeros((0, 0, 0, 0), np.float32))
        return SegmenterResult(labels, categories, confidences)  # images of different sizes: a list each


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m keras_seg.export.mediapipe_runner")
    parser.add_argument("model")
    parser.add_argument("images", help=".npz of uint8 RGB images")
    parser.add_argument("out", help=".npz to write: labels, category, confidence")
    args = parser.parse_args(argv)
    # MediaPipe imports TensorFlow only for its API-doc decorators, when it is installed (9 of the child's 10 s
    # here); the segmenter itself never uses it. Blocking the import makes MediaPipe take its own no-op fallback.
    sys.modules.setdefault("tensorflow", None)
    import mediapipe as mp
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision

    options = vision.ImageSegmenterOptions(base_options=mp_tasks.BaseOptions(model_asset_path=args.model),
                                           output_category_mask=True, output_confidence_masks=True)  # fmt: skip
    categories, confidences = [], []
    with np.load(args.images) as stored, vision.ImageSegmenter.create_from_options(options) as segmenter:
        for key in sorted(stored.files, key=lambda k: int(k.split("_")[1])):
            result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=stored[key]))
            # copies: the views die with the result
            categories.append(result.category_mask.numpy_view()[..., 0].copy())
            confidences.append(np.stack([m.numpy_view()[..., 0] for m in result.confidence_masks], axis=-1))
        labels = list(segmenter.labels)
    np.savez(args.out, labels=json.dumps(labels), **{f"category_{i}": c for i, c in enumerate(categories)},
             **{f"confidence_{i}": c for i, c in enumerate(confidences)})  # per image: sizes may differ
    return 0


if __name__ == "__main__":
    sys.exit(main())
