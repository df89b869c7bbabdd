"""Presets, keras-hub's way: save_to_preset / from_preset round trips, the shipped preset on every backend,
handles that fail fast offline, and one-line errors for broken presets."""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_seg
from keras_seg import presets
from keras_seg.models import UNet, FPN, Segmenter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "saved_models", "shapes_unet")
IMAGES = np.random.default_rng(0).uniform(0, 255, (2, 40, 56, 3)).astype("float32")


@pytest.fixture(scope="module")
def small():
    keras.utils.set_random_seed(1)
    return FPN(3, encoder="resnet18", decoder_pyramid_channels=16, decoder_segmentation_channels=32)


def test_round_trip_gives_identical_outputs_and_the_metadata(small, tmp_path):
    small.class_names = ["sky", "road", "car"]
    path = small.save_to_preset(tmp_path / "fpn", training={"epoch": 3, "best": 0.5}, metrics={"val_mean_iou": 0.5})
    assert sorted(os.listdir(path)) == ["README.md", "config.json", "metadata.json", "model.weights.h5"]
    again = FPN.from_preset(path)
    assert type(again) is FPN and again.class_names == ["sky", "road", "car"]
    np.testing.assert_array_equal(keras.ops.convert_to_numpy(again(IMAGES)), keras.ops.convert_to_numpy(small(IMAGES)))
    meta = json.loads((tmp_path / "fpn" / "metadata.json").read_text())
    assert meta["class_name"] == "FPN" and meta["num_classes"] == 3 and meta["class_names"] == ["sky", "road", "car"]
    assert meta["parameter_count"] == small.count_params() and meta["saved_on_backend"] == keras.backend.backend()
    assert meta["keras_version"] == keras.__version__ and meta["keras_seg_version"] == keras_seg.__version__
    assert meta["input_shape"] == [None, None, 3] and "ImageNet mean" in meta["preprocessing"]
    assert meta["training"] == {"epoch": 3, "best": 0.5} and meta["metrics"] == {"val_mean_iou": 0.5}
    card = (tmp_path / "fpn" / "README.md").read_text()
    assert card.startswith("# FPN") and "sky, road, car" in card and f"{small.count_params():,}" in card
    assert keras_seg.training.read_state(path) == {"epoch": 3, "best": 0.5, "class_names": ["sky", "road", "car"]}
    del small.class_names


@pytest.mark.once
def test_overwrite_is_explicit_and_a_save_is_all_or_nothing(small, tmp_path):
    path = small.save_to_preset(tmp_path / "p")
    with pytest.raises(FileExistsError, match="already exists and is not empty; pass overwrite=True"):
        small.save_to_preset(path)
    small.save_to_preset(path, overwrite=True)
    assert sorted(os.listdir(tmp_path)) == ["p"]  # no staging directory or old copy left behind
    with pytest.raises(ValueError, match="holds a FPN, not a UNet; load it with"):
        UNet.from_preset(path)
    assert type(Segmenter.from_preset(path)) is FPN
    assert type(Segmenter.from_preset(path, activation="softmax")) is FPN  # constructor overrides


@pytest.mark.once
def test_overwrite_never_replaces_a_folder_that_is_not_a_preset(small, tmp_path):
    """overwrite=True replaces a preset, not a user's folder that happens to hold one's files, and no sibling."""
    mine = tmp_path / "work"
    mine.mkdir()
    (mine / "thesis.txt").write_bytes(b"years of work\n")
    small.save_to_preset(tmp_path / "scratch")
    for name in os.listdir(tmp_path / "scratch"):  # a preset's files beside the user's own
        (mine / name).write_bytes((tmp_path / "scratch" / name).read_bytes())
    with pytest.raises(FileExistsError, match=r"work is not a preset \(it holds thesis.txt\)"):
        small.save_to_preset(mine, overwrite=True)
    assert (mine / "thesis.txt").read_bytes() == b"years of work\n"
    backup = tmp_path / "p.old"  # a user's folder named like the old scheme's set-aside copy survives a replace
    backup.mkdir()
    (backup / "keep.txt").write_bytes(b"keep")
    small.save_to_preset(tmp_path / "p")
    small.save_to_preset(tmp_path / "p", overwrite=True)
    assert (backup / "keep.txt").read_bytes() == b"keep"
    assert sorted(os.listdir(tmp_path)) == ["p", "p.old", "scratch", "work"]


