"""Bad input at the command line, as a user meets it: a table of flags, files and models.

Every case runs ``keras-seg`` through its entry point (``keras_seg.cli.main``, in this process)
and asserts what the user sees: exit status 2 and the usage for a malformed flag, exit status 1
and one line ``keras-seg: error: ...`` naming the value for everything else, never a traceback.
The data-loss cases check that the user's files are still there, byte for byte.
Runs on the TensorFlow pass (the command line is the same code on every backend; the backend
parts have their own tests in test_inference, test_losses, test_training and test_export).
"""

import os

import keras
import numpy as np
import pytest
from PIL import Image

import keras_seg
from keras_seg import cli
from keras_seg.training.callbacks import save_checkpoint

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="the command line runs on the TensorFlow pass")

THESIS = b"Chapter 1. Nobody should delete this.\n"


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Models and folders the cases use: a segmentation model, a classifier, a vector model, a truncated file,
    a finished three-epoch run, a folder with a user's file in it, and images."""
    root = tmp_path_factory.mktemp("bad_input")
    keras.utils.clear_session()
    seg = keras_seg.models.UNet(4, widths=(4, 8))
    seg.save(root / "seg.keras")
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    classifier = keras.Model(inputs, keras.layers.Dense(3)(keras.layers.GlobalAveragePooling2D()(x)))
    classifier.save(root / "classifier.keras")
    vectors = keras.Input((8,))
    keras.Model(vectors, keras.layers.Dense(3)(vectors)).save(root / "vectors.keras")
    data = (root / "seg.keras").read_bytes()
    (root / "trunc.keras").write_bytes(data[: len(data) // 2])
    (root / "empty.keras").write_bytes(b"")
    run = root / "run3"  # a run that completed 3 epochs
    run.mkdir()
    save_checkpoint(seg, run / "last.keras", {"epoch": 3, "epochs": 3})
    save_checkpoint(seg, run / "best.keras", {"epoch": 3, "best_epoch": 2})
    broken = root / "broken_run"  # last.keras cut short, best.keras intact
    broken.mkdir()
    (broken / "last.keras").write_bytes(data[: len(data) // 3])
    save_checkpoint(seg, broken / "best.keras", {"epoch": 2, "best_epoch": 2})
    thesis = root / "thesis_folder"
    thesis.mkdir()
    (thesis / "thesis.txt").write_bytes(THESIS)
    (root / "notes.txt").write_bytes(THESIS)
    smp_folder = root / "smp_folder"  # what segmentation_models.pytorch's save_pretrained writes
    smp_folder.mkdir()
    (smp_folder / "config.json").write_text('{"_model_class": "Unet"}')
    (smp_folder / "model.safetensors").write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    images = root / "images"
    images.mkdir()
    x, _ = keras_seg.data.shapes_arrays("test", 2, (32, 32))
    for i, image in enumerate(x):
        Image.fromarray(image).save(images / f"s{i}.png")
    return root


def run_cli(capsys, argv):
    """``(exit status, stderr)`` of ``keras-seg argv``; argparse's SystemExit becomes its status."""
    capsys.readouterr()
    try:
        code = cli.main([str(a) for a in argv])
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    return code, captured.err.strip()


# (argv with {root} for the fixture folder, expected status, what the message must say)
CASES = {
    # data loss: the export target
    "export into a folder with a user's file": (
        ["export", "{root}/seg.keras", "{root}/thesis_folder", "--no-verify"], 1,
        "thesis_folder is a folder that is not a SavedModel (it holds thesis.txt)"),
    "export into a training run": (
        ["export", "{root}/seg.keras", "{root}/run3", "--no-verify"], 1, "run3 is a folder that is not a SavedModel"),
    "export a tflite over a file that is not one": (
        ["export", "{root}/seg.keras", "{root}/notes.txt", "--format", "tflite", "--input-size", "32", "--no-verify"], 1,
        "notes.txt exists and is not a tflite model"),
    "export an onnx over a file that is not one": (
        ["export", "{root}/seg.keras", "{root}/notes.txt", "--format", "onnx", "--no-verify"], 1,
        "notes.txt exists and is not a onnx model"),
    # not a segmentation model
    "evaluate a classifier": (
        ["evaluate", "{root}/classifier.keras", "--num-val", "2"], 1,
        "classifier.keras is not a segmentation model: it maps (None, 16, 16, 3) to (None, 3) (a classifier"),
    "evaluate a model on vectors": (
        ["evaluate", "{root}/vectors.keras", "--num-val", "2"], 1,
        "vectors.keras is not a segmentation model: it maps (None, 8) to (None, 3)"),
    "predict with a classifier": (
        ["predict", "{root}/classifier.keras", "{root}/images", "--out", "{root}/p1"], 1,
        "classifier.keras is not a segmentation model"),
    "export a classifier": (
        ["export", "{root}/classifier.keras", "{root}/c.onnx", "--no-verify"], 1, "is not a segmentation model"),
    # files that are not readable models
    "predict with a truncated .keras": (
        ["predict", "{root}/trunc.keras", "{root}/images", "--out", "{root}/p2"], 1,
        "trunc.keras exists but is not a readable .keras archive"),
    "evaluate an empty .keras": (
        ["evaluate", "{root}/empty.keras", "--num-val", "2"], 1, "empty.keras exists but is not a readable .keras archive (an empty file)"),
    "export a truncated .keras": (
        ["export", "{root}/trunc.keras", "{root}/t.onnx", "--no-verify"], 1, "trunc.keras exists but is not a readable"),
    "evaluate a PyTorch save_pretrained folder": (
        ["evaluate", "{root}/smp_folder", "--num-val", "2"], 1,
        "smp_folder holds model.safetensors: a PyTorch save_pretrained folder (segmentation_models.pytorch or Hugging "
        "Face), not a keras_seg preset. Convert it first: keras-seg convert"),
    "predict with a folder as the model": (
        ["predict", "{root}/images", "{root}/images", "--out", "{root}/p3"], 1, "images is a folder"),
    "resume a run whose last.keras is truncated": (
        ["train", "--resume", "--out", "{root}/broken_run", "--epochs", "4", "--num-train", "4", "--num-val", "4",
         "--image-size", "32", "--widths", "4,8"], 1,
        "Cannot resume: {root}/broken_run/last.keras exists but is not a readable .keras archive"),
    # resume
    "resume where there is no run": (
        ["train", "--resume", "--out", "{root}/nothing_here", "--epochs", "1"], 1,
        "--resume: there is no run to resume in {root}/nothing_here (no last.keras)"),
    # --out
    "train --out naming a file": (
        ["train", "--out", "{root}/notes.txt", "--epochs", "1"], 1, "--out {root}/notes.txt is a file"),
    "predict --out naming a file": (
        ["predict", "{root}/seg.keras", "{root}/images", "--out", "{root}/notes.txt"], 1, "--out {root}/notes.txt is a file"),
    "evaluate --out naming a file": (
        ["evaluate", "{root}/seg.keras", "--out", "{root}/notes.txt"], 1, "--out {root}/notes.txt is a file"),
    "predict into the input folder": (
        ["predict", "{root}/seg.keras", "{root}/images", "--out", "{root}/images"], 1,
        "would overwrite the input image {root}/images/s0.png"),
    # malformed flags: usage, status 2
    "--widths with a word": (["train", "--widths", "8,abc"], 2, "argument --widths: '8,abc' is not a list of positive integers"),
    "--widths with a zero": (["train", "--widths", "8,0"], 2, "argument --widths: '8,0'"),
    "export --input-size with a word": (
        ["export", "{root}/seg.keras", "{root}/x.tflite", "--input-size", "abc"], 2,
        "argument --input-size: 'abc' is not H,W or one number"),
    "--sliding-window 0": (
        ["predict", "{root}/seg.keras", "{root}/images", "--sliding-window", "0"], 2,
        "argument --sliding-window: '0' is not a positive integer"),
    "--classes with a name twice": (
        ["train", "--data", "folder", "--classes", "bg,a,a"], 2, "argument --classes: 'bg,a,a' names a more than once"),
    "--classes with an empty name": (["export", "{root}/seg.keras", "{root}/y.onnx", "--classes", "bg,,a"], 2,
                                     "argument --classes: 'bg,,a' has an empty class name"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(CASES))
def test_bad_input_gets_one_clear_message(case, files, capsys):
    argv, status, message = CASES[case]
    argv = [a.replace("{root}", str(files)) for a in argv]
    before = {p: p.read_bytes() for p in files.rglob("*") if p.is_file()}
    code, err = run_cli(capsys, argv)
    assert code == status, err
    if status == 2:
        assert "usage: keras-seg" in err, err
        assert message in err, err
    else:
        assert err.count("\n") == 0 and err.startswith("keras-seg: error: "), err  # one line
        assert message.replace("{root}", str(files)) in err, err
    after = {p: p.read_bytes() for p in files.rglob("*") if p.is_file()}
    assert after == before  # nothing the user had was changed or removed, nothing was written


def test_export_into_the_current_folder_is_refused(files, capsys, monkeypatch):
    monkeypatch.chdir(files / "thesis_folder")
    code, err = run_cli(capsys, ["export", files / "seg.keras", ".", "--no-verify"])
    assert code == 1 and ". is a folder that is not a SavedModel (it holds thesis.txt)" in err
    assert (files / "thesis_folder" / "thesis.txt").read_bytes() == THESIS


def test_resume_of_a_finished_run_says_it_is_complete_and_writes_nothing(files, capsys):
    run = files / "run3"
    before = {p.name: p.read_bytes() for p in run.iterdir()}
    capsys.readouterr()
    assert cli.main(["train", "--resume", "--out", str(run), "--epochs", "2"]) == 0
    out = capsys.readouterr().out
    assert f"nothing to do: the run in {run} already completed 3 epoch(s) of --epochs 2" in out
    assert "wrote" not in out
    assert {p.name: p.read_bytes() for p in run.iterdir()} == before


def test_predict_reads_a_16_bit_png_as_training_does(files, tmp_path, capsys):
    """A 16-bit grayscale PNG means ``v >> 8`` in the training readers; predict must see the same pixels."""
    rng = np.random.default_rng(3)
    values = rng.integers(0, 65536, (64, 64)).astype(np.uint16)
    folder = tmp_path / "sixteen"
    folder.mkdir()
    Image.fromarray(values).save(folder / "deep.png")
    Image.fromarray(np.zeros((64, 64), np.uint8)).save(tmp_path / "mask.png")
    expected = np.repeat((values >> 8).astype(np.float32)[..., None], 3, axis=-1)
    read = keras_seg.data.read_image(folder / "deep.png")
    trained_on = next(iter(keras_seg.data.from_pairs([(str(folder / "deep.png"), str(tmp_path / "mask.png"))])))[0]
    np.testing.assert_array_equal(read, expected)
    np.testing.assert_array_equal(np.asarray(trained_on), expected)  # the training reader: the same pixels

    shipped = os.path.join(os.path.dirname(os.path.dirname(__file__)), "saved_models", "shapes_unet.keras")
    code, err = run_cli(capsys, ["predict", shipped, folder, "--out", tmp_path / "pred"])
    assert code == 0, err
    written = np.asarray(Image.open(tmp_path / "pred" / "deep.png"))
    model = keras.saving.load_model(shipped)
    np.testing.assert_array_equal(written, model.predict_mask(expected))
    clipped = np.asarray(Image.open(folder / "deep.png").convert("RGB"), np.float32)  # what predict used to read
    assert (model.predict_mask(clipped) != written).mean() > 0.05  # so the test tells the two readers apart


def test_an_unreadable_image_is_named(files, tmp_path, capsys):
    folder = tmp_path / "odd"
    folder.mkdir()
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    code, err = run_cli(capsys, ["predict", files / "seg.keras", folder / "broken.png", "--out", tmp_path / "o"])
    assert code == 1 and f"Cannot read the image {folder / 'broken.png'}" in err, err
