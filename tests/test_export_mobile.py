"""TFLite for phones: MediaPipe's ImageSegmenter runs keras_seg's files as they are, and the graphs suit the GPU delegate.

MediaPipe Tasks' Python ``vision.ImageSegmenter`` runs the same C++ graph as Android, iOS and the
web: it reads the file's metadata (input normalisation, label file, activation), feeds the
image, and computes the category mask (argmax; for one sigmoid channel 0 = foreground and 255 =
background, MediaPipe's convention) and the confidence masks. The GPU delegate cannot run on this
CPU machine; :mod:`keras_seg.export.gpu_delegate` checks each graph against the delegate's own
rules, and the tests show it flags what the delegate refuses. Conversions run on the TensorFlow pass.
"""

import importlib.util

import keras
import numpy as np
import pytest

import keras_seg
from keras_seg import export as E
from keras_seg.data.shapes import CLASS_NAMES as SHAPES_CLASSES
from keras_seg.data.shapes import shapes_arrays
from keras_seg.export import gpu_delegate
from test_export import ARCHITECTURES, EXPORT_SIZES, SHIPPED, assert_float_parity
from test_export import images as export_images

pytestmark = pytest.mark.skipif(keras.backend.backend() != "tensorflow", reason="conversions run on the TensorFlow pass")

MEDIAPIPE = None if importlib.util.find_spec("mediapipe") else "mediapipe is not installed; pip install 'keras-seg[export]'"
needs_mediapipe = pytest.mark.skipif(MEDIAPIPE is not None, reason=MEDIAPIPE or "")


def segment(path, images):
    """MediaPipe's ImageSegmenter (in its own process) on uint8 RGB images: ``(labels, category masks, confidences)``."""
    result = E.mediapipe_segment(path, np.asarray(images, np.uint8))
    return result.labels, result.category_masks, result.confidence_masks


@pytest.fixture(scope="module")
def shapes():
    images, masks = shapes_arrays("test", 12, (64, 64), seed=5)
    return images, masks


@pytest.fixture(scope="module")
def shipped():
    return keras.saving.load_model(SHIPPED)


VARIANTS = {  # every TFLite export meant for MediaPipe, of the shipped 64 x 64 shapes model
    "default": {},
    "uint8 input": {"input_dtype": "uint8"},
    "probabilities": {"output": "probabilities"},
    "float16": {"quantize": "float16"},
    "int8": {"quantize": "int8", "input_dtype": "uint8"},
}


@needs_mediapipe
@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_mediapipe_runs_every_variant_of_the_shipped_model(variant, shipped, shapes, tmp_path):
    images, _ = shapes
    kwargs = dict(VARIANTS[variant])
    if kwargs.get("quantize") == "int8":
        kwargs["representative_data"] = shapes_arrays("val", 64, (64, 64), seed=7)[0]
    path = tmp_path / "shapes.tflite"
    report = E.export(shipped, path, input_size=64, class_names=list(SHAPES_CLASSES), verify_data=images, quiet=True,
                      **kwargs)  # fmt: skip
    assert report.mediapipe and report.gpu_compatible is not None
    labels, categories, confidences = segment(path, images)
    assert labels == list(SHAPES_CLASSES)
    keras_labels = shipped.predict_mask(images.astype("float32"))
    agreement = float((categories == keras_labels).mean())
    assert agreement >= (0.98 if variant == "int8" else 0.999), agreement
    np.testing.assert_allclose(confidences.sum(axis=-1), 1.0, atol=1e-3)  # softmax confidences, whatever the output
    if variant != "int8":
        assert report.gpu_compatible, report.gpu_issues
    print(f"{variant}: MediaPipe category mask = Keras argmax on {100 * agreement:.3f} % of pixels; "
          f"LiteRT {100 * report.label_agreement:.3f} %; GPU delegate: {gpu_delegate.summary(report.num_ops, report.gpu_issues)}")  # fmt: skip


ARCHITECTURE_SIZE = (32, 48)
EVERY_ARCHITECTURE = dict(ARCHITECTURES, lraspp=lambda: keras_seg.models.LRASPP(3, encoder="mobilenetv3small",
                                                                                 inter_channels=16))  # fmt: skip


