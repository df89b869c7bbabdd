"""The export options, checked once, with errors that name the bad value and the fix; and the
:class:`Facts` of an artifact (its input, output and metadata), derived from the model and the options."""

import dataclasses
import importlib.util
import numbers
import os

from keras_seg.utils.io import first_few

FORMATS = ("saved_model", "tflite", "onnx")
OUTPUTS = ("logits", "probabilities", "labels")
INPUT_DTYPES = ("float32", "uint8")
QUANTIZE = {  # what each format supports besides None (float32)
    "saved_model": (),
    "tflite": ("float16", "dynamic", "int8"),
    "onnx": ("dynamic", "int8"),
}
EXTENSIONS = {".tflite": "tflite", ".onnx": "onnx"}
DEFAULT_OPSET = 17  # onnxruntime >= 1.13 runs it (1.17 goes up to 20); tf2onnx knows up to 18
INSTALL = 'pip install "keras-seg[export]"'
ACTIVATIONS = ("softmax", "sigmoid")


@dataclasses.dataclass
class Options:
    format: str
    output: str | None  # None: "logits", or "probabilities" for a model that ends in softmax / sigmoid
    quantize: str | None
    input_dtype: str
    input_size: tuple | None
    batch_size: int | None
    class_names: list | None
    verify: bool
    opset: int
    num_calibration: int
    num_verify: int
    latency_runs: int
    quiet: bool
    mediapipe: bool | None = None  # TFLite: MediaPipe ImageSegmenter metadata (None: when the model allows it)

    def to_dict(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values):
        values = dict(values)
        if values.get("input_size") is not None:
            values["input_size"] = tuple(values["input_size"])
        return cls(**values)


def check(path, format, output, quantize, input_dtype, input_size, batch_size, class_names, verify, opset,
          num_calibration, num_verify, latency_runs, quiet, has_representative, mediapipe=None):  # fmt: skip
    """Validated :class:`Options` for ``path``; raises ValueError / FileNotFoundError naming the fix."""
    path = os.fspath(path)
    format = _format(path, format)
    if output is not None and output not in OUTPUTS:
        raise ValueError(f"output={output!r} is not supported; expected one of {OUTPUTS}.")
    if quantize is not None and quantize not in QUANTIZE[format]:
        if quantize not in ("float16", "dynamic", "int8"):
            raise ValueError(f"quantize={quantize!r} is not a quantization; expected None, 'float16', 'dynamic' or 'int8'.")
        supported = ", ".join(repr(q) for q in (None,) + QUANTIZE[format])
        hint = " Export to tflite or onnx to quantize." if format == "saved_model" else ""
        raise ValueError(f"quantize={quantize!r} is not supported for format={format!r}; it supports {supported}.{hint}")
    if quantize == "int8" and not has_representative:
        raise ValueError(
            "quantize='int8' calibrates activation ranges on real images: pass representative_data= "
            "(a tf.data.Dataset of images or (images, masks), or an array (N, H, W, C); about 100 images), "
            "or use quantize='dynamic', which needs none."
        )
    if input_dtype not in INPUT_DTYPES:
        raise ValueError(f"input_dtype={input_dtype!r} is not supported; expected one of {INPUT_DTYPES}.")
    from keras_seg.utils import checks

    input_size = checks.image_size(input_size, "input_size")
    for name, value, low in (("batch_size", batch_size, 1), ("opset", opset, 13)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low):
            raise ValueError(f"{name}={value!r} must be an int >= {low} (or None).")
    counts = (("num_calibration", num_calibration), ("num_verify", num_verify), ("latency_runs", latency_runs))
    for name, value in counts:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name}={value!r} must be a positive int.")
    if class_names is not None:
        if isinstance(class_names, str) or not all(isinstance(n, str) for n in class_names):
            raise ValueError(f"class_names={class_names!r} must be a list of strings, index 0 first.")
        class_names = list(class_names)
    if mediapipe not in (None, True, False):
        raise ValueError(f"mediapipe={mediapipe!r} must be None (when the model allows it), True or False.")
    if mediapipe and format != "tflite":
        raise ValueError(f"mediapipe=True writes MediaPipe's TFLite metadata; format={format!r} has none. Export to "
                         "a .tflite file, or leave mediapipe=None.")  # fmt: skip
    _check_target(path, format)
    _check_dependencies(format, quantize, verify)
    return Options(format, output, quantize, input_dtype, input_size, batch_size and int(batch_size), class_names,
                   bool(verify), int(opset or DEFAULT_OPSET), int(num_calibration), int(num_verify), int(latency_runs),
                   bool(quiet), mediapipe)  # fmt: skip


def _format(path, format):
    ext = os.path.splitext(path)[1].lower()
    if format is None:
        return EXTENSIONS.get(ext, "saved_model")
    if format not in FORMATS:
        raise ValueError(f"format={format!r} is not supported; expected one of {FORMATS}.")
    implied = EXTENSIONS.get(ext)
    if implied is not None and implied != format:
        raise ValueError(f"format={format!r} but the path {path!r} ends in {ext}; use format={implied!r} or another path.")
    return format


