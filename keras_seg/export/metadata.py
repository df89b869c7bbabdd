"""What an exported model says about itself, stored inside the artifact, and :func:`read_metadata`.

One JSON dict (``class_names``, ``num_classes``, ``output``, input size and dtype, ...) under
the name ``keras_seg``:

- TFLite: a flatbuffer ``Metadata`` entry named ``keras_seg`` pointing at a buffer of JSON
  (the converter's own ``min_runtime_version`` / ``CONVERSION_METADATA`` entries stay).
- ONNX: ``metadata_props`` ``keras_seg`` (the whole dict) and ``class_names`` (a JSON list),
  as onnxruntime shows them in ``session.get_modelmeta().custom_metadata_map``.
- SavedModel: ``assets/keras_seg.json`` and ``assets/class_names.json`` (tracked assets,
  so they travel when the model is re-saved), and ``loaded.metadata()`` returns the JSON.

:func:`read_metadata` reads any of the three without TensorFlow (TFLite needs
ai-edge-litert or TensorFlow for the flatbuffer schema, ONNX the ``onnx`` package).
"""

import json
import os

KEY = "keras_seg"
ASSET = "keras_seg.json"
CLASS_NAMES_ASSET = "class_names.json"


def read_metadata(path):
    """The ``keras_seg`` metadata dict of an exported SavedModel directory, ``.tflite`` or ``.onnx`` file."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} does not exist; pass a SavedModel directory, a .tflite or an .onnx file.")
    if os.path.isdir(path):
        asset = os.path.join(path, "assets", ASSET)
        if not os.path.isfile(asset):
            raise ValueError(f"{path} has no assets/{ASSET}: it is not a SavedModel written by keras_seg.export.")
        with open(asset) as f:
            return json.load(f)
    with open(path, "rb") as f:
        head = f.read(8)
    if head[4:8] == b"TFL3":
        return _read_tflite(path)
    return _read_onnx(path)


# ---------------------------------------------------------------------------------------------- TFLite


def tflite_schema():
    """The TFLite flatbuffer schema module (from ai-edge-litert, else TensorFlow)."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        try:
            from tensorflow.lite.python import schema_py_generated as schema
        except ImportError:
            raise ImportError('Reading .tflite needs ai-edge-litert or TensorFlow: pip install "keras-seg[export]"')
    return schema


def add_to_tflite(content, metadata, entries=None):
    """TFLite flatbuffer bytes with a ``keras_seg`` metadata entry holding ``metadata`` as JSON.

    ``entries``: more ``{name: bytes}`` metadata entries written in the same pass (MediaPipe's).
    """
    return add_buffer_entries(content, {KEY: json.dumps(metadata).encode(), **(entries or {})})


def add_buffer_entries(content, entries):
    """TFLite flatbuffer bytes with a ``Metadata`` entry per ``{name: data}``, each pointing at a new buffer.

    An entry of the same name is replaced; the others (the converter's ``min_runtime_version``,
    ``CONVERSION_METADATA``) stay. The flatbuffer is unpacked and packed once, whatever the
    number of entries. Files appended after the flatbuffer (a zip of associated files) do not
    survive: add those last.
    """
    import flatbuffers
    import numpy as np

    schema = tflite_schema()
    model = schema.ModelT.InitFromPackedBuf(bytearray(content), 0)
    names = {name.encode() for name in entries}
    model.metadata = [m for m in (model.metadata or []) if m.name not in names]
    for name, data in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(data, dtype=np.uint8)
        model.buffers.append(buffer)
        entry = schema.MetadataT()
        entry.name = name
        entry.buffer = len(model.buffers) - 1
        model.metadata.append(entry)
    builder = flatbuffers.Builder(len(content) + sum(len(d) for d in entries.values()) + 4096)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def _read_tflite(path):
    schema = tflite_schema()
    with open(path, "rb") as f:
        content = f.read()
    model = schema.Model.GetRootAs(content, 0)
    for i in range(model.MetadataLength()):
        entry = model.Metadata(i)
        if entry.Name() == KEY.encode():
            return json.loads(model.Buffers(entry.Buffer()).DataAsNumpy().tobytes())
    raise ValueError(f"{path} has no '{KEY}' metadata: it is not a TFLite model written by keras_seg.export.")


# ---------------------------------------------------------------------------------------------- ONNX


def add_to_onnx(proto, metadata):
    """Set the ``keras_seg`` and ``class_names`` ``metadata_props`` of an ONNX ModelProto (in place)."""
    props = {KEY: json.dumps(metadata), "class_names": json.dumps(metadata.get("class_names"))}
    kept = [(p.key, p.value) for p in proto.metadata_props if p.key not in props]
    del proto.metadata_props[:]
    for key, value in kept + list(props.items()):
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    return proto


def _read_onnx(path):
    try:
        import onnx
    except ImportError:
        raise ImportError('Reading an .onnx file needs the onnx package: pip install "keras-seg[export]"')
    try:
        proto = onnx.load(path, load_external_data=False)
    except Exception as error:  # noqa: BLE001 - protobuf raises several kinds
        raise ValueError(f"{path} is neither a SavedModel directory, a .tflite nor an .onnx file ({error}).")
    for prop in proto.metadata_props:
        if prop.key == KEY:
            return json.loads(prop.value)
    raise ValueError(f"{path} has no '{KEY}' metadata: it is not an ONNX model written by keras_seg.export.")
