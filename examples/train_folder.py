"""Train on your own data: a folder of images and a folder of masks with the same file names.

    python examples/train_folder.py --images data/images --masks data/masks --classes background,road,car
    python examples/train_folder.py --make-example data   # writes a small example of the layout first

Masks are PNGs of class indices (grayscale, or palette PNGs like VOC's); 255 (or
--ignore-index) marks pixels to ignore. A tenth of the images, chosen by a hash of
the file name, is held out for validation.
"""

import argparse
import os

import keras
from PIL import Image

import keras_seg
from keras_seg import data, training
from keras_seg.data import catalog

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--images", help="folder of images (.jpg, .png, ...)")
parser.add_argument("--masks", help="folder of masks, one <image stem>.png per image")
parser.add_argument("--classes", help="comma-separated class names, index 0 first")
parser.add_argument("--ignore-index", type=int, default=255)
parser.add_argument("--make-example", metavar="DIR", help="write an example dataset (shapes) to DIR and train on it")
parser.add_argument("--size", type=int, default=128, help="training crop size")
parser.add_argument("--epochs", type=int, default=20)
parser.add_argument("--out", default="runs/train_folder")
args = parser.parse_args()

if args.make_example:
    args.images, args.masks = os.path.join(args.make_example, "images"), os.path.join(args.make_example, "masks")
    args.classes = ",".join(data.SHAPES_CLASSES)
    os.makedirs(args.images, exist_ok=True)
    os.makedirs(args.masks, exist_ok=True)
    for i, (image, mask) in enumerate(zip(*data.shapes_arrays("train", 64, (96, 128)))):
        Image.fromarray(image).save(os.path.join(args.images, f"img{i:03d}.jpg"), quality=95)
        keras_seg.viz.save_label_png(os.path.join(args.masks, f"img{i:03d}.png"), mask)
if not (args.images and args.masks and args.classes):
    parser.error("give --images, --masks and --classes (or --make-example DIR)")
classes = args.classes.split(",")

pairs = data.folders.pair_files(args.images, args.masks)
train_pairs, val_pairs = catalog.split_pairs(pairs, "train", 0.1), catalog.split_pairs(pairs, "val", 0.1)
print(f"{len(train_pairs)} training and {len(val_pairs)} validation images, {len(classes)} classes")
augment = data.Augment(crop_size=args.size, scale=(0.5, 2.0), rotation=10, brightness=0.2, contrast=0.2,
                       ignore_index=args.ignore_index)  # fmt: skip
train_ds = data.prepare(data.from_pairs(train_pairs, ignore_index=args.ignore_index), 8, args.size,
                        augment=augment, shuffle=256, cache=True)  # fmt: skip
val_ds = data.prepare(data.from_pairs(val_pairs, ignore_index=args.ignore_index), 8, args.size, cache=True)

keras.utils.set_random_seed(0)
model = keras_seg.models.UNet(len(classes), widths=(16, 32, 64, 128))
result = training.train(model, train_ds, val_ds, epochs=args.epochs, out_dir=args.out, ignore_index=args.ignore_index,
                        class_names=classes, verbose=2)  # fmt: skip
print(f"best model: {result.best_path}; try: keras-seg predict {result.best_path} {args.images} --out predictions")
