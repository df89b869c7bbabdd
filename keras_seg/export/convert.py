"""Keras model -> SavedModel / TFLite / ONNX, in this process, under the TensorFlow backend.

One ``tf.function`` is the artifact's graph: ``image`` (float32 in [0, 255], or uint8 cast
inside) -> the Keras model -> the output head (``logits``; ``probabilities``: softmax, or
sigmoid for one class; ``labels``: argmax, or logit > 0 for one class, as uint8). Each
format is converted from that function:

- SavedModel: ``tf.saved_model.save`` of a ``tf.Module`` that holds the function (the
  ``serving_default`` signature) and the variables it captures.
- TFLite: ``TFLiteConverter.from_concrete_functions``. The module must track the
  captured ``tf.Variable`` objects themselves: Keras 3 wraps them, and a converter that
  cannot find them keeps them as uninitialised resource variables, which LiteRT runs
  without an error and answers with NaN.
- ONNX: ``tf2onnx.convert.from_function``; onnxruntime.quantization for ``dynamic`` / ``int8``.

Every artifact is written beside its target under a temporary name, checked in its
runtime there, and renamed over the target only when all of that succeeded.
"""

import contextlib
import json
import logging
import os
import tempfile
import time

import keras
import numpy as np
import tensorflow as tf

from keras_seg.export import gpu_delegate
from keras_seg.export import metadata as M
from keras_seg.export import tflite_metadata
from keras_seg.export import verify as V
from keras_seg.export.options import check_replaceable
from keras_seg.export.report import ExportReport
from keras_seg.layers.upsample import standard_form
from keras_seg.utils.io import atomic_directory, atomic_path


def serving_function(model, facts):
    """The artifact's graph: a ``tf.function`` with one input ``image`` and one output named ``facts.output``."""
    spec = tf.TensorSpec(facts.input_shape, facts.graph_input_dtype, name="image")
    binary = facts.num_classes == 1

    def serve(image):
        scores = tf.cast(model(tf.cast(image, tf.float32), training=False), tf.float32)
        if facts.output == "logits":
            return {"logits": scores}
        probabilities = facts.model_activation is not None
        if facts.output == "probabilities":
            if not probabilities:
                scores = tf.sigmoid(scores) if binary else tf.nn.softmax(scores, axis=-1)
            return {"probabilities": scores}
        if binary:
            labels = scores[..., 0] > (0.5 if probabilities else 0.0)
        else:
            labels = tf.argmax(scores, axis=-1)
        return {"labels": tf.cast(labels, facts.output_dtype)}

    return tf.function(serve, input_signature=[spec], autograph=False)


def export_model(model, path, facts, options, calibration=None, verification=None):
    """Convert ``model`` (TensorFlow backend) to ``path`` and check it; returns an :class:`ExportReport`.

    ``calibration``: float32 images at the input size (int8). ``verification``: the
    :class:`~keras_seg.export.api.Verification` data (images, masks, the Keras outputs).
    """
    start = time.time()
    notes = []
    if facts.format != "saved_model":
        model = _float32_model(model, notes)
    function = serving_function(model, facts)
    module = tf.Module()
    with standard_form():  # traced here: the U-Net up-convolution as TRANSPOSE_CONV, not a 6-D matmul form
        module.captured_variables = list(function.get_concrete_function().variables)  # see the module docstring
    module.serve = function
    module.model_name = model.name
    metadata = facts.metadata()
    writer = {"saved_model": _write_saved_model, "tflite": _write_tflite, "onnx": _write_onnx}[facts.format]
    with _atomic(path, facts.format) as tmp:
        extra = writer(tmp, module, function, facts, metadata, calibration, options, notes)
        report = ExportReport(
            path=os.fspath(path), format=facts.format, output=facts.output, quantize=facts.quantize,
            input_dtype=facts.input_dtype, input_shape=facts.input_shape, output_shape=facts.output_shape,
            output_dtype=facts.output_dtype, num_classes=facts.num_classes, class_names=facts.class_names,
            file_size=V.directory_size(tmp), keras_weights_size=_weights_size(model),
            seconds=round(time.time() - start, 2), notes=notes + list(facts.warnings), **extra,
        )  # fmt: skip
        if verification is not None:
            run = V.runner(tmp, facts.format, facts.output)
            fields = V.compare(run, verification.reference, verification.images, verification.masks, facts,
                               options.latency_runs)  # fmt: skip
            for key, value in fields.items():
                setattr(report, key, value)
            report.keras_latency_ms = verification.keras_latency_ms
            del run
    return report


