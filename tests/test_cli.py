import os
import re
import subprocess
import sys

import keras

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


def test_info_backend_flag_switches_backend_in_a_child_process():
    other = "jax" if keras.backend.backend() != "jax" else "torch"
    env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
    result = _run("info", "--backend", other, env=env)
    assert result.returncode == 0, result.stderr
    assert re.search(rf"^backend\s+{other}$", result.stdout, re.M)


def test_bad_arguments_exit_2_with_usage():
    result = _run("info", "--backend", "caffe")
    assert result.returncode == 2
    assert "usage: keras-seg" in result.stderr and "invalid choice: 'caffe'" in result.stderr
    assert _run().returncode == 2


def test_train_evaluate_predict_in_subprocesses(tmp_path):
    """The three commands a user runs, end to end, on the active backend (tiny sizes)."""
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

    result = _run("evaluate", str(out / "best.keras"), "--num-val", "8", "--image-size", "32", env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("background", "square", "disc", "triangle", "mean IoU", "precision", "recall"):
        assert name in result.stdout
    report = json.loads((out / "report.json").read_text())
    assert report["images"] == 8 and np.asarray(report["confusion"]).sum() == 8 * 32 * 32
    assert Image.open(out / "confusion.png").size[0] > 100

    images = tmp_path / "images"
    images.mkdir()
    x, _ = keras_seg.data.shapes_arrays("test", 3, (40, 24))
    for i, image in enumerate(x):
        Image.fromarray(image).save(images / f"s{i}.png")
    result = _run("predict", str(out / "best.keras"), str(images), "--out", str(tmp_path / "pred"),
                  "--sliding-window", "16", "--overlap", "0.5", "--tta", "--tta-scales", "0.5,1", env=env)  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
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
