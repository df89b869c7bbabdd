"""Data-parallel training: keras_seg.training.data_parallel and ``keras-seg train --distribute``, on 2 simulated CPUs.

The device count is fixed before a backend runs its first operation, so every
two-device run is a fresh Python with ``KERAS_SEG_CPU_DEVICES=2``; the one-device
reference runs here, in the pytest process. Each backend's pass runs what applies to
it: the JAX pass the JAX engine (keras.distribution.DataParallel), the TensorFlow
pass MirroredStrategy, the PyTorch pass the "not available" error and the
backend-independent pieces (batch-size arithmetic, padding of short batches).
"""

import csv
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_seg
from keras_seg import cli
from keras_seg.training import distribute

BACKEND = keras.backend.backend()
HERE = os.path.dirname(os.path.abspath(__file__))

DISTRIBUTED = pytest.mark.skipif(
    BACKEND not in ("jax", "tensorflow"), reason="Keras 3 distributes fit on the JAX and TensorFlow backends only"
)
TORCH = pytest.mark.skipif(BACKEND != "torch", reason="the PyTorch pass checks the error --distribute gives there")
ONCE = pytest.mark.skipif(
    BACKEND != "torch", reason="backend-independent (Python and tf.data); runs once, on the otherwise light PyTorch pass"
)

# How far a two-device run may drift from the one-device run after the workload below
# (24 images, batch 8, 2 epochs: 6 AdamW steps, ce+dice). JAX runs one global program, so
# only float summation order differs (measured: loss within 1e-7 relative, mean IoU
# identical). MirroredStrategy normalises each replica's half batch with its own
# BatchNormalization statistics and computes Dice per half (measured: loss within 0.71 %,
# train mean IoU within 0.0013, val within 0.0023); see keras_seg/training/distribute.py.
TOLERANCE = {
    "jax": {"loss_rel": 1e-4, "iou_abs": 1e-3},
    "tensorflow": {"loss_rel": 2e-2, "iou_abs": 2e-2},
}
NUM_VAL, BATCH = 9, 8  # the validation set ends with a batch of 1: padded to 2 (JAX, and TF's empty share)


def _env(devices, **extra):
    env = dict(os.environ, KERAS_BACKEND=BACKEND, KERAS_SEG_CPU_DEVICES=str(devices), **extra)
    env.pop("KERAS_SEG_DEBUG", None)
    return env


def _jax_cache(tmp_path_factory):
    """A compilation cache the two-device subprocesses share (the same model is initialised in each)."""
    if BACKEND != "jax":
        return {}
    return {
        "JAX_COMPILATION_CACHE_DIR": str(tmp_path_factory.getbasetemp() / "jax-cache"),
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
        "JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES": "-1",
    }


def tiny_segmenter():
    """Conv-BN-ReLU, a stride-2 conv and a 1x1 head, resized back: what data parallelism touches (BatchNorm,
    a multi-level graph) at a fraction of a U-Net's compile time (the U-Net trains distributed in the CLI test)."""
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs / 255.0)
    x = keras.layers.ReLU()(keras.layers.BatchNormalization()(x))
    y = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    y = keras.layers.UpSampling2D(2, interpolation="bilinear")(y)
    return keras.Model(inputs, keras.layers.Conv2D(4, 1)(keras.layers.Concatenate()([x, y])))


def workload(weights_out=None, weights_in=None):
    """Train a tiny U-Net inside data_parallel(), then evaluate fixed weights; returns plain numbers.

    The same function runs on one device (here) and on two (a subprocess); no shuffling,
    no augmentation, the same seed, hence the same initial weights and batches.
    """
    import tensorflow as tf

    def batches(split, count):
        images, masks = keras_seg.data.shapes_arrays(split, count, 32, seed=1)
        return tf.data.Dataset.from_tensor_slices((images.astype("float32"), masks)).batch(BATCH)

    out = {}
    with keras_seg.training.data_parallel() as replicas:
        out["replicas"] = replicas.num_replicas
        out["distribution"] = repr(keras.distribution.distribution()) if BACKEND == "jax" else None
        keras.utils.set_random_seed(0)
        model = tiny_segmenter()
        out["initial_weights"] = sum(float(np.sum(np.asarray(w, "float64"))) for w in model.get_weights())
        iou = keras_seg.metrics.MeanIoU(4)
        val = batches("val", NUM_VAL)
        result = keras_seg.training.train(model, batches("train", 24), val, epochs=2, loss="ce+dice", metrics=[iou],
                                          verbose=0)  # fmt: skip
        out["history"] = {key: [float(v) for v in values] for key, values in result.history.items()}
        if weights_out:
            model.save_weights(weights_out)
        if weights_in:  # the other run's final weights: evaluate exactly the same network
            model.load_weights(weights_in)
        out["evaluate"] = model.evaluate(val, verbose=0, return_dict=True)
        out["confusion"] = np.asarray(iou.confusion_matrix()).tolist()
    out["after"] = repr(keras.distribution.distribution()) if BACKEND == "jax" else None
    return out