# ---------------------------------------------------------------------------------------------- SavedModel


def _write_saved_model(directory, module, function, facts, metadata, calibration, options, notes):
    with tempfile.TemporaryDirectory() as scratch:
        files = {}
        for name, value in ((M.ASSET, metadata), (M.CLASS_NAMES_ASSET, facts.class_names)):
            files[name] = os.path.join(scratch, name)
            with open(files[name], "w") as f:
                json.dump(value, f, indent=1)
        module.metadata_file = tf.saved_model.Asset(files[M.ASSET])
        module.class_names_file = tf.saved_model.Asset(files[M.CLASS_NAMES_ASSET])
        text = json.dumps(metadata)

        def read():
            return tf.constant(text)

        module.metadata = tf.function(read, input_signature=[], autograph=False)
        tf.saved_model.save(module, directory, signatures={"serving_default": function.get_concrete_function()})
    return {}


# ---------------------------------------------------------------------------------------------- TFLite


def _write_tflite(path, module, function, facts, metadata, calibration, options, notes):
    module_name = getattr(module, "model_name", "keras_seg segmenter")
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function.get_concrete_function()], module)
    if facts.quantize:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if facts.quantize == "float16":
        converter.target_spec.supported_types = [tf.float16]
    if facts.quantize == "int8":
        converter.representative_dataset = _calibration_batches(calibration, facts)
        if facts.input_dtype == "uint8":
            converter.inference_input_type = tf.uint8
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        try:
            content = converter.convert()
        except Exception as error:  # noqa: BLE001 - an op without an int8 kernel: let it run in float
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8, tf.lite.OpsSet.TFLITE_BUILTINS]
            content = converter.convert()
            first = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
            notes.append(f"some ops have no int8 kernel and run in float ({first})")
    else:
        content = converter.convert()
    float_ops, quantization = _tflite_inspect(content)
    if facts.quantize not in ("int8", "dynamic"):  # a float model: "fully integer" does not apply
        float_ops, fully_integer = [], None
    else:
        fully_integer = not float_ops
    if facts.input_dtype == "uint8" and quantization and tuple(quantization) != (1.0, 0):
        notes.append(f"the uint8 input is quantized with scale {quantization[0]:.6g} and zero point "
                     f"{quantization[1]}: feed round(pixel / scale + zero point), not raw pixels")  # fmt: skip
    num_ops, gpu_issues = gpu_delegate.check(content, quantized=facts.quantize == "int8")
    metadata = dict(metadata, input_quantization=quantization, fully_integer=fully_integer, mediapipe=facts.mediapipe,
                    gpu_delegate=gpu_delegate.summary(num_ops, gpu_issues))  # fmt: skip
    mediapipe = tflite_metadata.metadata_entries(facts, module_name) if facts.mediapipe else None
    content = M.add_to_tflite(content, metadata, mediapipe)  # one repack of the flatbuffer for both
    if facts.mediapipe:  # last: the label file is appended after the flatbuffer
        content = tflite_metadata.append_label_file(content, facts)
    with open(path, "wb") as f:
        f.write(content)
    return {"fully_integer": fully_integer, "float_ops": float_ops, "input_quantization": quantization,
            "gpu_compatible": not gpu_issues, "gpu_issues": gpu_issues, "num_ops": num_ops,
            "mediapipe": facts.mediapipe}  # fmt: skip


def _calibration_batches(images, facts):
    """The representative dataset: batches of the artifact's batch size, plus one that spans [0, 255].

    The extra batch is the first image with two pixels set to 0 and 255, so the input's
    calibrated range is exactly [0, 255]: a uint8 input then has scale 1 and zero point 0,
    and a phone feeds raw pixel values.
    """
    batch = facts.batch or 1
    span = images[:1].copy()
    span[0, 0, 0, :], span[0, 0, -1, :] = 0.0, 255.0
    images = np.concatenate([images, span]).astype("float32")

    def batches():
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            if len(chunk) < batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - len(chunk), axis=0)])
            yield [chunk]

    return batches


