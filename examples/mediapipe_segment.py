"""Export a model for phones and segment a picture with MediaPipe's ImageSegmenter, as an app does.

    python examples/mediapipe_segment.py                        # the shipped shapes U-Net, one sample image
    python examples/mediapipe_segment.py --quantize int8 --image my_photo.jpg --out runs/mediapipe

MediaPipe Tasks' ImageSegmenter is what Android, iOS and web apps call (the successor of the
TFLite Task Library); its Python package runs the same C++ graph. The ``.tflite`` written by
``keras_seg.export.export`` carries the metadata it reads (RGB input and its normalisation, the
class names, the activation to apply), so the file is used as is: on Android
``ImageSegmenter.createFromFile(context, "model.tflite")``, on iOS ``ImageSegmenter(modelPath:)``,
on the web ``ImageSegmenter.createFromOptions(vision, {baseOptions: {modelAssetPath}})``.
The script writes the label PNG and a colour overlay of the picture, and compares MediaPipe's
category mask with the Keras model's own prediction.
"""

import argparse
import os

import keras
import numpy as np

import keras_seg
import keras_seg.export
from keras_seg import data, viz

HERE = os.path.dirname(os.path.abspath(__file__))
parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--model", default=os.path.join(HERE, "..", "saved_models", "shapes_unet.keras"))
parser.add_argument("--image", default=os.path.join(HERE, "..", "saved_models", "samples", "shapes_test_0.png"))
parser.add_argument("--size", type=int, default=64, help="the model's input size; MediaPipe resizes pictures to it (64)")
parser.add_argument("--quantize", choices=("none", "float16", "int8"), default="none")
parser.add_argument("--out", default="runs/mediapipe")
args = parser.parse_args()
try:
    import mediapipe as mp
    from mediapipe.tasks import python as mp_tasks
    from mediapipe.tasks.python import vision
except ImportError:
    raise SystemExit('This example needs MediaPipe: pip install "keras-seg[export]" (or pip install mediapipe).')
os.makedirs(args.out, exist_ok=True)
path = os.path.join(args.out, f"model_{args.quantize}.tflite")

# 1. Export: the default output (logits, with SOFTMAX metadata) is what MediaPipe and the GPU delegate use.
quantize = None if args.quantize == "none" else args.quantize
options = {}
if quantize == "int8":  # full integer: uint8 pixels in, calibrated on real images
    options = {"input_dtype": "uint8", "representative_data": data.shapes("val", 100, args.size)}
report = keras_seg.export.export(args.model, path, input_size=args.size, quantize=quantize, quiet=True, **options)
print(report)

# 2. What an app does: hand the file and a picture to ImageSegmenter.
picture = data.read_image(args.image).astype(np.uint8)  # RGB, decoded as keras_seg's training readers decode it
segmenter_options = vision.ImageSegmenterOptions(base_options=mp_tasks.BaseOptions(model_asset_path=path),
                                                 output_category_mask=True, output_confidence_masks=True)  # fmt: skip
with vision.ImageSegmenter.create_from_options(segmenter_options) as segmenter:
    result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(picture)))
    names = list(segmenter.labels)
labels = result.category_mask.numpy_view()[..., 0].astype(np.int32)  # at the picture's own size
confidence = np.stack([m.numpy_view()[..., 0] for m in result.confidence_masks], axis=-1)
print(f"\nMediaPipe ImageSegmenter: labels {names}; category mask {labels.shape}; "
      f"confidence masks sum to 1 within {np.abs(confidence.sum(-1) - 1).max():.1e}")  # fmt: skip
for k, name in enumerate(names):
    print(f"  {name:<12} {np.mean(labels == k):6.1%} of the picture")

# 3. Against the Keras model, on the picture at the model's size (MediaPipe resizes to it and back).
model = keras.saving.load_model(args.model)
if picture.shape[:2] == (args.size, args.size):
    keras_labels = model.predict_mask(picture.astype("float32"))
    print(f"MediaPipe's category mask equals the Keras model's on {np.mean(labels == keras_labels):.2%} of pixels")
stem = os.path.splitext(os.path.basename(args.image))[0]
viz.save_label_png(os.path.join(args.out, f"{stem}_labels.png"), labels)
viz.save_rgb_png(os.path.join(args.out, f"{stem}_overlay.png"), viz.overlay(picture, labels, class_names=names))
print(f"wrote {path}, {args.out}/{stem}_labels.png and {stem}_overlay.png")
