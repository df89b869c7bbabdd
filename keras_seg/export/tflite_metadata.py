"""The standard TFLite metadata of an image segmenter, as MediaPipe Tasks' ImageSegmenter reads it.

A phone app does not call the TFLite interpreter by hand: on Android, iOS and the web it hands
the ``.tflite`` file to MediaPipe's ``ImageSegmenter``, which reads three things from the file:

- the input's ``ImageProperties`` (RGB) and ``NormalizationOptions``: for a float32 input it
  feeds ``(pixel - mean) / std``; a uint8 input gets the raw pixels;
- the output's ``TENSOR_AXIS_LABELS`` file (one class name per line), which becomes
  ``segmenter.labels`` and names the confidence masks;
- a ``SEGMENTER_METADATA`` custom entry with the activation it applies to the output
  (``NONE``, ``SIGMOID`` or ``SOFTMAX``).

The metadata is a ``ModelMetadata`` flatbuffer (``metadata_schema.fbs``, identifier ``M001``)
stored in a model buffer named ``TFLITE_METADATA``; the label file is appended to the model
as a zip archive (the model stays a valid flatbuffer, and a zip reader finds the file at the
end). MediaPipe's own Python metadata writers do not import from its wheel (a compiled module
is missing), so the tables are written here with the ``flatbuffers`` builder, field by field
as the schema declares them; ``tests/test_export_mobile.py`` loads the result in MediaPipe.

keras_seg's model takes raw 0..255 pixels and normalises inside its graph, so a float32 input
declares mean 0 and std 1: MediaPipe's ``(pixel - 0) / 1`` is the pixel itself.
"""

import io
import zipfile

import flatbuffers

METADATA_NAME = "TFLITE_METADATA"
METADATA_IDENTIFIER = b"M001"
SEGMENTER_NAME = "SEGMENTER_METADATA"
SEGMENTER_IDENTIFIER = b"V001"
LABELS_FILE = "labels.txt"
MIN_PARSER_VERSION = "1.0.0"
ACTIVATIONS = {"NONE": 0, "SIGMOID": 1, "SOFTMAX": 2}
MAX_CATEGORY_CLASSES = 256  # MediaPipe's category mask is uint8: one value per class
# Enum values of metadata_schema.fbs.
_RGB, _GRAYSCALE = 1, 2
_IMAGE_PROPERTIES = 2  # ContentProperties union: FeatureProperties = 1, ImageProperties = 2
_NORMALIZATION_OPTIONS = 1  # ProcessUnitOptions union
_TENSOR_AXIS_LABELS = 2  # AssociatedFileType


def metadata_entries(facts, model_name):
    """``{TFLITE_METADATA: bytes}``: MediaPipe's ImageSegmenter metadata, for :func:`keras_seg.export.metadata.add_to_tflite`."""
    from keras_seg.version import __version__

    tables = segmenter_metadata(
        name=model_name,
        description=f"Semantic segmentation into {facts.num_classes} classes, exported by keras_seg {__version__}.",
        version=__version__,
        input_dtype=facts.input_dtype,
        class_names=facts.label_file_names,
        activation=facts.segmenter_activation,
    )
    return {METADATA_NAME: metadata_buffer(tables)}


def append_label_file(content, facts):
    """The TFLite bytes with MediaPipe's label file appended (after every metadata entry is written)."""
    names = facts.label_file_names
    return append_files(content, {LABELS_FILE: labels_file(names)}) if names else content


def segmenter_metadata(*, name, description, version, input_dtype, class_names, activation, author="keras_seg"):
    """The ``ModelMetadata`` tables (nested dicts, see :func:`_build`) of a one-input, one-output segmenter."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation={activation!r} must be one of {sorted(ACTIVATIONS)}.")
    image = {
        "name": ("string", "image"),
        "description": ("string", "RGB pixel values in [0, 255] (the model normalises inside its graph)."),
        "content": ("table", {
            "content_properties_type": ("ubyte", _IMAGE_PROPERTIES),
            "content_properties": ("table", {"color_space": ("ubyte", _RGB)}),
        }),
    }  # fmt: skip
    if input_dtype == "float32":  # MediaPipe feeds (pixel - mean) / std: the raw pixel
        image["process_units"] = ("tables", [{
            "options_type": ("ubyte", _NORMALIZATION_OPTIONS),
            "options": ("table", {"mean": ("floats", [0.0]), "std": ("floats", [1.0])}),
        }])  # fmt: skip
        image["stats"] = ("table", {"max": ("floats", [255.0]), "min": ("floats", [0.0])})
    masks = {
        "name": ("string", "segmentation_masks"),
        "description": ("string", "Per-pixel class scores (B, H, W, K); the category mask is their argmax."),
        "content": ("table", {
            "content_properties_type": ("ubyte", _IMAGE_PROPERTIES),
            "content_properties": ("table", {"color_space": ("ubyte", _GRAYSCALE)}),
            "range": ("table", {"min": ("int", 1), "max": ("int", 2)}),
        }),
    }  # fmt: skip
    if class_names:
        masks["associated_files"] = ("tables", [{
            "name": ("string", LABELS_FILE),
            "description": ("string", "Class names, one per output channel, index 0 first."),
            "type": ("ubyte", _TENSOR_AXIS_LABELS),
        }])  # fmt: skip
    options = flatbuffers.Builder(64)  # the segmenter's own options: a small flatbuffer of its own schema
    options.Finish(_build(options, {"activation": ("ubyte", ACTIVATIONS[activation])}, _SEGMENTER_OPTIONS),
                   SEGMENTER_IDENTIFIER)  # fmt: skip
    subgraph = {
        "name": ("string", "ImageSegmenter"),
        "input_tensor_metadata": ("tables", [image]),
        "output_tensor_metadata": ("tables", [masks]),
        "custom_metadata": ("tables", [{"name": ("string", SEGMENTER_NAME), "data": ("bytes", bytes(options.Output()))}]),
    }
    return {
        "name": ("string", name),
        "description": ("string", description),
        "version": ("string", version),
        "subgraph_metadata": ("tables", [subgraph]),
        "author": ("string", author),
        "min_parser_version": ("string", MIN_PARSER_VERSION),
    }


def metadata_buffer(tables):
    """The ``ModelMetadata`` flatbuffer (identifier ``M001``) of :func:`segmenter_metadata`'s tables."""
    builder = flatbuffers.Builder(1024)
    builder.Finish(_build(builder, tables, _MODEL_METADATA), METADATA_IDENTIFIER)
    return bytes(builder.Output())


