"""Train DeepLabV3+ (ResNet50, ImageNet weights) on Pascal VOC 2012.

    python examples/train_voc.py --root VOCdevkit/VOC2012

Get the data from http://host.robots.ox.ac.uk/pascal/VOC/voc2012/ (VOCtrainval_11-May-2012.tar,
2 GB) and pass the VOC2012 folder. 21 classes; object borders are 255 and ignored.
--encoder-weights none trains from scratch (no download); --epochs 1 --limit 8 is a smoke test.
"""

import argparse

import keras
import tensorflow as tf

import keras_seg
from keras_seg import data, training

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--root", required=True, help="the VOC2012 folder (JPEGImages, SegmentationClass, ImageSets)")
parser.add_argument("--encoder", default="resnet50")
parser.add_argument("--encoder-weights", default="imagenet", help="imagenet, none or a .weights.h5 file")
parser.add_argument("--size", type=int, default=512)
parser.add_argument("--batch-size", type=int, default=8)
parser.add_argument("--epochs", type=int, default=50)
parser.add_argument("--limit", type=int, help="use only this many images per split")
parser.add_argument("--out", default="runs/voc")
args = parser.parse_args()


def split(name, augment=None):
    ds = data.voc(args.root, name)
    if args.limit:
        ds = ds.take(args.limit)
    return data.prepare(ds, args.batch_size, args.size, augment=augment, shuffle=512 if augment else None,
                        resize="pad", ignore_index=255)  # fmt: skip


augment = data.Augment(crop_size=args.size, scale=(0.5, 2.0), rotation=10, brightness=0.2, contrast=0.2,
                       saturation=0.2, ignore_index=255)  # fmt: skip
train_ds, val_ds = split("train", augment), split("val")
steps = int(tf.data.experimental.cardinality(train_ds))

weights = None if args.encoder_weights == "none" else args.encoder_weights
model = keras_seg.models.DeepLabV3Plus(21, encoder=args.encoder, encoder_weights=weights, output_stride=16)
keras.utils.set_random_seed(0)
result = training.train(model, train_ds, val_ds, epochs=args.epochs, out_dir=args.out, ignore_index=255,
                        learning_rate=1e-3 if weights else 3e-3, schedule="poly", freeze_encoder_epochs=0,
                        class_names=data.VOC_CLASSES, steps_per_epoch=steps, verbose=2)  # fmt: skip
print(f"best model: {result.best_path}")
