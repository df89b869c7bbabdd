"""Checkpoints that are never half-written and that carry what a resumed run needs.

A checkpoint is a complete ``.keras`` file (model, compile arguments, optimizer
state) written to a temporary file and renamed over the old one, so a kill at any
moment leaves the previous good file. Inside the same zip, ``keras_seg_training.json``
records the completed epoch count and the best monitored value: one file, one
rename, no state that can disagree with the weights.
"""

import json
import math
import zipfile

import keras

from keras_seg.utils.io import atomic_path

STATE_FILE = "keras_seg_training.json"


def save_checkpoint(model, path, state):
    """Save ``model`` (with its optimizer) to ``path`` atomically, with ``state`` (a JSON dict) inside."""
    with atomic_path(path) as tmp:
        model.save(tmp)
        with zipfile.ZipFile(tmp, "a") as archive:
            archive.writestr(STATE_FILE, json.dumps(state))


def inference_copy(model):
    """The same network without its optimizer (a third of the file size with Adam), when it can be rebuilt.

    keras_seg models rebuild from their config; other models are returned as they are.
    """
    from keras_seg.models.segmenter import Segmenter

    if not isinstance(model, Segmenter):
        return model
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    return copy


def read_state(path):
    """The training state stored in a checkpoint by :func:`save_checkpoint` (``{}`` if it has none)."""
    with zipfile.ZipFile(path) as archive:
        if STATE_FILE not in archive.namelist():
            return {}
        return json.loads(archive.read(STATE_FILE))


class BestCheckpoint(keras.callbacks.Callback):
    """Save the model whenever ``monitor`` improves (``mode="max"`` for mean IoU), atomically.

    The file holds the network and its training state but not the optimizer (see
    :func:`inference_copy`): it is the model to evaluate, predict with and ship;
    resuming reads the last checkpoint instead.

    ``best`` starts at ``initial_best`` (a resumed run passes the value it had reached),
    so a resumed run only replaces the file with something better. ``extra`` (e.g.
    ``{"class_names": [...]}``) is stored in the file's training state.
    """

    def __init__(self, path, monitor="val_mean_iou", mode="max", initial_best=None, extra=None, verbose=1):
        super().__init__()
        if mode not in ("max", "min"):
            raise ValueError(f"mode={mode!r} must be 'max' or 'min'.")
        self.path, self.monitor, self.mode, self.verbose = path, monitor, mode, verbose
        self.extra = dict(extra or {})
        self.best = initial_best
        self.best_epoch = None

    def improved(self, value):
        if value is None or math.isnan(value):
            return False
        if self.best is None:
            return True
        return value > self.best if self.mode == "max" else value < self.best

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        if self.monitor not in logs:
            raise ValueError(
                f"BestCheckpoint monitors {self.monitor!r} but the logs have {sorted(logs)}; pass validation "
                "data and a metric of that name, or choose monitor= among the logged names."
            )
        value = float(logs[self.monitor])
        if self.improved(value):
            self.best, self.best_epoch = value, epoch + 1
            state = dict(self.extra, epoch=epoch + 1, monitor=self.monitor, best=value, best_epoch=epoch + 1)
            save_checkpoint(inference_copy(self.model), self.path, state)
            if self.verbose:
                print(f"epoch {epoch + 1}: {self.monitor} improved to {value:.4f}, saved {self.path}")


class ResumeCheckpoint(keras.callbacks.Callback):
    """Save the model after every epoch with the epoch count and the best value so far (see :func:`read_state`).

    ``best`` is a :class:`BestCheckpoint` whose value travels along, and ``extra``
    a dict of further fields (e.g. the run's settings). Put this callback after
    ``best`` in the callback list so it records the value of the same epoch.
    """

    def __init__(self, path, best=None, extra=None):
        super().__init__()
        self.path, self.best, self.extra = path, best, dict(extra or {})

    def on_epoch_end(self, epoch, logs=None):
        state = dict(self.extra, epoch=epoch + 1)
        if self.best is not None:
            state.update(monitor=self.best.monitor, best=self.best.best, best_epoch=self.best.best_epoch)
        save_checkpoint(self.model, self.path, state)


class LogLearningRate(keras.callbacks.Callback):
    """Add the optimizer's current learning rate to the epoch logs (so CSVLogger records it)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
