"""``ExportReport``: what was written, and how closely it matches the Keras model in its real runtime."""

import dataclasses
import json


@dataclasses.dataclass
class ExportReport:
    """The result of :func:`keras_seg.export.export`.

    Fractions (``label_agreement``, the mean IoUs) are in [0, 1]; the table shows percents.
    The comparison fields are ``None`` when ``verify=False`` (or, for ``max_abs_diff``, with a
    ``labels`` output, where only labels are compared).

    - ``max_abs_diff``: max |exported - Keras| over every pixel and class of the output
      (logits, or probabilities); ``output_scale``: max |Keras output| (the logits' scale);
      ``relative_diff``: their ratio.
    - ``label_agreement``: share of pixels whose exported label equals the Keras label;
      ``miou_vs_keras``: mean IoU of the exported labels against the Keras labels.
    - ``miou_keras``, ``miou_export``: mean IoU of each against the masks, when the
      verification data has masks.
    - ``latency_ms``: median time per image in the artifact's runtime (one batch, after a
      warm-up); ``keras_latency_ms``: the same for the Keras model (``predict_on_batch``,
      TensorFlow backend).
    - ``file_size``: bytes (a SavedModel directory's total); ``keras_weights_size``: bytes of
      the model's float32 weights, for scale.
    - ``fully_integer`` (TFLite): no op computes in float (the quantize / dequantize at the
      edges aside); ``float_ops`` lists those that do.
    - ``gpu_compatible`` (TFLite): every one of the ``num_ops`` ops runs on the LiteRT GPU
      delegate, checked against the delegate's op list, op versions, rank limit (4) and types
      (:mod:`keras_seg.export.gpu_delegate`); ``gpu_issues`` names each op that would fall back
      to the CPU and why.
    - ``mediapipe`` (TFLite): the file carries MediaPipe's ImageSegmenter metadata (input
      normalisation, the class-name file, the activation), so ``ImageSegmenter`` runs it as is.
    """

    path: str
    format: str
    output: str
    quantize: str | None
    input_dtype: str
    input_shape: list
    output_shape: list
    output_dtype: str
    num_classes: int
    class_names: list | None
    file_size: int
    keras_weights_size: int
    seconds: float
    opset: int | None = None
    fully_integer: bool | None = None
    float_ops: list = dataclasses.field(default_factory=list)
    input_quantization: list | None = None  # TFLite (scale, zero point) of a quantized input
    num_ops: int | None = None  # TFLite
    gpu_compatible: bool | None = None  # TFLite
    gpu_issues: list = dataclasses.field(default_factory=list)
    mediapipe: bool | None = None  # TFLite
    verified: bool = False
    runtime: str | None = None
    num_images: int = 0
    image_size: list | None = None  # (H, W) of the verification images
    with_masks: bool = False
    max_abs_diff: float | None = None
    output_scale: float | None = None
    relative_diff: float | None = None
    label_agreement: float | None = None
    miou_vs_keras: float | None = None
    miou_keras: float | None = None
    miou_export: float | None = None
    latency_ms: float | None = None
    keras_latency_ms: float | None = None
    converted_by: str = "tensorflow"
    notes: list = dataclasses.field(default_factory=list)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})

    def to_json(self):
        return json.dumps(self.to_dict(), indent=1)

    def __str__(self):
        quantize = self.quantize or "float32"
        rows = [
            ("input", f"{self.input_dtype} {_shape(self.input_shape)}" + _quantization(self.input_quantization)),
            ("output", f"{self.output} {self.output_dtype} {_shape(self.output_shape)}"),
            ("classes", _classes(self.num_classes, self.class_names)),
            ("file size", f"{_bytes(self.file_size)} ({100 * self.file_size / max(self.keras_weights_size, 1):.1f} % "
                          f"of the Keras float32 weights, {_bytes(self.keras_weights_size)})"),  # fmt: skip
        ]
        if self.opset is not None:
            rows.append(("opset", str(self.opset)))
        if self.format == "tflite" and self.quantize in ("int8", "dynamic"):
            ops = f" (float ops: {', '.join(self.float_ops)})" if self.float_ops else ""
            fully = "yes" if self.fully_integer else "no" + ops
            rows.append(("fully integer", fully))
        if self.gpu_compatible is not None:
            from keras_seg.export.gpu_delegate import summary

            rows.append(("GPU delegate", summary(self.num_ops, self.gpu_issues)))
        if self.mediapipe is not None:
            rows.append(("MediaPipe", "ImageSegmenter metadata written (labels, normalisation, activation)"
                         if self.mediapipe else "no metadata (see the notes)"))  # fmt: skip
        rows.append(("converted in", f"{self.seconds:.1f} s ({self.converted_by})"))
        if self.verified:
            rows.append(("runtime", self.runtime))
            size = "x".join(str(d) for d in self.image_size or ())
            rows.append(("verified on", f"{self.num_images} images of {size}" + (" with masks" if self.with_masks else "")))
            rows.append(("label agreement", f"{100 * self.label_agreement:.3f} %"))
            if self.max_abs_diff is not None:
                kind = "logits" if self.output == "logits" else "probabilities"
                rows.append((f"max |Δ {kind}|", f"{self.max_abs_diff:.3g} (Keras scale {self.output_scale:.3g}, "
                                                 f"ratio {self.relative_diff:.2e})"))  # fmt: skip
            rows.append(("mean IoU vs Keras", f"{self.miou_vs_keras:.4f}"))
            if self.with_masks:
                rows.append(("mean IoU vs masks", f"Keras {self.miou_keras:.4f}, export {self.miou_export:.4f}"))
            keras_time = f" (Keras {self.keras_latency_ms:.2f} ms)" if self.keras_latency_ms is not None else ""
            rows.append(("latency / image", f"{self.latency_ms:.2f} ms{keras_time}"))
        else:
            rows.append(("verified", "no (verify=False)"))
        for note in self.notes:
            rows.append(("note", note))
        title = f"keras_seg export: {self.path} ({self.format}, {quantize}, {self.output} output)"
        width = max(len(k) for k, _ in rows)
        return "\n".join([title] + [f"  {k:<{width}}  {v}" for k, v in rows])


def _shape(shape):
    return "(" + ", ".join("?" if d is None else str(d) for d in shape) + ")"


def _quantization(q):
    if not q:
        return ""
    return f", quantized: scale {q[0]:.6g}, zero point {q[1]}"


def _classes(num, names):
    if not names:
        return str(num)
    shown = ", ".join(names[:8]) + (", ..." if len(names) > 8 else "")
    return f"{num}: {shown}"


def _bytes(n):
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000.0
