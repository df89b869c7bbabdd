"""keras_seg.export: SavedModel, TFLite and ONNX artifacts, run in their real runtimes on the CPU.

The conversions run in-process on the TensorFlow backend; under JAX and PyTorch one test
each builds and saves a model on that backend and exports it through the TensorFlow child
process. Argument errors are checked on every backend (they fail before any conversion).
"""

import json
import os
import re

import keras
import numpy as np
import pytest

import keras_seg
from keras_seg import export as E
from keras_seg.data.shapes import CLASS_NAMES as SHAPES_CLASSES
from keras_seg.data.shapes import shapes_arrays
from keras_seg.models import FCN, DeepLabV3, DeepLabV3Plus, UNet
from test_models import BUILDERS, tiny_encoder  # the bring-your-own encoder of the model battery
from test_segformer import small_segformer  # SegFormer on a small MiT

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SHIPPED = os.path.join(ROOT, "saved_models", "shapes_unet.keras")
BACKEND = keras.backend.backend()
on_tensorflow = pytest.mark.skipif(
    BACKEND != "tensorflow", reason="conversions run in-process on TensorFlow; JAX / PyTorch use the child process"
)
NAMES = ["sky", "road", "car"]


ARCHITECTURES = {  # the smallest settings that build
    "unet_classic": lambda: UNet(3, widths=(8, 16)),
    "unet_mobilenetv3small": lambda: UNet(3, encoder="mobilenetv3small", decoder_channels=(16, 8, 8, 8, 8)),
    "fcn8s": lambda: FCN(3, encoder=tiny_encoder(), head_channels=8),
    "deeplabv3": lambda: DeepLabV3(3, encoder=tiny_encoder(), aspp_channels=8),  # atrous rates 3, 6, 9
    "deeplabv3plus": lambda: DeepLabV3Plus(3, encoder=tiny_encoder(), aspp_channels=8, low_level_channels=4,
                                           decoder_channels=8),  # fmt: skip
    "segformer": small_segformer,  # a small MiT (b0's graph): attention with positions flattened in the graph
    **{name: BUILDERS[name] for name in ("unetplusplus", "fpn", "pspnet", "linknet", "manet", "pan", "upernet", "lraspp")},
}
# (fixed input size, any-size check size): PAN max-pools its deepest feature three times (see test_models.SIZES).
EXPORT_SIZES = {"pan": ((256, 256), (257, 263))}


def images(count, height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (count, height, width, 3)).astype("float32")


def assert_float_parity(report):
    """The float32 targets: labels agree on >= 99.9 % of pixels and max |Δ logits| <= 1e-4 x the logits' scale."""
    assert report.verified and report.max_abs_diff is not None, report
    assert report.label_agreement >= 0.999, report
    assert report.relative_diff <= 1e-4, report


# ---------------------------------------------------------------------------------------------- every architecture


@on_tensorflow
@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.slow) if n == "segformer" else n for n in sorted(ARCHITECTURES)
             if n != "unet_mobilenetv3small"]  # the phone model: its TFLite file is tested in test_export_mobile
)
def test_every_architecture_exports_to_every_format(name, tmp_path):
    """ONNX and SavedModel here; each architecture's float32 TFLite file is checked in tests/test_export_mobile.py
    (the same parity targets, then MediaPipe and the GPU delegate on that one conversion)."""
    model = ARCHITECTURES[name]()
    _, free = EXPORT_SIZES.get(name, ((32, 48), (40, 56)))
    dynamic = images(3, *free, seed=1)  # SavedModel and ONNX keep any size: check them off the square
    formats = [
        ("onnx", tmp_path / "model.onnx", {"verify_data": dynamic}),
        ("saved_model", tmp_path / "model", {"verify_data": dynamic}),
    ]
    for format, path, kwargs in formats:
        report = E.export(model, path, format=format, class_names=NAMES, quiet=True, **kwargs)
        assert_float_parity(report)
        assert report.file_size > 0 and report.latency_ms > 0
        assert report.input_shape == [None, None, None, 3]
        assert E.read_metadata(path)["class_names"] == NAMES
        print(f"{name} {format}: agreement {100 * report.label_agreement:.3f} %, max|Δ|/scale "
              f"{report.relative_diff:.1e}, {report.file_size} bytes, {report.latency_ms:.3f} ms")  # fmt: skip


