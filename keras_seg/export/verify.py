"""Run an exported artifact in its real runtime and compare it with the Keras model.

Runtimes: LiteRT (``ai_edge_litert.interpreter.Interpreter``; ``tf.lite.Interpreter`` when
ai-edge-litert is missing) for TFLite, onnxruntime's CPU provider for ONNX, and
``tf.saved_model.load(path).signatures["serving_default"]`` for a SavedModel.
"""

import os
import statistics
import time

import numpy as np


KERAS_BATCH = 8


class Runner:
    """``runner(images) -> outputs`` for one batch, in the artifact's runtime; ``name`` says which runtime."""

    def __init__(self, call, name, batch=None):
        self.call, self.name, self.batch = call, name, batch

    def __call__(self, images):
        return self.call(images)

    def run_all(self, images):
        """Outputs for every image, in batches of the artifact's fixed batch size (the last one padded) or 8."""
        batch = self.batch or KERAS_BATCH
        outputs = []
        for start in range(0, len(images), batch):
            chunk = images[start : start + batch]
            count = len(chunk)
            if self.batch and count < batch:
                chunk = np.concatenate([chunk, np.repeat(chunk[-1:], batch - count, axis=0)])
            outputs.append(np.asarray(self.call(chunk))[:count])
        return np.concatenate(outputs)


def runner(path, format, output):
    if format == "tflite":
        return tflite_runner(path, output)
    if format == "onnx":
        return onnx_runner(path)
    return saved_model_runner(path, output)


def tflite_runner(path, output):
    """LiteRT on the file's bytes (not mmapped: the file is renamed into place after the check), all CPU cores."""
    try:
        from ai_edge_litert.interpreter import Interpreter

        from importlib.metadata import version

        name = f"LiteRT {version('ai-edge-litert')} (ai_edge_litert)"
    except ImportError:
        import tensorflow as tf

        Interpreter, name = tf.lite.Interpreter, f"tf.lite.Interpreter (TensorFlow {tf.__version__})"
    with open(path, "rb") as f:
        interpreter = Interpreter(model_content=f.read(), num_threads=os.cpu_count())
    interpreter.allocate_tensors()
    source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]

    def call(images):
        interpreter.set_tensor(source["index"], _quantize(images, source))
        interpreter.invoke()
        result = interpreter.get_tensor(target["index"])
        return result if output == "labels" else _dequantize(result, target)

    return Runner(call, name, batch=int(source["shape"][0]))


def onnx_runner(path):
    import onnxruntime as ort

    ort.set_default_logger_severity(3)
    options = ort.SessionOptions()
    options.log_severity_level = 3
    with open(path, "rb") as f:
        session = ort.InferenceSession(f.read(), options, providers=["CPUExecutionProvider"])
    source = session.get_inputs()[0]
    dtype = np.uint8 if source.type == "tensor(uint8)" else np.float32
    batch = source.shape[0] if isinstance(source.shape[0], int) else None

    def call(images):
        return session.run(None, {source.name: images.astype(dtype)})[0]

    return Runner(call, f"onnxruntime {ort.__version__} (CPUExecutionProvider)", batch=batch)


def saved_model_runner(path, output):
    import tensorflow as tf

    signature = tf.saved_model.load(path).signatures["serving_default"]
    spec = signature.structured_input_signature[1]["image"]
    batch = spec.shape[0]

    def call(images):
        return signature(image=tf.constant(images.astype(spec.dtype.as_numpy_dtype)))[output].numpy()

    return Runner(call, f"TensorFlow {tf.__version__} SavedModel (serving_default)", batch=batch)


class KerasOutputs:
    """The Keras model's float32 outputs for ``images``, computed a slice at a time when indexed (so 32 images
    of 512 x 512 x 21 classes never sit in memory at once)."""

    def __init__(self, model, images):
        self.model, self.images = model, images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, index):
        import keras

        batch = self.images[index].astype("float32")
        return keras.ops.convert_to_numpy(self.model(batch, training=False)).astype("float32")

    def save(self, path):
        """Write every output to ``path`` (``.npy``), a batch at a time."""
        first = self[0:1]
        out = np.lib.format.open_memmap(path, mode="w+", dtype="float32", shape=(len(self),) + first.shape[1:])
        for start in range(0, len(self), KERAS_BATCH):
            out[start : start + KERAS_BATCH] = self[start : start + KERAS_BATCH]
        out.flush()
        del out


def keras_latency_ms(model, images, runs):
    """Median ``predict_on_batch`` time per image of the Keras model on ``images`` (one batch)."""
    images = images.astype("float32")
    return median_ms(lambda: model.predict_on_batch(images), runs) / len(images)