def _one_and_two_devices(folder, env):
    """The workload on one device (here; it warns) and on two (a subprocess evaluating the first run's weights)."""
    weights = str(folder / "one_device.weights.h5")
    with pytest.warns(UserWarning, match=r"found 1 device \(cpu:0, CPU\); training runs on it as usual"):
        one = workload(weights_out=weights)
    code = f"import json, sys; sys.path.insert(0, {HERE!r}); import test_distribute as t; " \
           f"print('RESULT ' + json.dumps(t.workload(weights_in={weights!r})))"  # fmt: skip
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads(next(line[7:] for line in done.stdout.splitlines() if line.startswith("RESULT ")))
    return one, two


@DISTRIBUTED
@pytest.mark.slow
def test_two_devices_train_like_one_and_metrics_sum_exactly(tmp_path, tmp_path_factory):
    """One test (not two sharing a fixture), so pytest-xdist never runs the two trainings twice."""
    one, two = _one_and_two_devices(tmp_path, _env(2, **_jax_cache(tmp_path_factory)))
    for key in ("loss", "mean_iou", "val_mean_iou"):
        print(f"{BACKEND} {key}: one device {one['history'][key]}, two devices {two['history'][key]}")
    print(f"{BACKEND} evaluate: one {one['evaluate']}, two {two['evaluate']}")
    assert (one["replicas"], two["replicas"]) == (1, 2)
    if BACKEND == "jax":
        assert one["distribution"] == "None" and "DataParallel" in two["distribution"]
        assert two["after"] == "None"  # the global distribution is restored when the block ends

    # training: same start, and the same course within the backend's tolerance
    assert two["initial_weights"] == one["initial_weights"]
    tol = TOLERANCE[BACKEND]
    for key in ("loss", "mean_iou"):
        assert len(two["history"][key]) == len(one["history"][key]) == 2
    np.testing.assert_allclose(two["history"]["loss"], one["history"]["loss"], rtol=tol["loss_rel"])
    np.testing.assert_allclose(two["history"]["mean_iou"], one["history"]["mean_iou"], rtol=0, atol=tol["iou_abs"])
    if BACKEND == "jax":  # one global program: the validation metrics follow too (MirroredStrategy's drift in
        # the BatchNormalization moving statistics flips argmax ties of this barely trained model)
        np.testing.assert_allclose(two["history"]["val_mean_iou"], one["history"]["val_mean_iou"], atol=1e-3)

    # metrics of the same weights: summed across replicas, the padded short last batch adding nothing
    confusion = np.asarray(one["confusion"])
    assert confusion.sum() == NUM_VAL * 32 * 32  # every pixel once
    np.testing.assert_array_equal(np.asarray(two["confusion"]), confusion)
    assert two["evaluate"]["mean_iou"] == pytest.approx(one["evaluate"]["mean_iou"], abs=1e-6)
    # The loss is a running mean weighted by images, padding included (see distribute.py): TensorFlow's
    # padded share (all void: loss 0) counts as a tenth image, and its Dice term is computed per share;
    # JAX's padded batch weighs 2 images instead of 1.
    if BACKEND == "tensorflow":
        assert two["evaluate"]["loss"] == pytest.approx(one["evaluate"]["loss"] * NUM_VAL / (NUM_VAL + 1), rel=1e-2)
    else:
        assert two["evaluate"]["loss"] == pytest.approx(one["evaluate"]["loss"], rel=1e-2)