# ---------------------------------------------------------------------------------------------- the shipped model


@pytest.fixture(scope="module")
def shapes():
    """The shipped shapes U-Net (trained: int8 needs a model that learned something) and shapes data at 64 x 64."""
    if BACKEND != "tensorflow":
        pytest.skip("conversions run in-process on TensorFlow")
    model = keras.saving.load_model(SHIPPED)
    calibration = keras_seg.data.shapes("val", 100, 64)  # a tf.data.Dataset of (image, mask)
    test = shapes_arrays("test", 32, 64)  # arrays (images uint8, masks)
    return model, calibration, test


@pytest.fixture(scope="module")
def float_tflite(shapes, tmp_path_factory):
    _, _, test = shapes
    path = tmp_path_factory.mktemp("float") / "shapes.tflite"
    return E.export(SHIPPED, path, input_size=64, verify_data=test, quiet=True)  # a path: its class names come too


def test_float32_tflite_of_the_shipped_model(float_tflite):
    assert_float_parity(float_tflite)
    assert float_tflite.class_names == list(SHAPES_CLASSES)  # read from the training state in the .keras file
    assert float_tflite.with_masks and abs(float_tflite.miou_export - float_tflite.miou_keras) < 1e-4


def test_int8_tflite_is_small_integer_and_as_accurate(shapes, float_tflite, tmp_path):
    _, calibration, test = shapes
    path = tmp_path / "shapes_int8.tflite"
    report = E.export(SHIPPED, path, input_size=64, output="labels", input_dtype="uint8", quantize="int8",
                      representative_data=calibration, verify_data=test, quiet=True)  # fmt: skip
    print(report)
    assert report.fully_integer and report.float_ops == []
    assert report.input_quantization == [1.0, 0]  # raw pixels go in
    assert report.label_agreement >= 0.98, report
    assert abs(report.miou_export - report.miou_keras) <= 0.01, report
    assert report.file_size <= 0.30 * float_tflite.file_size, (report.file_size, float_tflite.file_size)
    meta = E.read_metadata(path)
    assert meta["class_names"] == list(SHAPES_CLASSES) and meta["output"] == "labels" and meta["input_dtype"] == "uint8"
    assert meta["input_shape"] == [1, 64, 64, 3] and meta["quantize"] == "int8" and meta["fully_integer"]


@pytest.mark.slow
def test_float16_and_dynamic_tflite(shapes, float_tflite, tmp_path):
    model, _, test = shapes
    half = E.export(model, tmp_path / "half.tflite", input_size=64, quantize="float16", verify_data=test, quiet=True)
    assert half.label_agreement >= 0.995, half
    assert half.file_size <= 0.55 * float_tflite.file_size
    dynamic = E.export(model, tmp_path / "dyn.tflite", input_size=64, quantize="dynamic", verify_data=test, quiet=True)
    assert dynamic.label_agreement >= 0.98 and abs(dynamic.miou_export - dynamic.miou_keras) <= 0.01, dynamic
    assert dynamic.file_size <= 0.30 * float_tflite.file_size and not dynamic.fully_integer
    print(half, dynamic, sep="\n")


def test_int8_onnx(shapes, tmp_path):
    model, calibration, test = shapes
    int8 = E.export(model, tmp_path / "int8.onnx", quantize="int8", output="labels", input_dtype="uint8",
                    representative_data=calibration, verify_data=test, quiet=True)  # fmt: skip
    print(int8)
    assert int8.label_agreement >= 0.98 and abs(int8.miou_export - int8.miou_keras) <= 0.01, int8
    assert int8.file_size <= 0.30 * int8.keras_weights_size  # the float32 weights alone
    assert int8.input_shape == [None, None, None, 3]  # calibrated at 64 x 64, still any size
    assert E.read_metadata(tmp_path / "int8.onnx")["class_names"] is None  # a model object without class_names