def _tflite_inspect(content):
    """``(float_ops, input_quantization)``: ops that compute in float (quantize / dequantize aside), and the
    input's ``[scale, zero_point]`` when it is quantized."""
    schema = M.tflite_schema()
    model = schema.Model.GetRootAs(content, 0)
    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    floats = {schema.TensorType.FLOAT32, schema.TensorType.FLOAT16, schema.TensorType.FLOAT64}
    found = set()
    graph = model.Subgraphs(0)
    for s in range(model.SubgraphsLength()):
        sub = model.Subgraphs(s)
        for i in range(sub.OperatorsLength()):
            op = sub.Operators(i)
            code = model.OperatorCodes(op.OpcodeIndex())
            name = names.get(max(code.BuiltinCode(), code.DeprecatedBuiltinCode()), "CUSTOM")
            if name in ("QUANTIZE", "DEQUANTIZE"):
                continue
            tensors = [op.Inputs(j) for j in range(op.InputsLength())]
            tensors += [op.Outputs(j) for j in range(op.OutputsLength())]
            if any(t >= 0 and sub.Tensors(t).Type() in floats for t in tensors):
                found.add(name)
    quantization = None
    params = graph.Tensors(graph.Inputs(0)).Quantization()
    if params is not None and params.ScaleLength():
        quantization = [float(params.Scale(0)), int(params.ZeroPoint(0))]
    return sorted(found), quantization


# ---------------------------------------------------------------------------------------------- ONNX


def _write_onnx(path, module, function, facts, metadata, calibration, options, notes):
    import onnx
    import tf2onnx

    for name in ("tf2onnx", "onnx"):
        logging.getLogger(name).setLevel(logging.ERROR)
    proto, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature, opset=options.opset)
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as error:
        raise ValueError(
            f"tf2onnx could not convert every op to ONNX opset {options.opset} ({str(error).splitlines()[0]}); "
            "try another opset=, or export to tflite or saved_model."
        ) from error
    _name_dynamic_axes(proto)
    _modern_nearest_resize(proto)
    if facts.quantize:
        proto = _quantize_onnx(proto, facts, calibration)
    if facts.quantize == "dynamic":
        notes.append("onnxruntime runs dynamically quantized convolutions (ConvInteger) slower than float ones on "
                     "most CPUs; quantize='int8' (static, QDQ) is smaller, but on CPUs without fast int8 "
                     "kernels not faster than float either: measure (report.latency_ms)")  # fmt: skip
    onnx.save(M.add_to_onnx(proto, metadata), path)
    return {"opset": options.opset}


def _name_dynamic_axes(proto):
    """``batch``, ``height``, ``width`` instead of tf2onnx's ``unk__123`` for the free input / output axes."""
    names = ("batch", "height", "width", "channels")
    for value in list(proto.graph.input) + list(proto.graph.output):
        for axis, dim in enumerate(value.type.tensor_type.shape.dim):
            if dim.HasField("dim_param") or not dim.HasField("dim_value"):
                dim.dim_param = names[axis]


def _modern_nearest_resize(proto):
    """Nearest ``Resize`` with the deprecated ``tf_half_pixel_for_nn`` + ``floor`` -> ``half_pixel`` +
    ``round_prefer_ceil``: the same pixels (``floor(v) == round_prefer_ceil(v - 0.5)``), and onnxruntime
    stops warning that the attribute will go."""
    for node in proto.graph.node:
        if node.op_type != "Resize":
            continue
        attrs = {a.name: a for a in node.attribute}
        mode = attrs.get("coordinate_transformation_mode")
        nearest = attrs.get("nearest_mode")
        if mode is not None and mode.s == b"tf_half_pixel_for_nn" and (nearest is None or nearest.s == b"floor"):
            mode.s = b"half_pixel"
            if nearest is None:
                nearest = node.attribute.add()
                nearest.name, nearest.type = "nearest_mode", mode.type
            nearest.s = b"round_prefer_ceil"


