"""``keras_seg.export.export``: checks the arguments, then converts here (TensorFlow backend) or in a
TensorFlow child process (JAX, PyTorch)."""

import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import warnings

import keras
import numpy as np

from keras_seg.export import data as D
from keras_seg.export import options as O
from keras_seg.export import verify as V
from keras_seg.export.report import ExportReport

ERRORS = {e.__name__: e for e in (ValueError, TypeError, FileNotFoundError, FileExistsError, NotADirectoryError, ImportError)}


def export(model, path, format=None, input_size=None, batch_size=None, output=None, quantize=None,
           representative_data=None, input_dtype="float32", class_names=None, verify=True, verify_data=None,
           opset=None, *, mediapipe=None, num_calibration=D.DEFAULT_NUM_CALIBRATION, num_verify=D.DEFAULT_NUM_VERIFY,
           latency_runs=10, quiet=False):  # fmt: skip
    """Export a segmentation model to a SavedModel, a TFLite or an ONNX file, and check it in its runtime.

    Args:
        model: a Keras model ``images (B, H, W, C) in [0, 255] -> logits (B, H, W, K)`` (any keras_seg
            model), or the path of a ``.keras`` file.
        path: the artifact: a SavedModel directory, a ``.tflite`` or an ``.onnx`` file. Written
            atomically: an existing one is replaced only once the new one is written and checked.
        format: ``"saved_model"``, ``"tflite"`` or ``"onnx"``; ``None`` picks it from ``path``'s
            extension (``.tflite``, ``.onnx``, anything else a SavedModel).
        input_size: ``(H, W)`` (or an int) for a static input shape. TFLite needs one (the model's own
            when its input shape is fixed; otherwise a ValueError names the fix). Without it,
            SavedModel and ONNX take any batch, height and width.
        batch_size: a fixed batch size; default 1 for TFLite, any for the others.
        output: ``"logits"`` (float32 ``(B, H, W, K)``), ``"probabilities"`` (softmax; sigmoid for one
            class; unchanged when the model already ends in one) or ``"labels"`` (uint8 ``(B, H, W)``:
            argmax, or probability > 0.5 for one class; int32 beyond 256 classes). ``None``: logits,
            or probabilities for a model built with ``activation="softmax"`` / ``"sigmoid"``.
        quantize: ``None`` (float32); TFLite: ``"float16"`` (float16 weights), ``"dynamic"`` (int8
            weights, float activations), ``"int8"`` (full integer, calibrated on
            ``representative_data``; ops without an int8 kernel fall back to float, see
            ``report.fully_integer``); ONNX: ``"dynamic"`` or ``"int8"`` (onnxruntime.quantization,
            QDQ, per channel).
        representative_data: calibration images for ``"int8"``: a ``tf.data.Dataset`` of images or
            ``(images, masks)`` (batched or not), an array ``(N, H, W, C)``, a tuple of arrays
            ``(images, masks)``, or a list of images. The first ``num_calibration`` (100) are used,
            resized (bilinear) to the input size.
        input_dtype: ``"float32"`` or ``"uint8"`` (the artifact takes uint8 pixels; int8 TFLite takes
            them quantized with scale 1 and zero point 0, i.e. raw pixel values).
        class_names: stored in the artifact (see :func:`read_metadata`); default: the model's
            ``class_names`` attribute, else the names stored in a ``.keras`` checkpoint written by
            keras_seg's trainer.
        verify: run the artifact in its runtime and compare it with the Keras model (see
            :class:`ExportReport`); the report is printed unless ``quiet=True``.
        verify_data: images (and masks) to compare on, in the forms ``representative_data`` takes
            (the first ``num_verify`` (32)); default: 4 deterministic images of keras_seg's synthetic
            ``shapes`` test split at the input size (128 x 128 for any-size artifacts).
        opset: the ONNX opset (default 17: onnxruntime 1.17 and later run it).
        mediapipe: TFLite only. ``None`` (default): write MediaPipe's ImageSegmenter metadata
            (RGB input with a normalisation that feeds the raw pixels, the class names as the
            output's label file, the activation MediaPipe applies: SOFTMAX / SIGMOID to logits,
            NONE to probabilities) whenever the model allows it: 3 input channels and a logits or
            probabilities output; otherwise a warning says why not. ``True``: the same, and an
            error when it cannot be written. ``False``: keras_seg's own metadata only.
        latency_runs: timed runs (after two warm-up runs) whose median gives the latency.

    Returns:
        an :class:`ExportReport`.

    Under the JAX and PyTorch backends the model is saved to a temporary ``.keras`` file and
    converted by ``python -m keras_seg.export`` in a child process with ``KERAS_BACKEND=tensorflow``
    (the model must load with ``keras.saving.load_model`` after ``import keras_seg``); the Keras
    outputs the artifact is compared with are computed here, on the caller's backend. A model in
    mixed precision goes to TFLite and ONNX as a float32 copy of its weights.
    """
    options = O.check(path, format, output, quantize, input_dtype, input_size, batch_size, class_names, verify,
                      opset, num_calibration, num_verify, latency_runs, quiet,
                      has_representative=representative_data is not None, mediapipe=mediapipe)  # fmt: skip
    model_path = None
    if isinstance(model, (str, os.PathLike)):
        from keras_seg.utils.modelfile import load_model

        model_path = os.fspath(model)
        model = load_model(model_path)
    elif not isinstance(model, keras.Model):
        raise TypeError(f"model={model!r} is not a Keras model; pass a keras.Model or the path of a .keras file.")
    if options.class_names is None:
        options.class_names = _class_names(model, model_path)
    facts = O.facts_for(model, options)
    for message in facts.warnings:
        warnings.warn(message, stacklevel=2)
    calibration = None
    if options.quantize == "int8":
        calibration = D.collect(representative_data, "representative_data", options.num_calibration, facts.size,
                                facts.channels)[0]  # fmt: skip
    verification = _verification(model, facts, options, verify_data) if options.verify else None
    if keras.backend.backend() == "tensorflow":
        from keras_seg.export.convert import export_model

        report = export_model(model, path, facts, options, calibration, verification)
    else:
        report = _export_in_child(model, model_path, path, options, calibration, verification)
    if options.verify and not options.quiet:
        print(report)
    return report