@DISTRIBUTED
@pytest.mark.slow
def test_cli_train_distribute_on_two_devices(tmp_path, tmp_path_factory):
    out = tmp_path / "run"
    argv = ["train", "--distribute", "--epochs", "1", "--num-train", "20", "--num-val", "8", "--image-size", "32",
            "--widths", "4,8", "--batch-size", "8", "--no-augment", "--out", str(out), "--verbose", "0"]  # fmt: skip
    done = subprocess.run([sys.executable, "-m", "keras_seg", *argv], env=_env(2, **_jax_cache(tmp_path_factory)),
                          capture_output=True, text=True, timeout=600)  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    engine = "DataParallel" if BACKEND == "jax" else "MirroredStrategy"
    assert f"data parallel: 2 replicas on cpu:0, cpu:1 ({BACKEND} {engine}); 4 images per replica and step" in done.stdout
    for name in ("best.keras", "last.keras", "log.csv", "run.json"):
        assert (out / name).stat().st_size > 0, name
    run = json.loads((out / "run.json").read_text())
    assert run["replicas"] == 2 and run["epochs_run"] == 1
    assert keras_seg.training.read_state(out / "last.keras")["epoch"] == 1
    with open(out / "log.csv", newline="") as f:
        assert np.isfinite(float(next(csv.DictReader(f))["val_mean_iou"]))
    assert keras.saving.load_model(out / "best.keras").output_shape[-1] == 4  # loads as a plain model
    # 20 images, batch 8: the short last batch of 4 is dropped, 2 full steps per epoch
    assert int(keras.ops.convert_to_numpy(keras.saving.load_model(out / "last.keras").optimizer.iterations)) == 2


@DISTRIBUTED
def test_cli_batch_not_divisible_by_the_devices_is_one_line_exit_1(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "keras_seg", "train", "--distribute", "--batch-size", "7", "--out", str(tmp_path)],
        env=_env(2), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr[-3000:]
    lines = [line for line in done.stderr.splitlines() if line.startswith("keras-seg:")]
    assert lines == [
        "keras-seg: error: --batch-size 7 is not divisible by the 2 replicas (cpu:0, cpu:1): each step splits the "
        "global batch into 2 equal shares. Use a multiple of 2, e.g. --batch-size 6 or 8."
    ]
    assert not os.listdir(tmp_path)  # it stopped before reading data or writing anything


@DISTRIBUTED
def test_simulating_devices_after_the_backend_started_says_how_to_do_it():
    keras.ops.convert_to_numpy(keras.ops.zeros((1,)) + 1)  # the backend has run an operation
    late = r"simulate_cpu_devices\(3\), or enter data_parallel\(\) with KERAS_SEG_CPU_DEVICES=3 set, before"
    with pytest.raises(distribute.DistributeError, match=late):
        keras_seg.training.simulate_cpu_devices(3)
    keras_seg.training.simulate_cpu_devices(1)  # what it already has: nothing to do


@pytest.mark.skipif(BACKEND != "tensorflow", reason="TF_CONFIG concerns the TensorFlow backend")
def test_tf_config_says_multi_worker_fit_does_not_work_in_keras_3(monkeypatch):
    cluster = {"cluster": {"worker": ["a:1", "b:1"]}, "task": {"type": "worker", "index": 0}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(cluster))
    with pytest.raises(distribute.DistributeError, match=r"MultiWorkerMirroredStrategy.*keras-team/keras#20585.*JAX"):
        with keras_seg.training.data_parallel():
            pass