def _quantize_onnx(proto, facts, calibration):
    import onnx
    from onnxruntime import quantization as Q

    with tempfile.TemporaryDirectory() as scratch, _quiet_logging():
        source, target = os.path.join(scratch, "float.onnx"), os.path.join(scratch, "quantized.onnx")
        onnx.save(proto, source)
        if facts.quantize == "dynamic":  # uint8 weights: onnxruntime < 1.19 has no ConvInteger for int8 ones
            Q.quantize_dynamic(source, target, weight_type=Q.QuantType.QUInt8)
        else:
            prepared = os.path.join(scratch, "prepared.onnx")
            Q.quant_pre_process(source, prepared, skip_symbolic_shape=True)
            dtype = np.uint8 if facts.input_dtype == "uint8" else np.float32
            Q.quantize_static(prepared, target, _calibration_reader(calibration, dtype, facts.batch),
                              quant_format=Q.QuantFormat.QDQ, per_channel=True,
                              activation_type=Q.QuantType.QInt8, weight_type=Q.QuantType.QInt8)  # fmt: skip
        quantized = onnx.load(target)
    used = {node.domain for node in quantized.graph.node} | {""}
    kept = [o for o in quantized.opset_import if o.domain in used or o.domain == "ai.onnx.ml"]
    del quantized.opset_import[:]
    quantized.opset_import.extend(kept)  # the pre-processing pass declares domains an older runtime may not know
    return quantized


def _calibration_reader(images, dtype, batch):
    from onnxruntime.quantization import CalibrationDataReader

    class Reader(CalibrationDataReader):
        def __init__(self):
            size = batch or 1
            chunks = [images[i : i + size] for i in range(0, len(images), size)]
            self.feeds = iter([{"image": c.astype(dtype)} for c in chunks if len(c) == size])

        def get_next(self):
            return next(self.feeds, None)

    return Reader()


# ---------------------------------------------------------------------------------------------- helpers


@contextlib.contextmanager
def _atomic(path, format):
    """A temporary file or directory beside ``path``, renamed over it when the body succeeds.

    What is at ``path`` is replaced only if it is an artifact of the same format
    (:func:`~keras_seg.export.options.check_replaceable`, checked again just before the rename):
    a folder holding anything but a SavedModel is never removed.
    """
    if format != "saved_model":
        with atomic_path(path) as tmp:
            yield tmp
            check_replaceable(path, format)
        return
    with atomic_directory(path, check=lambda target: check_replaceable(target, format)) as tmp:
        yield tmp


def _float32_model(model, notes):
    """``model``, or a float32 copy of it (same weights) when some layer computes in float16 / bfloat16.

    A mixed-precision model converts to neither TFLite (no float16 / bfloat16 kernels for most
    ops) nor ONNX with bfloat16; its weights are float32 anyway, so the copy loses nothing. The
    comparison is still against the mixed-precision model, so its own rounding shows in the report.
    """
    policies = {layer.dtype_policy.name for layer in _layers(model)}
    mixed = sorted(p for p in policies if p.startswith("mixed_"))
    if not mixed:
        return model
    config = _float32_policies(keras.saving.serialize_keras_object(model))
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("float32")  # keras_seg models rebuild their layers under the global policy
    try:
        copy = keras.saving.deserialize_keras_object(config)
    finally:
        keras.config.set_dtype_policy(previous)
    copy.set_weights(model.get_weights())
    notes.append(f"the model computes in {', '.join(mixed)}; exported from a float32 copy of its weights")
    return copy


def _layers(model):
    for layer in model.layers:
        yield layer
        if isinstance(layer, keras.Model):
            yield from _layers(layer)


def _float32_policies(config):
    if isinstance(config, dict):
        name = str(config.get("config", {}).get("name", "")) if config.get("class_name") == "DTypePolicy" else ""
        if name.startswith("mixed_"):
            return "float32"
        return {key: _float32_policies(value) for key, value in config.items()}
    if isinstance(config, list):
        return [_float32_policies(value) for value in config]
    return config


@contextlib.contextmanager
def _quiet_logging():
    """onnxruntime.quantization advises through the root logger; hide that while it runs, then restore."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        yield
    finally:
        root.setLevel(level)


def _weights_size(model):
    sizes = (np.prod(v.shape) * np.dtype(keras.backend.standardize_dtype(v.dtype)).itemsize for v in model.weights)
    return int(sum(sizes))


__all__ = ["export_model", "serving_function"]