@needs_mediapipe
@pytest.mark.parametrize("name", [pytest.param(n, marks=pytest.mark.slow) for n in sorted(EVERY_ARCHITECTURE)])
def test_every_architecture_runs_in_mediapipe_and_suits_the_gpu_delegate(name, tmp_path):
    """float32 and float16 TFLite of a random-init model of each architecture: the float32 file meets the export
    parity targets in LiteRT (test_export checks ONNX and SavedModel); in MediaPipe its confidence masks are
    the softmax of the Keras logits, and its category mask their argmax wherever the Keras logits decide (a random
    model has near-ties no float runtime reproduces); the GPU-delegate check finds nothing to fall back."""
    model = EVERY_ARCHITECTURE[name]()
    size = EXPORT_SIZES.get(name, (ARCHITECTURE_SIZE,))[0]
    images = np.random.default_rng(2).integers(0, 256, (3, *size, 3)).astype("uint8")
    logits = keras.ops.convert_to_numpy(model(images.astype("float32")))
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    top2 = np.sort(logits, axis=-1)[..., -2:]
    decided = (top2[..., 1] - top2[..., 0]) > 1e-3 * np.abs(logits).max()
    assert decided.sum() >= 100, decided.sum()  # enough decided pixels for the comparisons to mean something
    for quantize, tolerance in ((None, 1e-4), ("float16", 2e-2)):
        path = tmp_path / f"{name}_{quantize or 'float32'}.tflite"
        check = {"verify_data": export_images(3, *size)} if quantize is None else {"verify": False}  # test_export's
        report = E.export(model, path, input_size=size, quantize=quantize, class_names=["a", "b", "c"], quiet=True,
                          **check)  # fmt: skip
        if quantize is None:  # the float32 file in LiteRT: test_export's parity targets, its shape and metadata
            assert_float_parity(report)
            assert report.file_size > 0 and report.latency_ms > 0 and report.input_shape == [1, *size, 3]
            assert E.read_metadata(path)["class_names"] == ["a", "b", "c"]
        assert report.gpu_compatible, (quantize, report.gpu_issues)
        labels, categories, confidences = segment(path, images)
        assert labels == ["a", "b", "c"]
        assert np.abs(confidences - probabilities).max() <= tolerance, quantize
        # MediaPipe's own two outputs agree wherever the logits decide (a near-tie has no right answer)
        np.testing.assert_array_equal(categories[decided], confidences.argmax(-1)[decided])
        agreement = float((categories == logits.argmax(-1))[decided].mean())
        assert agreement >= (0.999 if quantize is None else 0.98), (quantize, agreement)
        print(f"{name} {quantize or 'float32'}: {report.num_ops} ops, all on the GPU delegate; MediaPipe = Keras on "
              f"{100 * agreement:.2f} % of the {decided.mean():.0%} decided pixels")  # fmt: skip


@needs_mediapipe
def test_a_one_channel_model_follows_mediapipes_foreground_convention(tmp_path):
    model = keras_seg.models.UNet(1, widths=(4, 8))
    images = np.random.default_rng(3).integers(0, 256, (2, 32, 32, 3)).astype("uint8")
    path = tmp_path / "binary.tflite"
    report = E.export(model, path, input_size=32, class_names=["background", "person"], verify=False, quiet=True)
    assert report.mediapipe and report.gpu_compatible
    labels, categories, confidences = segment(path, images)
    logits = keras.ops.convert_to_numpy(model(images.astype("float32")))[..., 0]
    assert labels == ["person"]  # the sigmoid channel is the foreground
    np.testing.assert_allclose(confidences[..., 0], 1 / (1 + np.exp(-logits)), atol=1e-5)  # SIGMOID metadata
    np.testing.assert_array_equal(categories, np.where(logits > 0, 0, 255))  # MediaPipe: 0 foreground, 255 background
    # images of different sizes in one call: MediaPipe resizes each to the model's 32 x 32; masks at each image's size
    mixed = E.mediapipe_segment(path, [images[0], np.repeat(images[1], 2, axis=1)])
    assert [m.shape for m in mixed.category_masks] == [(32, 32), (32, 64)]
    assert [m.shape for m in mixed.confidence_masks] == [(32, 32, 1), (32, 64, 1)]
    np.testing.assert_array_equal(mixed.category_masks[0], categories[0])


def test_the_gpu_check_flags_argmax_and_six_dimensional_tensors(tmp_path):
    unet = keras_seg.models.UNet(3, widths=(4, 8))
    with pytest.warns(UserWarning, match="MediaPipe's ImageSegmenter and the LiteRT GPU delegate .* cannot use it"):
        labels = E.export(unet, tmp_path / "labels.tflite", input_size=32, output="labels", verify=False, quiet=True)
    assert not labels.gpu_compatible and not labels.mediapipe
    assert any(issue.startswith("ARG_MAX") and "not in the GPU delegate's op list" in issue for issue in labels.gpu_issues)

    inputs = keras.Input((8, 8, 16))  # the matmul form of a 2x2 up-convolution, written out: reshape to 6-D, transpose
    x = keras.layers.Reshape((8, 8, 2, 2, 4))(inputs)
    x = keras.layers.Permute((1, 3, 2, 4, 5))(x)
    six = keras.Model(inputs, keras.layers.Reshape((16, 16, 4))(x))
    report = E.export(six, tmp_path / "six.tflite", verify=False, quiet=True, mediapipe=False)
    assert not report.gpu_compatible
    assert any("a rank-6 tensor [1, 8, 8, 2, 2, 4]" in issue for issue in report.gpu_issues), report.gpu_issues
    assert any(issue.startswith("TRANSPOSE") and "a permutation of 6 axes" in issue for issue in report.gpu_issues)
    assert "fall back to the CPU" in str(report)

    plain = E.export(unet, tmp_path / "plain.tflite", input_size=32, verify=False, quiet=True)
    assert plain.gpu_compatible and plain.gpu_issues == [] and f"all {plain.num_ops} ops supported" in str(plain)
    ops = _op_names(tmp_path / "plain.tflite")
    assert "TRANSPOSE_CONV" in ops and "ARG_MAX" not in ops  # the up-convolution exports as TRANSPOSE_CONV