# ---------------------------------------------------------------------------------------------- outputs and inputs


@pytest.fixture(scope="module")
def unet():
    keras.utils.set_random_seed(3)
    return UNet(3, widths=(8, 16))


@on_tensorflow
def test_labels_output_is_the_argmax_of_the_keras_logits(unet, tmp_path):
    Interpreter = pytest.importorskip("ai_edge_litert.interpreter").Interpreter

    path = tmp_path / "labels.tflite"
    report = E.export(unet, path, input_size=32, output="labels", input_dtype="uint8", quiet=True)
    assert report.output_shape == [1, 32, 32] and report.output_dtype == "uint8" and report.max_abs_diff is None
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    assert source["dtype"] == np.uint8 and target["dtype"] == np.uint8
    x = images(1, 32, 32, seed=5)
    interpreter.set_tensor(source["index"], x.astype("uint8"))
    interpreter.invoke()
    want = keras.ops.convert_to_numpy(unet(x)).argmax(-1)
    np.testing.assert_array_equal(interpreter.get_tensor(target["index"]), want)


@on_tensorflow
def test_saved_model_serving_default_signature(unet, tmp_path):
    import tensorflow as tf

    path = str(tmp_path / "saved")
    E.export(unet, path, class_names=NAMES, input_dtype="uint8", quiet=True)
    loaded = tf.saved_model.load(path)
    signature = loaded.signatures["serving_default"]
    spec = signature.structured_input_signature[1]["image"]
    assert spec.dtype == tf.uint8 and spec.shape.as_list() == [None, None, None, 3]
    assert set(signature.structured_outputs) == {"logits"}
    x = images(2, 24, 40, seed=2)
    got = signature(image=tf.constant(x.astype("uint8")))["logits"].numpy()
    np.testing.assert_allclose(got, keras.ops.convert_to_numpy(unet(x)), atol=1e-5)
    assert json.loads(loaded.metadata().numpy())["class_names"] == NAMES
    assert json.load(open(os.path.join(path, "assets", "class_names.json"))) == NAMES


@on_tensorflow
def test_dynamic_onnx_runs_integer_convolutions(unet, tmp_path):
    import onnx

    path = tmp_path / "dynamic.onnx"
    report = E.export(unet, path, quantize="dynamic", verify_data=images(3, 32, 32), quiet=True)
    assert "ConvInteger" in {node.op_type for node in onnx.load(path).graph.node}
    assert report.file_size < report.keras_weights_size and any("ConvInteger" in n for n in report.notes)
    # No target for dynamic quantization; an untrained model's close logits flip the odd pixel (98.6 % measured).
    assert report.label_agreement >= 0.95, report


@on_tensorflow
def test_one_class_models_threshold_and_sigmoid(tmp_path):
    import onnxruntime as ort

    model = UNet(1, widths=(4, 8))
    x = images(2, 24, 32, seed=4)
    logits = keras.ops.convert_to_numpy(model(x))[..., 0]
    for output, want in (("labels", (logits > 0).astype("uint8")), ("probabilities", 1 / (1 + np.exp(-logits)))):
        path = str(tmp_path / f"{output}.onnx")
        report = E.export(model, path, output=output, class_names=["background", "lesion"], verify_data=x, quiet=True)
        assert report.label_agreement >= 0.999 and report.num_classes == 1
        got = ort.InferenceSession(path, providers=["CPUExecutionProvider"]).run(None, {"image": x})[0]
        if output == "labels":
            np.testing.assert_array_equal(got, want)
        else:
            np.testing.assert_allclose(got[..., 0], want, atol=1e-5)


@on_tensorflow
def test_a_model_ending_in_softmax_exports_probabilities(tmp_path):
    model = UNet(3, widths=(4, 8), activation="softmax")
    report = E.export(model, tmp_path / "p.onnx", verify_data=images(2, 16, 16), quiet=True)
    assert report.output == "probabilities" and report.label_agreement >= 0.999 and report.relative_diff <= 1e-4
    with pytest.raises(ValueError, match="ends in a softmax"):
        E.export(model, tmp_path / "l.onnx", output="logits", quiet=True)