def compare(run, reference, images, masks, facts, latency_runs):
    """The comparison fields of an :class:`ExportReport`, accumulated batch by batch.

    ``images`` are what the artifact receives (rounded to uint8 for a uint8 input);
    ``reference`` gives the Keras model's outputs for them when sliced (an array, or
    :class:`KerasOutputs`).
    """
    classes = max(facts.num_classes, 2)
    step = run.batch or KERAS_BATCH
    diff = scale = 0.0
    agree = 0
    vs_keras, keras_vs_masks, export_vs_masks = (np.zeros((classes, classes)) for _ in range(3))
    for start in range(0, len(images), step):
        exported = run.run_all(images[start : start + step])
        keras_out = np.asarray(reference[start : start + step], dtype="float32")
        keras_labels = labels_of(keras_out, probabilities=facts.model_activation is not None)
        if facts.output == "labels":
            export_labels = exported.astype("int64")
        else:
            if facts.output == "probabilities" and facts.model_activation is None:
                keras_out = _sigmoid(keras_out) if keras_out.shape[-1] == 1 else _softmax(keras_out)
            diff = max(diff, float(np.max(np.abs(exported.astype("float64") - keras_out))))
            scale = max(scale, float(np.max(np.abs(keras_out))))
            export_labels = labels_of(exported, probabilities=facts.output == "probabilities")
        agree += int(np.sum(export_labels == keras_labels))
        vs_keras += confusion(keras_labels, export_labels, classes)
        if masks is not None:
            keras_vs_masks += confusion(masks[start : start + step], keras_labels, classes)
            export_vs_masks += confusion(masks[start : start + step], export_labels, classes)
    fields = {"runtime": run.name, "num_images": int(len(images)), "image_size": list(images.shape[1:3]),
              "with_masks": masks is not None, "verified": True,
              "label_agreement": agree / float(np.prod(images.shape[:3])), "miou_vs_keras": mean_iou(vs_keras)}  # fmt: skip
    if facts.output != "labels":
        fields.update(max_abs_diff=diff, output_scale=scale, relative_diff=diff / scale if scale else float("inf"))
    if masks is not None:
        fields.update(miou_keras=mean_iou(keras_vs_masks), miou_export=mean_iou(export_vs_masks))
    one = np.repeat(images[:1], run.batch or 1, axis=0)
    fields["latency_ms"] = median_ms(lambda: run(one), latency_runs) / len(one)
    return fields


def labels_of(output, probabilities):
    """Integer labels ``(N, H, W)``: argmax over classes; one channel: above 0.5 (probabilities) or 0 (logits)."""
    if output.shape[-1] == 1:
        return (output[..., 0] > (0.5 if probabilities else 0.0)).astype("int64")
    return output.argmax(-1)


def confusion(truth, prediction, num_classes):
    """``(K, K)`` counts, rows = truth; ids outside ``[0, K)`` (void labels such as 255) are dropped."""
    truth = np.asarray(truth).reshape(-1).astype("int64")
    prediction = np.asarray(prediction).reshape(-1).astype("int64")
    valid = (truth >= 0) & (truth < num_classes) & (prediction >= 0) & (prediction < num_classes)
    counts = np.bincount(truth[valid] * num_classes + prediction[valid], minlength=num_classes**2)
    return counts.reshape(num_classes, num_classes).astype("float64")


def mean_iou(cm):
    """Mean IoU over the classes present in truth or prediction: keras_seg.metrics' formula, as a float."""
    from keras import ops

    from keras_seg.metrics.confusion import mean_iou as metric_mean_iou

    return float(ops.convert_to_numpy(metric_mean_iou(cm)))


def directory_size(path):
    if os.path.isfile(path):
        return os.path.getsize(path)
    return sum(os.path.getsize(os.path.join(root, f)) for root, _, files in os.walk(path) for f in files)


# ---------------------------------------------------------------------------------------------- helpers


def _quantize(images, detail):
    dtype = detail["dtype"]
    if np.issubdtype(dtype, np.floating):
        return images.astype(dtype)
    scale, zero = detail["quantization"]
    if scale:  # a quantized input: q = x / scale + zero point
        info = np.iinfo(dtype)
        return np.clip(np.round(images.astype("float64") / scale + zero), info.min, info.max).astype(dtype)
    return images.astype(dtype)


def _dequantize(values, detail):
    scale, zero = detail["quantization"]
    if np.issubdtype(values.dtype, np.integer) and scale:
        return (values.astype("float32") - zero) * scale
    return values.astype("float32")


def _softmax(x):
    x = x.astype("float64")
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x.astype("float64")))


def median_ms(call, runs, warmup=2):
    """Milliseconds of ``call()``: the median of ``runs`` timed calls after ``warmup`` untimed ones (graph
    building, allocation). The one timing loop of the export checks and the benchmark scripts."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return 1000.0 * statistics.median(times)