def test_mediapipe_metadata_refuses_what_mediapipe_cannot_run(tmp_path):
    gray = keras_seg.models.UNet(3, widths=(4, 8), input_shape=(None, None, 1))
    with pytest.raises(ValueError, match=r"mediapipe=True: the model takes 1 input channel\(s\), and MediaPipe's "
                                         r"ImageSegmenter feeds RGB images \(3 channels\)"):  # fmt: skip
        E.export(gray, tmp_path / "gray.tflite", input_size=32, mediapipe=True, verify=False, quiet=True)
    with pytest.warns(UserWarning, match="no MediaPipe metadata: the model takes 1 input channel"):
        report = E.export(gray, tmp_path / "gray.tflite", input_size=32, verify=False, quiet=True)
    assert report.mediapipe is False and report.gpu_compatible
    many = keras_seg.models.UNet(300, widths=(4, 8))
    with pytest.warns(UserWarning, match="300 classes and MediaPipe's category mask is uint8: it can name only 256"):
        E.export(many, tmp_path / "many.tflite", input_size=32, verify=False, quiet=True)
    with pytest.raises(ValueError, match="mediapipe=True with output='labels'"):
        E.export(gray.__class__(3, widths=(4, 8)), tmp_path / "l.tflite", input_size=32, output="labels",
                 mediapipe=True, verify=False, quiet=True)  # fmt: skip
    with pytest.raises(ValueError, match="mediapipe=True writes MediaPipe's TFLite metadata; format='onnx'"):
        E.export(many, tmp_path / "m.onnx", mediapipe=True, verify=False, quiet=True)
    off = E.export(many, tmp_path / "off.tflite", input_size=32, mediapipe=False, verify=False, quiet=True)
    assert off.mediapipe is False and E.read_metadata(tmp_path / "off.tflite")["mediapipe"] is False


def test_the_metadata_is_mediapipes_schema(tmp_path):
    """Read back with MediaPipe's own generated schema: input normalisation, label file, activation, min version."""
    pytest.importorskip("mediapipe")
    from mediapipe.tasks.metadata import image_segmenter_metadata_schema_py_generated as segmenter_fb
    from mediapipe.tasks.metadata import metadata_schema_py_generated as metadata_fb
    import zipfile

    from keras_seg.export import metadata as M

    model = keras_seg.models.UNet(3, widths=(4, 8))
    path = tmp_path / "m.tflite"
    E.export(model, path, input_size=32, class_names=["sky", "road", "car"], verify=False, quiet=True)
    content = path.read_bytes()
    schema = M.tflite_schema()
    tflite = schema.Model.GetRootAs(content, 0)
    entries = {tflite.Metadata(i).Name().decode(): tflite.Metadata(i).Buffer() for i in range(tflite.MetadataLength())}
    assert {"keras_seg", "TFLITE_METADATA"} <= set(entries)
    buffer = tflite.Buffers(entries["TFLITE_METADATA"]).DataAsNumpy().tobytes()
    assert metadata_fb.ModelMetadata.ModelMetadataBufferHasIdentifier(buffer, 0)
    meta = metadata_fb.ModelMetadataT.InitFromObj(metadata_fb.ModelMetadata.GetRootAs(buffer, 0))
    (subgraph,) = meta.subgraphMetadata
    (image,) = subgraph.inputTensorMetadata
    (normalisation,) = image.processUnits
    assert list(normalisation.options.mean) == [0.0] and list(normalisation.options.std) == [1.0]
    assert image.content.contentProperties.colorSpace == metadata_fb.ColorSpaceType.RGB
    (masks,) = subgraph.outputTensorMetadata
    (labels_file,) = masks.associatedFiles
    assert labels_file.name.decode() == "labels.txt" and labels_file.type == metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS
    (custom,) = subgraph.customMetadata
    options = segmenter_fb.ImageSegmenterOptions.GetRootAs(bytes(bytearray(custom.data)), 0)
    assert custom.name.decode() == "SEGMENTER_METADATA" and options.Activation() == segmenter_fb.Activation.SOFTMAX
    with zipfile.ZipFile(path) as archive:  # the label file travels inside the model file
        assert archive.read("labels.txt").decode() == "sky\nroad\ncar\n"
    assert E.read_metadata(path)["class_names"] == ["sky", "road", "car"]  # keras_seg's own entry is still there


def _op_names(path):
    from keras_seg.export import metadata as M

    schema = M.tflite_schema()
    model = schema.Model.GetRootAs(open(path, "rb").read(), 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    graph = model.Subgraphs(0)
    codes = [model.OperatorCodes(graph.Operators(i).OpcodeIndex()) for i in range(graph.OperatorsLength())]
    return {names[max(c.BuiltinCode(), c.DeprecatedBuiltinCode())] for c in codes}