@dataclasses.dataclass
class Verification:
    """What the artifact is checked on: ``images`` as it receives them, their ``masks`` (or None), and the
    Keras model's outputs for them, computed on the caller's backend."""

    images: np.ndarray
    masks: np.ndarray | None
    reference: object  # V.KerasOutputs, or an array of them
    keras_latency_ms: float | None = None


def _verification(model, facts, options, verify_data):
    if verify_data is None:
        images, masks = D.synthetic(facts.size or D.SYNTHETIC_SIZE, channels=facts.channels), None
    else:
        images, masks = D.collect(verify_data, "verify_data", options.num_verify, facts.size, facts.channels)
    if facts.input_dtype == "uint8":
        images = D.as_uint8(images)
    reference = V.KerasOutputs(model, images)
    latency = V.keras_latency_ms(model, np.repeat(images[:1], facts.batch or 1, axis=0), options.latency_runs)
    return Verification(images, masks, reference, latency)


def _class_names(model, model_path):
    names = getattr(model, "class_names", None)
    if names is None and model_path is not None:
        from keras_seg.training.callbacks import read_state

        try:
            names = read_state(model_path).get("class_names")
        except Exception:  # noqa: BLE001 - not a zip written by keras_seg: no names, keras will say what is wrong
            names = None
    return list(names) if names is not None else None


def _export_in_child(model, model_path, path, options, calibration, verification):
    """Save the model and the data to a temporary folder, convert in ``python -m keras_seg.export`` (TensorFlow),
    and read back its report."""
    backend = keras.backend.backend()
    with tempfile.TemporaryDirectory(prefix="keras_seg_export_") as scratch:
        if model_path is None:
            model_path = os.path.join(scratch, "model.keras")
            model.save(model_path)
        args = [sys.executable, "-m", "keras_seg.export", os.path.abspath(model_path), os.path.abspath(os.fspath(path))]
        arrays = {"calibration": calibration}
        if verification is not None:
            arrays.update(images=verification.images, masks=verification.masks, reference=verification.reference)
        for name, array in arrays.items():
            if array is not None:
                file = os.path.join(scratch, f"{name}.npy")
                if isinstance(array, V.KerasOutputs):
                    array.save(file)  # a batch at a time
                else:
                    np.save(file, array)
                args += [f"--{name}", file]
        with open(os.path.join(scratch, "options.json"), "w") as f:
            json.dump(options.to_dict(), f)
        report_path = os.path.join(scratch, "report.json")
        args += ["--options", os.path.join(scratch, "options.json"), "--report", report_path]
        package_root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, KERAS_BACKEND="tensorflow")
        env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)
        result = subprocess.run(args, env=env, capture_output=True, text=True)
        answer = None
        if os.path.isfile(report_path):
            with open(report_path) as f:
                answer = json.load(f)
    if answer is None or "error" in answer:
        error = (answer or {}).get("error")
        if error and error["type"] in ERRORS:
            raise ERRORS[error["type"]](error["message"])
        detail = f"{error['type']}: {error['message']}" if error else f"exit status {result.returncode}"
        raise RuntimeError(f"The TensorFlow export process failed ({detail}). Its output ends with:\n"
                           + (result.stdout + result.stderr)[-3000:])  # fmt: skip
    report = ExportReport.from_dict(answer)
    report.path = os.fspath(path)
    if verification is not None:
        report.keras_latency_ms = verification.keras_latency_ms
    report.converted_by = f"tensorflow, in a child process; Keras outputs and latency from the {backend} backend"
    return report