def labels_file(class_names):
    """The TENSOR_AXIS_LABELS file: one class name per line, index 0 first."""
    return "".join(f"{name}\n" for name in class_names).encode()


def append_files(content, files):
    """``content`` (a flatbuffer) followed by a zip archive of ``files`` ``{name: bytes}`` (stored, not deflated)."""
    stream = io.BytesIO()
    stream.write(content)
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return stream.getvalue()


# ---------------------------------------------------------------------------------------------- the builder

# Field slots as metadata_schema.fbs declares them (a union takes two slots: its type, then its value).
_MODEL_METADATA = {"name": 0, "description": 1, "version": 2, "subgraph_metadata": 3, "author": 4, "license": 5,
                   "associated_files": 6, "min_parser_version": 7}  # fmt: skip
_SUBGRAPH = {"name": 0, "description": 1, "input_tensor_metadata": 2, "output_tensor_metadata": 3,
             "associated_files": 4, "input_process_units": 5, "output_process_units": 6, "input_tensor_groups": 7,
             "output_tensor_groups": 8, "custom_metadata": 9}  # fmt: skip
_TENSOR = {"name": 0, "description": 1, "dimension_names": 2, "content": 3, "process_units": 4, "stats": 5,
           "associated_files": 6}  # fmt: skip
_CONTENT = {"content_properties_type": 0, "content_properties": 1, "range": 2}
_IMAGE = {"color_space": 0, "default_size": 1}
_RANGE = {"min": 0, "max": 1}
_PROCESS_UNIT = {"options_type": 0, "options": 1}
_NORMALIZATION = {"mean": 0, "std": 1}
_STATS = {"max": 0, "min": 1}
_FILE = {"name": 0, "description": 1, "type": 2, "locale": 3, "version": 4}
_CUSTOM = {"name": 0, "data": 1}
_SEGMENTER_OPTIONS = {"activation": 0, "min_parser_version": 1}
_CHILDREN = {  # the slot table of each nested table, by field name
    "subgraph_metadata": _SUBGRAPH, "input_tensor_metadata": _TENSOR, "output_tensor_metadata": _TENSOR,
    "content": _CONTENT, "range": _RANGE, "process_units": _PROCESS_UNIT, "options": _NORMALIZATION,
    "stats": _STATS, "associated_files": _FILE, "custom_metadata": _CUSTOM, "content_properties": _IMAGE,
}  # fmt: skip
_SCALARS = {"ubyte": "PrependUint8Slot", "int": "PrependInt32Slot", "uint": "PrependUint32Slot"}


def _build(builder, fields, slots):
    """Write one table: children first (flatbuffers builds back to front), then the table's own slots."""
    offsets = {}
    for key, (kind, value) in fields.items():
        if kind == "string":
            offsets[key] = builder.CreateString(value)
        elif kind == "table":
            offsets[key] = _build(builder, value, _CHILDREN[key])
        elif kind == "tables":
            children = [_build(builder, child, _CHILDREN[key]) for child in value]
            offsets[key] = _vector(builder, 4, 4, children, builder.PrependUOffsetTRelative)
        elif kind == "floats":
            offsets[key] = _vector(builder, 4, 4, [float(v) for v in value], builder.PrependFloat32)
        elif kind == "bytes":  # [ubyte] (force_align: 16)
            offsets[key] = _vector(builder, 1, 16, list(value), builder.PrependUint8)
        elif kind not in _SCALARS:
            raise ValueError(f"unknown field kind {kind!r}")
    builder.StartObject(max(slots.values()) + 1)
    for key, (kind, value) in fields.items():
        if kind in _SCALARS:
            getattr(builder, _SCALARS[kind])(slots[key], int(value), 0)
        else:
            builder.PrependUOffsetTRelativeSlot(slots[key], offsets[key], 0)
    return builder.EndObject()


def _vector(builder, size, alignment, items, prepend):
    builder.StartVector(size, len(items), alignment)
    for item in reversed(items):
        prepend(item)
    return builder.EndVector()
