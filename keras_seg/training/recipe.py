"""A training recipe on top of ``model.fit``: AdamW, warmup + cosine/poly decay, encoder freeze, checkpoints, resume.

    result = keras_seg.training.train(model, train_ds, val_ds, epochs=40, out_dir="runs/x")
    best = keras.saving.load_model(result.best_path)

``out_dir`` receives ``best.keras`` (best validation mean IoU), ``last.keras`` (after
every epoch, with the optimizer state and the epoch count: what ``resume=True`` reads)
and ``log.csv``. All ``.keras`` files are written atomically.
"""

import csv
import os
from typing import NamedTuple

import keras

from keras_seg import losses as seg_losses
from keras_seg import metrics as seg_metrics
from keras_seg.utils import validate
from keras_seg.utils.io import atomic_path
from keras_seg.training.callbacks import BestCheckpoint
from keras_seg.training.callbacks import LogLearningRate
from keras_seg.training.callbacks import ResumableEarlyStopping
from keras_seg.training.callbacks import ResumeCheckpoint
from keras_seg.training.callbacks import StopOnNaN
from keras_seg.training.callbacks import TrainingDiverged
from keras_seg.training.callbacks import read_state
from keras_seg.training.schedules import WarmupDecay

BEST, LAST, LOG = "best.keras", "last.keras", "log.csv"


class TrainResult(NamedTuple):
    model: keras.Model  # the model after the last epoch run (``best_path`` holds the best one)
    history: dict  # this call's epochs, as ``History.history`` (``log.csv`` has every epoch of the run)
    initial_epoch: int  # 0, or the epoch a resumed run started from
    best_path: str | None
    last_path: str | None
    log_path: str | None
    complete: bool = False  # True when a resumed run had already done ``epochs`` epochs: nothing was trained


def default_metrics(num_classes, ignore_index=None):
    """Mean IoU (logged as ``mean_iou``), Dice score and pixel accuracy."""
    return [
        seg_metrics.MeanIoU(num_classes, ignore_index=ignore_index),
        seg_metrics.DiceScore(num_classes, ignore_index=ignore_index),
        seg_metrics.PixelAccuracy(num_classes, ignore_index=ignore_index),
    ]