@on_tensorflow
def test_a_mixed_precision_model_exports_from_a_float32_copy(tmp_path):
    keras.config.set_dtype_policy("mixed_float16")  # the conftest fixture restores float32
    model = ARCHITECTURES["deeplabv3plus"]()  # its bring-your-own encoder stores per-layer policies
    keras.config.set_dtype_policy("float32")
    report = E.export(model, tmp_path / "m.tflite", input_size=32, verify_data=images(3, 32, 32), quiet=True)
    assert any("float32 copy" in note for note in report.notes)
    # Against the float16 Keras model itself: its own rounding (about 1e-3 of the scale) is the difference.
    assert report.label_agreement >= 0.99 and report.relative_diff <= 5e-3, report


# ---------------------------------------------------------------------------------------------- files


@on_tensorflow
def test_a_failed_conversion_leaves_the_existing_file_alone(unet, tmp_path, monkeypatch):
    path = tmp_path / "model.tflite"
    path.write_bytes(b"\x1c\x00\x00\x00TFL3 the previous model")  # a TFLite file (identifier at byte 4)

    def broken(content, metadata, entries=None):
        raise RuntimeError("disk full")

    monkeypatch.setattr("keras_seg.export.metadata.add_to_tflite", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        E.export(unet, path, input_size=32, quiet=True)
    assert path.read_bytes() == b"\x1c\x00\x00\x00TFL3 the previous model"
    assert os.listdir(tmp_path) == ["model.tflite"]  # no temporary file left


@on_tensorflow
def test_a_saved_model_directory_is_replaced_only_when_complete(unet, tmp_path, monkeypatch):
    import tensorflow as tf

    path = tmp_path / "saved"
    E.export(unet, path, verify=False)
    before = {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()}
    save = tf.saved_model.save

    def half_written(module, directory, **kwargs):
        save(module, directory, **kwargs)
        raise OSError("killed")

    monkeypatch.setattr(tf.saved_model, "save", half_written)
    with pytest.raises(OSError, match="killed"):
        E.export(unet, path, verify=False)
    assert {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()} == before
    assert os.listdir(tmp_path) == ["saved"]
    monkeypatch.setattr(tf.saved_model, "save", save)
    report = E.export(UNet(3, widths=(4, 8)), path, verify=False)  # other weights: the files change
    assert not report.verified and report.latency_ms is None
    assert "saved_model.pb" in os.listdir(path) and os.listdir(tmp_path) == ["saved"]
    assert {p.relative_to(path): p.read_bytes() for p in path.rglob("*") if p.is_file()} != before


def test_an_export_never_replaces_a_folder_or_file_it_did_not_write(tmp_path):
    """Only a SavedModel (or an empty folder) is replaced by a SavedModel, only a .tflite / .onnx by one."""
    model = UNet(3, widths=(4, 8))
    thesis = b"Chapter 1\n"
    folder = tmp_path / "work"
    folder.mkdir()
    (folder / "thesis.txt").write_bytes(thesis)
    with pytest.raises(FileExistsError, match=r"work is a folder that is not a SavedModel \(it holds thesis\.txt\)"):
        E.export(model, folder, verify=False)
    fake = tmp_path / "fake"  # saved_model.pb beside something foreign, inside variables/ too
    (fake / "variables").mkdir(parents=True)
    (fake / "saved_model.pb").write_bytes(b"x")
    (fake / "variables" / "notes.md").write_bytes(thesis)
    with pytest.raises(FileExistsError, match=r"it holds variables/notes\.md"):
        E.export(model, fake, verify=False)
    (tmp_path / "model.onnx").write_bytes(thesis)
    with pytest.raises(FileExistsError, match="model.onnx exists and is not a onnx model"):
        E.export(model, tmp_path / "model.onnx", verify=False)
    assert (folder / "thesis.txt").read_bytes() == thesis and (fake / "variables" / "notes.md").read_bytes() == thesis
    assert (tmp_path / "model.onnx").read_bytes() == thesis
    assert sorted(os.listdir(tmp_path)) == ["fake", "model.onnx", "work"]  # no temporary folder left
    from keras_seg.export.options import foreign_entries

    (tmp_path / "empty").mkdir()
    assert foreign_entries(tmp_path / "empty") == []  # an empty folder may be replaced


def test_read_metadata_says_what_it_cannot_read(tmp_path):
    (tmp_path / "x.onnx").write_bytes(b"not a model")
    with pytest.raises(ValueError, match="neither a SavedModel"):
        E.read_metadata(tmp_path / "x.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="not a SavedModel written by keras_seg"):
        E.read_metadata(tmp_path / "empty")
    with pytest.raises(FileNotFoundError):
        E.read_metadata(tmp_path / "missing.tflite")


# ---------------------------------------------------------------------------------------------- errors (every backend)


@pytest.mark.parametrize(
    "kwargs, error, message",
    [
        ({"format": "coreml"}, ValueError, "format='coreml'"),
        ({"output": "mask"}, ValueError, "output='mask'"),
        ({"quantize": "int4"}, ValueError, "quantize='int4'"),
        ({"quantize": "int8", "path": "m.tflite", "input_size": 32}, ValueError, "pass representative_data="),
        ({"quantize": "float16"}, ValueError, "not supported for format='saved_model'"),
        ({"quantize": "float16", "path": "m.onnx"}, ValueError, "it supports None, 'dynamic', 'int8'"),
        ({"path": "m.tflite"}, ValueError, "pass input_size=(H, W)"),
        ({"path": "m.tflite", "format": "onnx"}, ValueError, "use format='tflite'"),
        ({"path": "missing/m.onnx"}, FileNotFoundError, "does not exist; create it first"),
        ({"input_dtype": "int16"}, ValueError, "input_dtype='int16'"),
        ({"input_size": (0, 32)}, ValueError, "input_size=(0, 32)"),
        ({"batch_size": 0}, ValueError, "batch_size=0"),
        ({"class_names": ["a", "b"]}, ValueError, "class_names has 2 names but the model predicts 3"),
        ({"model": "nowhere.keras"}, FileNotFoundError, "nowhere.keras does not exist"),
        ({"model": object()}, TypeError, "is not a Keras model"),
    ],
)
def test_errors_name_the_bad_value_and_the_fix(kwargs, error, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    kwargs = {"model": UNet(3, widths=(4, 8)), "path": "model", **kwargs}
    with pytest.raises(error) as info:
        E.export(**kwargs)
    assert message in str(info.value)
    assert os.listdir(tmp_path) == []  # nothing written


def test_without_tensorflow_the_error_names_the_install(monkeypatch, tmp_path):
    import importlib.util

    find_spec = importlib.util.find_spec
    hidden = lambda name, *args: None if name == "tensorflow" else find_spec(name, *args)  # noqa: E731
    monkeypatch.setattr(importlib.util, "find_spec", hidden)
    with pytest.raises(ImportError, match=r'pip install "keras-seg\[export\]"'):
        E.export(UNet(3, widths=(4, 8)), tmp_path / "m.onnx")


def test_calibration_and_verification_data_in_every_form():
    from keras_seg.export.data import collect

    x, y = shapes_arrays("val", 6, 32)
    batched = keras_seg.data.shapes("val", 6, 32).batch(4)  # (images, masks) batches
    images, masks = collect(batched, "verify_data", limit=5, size=(16, 16))
    assert images.shape == (5, 16, 16, 3) and images.dtype == np.float32 and masks.shape == (5, 16, 16)
    np.testing.assert_array_equal(masks, y[:5, 1::2, 1::2])  # nearest: the pixel under each new pixel's centre
    images, masks = collect((x, y), "verify_data", limit=None)
    np.testing.assert_array_equal(images, x)
    np.testing.assert_array_equal(masks, y)
    images, masks = collect([x[0], x[1, :20, :30]], "representative_data", limit=None)  # sizes differ
    assert images.shape == (2, 32, 32, 3) and masks is None
    assert collect(x[0], "representative_data", limit=None)[0].shape == (1, 32, 32, 3)
    with pytest.raises(ValueError, match="representative_data has images with 8 channels; the model takes 3"):
        collect(np.zeros((2, 8, 8)), "representative_data", limit=None, channels=3)  # grey images need a C axis
    with pytest.raises(ValueError, match=r"verify_data has shape \(8, 8\)"):
        collect(np.zeros((8, 8)), "verify_data", limit=None)


def test_the_report_reads_as_a_table_and_as_json():
    report = E.ExportReport(
        path="m.tflite", format="tflite", output="labels", quantize="int8", input_dtype="uint8",
        input_shape=[1, 64, 64, 3], output_shape=[1, 64, 64], output_dtype="uint8", num_classes=4,
        class_names=list(SHAPES_CLASSES), file_size=2_000_000, keras_weights_size=8_000_000, seconds=3.0,
        fully_integer=True, verified=True, runtime="LiteRT", num_images=8, image_size=[64, 64], with_masks=True,
        label_agreement=0.9993, miou_vs_keras=0.996, miou_keras=0.914, miou_export=0.915, latency_ms=1.1,
        input_quantization=[1.0, 0],
    )  # fmt: skip
    text = str(report)
    for piece in ("99.930 %", "Keras 0.9140, export 0.9150", "25.0 % of the Keras float32 weights",
                  "scale 1, zero point 0", "8 images of 64x64 with masks"):  # fmt: skip
        assert piece in text, text
    assert re.search(r"fully integer +yes", text), text
    assert E.ExportReport.from_dict(json.loads(report.to_json())) == report


# ---------------------------------------------------------------------------------------------- JAX and PyTorch


@pytest.mark.skipif(BACKEND not in ("jax", "torch"), reason="the child-process export runs under JAX and PyTorch")
def test_a_model_built_on_this_backend_exports_through_tensorflow(tmp_path):
    keras.utils.set_random_seed(0)
    model = UNet(3, widths=(8, 16))
    path = str(tmp_path / f"{BACKEND}.keras")
    model.save(path)
    x = images(3, 32, 32, seed=6)
    report = E.export(path, tmp_path / "model.tflite", input_size=32, class_names=NAMES, verify_data=x, quiet=True)
    assert "child process" in report.converted_by and BACKEND in report.converted_by
    assert_float_parity(report)  # against this backend's own logits: .keras loads under TensorFlow unchanged
    assert report.path == str(tmp_path / "model.tflite")
    assert E.read_metadata(report.path)["class_names"] == NAMES
    with pytest.raises(ValueError, match="ends in a sigmoid"):  # checked here, before a child process starts
        E.export(UNet(1, widths=(4, 8), activation="sigmoid"), tmp_path / "m.onnx", output="logits")


# ---------------------------------------------------------------------------------------------- command line


@on_tensorflow
def test_command_line_export(unet, tmp_path, capsys):
    from keras_seg import cli

    model = str(tmp_path / "tiny.keras")
    UNet(4, widths=(4, 8)).save(model)
    out = str(tmp_path / "tiny.tflite")
    code = cli.main(["export", model, out, "--input-size", "32", "--quantize", "int8", "--calibration", "shapes",
                     "--num-calibration", "8", "--num-verify", "4", "--output", "labels", "--input-dtype", "uint8",
                     "--classes", ",".join(SHAPES_CLASSES)])  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0 and "label agreement" in printed and "mean IoU vs masks" in printed and f"wrote {out}" in printed
    assert E.read_metadata(out)["class_names"] == list(SHAPES_CLASSES)
    assert cli.main(["export", model, str(tmp_path / "x.tflite")]) == 1
    assert "keras-seg: error: TFLite needs a fixed input size" in capsys.readouterr().err