def test_the_shipped_preset_loads_on_every_backend_and_equals_the_keras_file():
    """Saved on TensorFlow, loaded here on whichever backend this pass runs: the same logits as the .keras file."""
    model = Segmenter.from_preset(SHIPPED)
    reference = keras.saving.load_model(os.path.join(ROOT, "saved_models", "shapes_unet.keras"))
    assert model.class_names == ["background", "square", "disc", "triangle"]
    x = IMAGES[:, :32, :32]
    np.testing.assert_allclose(keras.ops.convert_to_numpy(model(x)), keras.ops.convert_to_numpy(reference(x)),
                               rtol=0, atol=1e-5)  # fmt: skip
    assert json.load(open(os.path.join(SHIPPED, "metadata.json")))["saved_on_backend"] == "tensorflow"


@pytest.mark.once
def test_broken_presets_name_the_file(small, tmp_path):
    path = small.save_to_preset(tmp_path / "p")
    with pytest.raises(FileNotFoundError, match="nowhere does not exist; pass a preset directory"):
        Segmenter.from_preset(tmp_path / "nowhere")
    partial = tmp_path / "partial"
    shutil.copytree(path, partial)
    os.remove(partial / "model.weights.h5")
    with pytest.raises(FileNotFoundError, match=r"partial/model.weights.h5 is missing: .* is not a complete preset"):
        Segmenter.from_preset(partial)
    corrupt = tmp_path / "corrupt"
    shutil.copytree(path, corrupt)
    (corrupt / "config.json").write_text("{not json")
    with pytest.raises(ValueError, match=r"corrupt/config.json is not valid JSON"):
        Segmenter.from_preset(corrupt)
    other = tmp_path / "other"
    shutil.copytree(path, other)
    config = json.loads((other / "config.json").read_text())
    config["config"]["decoder_pyramid_channels"] = 24  # the weights no longer fit
    (other / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match=r"other/model.weights.h5 does not fit the model of config.json"):
        Segmenter.from_preset(other)
    (other / "config.json").write_text(json.dumps({"a": 1}))
    with pytest.raises(ValueError, match=r"config.json is not a Keras model config"):
        Segmenter.from_preset(other)


@pytest.mark.once
def test_handles_fail_fast_offline_with_the_fix(monkeypatch):
    pytest.importorskip("huggingface_hub")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConnectionError, match=r"hf://someone/no-such-model could not be fetched .*huggingface-cli "
                                              r"download someone/no-such-model --local-dir DIR"):
        Segmenter.from_preset("hf://someone/no-such-model")
    try:
        import kagglehub  # noqa: F401
    except ImportError:
        with pytest.raises(ImportError, match=r"kaggle://a/b/keras/c needs kagglehub \(pip install kagglehub\)"):
            Segmenter.from_preset("kaggle://a/b/keras/c")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the command line; one backend's pass covers it")
def test_commands_take_a_preset_directory(tmp_path):
    """keras-seg predict and evaluate on the shipped preset, as on the .keras file (class names from its metadata)."""
    env = dict(os.environ)
    done = subprocess.run([sys.executable, "-m", "keras_seg.cli", "predict", SHIPPED,
                           os.path.join(ROOT, "saved_models", "samples", "shapes_test_0.png"), "--out", str(tmp_path / "o")],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert sorted(os.listdir(tmp_path / "o")) == ["shapes_test_0.png", "shapes_test_0_overlay.png"]
    done = subprocess.run([sys.executable, "-m", "keras_seg.cli", "evaluate", SHIPPED, "--data", "shapes",
                           "--num-val", "8", "--out", str(tmp_path / "e")],
                          capture_output=True, text=True, timeout=300, env=env)  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "square" in done.stdout and os.path.exists(tmp_path / "e" / "report.json")


def test_weights_of_another_architecture_are_refused_not_half_loaded(small, tmp_path):
    """Keras' load_weights skips what it cannot match with a warning and keeps random weights there; a preset
    load refuses instead."""
    path = small.save_to_preset(tmp_path / "fpn")
    unet = UNet(3, widths=(4, 8))
    unet.save_to_preset(tmp_path / "unet")
    shutil.copy(tmp_path / "unet" / "model.weights.h5", tmp_path / "fpn" / "model.weights.h5")
    with pytest.raises(ValueError, match=r"fpn/model.weights.h5 does not fit the model of config.json"):
        Segmenter.from_preset(path)