@TORCH
def test_torch_backend_says_distribution_is_not_available(capsys, tmp_path):
    with pytest.raises(distribute.DistributeError, match=r"not available on the torch backend.*JAX or TensorFlow"):
        with keras_seg.training.data_parallel():
            pass
    code = cli.main(["train", "--distribute", "--out", str(tmp_path / "run"), "--verbose", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert len(err) == 1 and err[0].startswith("keras-seg: error: Data-parallel training (--distribute")
    assert "torchrun" in err[0] and "DistributedDataParallel" in err[0]
    assert not (tmp_path / "run").exists()


@ONCE
def test_batch_size_must_split_evenly():
    replicas = distribute.Replicas("jax", ["gpu:0", "gpu:1", "gpu:2", "gpu:3"], engine=object())
    assert replicas.check_batch_size(32) == 8 and replicas.num_replicas == 4 and replicas.distributed
    with pytest.raises(distribute.DistributeError, match=r"batch_size 30 is not divisible by the 4 replicas \(gpu:0, "
                       r"gpu:1, gpu:2, gpu:3\).*e\.g\. batch_size 28 or 32\."):  # fmt: skip
        replicas.check_batch_size(30)
    with pytest.raises(distribute.DistributeError, match=r"e\.g\. --batch-size 4\.$"):
        replicas.check_batch_size(3, "--batch-size")
    with pytest.raises(distribute.DistributeError, match="must be a positive integer"):
        replicas.check_batch_size(0)
    assert repr(replicas) == "4 replicas on gpu:0, gpu:1, gpu:2, gpu:3 (jax object)"


@ONCE
def test_cpu_devices_variable_must_be_a_count(monkeypatch):
    monkeypatch.setenv("KERAS_SEG_CPU_DEVICES", "two")
    with pytest.raises(distribute.DistributeError, match=r"KERAS_SEG_CPU_DEVICES='two' must be a positive whole"):
        distribute.cpu_devices_from_env()
    monkeypatch.setenv("KERAS_SEG_CPU_DEVICES", "")
    assert distribute.cpu_devices_from_env() is None


@ONCE
def test_short_batches_are_padded_with_void_samples():
    import tensorflow as tf

    images = np.arange(5 * 2 * 2 * 1, dtype="float32").reshape(5, 2, 2, 1) + 1
    masks = np.ones((5, 2, 2), "int32")
    batches = tf.data.Dataset.from_tensor_slices((images, masks)).batch(4)  # 4, 1

    padded = list(distribute.pad_batches(batches, 2).as_numpy_iterator())
    assert [len(x) for x, _ in padded] == [4, 2]
    np.testing.assert_array_equal(padded[0][0], images[:4])  # full batches pass unchanged
    np.testing.assert_array_equal(padded[1][0][0], images[4])
    assert (padded[1][0][1] == 0).all() and (padded[1][1][1] == -1).all() and (padded[1][1][0] == 1).all()
    assert [len(x) for x, _ in distribute.pad_batches(batches, 3).as_numpy_iterator()] == [6, 3]
    # uneven (TensorFlow): only a batch smaller than the replica count is padded, up to it
    assert [len(x) for x, _ in distribute.pad_batches(batches, 3, uneven=True).as_numpy_iterator()] == [4, 3]

    # unsigned masks get their largest value, one-hot targets all-zero rows, weights zeros
    onehot = tf.one_hot(masks, 3)
    data = tf.data.Dataset.from_tensor_slices((images, (masks.astype("uint8"), onehot), np.ones(5, "float32")))
    x, (index, dense), weights = list(distribute.pad_batches(data.batch(4), 2).as_numpy_iterator())[1]
    assert index[1].max() == index[1].min() == 255 and not dense[1].any() and weights.tolist() == [1.0, 0.0]

    # boolean masks have no void value: fine while no batch needs padding, a clear error when one does
    booleans = tf.data.Dataset.from_tensor_slices((images, masks > 0))
    assert [len(x) for x, _ in distribute.pad_batches(booleans.take(4).batch(2), 2).as_numpy_iterator()] == [2, 2]
    with pytest.raises(tf.errors.InvalidArgumentError, match="no void value; cast the masks to int32"):
        list(distribute.pad_batches(booleans.batch(4), 2).as_numpy_iterator())

    # the void pixels are left out by keras_seg metrics: the padded batch counts like the short one
    logits = keras.ops.one_hot(keras.ops.convert_to_tensor(padded[1][1] * 0 + 1), 4) * 5.0
    short = keras_seg.metrics.MeanIoU(4)
    short.update_state(masks[4:], logits[:1])
    full = keras_seg.metrics.MeanIoU(4)
    full.update_state(padded[1][1], logits)
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(full.confusion_matrix()),
                                  keras.ops.convert_to_numpy(short.confusion_matrix()))  # fmt: skip

    # full batches, and datasets of another structure (predict inputs), are returned as they are
    full_batches = tf.data.Dataset.from_tensor_slices((images[:4], masks[:4])).batch(2, drop_remainder=True)
    assert distribute.pad_batches(full_batches, 2) is full_batches
    only_images = tf.data.Dataset.from_tensor_slices(images).batch(4)
    assert distribute.pad_batches(only_images, 2) is only_images
