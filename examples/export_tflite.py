"""Export the shipped shapes U-Net to a full-integer TFLite model for phones, and check it in LiteRT.

    python examples/export_tflite.py --out runs/export        # about 15 s on a 2-core CPU
    KERAS_BACKEND=jax python examples/export_tflite.py        # converted in a TensorFlow child process

The artifact takes uint8 RGB pixels as a camera gives them and returns a uint8 label map,
(1, 64, 64): preprocessing, the network (int8 weights and activations, calibrated on 100
validation images) and the argmax all run inside it, so the app does no arithmetic. The
report compares it with the Keras model on unseen test images (label agreement, mean IoU
of both against the true masks, sizes, latency); then the script runs the file in LiteRT
by hand, as an app would.
"""

import argparse
import os

import keras
import numpy as np

import keras_seg
import keras_seg.export
from keras_seg import data

HERE = os.path.dirname(os.path.abspath(__file__))
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default=os.path.join(HERE, "..", "saved_models", "shapes_unet.keras"))
parser.add_argument("--out", default="runs/export")
parser.add_argument("--size", type=int, default=64, help="input size; the model was trained at 64 (64)")
parser.add_argument("--num-test", type=int, default=32, help="test images to compare on (32)")
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, "shapes_unet_int8.tflite")

# 1. Convert, calibrate, and compare with the Keras model on the test split (prints the report).
calibration = data.shapes("val", 100, args.size)  # (image, mask) pairs; the masks are not needed
test_images, test_masks = data.shapes_arrays("test", args.num_test, args.size)
report = keras_seg.export.export(
    args.model, path, input_size=(args.size, args.size), output="labels", input_dtype="uint8",
    quantize="int8", representative_data=calibration, verify_data=(test_images, test_masks),
)  # fmt: skip
meta = keras_seg.export.read_metadata(path)
print(f"\nstored in the file: classes {meta['class_names']}, input {meta['input_dtype']} {meta['input_shape']}, "
      f"output {meta['output']} {meta['output_dtype']} {meta['output_shape']}")  # fmt: skip

# 2. What an app does: uint8 pixels in, labels out, nothing else.
try:
    from ai_edge_litert.interpreter import Interpreter
except ImportError:  # older setups: the interpreter that ships with TensorFlow
    import tensorflow as tf

    Interpreter = tf.lite.Interpreter
interpreter = Interpreter(model_path=path)
interpreter.allocate_tensors()
source, target = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
keras_model = keras.saving.load_model(args.model)
print("\nLiteRT by hand, four test images:")
for i in range(4):
    interpreter.set_tensor(source["index"], test_images[i : i + 1])  # uint8, as the camera gives them
    interpreter.invoke()
    labels = interpreter.get_tensor(target["index"])[0]
    keras_labels = keras_model.predict_mask(test_images[i].astype("float32"))
    right, keras_right = np.mean(labels == test_masks[i]), np.mean(keras_labels == test_masks[i])
    print(f"  image {i}: {right:.2%} of pixels right (Keras {keras_right:.2%}), "
          f"{np.mean(labels == keras_labels):.2%} agree with Keras")  # fmt: skip
print(f"\nwrote {path} ({report.file_size / 1e6:.2f} MB; the Keras float32 weights are "
      f"{report.keras_weights_size / 1e6:.2f} MB)")  # fmt: skip