# What a SavedModel directory holds at its top level (TensorFlow's writer, Keras 2's extra file).
SAVED_MODEL_ENTRIES = frozenset(
    {"saved_model.pb", "saved_model.pbtxt", "variables", "assets", "assets.extra", "fingerprint.pb", "keras_metadata.pb"}
)
# The first bytes an artifact of each file format starts with: a TFLite flatbuffer carries its identifier
# at offset 4; an ONNX ModelProto written by onnx starts with field 1 (ir_version), tag byte 0x08.
_FILE_MAGIC = {"tflite": (4, b"TFL3"), "onnx": (0, b"\x08")}


def foreign_entries(path):
    """What in the directory ``path`` is not part of a SavedModel (``[]`` if it is one, or is empty).

    A directory is replaceable when it is empty, or when it holds ``saved_model.pb`` (or
    ``.pbtxt``), its top level has only the entries a SavedModel has, and its ``variables/``
    folder only ``variables.*`` files. Anything else (a thesis, a training run, the current
    folder) is listed, so an export never deletes a file it did not write.
    """
    entries = sorted(os.listdir(path))
    if not entries:
        return []
    foreign = [e for e in entries if e not in SAVED_MODEL_ENTRIES]
    if not {"saved_model.pb", "saved_model.pbtxt"} & set(entries):
        return foreign or entries
    variables = os.path.join(path, "variables")
    if os.path.isdir(variables):
        foreign += [os.path.join("variables", e) for e in sorted(os.listdir(variables)) if not e.startswith("variables.")]
    return foreign


def check_replaceable(path, format):
    """Raise ``FileExistsError`` naming ``path`` when writing the artifact there would destroy something else.

    SavedModel: an existing directory must be a SavedModel (see :func:`foreign_entries`). TFLite /
    ONNX: an existing file must be an artifact of that format (its first bytes say so).
    """
    if not os.path.lexists(path):
        return
    if format == "saved_model":
        foreign = foreign_entries(path) if os.path.isdir(path) else None
        if foreign:
            raise FileExistsError(
                f"{path} is a folder that is not a SavedModel (it holds {first_few(foreign)}); the export would "
                "replace it whole. Choose a new or empty folder, e.g. a subfolder of it."
            )
        return
    offset, magic = _FILE_MAGIC[format]
    with open(path, "rb") as f:
        head = f.read(offset + len(magic))
    if head[offset:] != magic:
        raise FileExistsError(
            f"{path} exists and is not a {format} model; the export would overwrite it. Choose another path, "
            f"e.g. model.{format}, or remove the file first."
        )


def _check_target(path, format):
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise FileNotFoundError(f"The folder {parent} for {path} does not exist; create it first (mkdir -p {parent}).")
    if format == "saved_model" and os.path.isfile(path):
        raise ValueError(f"{path} is a file, but a SavedModel is a directory; remove the file or choose another path.")
    if format != "saved_model" and os.path.isdir(path):
        raise ValueError(f"{path} is a directory, but a {format} model is a file; choose a path such as model.{format}.")
    check_replaceable(path, format)


def _check_dependencies(format, quantize, verify):
    needed = ["tensorflow"]
    if format == "onnx":
        needed += ["tf2onnx", "onnx"]
        if verify or quantize:
            needed.append("onnxruntime")
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(
            f"Exporting to {format} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not "
            f"installed: {INSTALL}"
        )


@dataclasses.dataclass
class Facts:
    """What the artifact looks like, derived from the model and the options."""

    format: str
    output: str
    quantize: str | None
    input_dtype: str
    size: tuple | None  # (H, W), None for any size
    batch: int | None
    channels: int
    num_classes: int
    class_names: list | None
    model_activation: str | None  # the model's own final activation, if it has one
    output_dtype: str
    mediapipe: bool = False  # TFLite: the MediaPipe ImageSegmenter metadata is written
    warnings: list = dataclasses.field(default_factory=list)  # what the user should hear about this artifact

    @property
    def segmenter_activation(self):
        """What MediaPipe applies to the output: SOFTMAX / SIGMOID to logits, NONE to probabilities."""
        if self.output != "logits":
            return "NONE"
        return "SIGMOID" if self.num_classes == 1 else "SOFTMAX"

    @property
    def label_file_names(self):
        """One name per output channel for the TENSOR_AXIS_LABELS file (a sigmoid channel is the foreground)."""
        if not self.class_names:
            return None
        if self.num_classes == 1 and len(self.class_names) == 2:
            return self.class_names[1:]
        return self.class_names

    @property
    def input_shape(self):
        return [self.batch, *(self.size or (None, None)), self.channels]

    @property
    def output_shape(self):
        shape = [self.batch, *(self.size or (None, None))]
        return shape if self.output == "labels" else shape + [self.num_classes]

    @property
    def graph_input_dtype(self):
        # int8 TFLite quantizes a float input to uint8 itself (inference_input_type); elsewhere the graph casts.
        if self.input_dtype == "uint8" and not (self.format == "tflite" and self.quantize == "int8"):
            return "uint8"
        return "float32"

    def metadata(self):
        from keras_seg.version import __version__

        binary = self.num_classes == 1
        rule = ("probability > 0.5" if binary else "argmax over classes") if self.output == "labels" else None
        return {
            "producer": f"keras_seg {__version__}",
            "format": self.format,
            "num_classes": self.num_classes,
            "class_names": self.class_names,
            "output": self.output,
            "output_name": self.output,
            "output_dtype": self.output_dtype,
            "output_shape": self.output_shape,
            "labels_rule": rule,
            "input_name": "image",
            "input_dtype": self.input_dtype,
            "input_shape": self.input_shape,
            "input_size": list(self.size) if self.size else None,
            "batch_size": self.batch,
            "input_range": [0, 255],
            "quantize": self.quantize,
        }


