"""keras_seg.training: schedules, atomic checkpoints, the fit recipe, resume after interruption."""

import csv
import math
import os

import keras
import numpy as np
import pytest

import keras_seg
from keras_seg import data, training
from keras_seg.training import WarmupDecay


def lr_at(schedule, step):
    return float(keras.ops.convert_to_numpy(schedule(step)))


def test_warmup_cosine_and_poly_by_hand():
    cosine = WarmupDecay(1.0, total_steps=10, warmup_steps=2, decay="cosine")
    assert [lr_at(cosine, s) for s in (0, 1)] == pytest.approx([0.5, 1.0])  # linear warmup
    assert lr_at(cosine, 2) == pytest.approx(1.0)  # t = 0
    assert lr_at(cosine, 6) == pytest.approx(0.5)  # t = 0.5: (1 + cos(pi / 2)) / 2
    assert lr_at(cosine, 4) == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert lr_at(cosine, 10) == pytest.approx(0.0, abs=1e-7) and lr_at(cosine, 50) == pytest.approx(0.0, abs=1e-7)
    poly = WarmupDecay(0.1, total_steps=12, warmup_steps=0, decay="poly", power=0.9, min_learning_rate=0.01)
    assert lr_at(poly, 0) == pytest.approx(0.1)
    assert lr_at(poly, 3) == pytest.approx(0.01 + 0.09 * 0.75**0.9)
    assert lr_at(WarmupDecay(0.2, 5, 0, "constant"), 4) == pytest.approx(0.2)
    again = WarmupDecay.from_config(cosine.get_config())
    assert lr_at(again, 4) == lr_at(cosine, 4)
    with pytest.raises(ValueError, match="decay='step'"):
        WarmupDecay(1.0, 10, decay="step")
    with pytest.raises(ValueError, match="warmup_steps=11"):
        WarmupDecay(1.0, 10, warmup_steps=11)


def tiny_model():
    return keras_seg.models.UNet(4, widths=(4, 8))


def batches(split, n=8, batch=4, size=32):
    return data.prepare(data.shapes(split, n, size), batch)


def test_checkpoint_is_atomic_and_carries_its_state(tmp_path):
    model = tiny_model()
    path = str(tmp_path / "m.keras")
    training.save_checkpoint(model, path, {"epoch": 3, "best": 0.5})
    assert training.read_state(path) == {"epoch": 3, "best": 0.5}
    reloaded = keras.saving.load_model(path)
    x = np.zeros((1, 32, 32, 3), "float32")
    np.testing.assert_allclose(reloaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)

    class Broken(keras.Model):  # writes part of a file, then fails
        def save(self, filepath, **kwargs):
            with open(filepath, "wb") as f:
                f.write(b"half a zip")
            raise OSError("disk full")

    before = open(path, "rb").read()
    with pytest.raises(OSError, match="disk full"):
        training.save_checkpoint(Broken(), path, {"epoch": 4})
    assert open(path, "rb").read() == before  # the previous good file is intact
    assert os.listdir(tmp_path) == ["m.keras"]  # and no temporary file is left behind


