"""The scripts in examples/ run, end to end, with tiny settings, once: on the PyTorch pass (they
exercise the same API the unit tests check on every backend; a script runs on the backend it is
started with, and eager PyTorch runs these tiny trainings in a third of TensorFlow's time here)."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BACKEND = "torch"  # the lightest pass; the scripts run on whichever backend they are started with
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(keras.backend.backend() != BACKEND, reason=f"scripts are run once, on {BACKEND}"),
]


def run_example(name, *args, cwd):
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", name), *args], cwd=cwd,
                            capture_output=True, text=True, timeout=600)  # fmt: skip
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    return result.stdout


def test_train_shapes(tmp_path):
    out = run_example("train_shapes.py", "--epochs", "1", "--num-train", "32", "--size", "32", "--out", "run",
                      cwd=tmp_path)  # fmt: skip
    assert "mean IoU" in out and "triangle" in out
    for name in ("best.keras", "last.keras", "log.csv", "curves.png", "samples.png"):
        assert (tmp_path / "run" / name).exists(), name


def test_train_folder_on_its_example_layout(tmp_path):
    out = run_example("train_folder.py", "--make-example", "data", "--epochs", "1", "--size", "32", "--out", "run",
                      cwd=tmp_path)  # fmt: skip
    assert len(os.listdir(tmp_path / "data" / "images")) == 64
    assert Image.open(tmp_path / "data" / "masks" / "img000.png").mode == "P"
    assert "training and" in out and (tmp_path / "run" / "best.keras").exists()


def test_train_voc_on_a_stand_in(tmp_path):
    root = tmp_path / "VOC2012"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        Image.fromarray(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)).save(root / "JPEGImages" / f"{i}.jpg")
        mask = Image.fromarray(rng.choice([0, 5, 15, 255], size=(48, 64)).astype(np.uint8), mode="L").convert("P")
        mask.save(root / "SegmentationClass" / f"{i}.png")
    (root / "ImageSets/Segmentation/train.txt").write_text("0\n1\n2\n")
    (root / "ImageSets/Segmentation/val.txt").write_text("3\n")
    out = run_example("train_voc.py", "--root", str(root), "--encoder", "mobilenetv2", "--encoder-weights", "none",
                      "--size", "64", "--batch-size", "2", "--epochs", "1", "--out", "run", cwd=tmp_path)  # fmt: skip
    assert "best model" in out


def test_train_pets_says_what_to_install_without_tensorflow_datasets(tmp_path):
    pytest.importorskip("keras")
    try:
        import tensorflow_datasets  # noqa: F401

        pytest.skip("tensorflow-datasets is installed; the script would download 800 MB")
    except ImportError:
        pass
    result = subprocess.run([sys.executable, os.path.join(ROOT, "examples", "train_pets.py")], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)  # fmt: skip
    assert result.returncode == 1 and "pip install tensorflow-datasets" in result.stderr


def test_custom_loss(tmp_path):
    out = run_example("custom_loss.py", "--epochs", "1", "--num-train", "32", "--size", "32", cwd=tmp_path)
    assert "perfect / border error / interior error: 0.0000 / 2.7778 / 0.5556" in out
    assert "reloaded loss: boundary_cross_entropy" in out


def test_mediapipe_segment(tmp_path):
    pytest.importorskip("mediapipe")
    out = run_example("mediapipe_segment.py", "--out", "mp", cwd=tmp_path)
    assert "labels ['background', 'square', 'disc', 'triangle']" in out
    assert "MediaPipe's category mask equals the Keras model's on 100.00% of pixels" in out
    assert (tmp_path / "mp" / "shapes_test_0_overlay.png").exists()
