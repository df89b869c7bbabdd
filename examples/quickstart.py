"""Quickstart: train a small segmentation net with keras_seg losses and metrics.

Runs on whichever backend KERAS_BACKEND names (tensorflow, jax or torch):

    KERAS_BACKEND=jax python examples/quickstart.py

It builds a synthetic 3-class dataset (background, squares, discs on a noisy
textured background, colours varying per shape), trains a small classic
``keras_seg.models.UNet`` with ``0.5 * CrossEntropyLoss() + DiceLoss()``,
reports mean IoU / Dice per class, saves the model to ``.keras``, reloads it with
plain ``keras.saving.load_model`` and checks the reloaded model predicts the same.
The built-in ``shapes`` dataset and the ``keras-seg train`` recipe arrive with
keras_seg.data / keras_seg.training; until then the data is made here.
"""

import argparse
import os
import time

import keras
import numpy as np

import keras_seg

CLASS_NAMES = ["background", "square", "disc"]


def make_shapes(n, size, seed):
    """Images in [0, 255] and integer masks: squares (1) and discs (2) on texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.empty((n, size, size, 3), dtype="float32")
    masks = np.zeros((n, size, size), dtype="int32")
    for i in range(n):
        # Textured background: a random colour gradient plus noise.
        base = rng.uniform(40, 200, size=3)
        slope = rng.uniform(-1.5, 1.5, size=(2, 3))
        img = base + yy[..., None] * slope[0] + xx[..., None] * slope[1]
        for _ in range(rng.integers(1, 4)):
            cls = rng.integers(1, 3)
            r = rng.integers(size // 10, size // 4)
            cy, cx = rng.integers(r, size - r, size=2)
            if cls == 1:
                region = (abs(yy - cy) <= r) & (abs(xx - cx) <= r)
            else:
                region = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
            # Per-shape colour drawn from a wide range, so colour alone does not separate classes.
            img[region] = rng.uniform(0, 255, size=3)
            masks[i][region] = cls
        img += rng.normal(0, 20, size=img.shape)
        images[i] = np.clip(img, 0, 255)
    return images, masks


def ascii_mask(mask, step=4):
    chars = ".#o"
    return "\n".join("".join(chars[v] for v in row[::step]) for row in mask[::step])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=20)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--train", type=int, default=384)
    parser.add_argument("--val", type=int, default=64)
    parser.add_argument("--out", default="runs/quickstart")
    args = parser.parse_args()
    keras.utils.set_random_seed(0)
    print(f"keras_seg {keras_seg.__version__} on Keras {keras.__version__}, backend {keras.backend.backend()}")

    x_train, y_train = make_shapes(args.train, args.size, seed=0)
    x_val, y_val = make_shapes(args.val, args.size, seed=1)
    weights = keras_seg.losses.compute_class_weights(y_train, num_classes=3)
    print("class weights (inverse frequency):", np.round(weights, 3).tolist())

    # The classic U-Net, at a width that trains in a minute on a laptop CPU.
    model = keras_seg.models.UNet(num_classes=3, widths=(16, 32))
    model.compile(
        optimizer=keras.optimizers.AdamW(learning_rate=3e-3),
        loss=0.5 * keras_seg.losses.CrossEntropyLoss(class_weights=weights.tolist()) + keras_seg.losses.DiceLoss(),
        metrics=[
            keras_seg.metrics.MeanIoU(num_classes=3),
            keras_seg.metrics.DiceScore(num_classes=3),
            keras_seg.metrics.PixelAccuracy(),
        ],
    )
    start = time.time()
    history = model.fit(x_train, y_train, batch_size=16, epochs=args.epochs, validation_data=(x_val, y_val), verbose=2)
    print(f"trained {args.epochs} epochs in {time.time() - start:.1f} s")
    first, last = history.history["loss"][0], history.history["loss"][-1]
    print(f"training loss {first:.4f} -> {last:.4f}")

    results = model.evaluate(x_val, y_val, batch_size=16, verbose=0, return_dict=True)
    print("validation:", {k: round(float(v), 4) for k, v in results.items()})

    confusion = keras_seg.metrics.ConfusionMatrix(num_classes=3)
    confusion.update_state(y_val, model.predict(x_val, batch_size=16, verbose=0))
    print(keras_seg.metrics.segmentation_report(confusion, class_names=CLASS_NAMES))

    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "model.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)
    same = np.allclose(model.predict(x_val[:4], verbose=0), reloaded.predict(x_val[:4], verbose=0), atol=1e-5)
    print(f"saved {path} ({os.path.getsize(path) / 1e6:.2f} MB); reloaded model predicts the same: {same}")

    pred = reloaded.predict_mask(x_val[0])
    print("truth (. background, # square, o disc)      prediction")
    for left, right in zip(ascii_mask(y_val[0]).splitlines(), ascii_mask(pred).splitlines()):
        print(f"{left}    {right}")
    if not same:
        raise SystemExit("reloaded model disagrees with the trained one")


if __name__ == "__main__":
    main()
