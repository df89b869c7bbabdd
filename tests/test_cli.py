import os
import re
import subprocess
import sys

import keras
import pytest

import keras_seg
from keras_seg import cli


def _run(*args, env=None):
    return subprocess.run(
        [sys.executable, "-m", "keras_seg", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_version(capsys):
    try:
        cli.main(["--version"])
    except SystemExit as exit_:
        assert exit_.code == 0
    assert capsys.readouterr().out.strip() == f"keras-seg {keras_seg.__version__}"


def test_info_reports_the_active_backend(capsys):
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert re.search(rf"^backend\s+{keras.backend.backend()}$", out, re.M)
    assert re.search(rf"^keras\s+{re.escape(keras.__version__)}$", out, re.M)
    assert re.search(r"^devices\s+.*cpu", out, re.M | re.I)


@pytest.mark.once
def test_info_backend_flag_switches_backend_in_a_child_process():
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    result = _run("info", "--backend", other, env=env)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^backend\s+{other}$", result.stdout, re.M)


@pytest.mark.once
def test_bad_arguments_exit_2_with_usage(capsys):
    with pytest.raises(SystemExit) as exit_:
        cli.main(["info", "--backend", "caffe"])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "usage: keras-seg" in err and "invalid choice: 'caffe'" in err
    assert cli.main([]) == 2  # no command: the usage, status 2 (python -m keras_seg exits with main()'s value)


def test_train_evaluate_predict_in_subprocesses(tmp_path, capsys):
    """The three commands a user runs, end to end, on the active backend (tiny sizes): `train` as a
    subprocess of `python -m keras_seg`, then `evaluate` and `predict` through the same entry point
    in this process (two fewer interpreter and backend start-ups)."""
    import json

    import numpy as np
    from PIL import Image

    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    out = tmp_path / "run"
    result = _run("train", "--epochs", "1", "--num-train", "16", "--num-val", "8", "--image-size", "32",
                  "--widths", "4,8", "--batch-size", "8", "--out", str(out), "--verbose", "0", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("best.keras", "last.keras", "log.csv", "curves.png", "samples.png", "run.json"):
        assert (out / name).stat().st_size > 0, name
    assert "best val mean IoU" in result.stdout

    capsys.readouterr()
    assert cli.main(["evaluate", str(out / "best.keras"), "--num-val", "8", "--image-size", "32"]) == 0
    printed = capsys.readouterr().out
    for name in ("background", "square", "disc", "triangle", "mean IoU", "precision", "recall"):
        assert name in printed
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == 8 and np.asarray(report["confusion"]).sum() == 8 * 32 * 32
    assert Image.open(out / "confusion.png").size[0] > 100

    images = tmp_path / "images"
    images.mkdir()
    x, _ = keras_seg.data.shapes_arrays("test", 3, (40, 24))
    for i, image in enumerate(x):
        Image.fromarray(image).save(images / f"s{i}.png")
    assert cli.main(["predict", str(out / "best.keras"), str(images), "--out", str(tmp_path / "pred"),
                     "--sliding-window", "16", "--overlap", "0.5", "--tta", "--tta-scales", "0.5,1"]) == 0  # fmt: skip
    for i in range(3):
        label = Image.open(tmp_path / "pred" / f"s{i}.png")
        assert label.mode == "P" and label.size == (24, 40)  # the input's own size
        assert set(np.unique(np.asarray(label))) <= {0, 1, 2, 3}
        width, height = Image.open(tmp_path / "pred" / f"s{i}_overlay.png").size
        assert height > 40 and width >= 24  # the image with a legend strip below it


def _error_line(capsys, argv):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("keras-seg: error: "), err  # one line, no traceback
    return err


@pytest.mark.once
def test_user_errors_are_one_line(capsys, tmp_path):
    err = _error_line(capsys, ["train", "--data", "folder", "--images", str(tmp_path / "nope"), "--masks",
                               str(tmp_path), "--classes", "a,b"])  # fmt: skip
    assert "nope is not a folder; expected the image folder" in err

    images, masks = tmp_path / "im", tmp_path / "ma"
    images.mkdir()
    masks.mkdir()
    from PIL import Image
    import numpy as np

    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(images / "a.png")
    for stem in ("a", "b"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(masks / f"{stem}.png")
    err = _error_line(capsys, ["train", "--data", "folder", "--images", str(images), "--masks", str(masks),
                               "--classes", "a,b", "--val-fraction", "0.5"])  # fmt: skip
    assert "1 mask(s) have no image" in err and "b.png" in err

    err = _error_line(capsys, ["train", "--num-train", "4", "--num-val", "4", "--encoder", "resnet9000",
                               "--out", str(tmp_path / "r")])  # fmt: skip
    assert "resnet9000" in err and "resnet50" in err  # names the valid encoders

    err = _error_line(capsys, ["predict", str(tmp_path / "missing.keras"), str(images)])
    assert "missing.keras does not exist" in err


# ---------------------------------------------------------------------------------------------- reliability


@pytest.mark.once
def test_invalid_arguments_exit_2_with_usage(capsys):
    for argv, message in (
        (["train", "--model", "unet3000"], "argument --model: 'unet3000' is not an architecture; choose from unet, fcn"),
        (["train", "--epochs", "0"], "argument --epochs: '0' is not a positive integer"),
        (["train", "--batch-size", "-4"], "argument --batch-size: '-4' is not a positive integer"),
        (["train", "--image-size", "big"], "argument --image-size: 'big' is not a positive integer"),
        (["train", "--lr", "0"], "argument --lr: '0' is not a positive number"),
        (["train", "--data", "coco"], "argument --data: invalid choice: 'coco'"),
        (["train", "--no-such-flag"], "unrecognized arguments: --no-such-flag"),
    ):
        with pytest.raises(SystemExit) as exit_:
            cli.main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and "usage: keras-seg" in err and message in err, err


@pytest.mark.once
def test_cli_architecture_names_are_the_library_ones():
    assert set(cli.ARCHITECTURES) == set(keras_seg.models.ARCHITECTURES)


ONCE = pytest.mark.skipif(
    keras.backend.backend() != "tensorflow",
    reason="command-line plumbing and tf.data reading are the same on every backend; the in-process training, "
    "resume and NaN tests run on each (this runs on the TensorFlow pass)",
)


@ONCE
@pytest.mark.once
def test_imagenet_weights_offline_and_corrupt_files_are_one_line_errors(capsys, tmp_path, monkeypatch):
    from keras.src.utils import file_utils
    from PIL import Image
    import numpy as np

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: [Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(file_utils, "get_file", offline)
    err = _error_line(capsys, ["train", "--num-train", "4", "--num-val", "4", "--model", "unet", "--encoder",
                               "mobilenetv2", "--encoder-weights", "imagenet", "--out", str(tmp_path / "r")])  # fmt: skip
    assert "Could not get the ImageNet weights of keras.applications.MobileNetV2" in err and "~/.keras/models/" in err

    images, masks = tmp_path / "im", tmp_path / "ma"
    images.mkdir()
    masks.mkdir()
    for i in range(4):
        Image.fromarray(np.full((16, 16, 3), 40 * i, np.uint8)).save(images / f"p{i}.png")
        Image.fromarray(np.full((16, 16), i % 2, np.uint8)).save(masks / f"p{i}.png")
    (images / "p3.png").write_bytes(b"\x89PNG\r\n\x1a\n cut short")
    folder = ["train", "--data", "folder", "--images", str(images), "--masks", str(masks), "--classes", "a,b",
              "--val-images", str(images), "--val-masks", str(masks), "--image-size", "16", "--widths", "4,8",
              "--batch-size", "2", "--epochs", "1", "--verbose", "0", "--out", str(tmp_path / "f")]  # fmt: skip
    err = _error_line(capsys, folder)
    assert "Cannot read" in err and "p3.png" in err and "--skip-corrupt" in err
    with pytest.warns(UserWarning, match=r"Skipped 1 of 4 image/mask pairs .*p3\.png"):
        assert cli.main(folder + ["--skip-corrupt"]) == 0
    Image.fromarray(np.full((16, 16), 5, np.uint8)).save(masks / "p1.png")
    err = _error_line(capsys, folder + ["--skip-corrupt", "--overwrite"])
    assert "p1.png: label values [5] are outside [0, 2)" in err


def _wait_for(predicate, process, timeout=240):
    import time

    end = time.time() + timeout
    while time.time() < end:
        if predicate():
            return True
        if process.poll() is not None:
            raise AssertionError(f"train exited early ({process.returncode}): {process.stderr.read()[-3000:]}")
        time.sleep(0.02)
    return False


def _epochs_done(path):
    try:
        return keras_seg.training.read_state(path).get("epoch", 0)
    except (OSError, KeyError, ValueError):  # not written yet
        return 0


@ONCE
@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_continues_from_the_last_completed_epoch(tmp_path):
    """A real kill (SIGKILL: no cleanup, no Python exception) in the middle of epoch 3 of `keras-seg train`."""
    import csv
    import json
    import signal

    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    out = tmp_path / "run"
    steps = 24  # 192 images, batch 8
    argv = [sys.executable, "-m", "keras_seg", "train", "--num-train", "192", "--num-val", "16", "--image-size", "32",
            "--widths", "4,8", "--batch-size", "8", "--no-augment", "--epochs", "4", "--out", str(out)]  # fmt: skip
    process = subprocess.Popen(argv + ["--verbose", "0"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)  # fmt: skip
    try:
        assert _wait_for(lambda: _epochs_done(out / "last.keras") >= 2, process), "epoch 2 never completed"
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL

    last, best = out / "last.keras", out / "best.keras"
    state = keras_seg.training.read_state(last)
    assert state["epoch"] == 2, state  # killed in epoch 3, before its checkpoint
    saved = keras.saving.load_model(last)  # intact: it loads, with its optimizer
    assert int(keras.ops.convert_to_numpy(saved.optimizer.iterations)) == 2 * steps
    best_before = keras_seg.training.read_state(best)
    assert best_before["best_epoch"] <= 2 and keras.saving.load_model(best).count_params() == saved.count_params()

    result = subprocess.run(argv + ["--resume", "--verbose", "2"], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"resuming {last} after epoch 2 of 4" in result.stdout
    with open(out / "log.csv", newline="") as f:
        assert [int(row["epoch"]) for row in csv.DictReader(f)] == [0, 1, 2, 3]
    assert json.loads((out / "run.json").read_text())["epochs_run"] == 2  # only the two missing epochs ran
    resumed = keras.saving.load_model(last)
    assert keras_seg.training.read_state(last)["epoch"] == 4
    assert int(keras.ops.convert_to_numpy(resumed.optimizer.iterations)) == 4 * steps  # the step count went on
    best_after = keras_seg.training.read_state(best)
    assert best_after["best"] >= best_before["best"]
