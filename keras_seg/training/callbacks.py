"""Checkpoints that are never half-written and that carry what a resumed run needs.

A checkpoint is a complete ``.keras`` file (model, compile arguments, optimizer
state) written to a temporary file and renamed over the old one, so a kill at any
moment leaves the previous good file. Inside the same zip, ``keras_seg_training.json``
records the completed epoch count and the best monitored value: one file, one
rename, no state that can disagree with the weights.
"""

import json
import math
import os
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
    """The training state stored in a checkpoint by :func:`save_checkpoint` (``{}`` if it has none).

    For a preset directory: its metadata's training summary and class names."""
    if os.path.isdir(os.fspath(path)):
        from keras_seg.presets import read_metadata

        metadata = read_metadata(path)
        state = dict(metadata.get("training") or {})
        if metadata.get("class_names"):
            state["class_names"] = metadata["class_names"]
        return state
    if str(path).startswith(("hf://", "kaggle://")):
        from keras_seg.presets import resolve

        return read_state(resolve(path))
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
        if not finite_loss(logs):
            return  # the weights diverged (see StopOnNaN): never replace a good file with them
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

    def __init__(self, path, best=None, extra=None, saved_epoch=None):
        super().__init__()
        self.path, self.best, self.extra = path, best, dict(extra or {})
        self.saved_epoch = saved_epoch  # the epoch ``path`` holds for this run (a resumed run's start), or None

    def on_epoch_end(self, epoch, logs=None):
        if not finite_loss(logs or {}):
            if self.saved_epoch:
                print(f"epoch {epoch + 1}: the loss is not finite; {self.path} keeps epoch {self.saved_epoch}")
            else:
                print(f"epoch {epoch + 1}: the loss is not finite; no epoch has completed, so nothing was saved")
            return
        state = dict(self.extra, epoch=epoch + 1)
        if self.best is not None:
            state.update(monitor=self.best.monitor, best=self.best.best, best_epoch=self.best.best_epoch)
        save_checkpoint(self.model, self.path, state)
        self.saved_epoch = epoch + 1


def finite_loss(logs):
    """False when ``logs["loss"]`` is NaN or infinite (True when there is no loss in the logs)."""
    value = logs.get("loss")
    return value is None or math.isfinite(float(value))


class TrainingDiverged(ArithmeticError):
    """``fit`` was stopped because the loss became NaN or infinite (see :class:`StopOnNaN`)."""


class StopOnNaN(keras.callbacks.Callback):
    """Stop ``fit`` at the first batch whose loss is NaN or infinite and remember where.

    Unlike ``keras.callbacks.TerminateOnNaN`` it keeps the epoch and batch
    (``self.where``) so the caller can raise :class:`TrainingDiverged` with a message
    naming them; the checkpoint callbacks skip an epoch whose loss is not finite, so
    the files on disk keep the last good weights.
    """

    def __init__(self):
        super().__init__()
        self.where = None
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.where is None and not finite_loss(logs or {}):
            self.where = (self._epoch + 1, batch + 1, float(logs["loss"]))
            self.model.stop_training = True

    def message(self, last_path=None, saved=True):
        """The error text; ``last_path`` is the checkpoint that holds this run's last good epoch, if any.

        ``saved=False``: the run writes no checkpoints at all (no ``out_dir``), so nothing is said of them.
        """
        epoch, batch, value = self.where
        kept = f" {last_path} holds the last good epoch." if last_path else ""
        if not last_path and saved:
            kept = " No epoch completed, so nothing was saved."
        return (
            f"Training stopped: the loss became {value} at epoch {epoch}, batch {batch}.{kept} Usual causes: a "
            "learning rate too high (lower --lr / learning_rate), NaN or infinite pixels in the images, or float16 "
            "overflow (use mixed_bfloat16 or float32)."
        )


class ResumableEarlyStopping(keras.callbacks.EarlyStopping):
    """``EarlyStopping`` that a resumed run continues: best value and epochs without improvement carry over.

    ``initial_best`` and ``best_epoch`` (1-based) come from the checkpoint's training
    state; ``start`` is the number of epochs already done. The count also carries over
    between the ``fit`` calls of one run (the recipe's frozen-encoder phase, then the rest),
    where Keras' own callback would start again from zero.
    """

    def __init__(self, *args, initial_best=None, best_epoch=None, start=0, **kwargs):
        super().__init__(*args, **kwargs)
        self._resume = (initial_best, best_epoch, start)
        self._started = False

    def on_train_begin(self, logs=None):
        if self._started:
            return
        self._started = True
        super().on_train_begin(logs)
        best, best_epoch, start = self._resume
        if best is not None and best_epoch is not None:
            self.best, self.best_epoch, self.wait = best, best_epoch - 1, max(0, start - best_epoch)


class LogLearningRate(keras.callbacks.Callback):
    """Add the optimizer's current learning rate to the epoch logs (so CSVLogger records it)."""

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