def train(
    model,
    train_data,
    validation_data=None,
    *,
    epochs,
    out_dir=None,
    loss="ce+dice",
    learning_rate=1e-3,
    weight_decay=1e-4,
    schedule="cosine",
    warmup_epochs=1,
    freeze_encoder_epochs=0,
    ignore_index=None,
    class_weights=None,
    class_names=None,
    metrics=None,
    monitor="val_mean_iou",
    patience=None,
    resume=False,
    overwrite=False,
    steps_per_epoch=None,
    callbacks=(),
    verbose="auto",
    jit_compile="auto",
):
    """Compile and fit ``model`` with the recipe; returns a :class:`TrainResult`.

    Args:
        model: a keras_seg model (or any Keras model with logits ``(B, H, W, K)``);
            ``None`` when resuming (the checkpoint holds the model).
            For mixed precision, build it after ``keras.mixed_precision.set_global_policy``.
        train_data / validation_data: batched ``tf.data.Dataset`` of ``(images, masks)``
            (see :func:`keras_seg.data.prepare`), or anything ``fit`` accepts with
            ``steps_per_epoch`` given.
        epochs: total epochs of the run (a resumed run counts the ones already done).
        out_dir: where checkpoints and the log go (``None``: nothing is written).
        loss: a Keras loss, or a text for :func:`keras_seg.losses.from_string` (``"ce+dice"``).
        learning_rate, weight_decay: AdamW's peak learning rate and decoupled weight decay.
        schedule: ``"cosine"``, ``"poly"`` or ``"constant"`` after ``warmup_epochs`` of linear warmup.
        freeze_encoder_epochs: train only the decoder for this many first epochs, then
            everything (a fresh optimizer whose schedule continues where it was).
        ignore_index, class_weights: passed to the text loss and the default metrics.
        class_names: stored in the checkpoints (``read_state(path)["class_names"]``), where
            ``keras-seg evaluate`` and ``predict`` find them.
        metrics: defaults to :func:`default_metrics`.
        monitor: the logged value that picks ``best.keras`` and drives early stopping
            (maximised unless its name contains ``loss``).
        patience: stop after this many epochs without improvement (``None``: never).
        resume: ``True``: continue from ``out_dir/last.keras`` (weights, optimizer state, epoch and
            best value so far); a FileNotFoundError when there is none. ``"auto"``: the same when
            ``out_dir`` holds a run, a new run otherwise (for jobs that are restarted after
            preemption). A run that already did ``epochs`` epochs returns at once with
            ``complete=True`` and nothing written.
        overwrite: allow starting a new run in an ``out_dir`` that holds one.
        steps_per_epoch: needed when ``train_data`` has no known length.
        callbacks: extra Keras callbacks.
        jit_compile: XLA for the training step, as ``model.compile`` takes it: ``"auto"`` (Keras': on for
            JAX, off on a CPU-only TensorFlow), ``True`` or ``False``. On TensorFlow CPU ``True`` makes
            the demo U-Net's step about a fifth faster (2-core AMD EPYC, AVX2) after an XLA compile of
            45-50 s in the first epoch: worth it for runs of more than a few minutes. A resumed run uses it too.

    Before compiling, the first batch of ``train_data`` and of ``validation_data`` is
    checked against the model (:func:`keras_seg.utils.validate.check_batch`: ranks, channels,
    mask values within the model's classes), and ``class_names`` against its outputs.
    A NaN or infinite loss stops training with :class:`TrainingDiverged`; the checkpoints
    keep the last good epoch.
    """
    if epochs < 1:
        raise ValueError(f"epochs={epochs!r} must be at least 1.")
    if jit_compile not in ("auto", True, False):
        raise ValueError(f"jit_compile={jit_compile!r} must be 'auto', True or False.")
    steps = _steps_per_epoch(train_data, steps_per_epoch)
    paths = _paths(out_dir)
    if resume not in (False, True, "auto"):
        raise ValueError(f"resume={resume!r} must be True, False or 'auto' (resume when out_dir holds a run).")
    if resume and paths is None:
        raise ValueError("resume needs out_dir: the folder whose last.keras the run continues from.")
    start, best, state = 0, None, {}
    has_run = bool(paths) and os.path.exists(paths[LAST])
    if resume is True and not has_run:
        raise FileNotFoundError(
            f"There is no run to resume in {out_dir}: it holds no {LAST}. Drop resume=True (--resume) to start a "
            "new run there, or point out_dir (--out) at the folder of the run to continue."
        )
    if resume and has_run:
        model = load_checkpoint(paths[LAST], paths[BEST])
        state = read_state(paths[LAST])
        start, best = int(state.get("epoch", 0)), state.get("best")
        if start >= epochs:
            if verbose:
                print(f"nothing to do: the run in {out_dir} already completed {start} epoch(s) (epochs={epochs}); "
                      "pass a larger epochs (--epochs) to train it further.")  # fmt: skip
            return TrainResult(model, {}, start, paths[BEST] if os.path.exists(paths[BEST]) else None, paths[LAST],
                               paths[LOG], complete=True)  # fmt: skip
        if verbose:
            print(f"resuming {paths[LAST]} after epoch {start} of {epochs} (best {monitor} so far: {best})")
        _truncate_log(paths[LOG], start)
    elif has_run and not overwrite:
        raise ValueError(
            f"{out_dir} already holds a training run ({LAST}); pass resume=True (--resume) to continue it, "
            "overwrite=True (--overwrite) to start over, or choose another output folder."
        )
    if model is None:
        raise ValueError(f"model=None needs resume=True and a checkpoint to resume from; none in out_dir={out_dir!r}.")
    if paths:
        os.makedirs(out_dir, exist_ok=True)
    if freeze_encoder_epochs and not hasattr(model, "freeze_encoder"):
        raise ValueError("freeze_encoder_epochs needs a keras_seg model (one with an encoder to freeze).")

    num_classes = model.output_shape[-1]
    _check_data(model, train_data, validation_data, class_names, ignore_index)
    if isinstance(loss, str):
        loss = seg_losses.from_string(loss, ignore_index=ignore_index, class_weights=class_weights)
    mode = "min" if "loss" in monitor else "max"
    extra = {"epochs": epochs, "ignore_index": ignore_index}
    if class_names is not None:
        extra["class_names"] = [str(name) for name in class_names]
    best_cb = None
    if paths and validation_data is not None:
        best_cb = BestCheckpoint(paths[BEST], monitor, mode, initial_best=best, extra=extra)
    guard = StopOnNaN()
    common = [guard, LogLearningRate()] + ([best_cb] if best_cb else [])
    last_cb = None
    if paths:
        # The log row first, then the checkpoint that marks the epoch done: a run killed between the two leaves a
        # row too many (the resume drops it, _truncate_log) rather than a checkpoint whose epoch has no row.
        common.append(keras.callbacks.CSVLogger(paths[LOG], append=start > 0))
        last_cb = ResumeCheckpoint(paths[LAST], best=best_cb, extra=extra, saved_epoch=start or None)
        common.append(last_cb)
    if patience is not None:
        common.append(ResumableEarlyStopping(monitor=monitor, mode=mode, patience=patience, initial_best=best,
                                             best_epoch=state.get("best_epoch"), start=start))  # fmt: skip

    phases = [(0, min(freeze_encoder_epochs, epochs), True), (min(freeze_encoder_epochs, epochs), epochs, False)]
    history = {}
    compiled = start > 0  # a resumed model comes back compiled, with its optimizer state
    for begin, end, frozen in phases:
        if end <= max(begin, start):
            continue
        if hasattr(model, "encoder") and freeze_encoder_epochs and model.encoder.trainable == frozen:
            model.encoder.trainable = not frozen
            compiled = False
        if not compiled:
            optimizer = keras.optimizers.AdamW(
                learning_rate=WarmupDecay(learning_rate, epochs * steps, min(warmup_epochs * steps, epochs * steps), schedule),
                weight_decay=weight_decay,
            )
            optimizer.iterations.assign(max(begin, start) * steps)
            model.compile(
                optimizer=optimizer,
                loss=loss,
                metrics=list(metrics) if metrics is not None else default_metrics(num_classes, ignore_index),
                jit_compile=jit_compile,
            )
            compiled = True
        elif jit_compile != "auto":  # a resumed model comes compiled from its file, without this setting
            model.jit_compile = jit_compile
        fitted = model.fit(
            train_data,
            validation_data=validation_data,
            initial_epoch=max(begin, start),
            epochs=end,
            steps_per_epoch=steps_per_epoch,
            callbacks=common + list(callbacks),
            shuffle=False,  # shuffling is the dataset's job (keras_seg.data.prepare(shuffle=...))
            verbose=verbose,
        )
        for key, values in fitted.history.items():
            history.setdefault(key, []).extend(values)
        if guard.where is not None:
            kept = paths[LAST] if paths and last_cb.saved_epoch else None
            raise TrainingDiverged(guard.message(kept, saved=bool(paths)))
        if model.stop_training:
            break
    paths = paths or {}
    return TrainResult(
        model,
        history,
        start,
        paths.get(BEST) if best_cb and os.path.exists(paths[BEST]) else None,
        paths.get(LAST),
        paths.get(LOG),
    )


