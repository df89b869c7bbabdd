"""Train a U-Net (MobileNetV2 encoder) on Oxford-IIIT Pet: background, pet and border.

    pip install tensorflow-datasets
    python examples/train_pets.py               # downloads about 800 MB on the first run

The data comes through tensorflow-datasets (``keras_seg.data.pets``), which downloads
and prepares it into ~/tensorflow_datasets (or --data-dir) once.
"""

import argparse

import keras

import keras_seg
from keras_seg import data, training

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--data-dir", help="tensorflow-datasets folder")
parser.add_argument("--encoder-weights", default="imagenet", help="imagenet or none")
parser.add_argument("--size", type=int, default=160)
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--out", default="runs/pets")
args = parser.parse_args()

try:
    train_raw, val_raw = data.pets("train", args.data_dir), data.pets("val", args.data_dir)
except ImportError as error:
    raise SystemExit(str(error))
augment = data.Augment(crop_size=args.size, scale=(0.7, 1.4), rotation=10, brightness=0.1, contrast=0.1)
train_ds = data.prepare(train_raw, 16, args.size, augment=augment, shuffle=1024)
val_ds = data.prepare(val_raw, 16, args.size)

weights = None if args.encoder_weights == "none" else args.encoder_weights
model = keras_seg.models.UNet(3, encoder="mobilenetv2", encoder_weights=weights)
keras.utils.set_random_seed(0)
result = training.train(model, train_ds, val_ds, epochs=args.epochs, out_dir=args.out, freeze_encoder_epochs=2,
                        class_names=data.PETS_CLASSES, verbose=2)  # fmt: skip
print(f"best model: {result.best_path}")