def facts_for(model, options):
    """:class:`Facts` for ``model`` and the checked ``options``; raises ValueError naming the fix."""
    from keras_seg.utils.modelfile import check_segmentation_model

    check_segmentation_model(model)
    in_shape, out_shape = tuple(model.input_shape), tuple(model.output_shape)
    static = tuple(in_shape[1:3]) if None not in in_shape[1:3] else None
    size = options.input_size
    if size and static and tuple(size) != static:
        raise ValueError(f"input_size={size} but the model only takes {static} images (its input shape); "
                         f"pass input_size={static} or None.")  # fmt: skip
    size = tuple(size or static) if (size or static) else None
    if options.format == "tflite" and size is None:
        raise ValueError(
            "TFLite needs a fixed input size and the model takes any size: pass input_size=(H, W), "
            "e.g. input_size=(256, 256) (keras-seg export --input-size 256,256)."
        )
    batch = options.batch_size or (1 if options.format == "tflite" else None)
    activation = getattr(model, "activation", None)
    activation = activation if activation in ACTIVATIONS else None
    output = options.output or ("probabilities" if activation else "logits")
    if output == "logits" and activation:
        raise ValueError(
            f"output='logits' but {model.name} ends in a {activation} (activation={activation!r}), so it has no "
            "logits to export; pass output='probabilities' or output='labels'."
        )
    num_classes = int(out_shape[-1])
    names = options.class_names
    if names is not None and len(names) != num_classes and not (num_classes == 1 and len(names) == 2):
        raise ValueError(f"class_names has {len(names)} names but the model predicts {num_classes} classes; "
                         "give one name per class (for one sigmoid channel, 1 or 2 names).")  # fmt: skip
    label_dtype = "uint8" if num_classes <= 256 else "int32"
    mediapipe, warnings = _mediapipe(options, int(in_shape[-1]), num_classes, output)
    return Facts(options.format, output, options.quantize, options.input_dtype, size, batch, int(in_shape[-1]),
                 num_classes, names, activation, label_dtype if output == "labels" else "float32", mediapipe,
                 warnings)  # fmt: skip


def _mediapipe(options, channels, num_classes, output):
    """``(write MediaPipe metadata?, warnings)`` for a TFLite export; errors when ``mediapipe=True`` cannot be."""
    if options.format != "tflite":
        return False, []
    from keras_seg.export.tflite_metadata import MAX_CATEGORY_CLASSES

    warnings = []
    if output == "labels":
        warnings.append(
            "output='labels' is a label map for callers that run the LiteRT interpreter themselves: MediaPipe's "
            "ImageSegmenter and the LiteRT GPU delegate (no ARG_MAX kernel) cannot use it. For a phone, export "
            "the default logits (or probabilities): MediaPipe computes the category mask itself."
        )
    if options.mediapipe is False:  # asked for none: nothing more to say about MediaPipe
        return False, warnings
    if channels != 3:
        message = (f"the model takes {channels} input channel(s), and MediaPipe's ImageSegmenter feeds RGB images "
                   "(3 channels)")  # fmt: skip
        if options.mediapipe:
            raise ValueError(f"mediapipe=True: {message}; export with mediapipe=False (--no-mediapipe) for the LiteRT "
                             "interpreter.")  # fmt: skip
        warnings.append(f"no MediaPipe metadata: {message}; the file is for the LiteRT interpreter")
        return False, warnings
    if output == "labels":
        if options.mediapipe:
            raise ValueError("mediapipe=True with output='labels': MediaPipe's ImageSegmenter reads a label map as "
                             "an image and answers garbage. Export logits or probabilities for it.")  # fmt: skip
        return False, warnings
    if num_classes > MAX_CATEGORY_CLASSES:
        warnings.append(f"the model predicts {num_classes} classes and MediaPipe's category mask is uint8: it can name "
                        f"only {MAX_CATEGORY_CLASSES} classes; use its confidence masks")  # fmt: skip
    return options.mediapipe is not False, warnings