def load_checkpoint(path, best_path=None):
    """The compiled model of a run's ``last.keras``, with a message naming the fallback when it cannot be read."""
    from keras_seg.utils.modelfile import load_model

    try:
        return load_model(path, what="the checkpoint to resume from")
    except ValueError as error:
        fallback = ""
        if best_path and os.path.exists(best_path):
            try:
                done = read_state(best_path).get("epoch")
            except Exception:  # noqa: BLE001 - the best checkpoint may be damaged too
                done = None
            fallback = (f" {best_path} (the best epoch{f', {done}' if done else ''}) is a separate file: "
                        "evaluate or fine-tune from it,")  # fmt: skip
        raise ValueError(f"Cannot resume: {error}{fallback} or start over with overwrite=True (--overwrite).") from None


def _check_data(model, train_data, validation_data, class_names, ignore_index):
    """Fail before compiling when the data cannot train this model (see :func:`validate.check_batch`)."""
    num_classes = model.output_shape[-1]
    if class_names is not None and len(class_names) != num_classes and not (num_classes == 1 and len(class_names) == 2):
        raise ValueError(
            f"The model has {num_classes} output channel(s) but the data has {len(class_names)} classes "
            f"({', '.join(map(str, class_names))}); build the model with num_classes={len(class_names)} "
            "(or resume / evaluate with the dataset it was trained on)."
        )
    channels = model.input_shape[-1] if isinstance(model.input_shape, tuple) else None
    for data, where in ((train_data, "the training data"), (validation_data, "the validation data")):
        if data is None:
            continue
        batch = validate.first_batch(data, where=where)
        if batch is not None:
            validate.check_batch(*batch, num_classes=num_classes, ignore_index=ignore_index, channels=channels,
                                 where=where)  # fmt: skip


def _paths(out_dir):
    if out_dir is None:
        return None
    if os.path.exists(out_dir) and not os.path.isdir(out_dir):
        raise FileExistsError(f"out_dir={out_dir!r} (--out) is a file; it must name a folder for the run's "
                              "checkpoints and log. Choose another path, e.g. runs/train.")  # fmt: skip
    return {name: os.path.join(out_dir, name) for name in (BEST, LAST, LOG)}


def _steps_per_epoch(data, steps_per_epoch):
    if steps_per_epoch is not None:
        return int(steps_per_epoch)
    cardinality = getattr(data, "cardinality", None)
    count = int(cardinality()) if cardinality is not None else -1
    if count == 0:
        raise ValueError("The training data is empty: the dataset yields no batch. Check the folders / lists it reads.")
    if count < 1:
        try:
            count = len(data)
        except TypeError:
            count = -1
    if count < 1:
        raise ValueError(
            "The training data has no known length (an infinite or filtered tf.data pipeline?); "
            "pass steps_per_epoch so the learning-rate schedule knows how long an epoch is."
        )
    return count


def _truncate_log(path, epochs_done):
    """Drop log rows of epochs that the checkpoint does not include (a run killed mid-save)."""
    if not os.path.exists(path):
        return
    with open(path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows:
        return
    kept = [rows[0]] + [r for r in rows[1:] if r and int(r[0]) < epochs_done]
    if len(kept) != len(rows):
        with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)