def read_log(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_train_writes_best_last_and_log_and_resumes(tmp_path):
    keras.utils.set_random_seed(1)
    out = str(tmp_path / "run")
    train, val = batches("train"), batches("val")
    result = training.train(tiny_model(), train, val, epochs=2, out_dir=out, class_names=data.SHAPES_CLASSES,
                            verbose=0)  # fmt: skip
    rows = read_log(result.log_path)
    assert [int(r["epoch"]) for r in rows] == [0, 1]
    ious = [float(r["val_mean_iou"]) for r in rows]
    best = training.read_state(result.best_path)
    assert best["best"] == pytest.approx(max(ious)) and best["best_epoch"] == 1 + int(np.argmax(ious))
    assert best["class_names"] == list(data.SHAPES_CLASSES)
    last = training.read_state(result.last_path)
    assert last["epoch"] == 2 and last["best"] == pytest.approx(max(ious))
    assert float(rows[0]["learning_rate"]) > 0

    with pytest.raises(ValueError, match="already holds a training run.*resume=True"):
        training.train(tiny_model(), train, val, epochs=3, out_dir=out, verbose=0)

    resumed = training.train(None, train, val, epochs=3, out_dir=out, resume=True, verbose=0)
    assert resumed.initial_epoch == 2 and len(resumed.history["loss"]) == 1
    assert int(keras.ops.convert_to_numpy(resumed.model.optimizer.iterations)) == 3 * 2  # 2 steps per epoch
    assert [int(r["epoch"]) for r in read_log(result.log_path)] == [0, 1, 2]
    assert training.read_state(result.last_path)["epoch"] == 3


class Interrupt(keras.callbacks.Callback):
    """Stop the process's training in the middle of an epoch, as Ctrl-C or a kill would."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.epoch, self.batch, self.current = epoch, batch, None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch

    def on_train_batch_end(self, batch, logs=None):
        if self.current == self.epoch and batch == self.batch:
            raise KeyboardInterrupt


def test_interrupted_run_resumes_from_the_last_completed_epoch_with_its_optimizer(tmp_path):
    keras.utils.set_random_seed(2)
    out = str(tmp_path / "run")
    train, val = batches("train"), batches("val")
    reference = tiny_model()
    with pytest.raises(KeyboardInterrupt):
        training.train(reference, train, val, epochs=4, out_dir=out, callbacks=[Interrupt(2, 0)], verbose=0)
    state = training.read_state(os.path.join(out, "last.keras"))
    assert state["epoch"] == 2  # epochs 0 and 1 completed; epoch 2 was cut off
    saved = keras.saving.load_model(os.path.join(out, "last.keras"))
    moments = [np.asarray(keras.ops.convert_to_numpy(v)) for v in saved.optimizer.variables]
    assert int(moments[0]) == 4 and any(np.abs(m).sum() > 0 for m in moments[2:])  # Adam state, not fresh
    best_before = training.read_state(os.path.join(out, "best.keras"))

    resumed = training.train(None, train, val, epochs=4, out_dir=out, resume=True, verbose=0)
    assert resumed.initial_epoch == 2 and len(resumed.history["loss"]) == 2
    assert [int(r["epoch"]) for r in read_log(os.path.join(out, "log.csv"))] == [0, 1, 2, 3]
    best_after = training.read_state(os.path.join(out, "best.keras"))
    assert best_after["best"] >= best_before["best"]


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_kill_between_the_log_row_and_the_checkpoint_loses_no_row(tmp_path, monkeypatch, when):
    """The end of an epoch writes log.csv's row and last.keras; a kill can land between the two, on either side
    of the checkpoint. The resumed run's log has every epoch once (a CI run saw [0, 2, 3] when the row came last)."""
    keras.utils.set_random_seed(3)
    out = str(tmp_path / "run")
    train, val = batches("train"), batches("val")
    save = training.callbacks.ResumeCheckpoint.on_epoch_end

    def killed(self, epoch, logs=None):
        if epoch == 1 and when == "before":
            raise KeyboardInterrupt
        save(self, epoch, logs)
        if epoch == 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(training.callbacks.ResumeCheckpoint, "on_epoch_end", killed)
    with pytest.raises(KeyboardInterrupt):
        training.train(tiny_model(), train, val, epochs=4, out_dir=out, verbose=0)
    monkeypatch.undo()
    assert training.read_state(os.path.join(out, "last.keras"))["epoch"] == (1 if when == "before" else 2)
    resumed = training.train(None, train, val, epochs=4, out_dir=out, resume=True, verbose=0)
    assert len(resumed.history["loss"]) == (3 if when == "before" else 2)
    assert [int(r["epoch"]) for r in read_log(os.path.join(out, "log.csv"))] == [0, 1, 2, 3]
    assert not [name for name in os.listdir(out) if name.startswith(".")]  # no temporary file left


def bias_free_model():
    """Conv (no bias) -> BN -> ReLU -> 1x1 head. No parameter has a gradient that is zero in exact
    arithmetic (a conv bias before BatchNorm has one; Adam turns the float noise in it into full-size
    steps, and TensorFlow's CPU reductions are not bit-deterministic, so such a bias differs between
    two identical runs)."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs / 255.0)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    return keras.Model(inputs, keras.layers.Conv2D(4, 1)(x))


def test_resumed_run_matches_an_uninterrupted_one(tmp_path):
    """Same data order (no shuffling) -> two epochs + two resumed epochs == four epochs, weights and all."""
    train, val = batches("train"), batches("val")
    keras.utils.set_random_seed(3)
    model = bias_free_model()
    start = np.array(keras.ops.convert_to_numpy(model.weights[0]))
    straight = training.train(model, train, val, epochs=4, verbose=0).model
    keras.utils.set_random_seed(3)
    out = str(tmp_path / "run")
    with pytest.raises(KeyboardInterrupt):
        training.train(bias_free_model(), train, val, epochs=4, out_dir=out, callbacks=[Interrupt(2, 1)], verbose=0)
    resumed = training.train(None, train, val, epochs=4, out_dir=out, resume=True, verbose=0).model
    assert len(straight.weights) == len(resumed.weights) == 7
    for a, b in zip(straight.weights, resumed.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-5)
    moved = np.abs(start - keras.ops.convert_to_numpy(straight.weights[0])).max()
    assert moved > 1e-3  # training did move the weights: the comparison is not trivially true


def test_freeze_encoder_for_the_first_epochs(tmp_path):
    keras.utils.set_random_seed(4)
    model = tiny_model()
    snapshots = []

    class Snapshot(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            snapshots.append([np.array(keras.ops.convert_to_numpy(w)) for w in self.model.encoder.weights])

    start = [np.array(keras.ops.convert_to_numpy(w)) for w in model.encoder.weights]
    decoder_start = np.array(keras.ops.convert_to_numpy(model.get_layer("head_conv").kernel))
    training.train(model, batches("train"), None, epochs=2, freeze_encoder_epochs=1, callbacks=[Snapshot()],
                   verbose=0)  # fmt: skip
    after_frozen, after_all = snapshots
    assert all(np.array_equal(a, b) for a, b in zip(start, after_frozen))  # BatchNorm statistics included
    assert not all(np.array_equal(a, b) for a, b in zip(after_frozen, after_all))
    assert model.encoder.trainable
    assert not np.array_equal(decoder_start, keras.ops.convert_to_numpy(model.get_layer("head_conv").kernel))


def test_train_checks_its_arguments():
    with pytest.raises(ValueError, match="epochs=0"):
        training.train(tiny_model(), batches("train"), epochs=0)
    with pytest.raises(ValueError, match="Loss 'ce\\+dize'.*cannot read 'dize'"):
        training.train(tiny_model(), batches("train"), epochs=1, loss="ce+dize")
    endless = batches("train").repeat()
    with pytest.raises(ValueError, match="pass steps_per_epoch"):
        training.train(tiny_model(), endless, epochs=1)


def test_jit_compile_reaches_the_training_step_and_a_resumed_run(tmp_path):
    with pytest.raises(ValueError, match="jit_compile='yes' must be 'auto', True or False"):
        training.train(tiny_model(), batches("train"), epochs=1, jit_compile="yes")
    if keras.backend.backend() != "tensorflow":  # JAX: XLA is what every JAX training test runs ("auto")
        pytest.skip("jit_compile=True is JAX's default, and torch.compile on PyTorch, which this CPU suite does not run")
    out = str(tmp_path / "xla")
    first = training.train(tiny_model(), batches("train"), batches("val"), epochs=1, out_dir=out, jit_compile=True,
                           verbose=0)  # fmt: skip
    assert first.model.jit_compile is True and np.isfinite(first.history["loss"]).all()
    resumed = training.train(None, batches("train"), batches("val"), epochs=2, out_dir=out, resume=True,
                             jit_compile=False, verbose=0)  # fmt: skip
    assert resumed.model.jit_compile is False and resumed.initial_epoch == 1 and len(resumed.history["loss"]) == 1


def test_loss_from_string():
    loss = keras_seg.losses.from_string("0.5*ce + dice", ignore_index=255, class_weights=[1, 2, 3, 4])
    assert isinstance(loss, keras_seg.losses.CompositeLoss)
    ce, dice = loss.losses
    assert loss.weights == [0.5, 1.0] and ce.class_weights == [1, 2, 3, 4] and dice.ignore_index == 255
    assert isinstance(keras_seg.losses.from_string("lovasz"), keras_seg.losses.LovaszSoftmaxLoss)


def test_early_stopping_ends_a_run_that_stopped_improving():
    keras.utils.set_random_seed(5)
    inputs = keras.Input((None, None, 3))  # no BatchNorm: with a learning rate of 1e-12 nothing can change
    frozen_in_place = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))
    result = training.train(frozen_in_place, batches("train"), batches("val"), epochs=6, learning_rate=1e-12,
                            schedule="constant", warmup_epochs=0, patience=2, verbose=0)  # fmt: skip
    ious = result.history["val_mean_iou"]
    assert len(ious) == 3 and ious[0] == ious[1] == ious[2]  # epoch 1 sets the best, 2 more without gain stop it


def test_mixed_precision_training_keeps_float32_logits_and_checkpoints(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    model = tiny_model()
    assert model.get_layer("head_conv").compute_dtype == "bfloat16" and model.output.dtype == "float32"
    result = training.train(model, batches("train"), batches("val"), epochs=1, out_dir=str(tmp_path), verbose=0)
    assert np.isfinite(result.history["loss"][0])
    best = keras.saving.load_model(result.best_path)
    assert best.get_layer("head_conv").compute_dtype == "bfloat16"


# ---------------------------------------------------------------------------------------------- bad input, NaN


class Poison(keras.callbacks.Callback):
    """At the start of ``epoch`` (0-based), fill the first kernel with NaN: every later loss is NaN."""

    def __init__(self, epoch):
        super().__init__()
        self.epoch = epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.epoch:
            weight = self.model.weights[0]
            weight.assign(np.full(weight.shape, np.nan, "float32"))


def test_a_nan_loss_stops_fit_with_a_message_and_keeps_the_last_good_checkpoint(tmp_path):
    keras.utils.set_random_seed(6)
    out = str(tmp_path / "run")
    with pytest.raises(training.TrainingDiverged, match=r"the loss became nan at epoch 2, batch 1\. .*last\.keras "
                                                        r"holds the last good epoch.*lower --lr"):  # fmt: skip
        training.train(tiny_model(), batches("train"), batches("val"), epochs=4, out_dir=out, callbacks=[Poison(1)],
                       verbose=0)  # fmt: skip
    last = os.path.join(out, "last.keras")
    assert training.read_state(last)["epoch"] == 1
    saved = keras.saving.load_model(last)
    assert all(np.isfinite(keras.ops.convert_to_numpy(w)).all() for w in saved.weights)
    assert training.read_state(os.path.join(out, "best.keras"))["best_epoch"] == 1
    assert [int(r["epoch"]) for r in read_log(os.path.join(out, "log.csv"))] == [0, 1]  # the NaN epoch is logged
    resumed = training.train(None, batches("train"), batches("val"), epochs=2, out_dir=out, resume=True, verbose=0)
    assert np.isfinite(resumed.history["loss"]).all()  # the good epoch-1 file trains on


def test_data_that_does_not_fit_the_model_fails_before_compiling():
    model = tiny_model()  # 4 classes, RGB
    with pytest.raises(ValueError, match=r"4 output channel\(s\) but the data has 3 classes \(a, b, c\).*num_classes=3"):
        training.train(model, batches("train"), epochs=1, class_names=["a", "b", "c"])
    three = keras_seg.models.UNet(3, widths=(4, 8))  # shapes masks hold 0..3
    with pytest.raises(ValueError, match=r"Masks in the training data: label values \[3\] are outside \[0, 3\)"):
        training.train(three, batches("train"), epochs=1)
    gray = keras_seg.models.UNet(4, widths=(4, 8), input_shape=(None, None, 1))
    with pytest.raises(ValueError, match="Images in the validation data have 3 channels but the model takes 1"):
        training.train(gray, batches("train").map(lambda x, y: (x[..., :1], y)), batches("val"), epochs=1)
    empty = batches("train").take(0)
    with pytest.raises(ValueError, match="The training data is empty"):
        training.train(model, empty, epochs=1)
    with pytest.raises(ValueError, match="the validation data is empty"):
        training.train(model, batches("train"), batches("val").filter(lambda x, y: False), epochs=1)
    assert not model.compiled  # nothing was compiled


def test_early_stopping_counts_on_across_a_resume(tmp_path):
    keras.utils.set_random_seed(5)
    inputs = keras.Input((None, None, 3))  # as above: nothing can change, so epoch 1 stays the best
    frozen = keras.Model(inputs, keras.layers.Conv2D(4, 1)(inputs))
    out = str(tmp_path / "run")
    kw = dict(learning_rate=1e-12, schedule="constant", warmup_epochs=0, patience=3, out_dir=out, verbose=0)
    first = training.train(frozen, batches("train"), batches("val"), epochs=3, **kw)
    assert len(first.history["loss"]) == 3  # epochs 2 and 3 without gain: patience 3 not used up
    resumed = training.train(None, batches("train"), batches("val"), epochs=10, resume=True, **kw)
    assert len(resumed.history["loss"]) == 1  # the 3rd epoch without gain stops it (a fresh count would run 3)


@pytest.mark.once
def test_resume_without_a_run_stops_and_auto_starts_one(tmp_path):
    out = str(tmp_path / "fresh")
    with pytest.raises(FileNotFoundError, match=r"There is no run to resume in .*fresh: it holds no last\.keras"):
        training.train(tiny_model(), batches("train"), epochs=1, out_dir=out, resume=True, verbose=0)
    assert not os.path.exists(out)  # nothing was made
    started = training.train(tiny_model(), batches("train"), batches("val"), epochs=1, out_dir=out, resume="auto",
                             verbose=0)  # fmt: skip
    assert started.initial_epoch == 0 and len(started.history["loss"]) == 1
    again = training.train(None, batches("train"), batches("val"), epochs=2, out_dir=out, resume="auto", verbose=0)
    assert again.initial_epoch == 1 and len(again.history["loss"]) == 1
    with pytest.raises(ValueError, match="resume='yes'"):
        training.train(None, batches("train"), epochs=1, out_dir=out, resume="yes")
    with pytest.raises(FileExistsError, match=r"out_dir=.*log\.csv.*is a file"):
        training.train(tiny_model(), batches("train"), epochs=1, out_dir=os.path.join(out, "log.csv"))


def test_resume_of_a_complete_run_trains_nothing_and_writes_nothing(tmp_path, capsys):
    out = str(tmp_path / "run")
    training.train(tiny_model(), batches("train"), batches("val"), epochs=2, out_dir=out, verbose=0)
    before = {name: open(os.path.join(out, name), "rb").read() for name in os.listdir(out)}
    result = training.train(None, batches("train"), batches("val"), epochs=2, out_dir=out, resume=True, verbose=1)
    assert result.complete and result.history == {} and result.initial_epoch == 2
    assert "nothing to do: the run in" in capsys.readouterr().out
    assert {name: open(os.path.join(out, name), "rb").read() for name in os.listdir(out)} == before


@pytest.mark.once
def test_a_nan_loss_in_the_first_epoch_says_nothing_was_saved(tmp_path, capsys):
    out = str(tmp_path / "run")
    with pytest.raises(training.TrainingDiverged, match=r"at epoch 1, batch 1\. No epoch completed, so nothing was saved"):
        training.train(tiny_model(), batches("train"), batches("val"), epochs=2, out_dir=out, callbacks=[Poison(0)],
                       verbose=0)  # fmt: skip
    assert "no epoch has completed, so nothing was saved" in capsys.readouterr().out
    assert not os.path.exists(os.path.join(out, "last.keras"))
    # A new run in a folder that holds an older run: the old last.keras is not this run's good epoch.
    training.train(tiny_model(), batches("train"), batches("val"), epochs=1, out_dir=out, verbose=0)
    with pytest.raises(training.TrainingDiverged, match="No epoch completed, so nothing was saved"):
        training.train(tiny_model(), batches("train"), batches("val"), epochs=2, out_dir=out, overwrite=True,
                       callbacks=[Poison(0)], verbose=0)  # fmt: skip
