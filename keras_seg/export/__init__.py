"""Export to SavedModel, TFLite (LiteRT) and ONNX, with a parity report from the real runtime.

    report = keras_seg.export.export(model, "model.tflite", input_size=(256, 256), output="labels",
                                     quantize="int8", representative_data=val_ds, input_dtype="uint8")
    keras_seg.export.read_metadata("model.tflite")["class_names"]

:func:`export` converts with TensorFlow (in a child process under JAX or PyTorch), writes the
artifact atomically, runs it in LiteRT / onnxruntime / TensorFlow, and returns an
:class:`ExportReport` (label agreement with the Keras model, max |Δ logits|, mean IoU, size,
latency). :func:`read_metadata` reads the class names and input / output description stored
in any of the three formats. Importing this package does not import TensorFlow.
"""

from keras_seg.export.api import export
from keras_seg.export.mediapipe_runner import SegmenterResult, mediapipe_segment
from keras_seg.export.metadata import read_metadata
from keras_seg.export.options import DEFAULT_OPSET, FORMATS, INPUT_DTYPES, OUTPUTS, QUANTIZE
from keras_seg.export.report import ExportReport

__all__ = ["DEFAULT_OPSET", "ExportReport", "FORMATS", "INPUT_DTYPES", "OUTPUTS", "QUANTIZE", "SegmenterResult", "export",
           "mediapipe_segment", "read_metadata"]  # fmt: skip
