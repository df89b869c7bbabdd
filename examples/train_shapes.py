"""Train a U-Net on the built-in synthetic ``shapes`` dataset with the Python API.

    python examples/train_shapes.py                    # about 4 minutes on a 2-core CPU
    KERAS_BACKEND=jax python examples/train_shapes.py --epochs 2

The same run as ``keras-seg train`` (the README's demo), written out: data pipeline
with paired augmentation, the fit recipe (AdamW, warmup + cosine, best-mIoU
checkpoint), a per-class report and pictures.
"""

import argparse
import os

import keras
import numpy as np

import keras_seg
from keras_seg import data, training, viz

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=16)
parser.add_argument("--num-train", type=int, default=1024)
parser.add_argument("--size", type=int, default=64)
parser.add_argument("--out", default="runs/train_shapes")
args = parser.parse_args()
keras.utils.set_random_seed(0)

augment = data.Augment(crop_size=args.size, scale=(0.75, 1.5), rotation=15, brightness=0.1, contrast=0.1)
train_ds = data.prepare(data.shapes("train", args.num_train, args.size), 16, args.size, augment=augment, shuffle=1024)
val_ds = data.prepare(data.shapes("val", 128, args.size), 16, args.size)

model = keras_seg.models.UNet(num_classes=4, widths=(16, 32, 64, 128))
result = training.train(model, train_ds, val_ds, epochs=args.epochs, out_dir=args.out, loss="ce+dice",
                        learning_rate=3e-3, class_names=data.SHAPES_CLASSES, verbose=2)  # fmt: skip

best = keras.saving.load_model(result.best_path)
confusion = keras_seg.metrics.ConfusionMatrix(num_classes=4)
for images, masks in val_ds.as_numpy_iterator():
    confusion.update_state(masks, best.predict_on_batch(images))
print(keras_seg.metrics.segmentation_report(confusion, class_names=data.SHAPES_CLASSES))

images, masks = next(iter(val_ds))
images, masks = np.asarray(images)[:4], np.asarray(masks)[:4]
viz.plot_history(result.log_path, os.path.join(args.out, "curves.png"))
viz.plot_samples(images, masks, best.predict_mask(images), os.path.join(args.out, "samples.png"),
                 class_names=data.SHAPES_CLASSES)  # fmt: skip
print(f"wrote {result.best_path}, curves.png and samples.png in {args.out}")
