"""Write your own segmentation loss: boundary-weighted cross-entropy, combined with Dice.

    python examples/custom_loss.py --epochs 3

Subclass ``keras_seg.losses.SegmentationLoss``, implement ``compute`` with
``keras.ops`` (so it runs on TensorFlow, JAX and PyTorch), register it, and it
composes (``+``, ``*``), trains with ``fit`` and saves inside the ``.keras`` file.
"""

import argparse
import os
import tempfile

import keras
import numpy as np
from keras import ops

import keras_seg
from keras_seg import data
from keras_seg.losses import functional as F


@keras.saving.register_keras_serializable(package="examples")
class BoundaryCrossEntropy(keras_seg.losses.SegmentationLoss):
    """Cross-entropy whose pixels within ``radius`` of a class border weigh ``1 + boost``."""

    def __init__(self, boost=4.0, radius=1, ignore_index=None, name="boundary_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.boost, self.radius, self.ignore_index = float(boost), int(radius), ignore_index

    def compute(self, y_true, y_pred, sample_weight=None, reduction="sum_over_batch_size"):
        labels = ops.cast(ops.reshape(y_true, ops.shape(y_true)[:3] + (1,)), "float32")
        size = 2 * self.radius + 1  # a pixel is on a border if its neighbourhood holds two labels
        high = ops.max_pool(labels, size, strides=1, padding="same")
        low = -ops.max_pool(-labels, size, strides=1, padding="same")
        weight = 1.0 + self.boost * ops.cast(ops.not_equal(high, low), "float32")[..., 0]
        if sample_weight is not None:
            weight = weight * ops.cast(sample_weight, "float32")
        return F.cross_entropy(y_true, y_pred, weight, ignore_index=self.ignore_index, reduction=reduction)

    def get_config(self):
        return {**super().get_config(), "boost": self.boost, "radius": self.radius, "ignore_index": self.ignore_index}


parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("--epochs", type=int, default=8)
parser.add_argument("--num-train", type=int, default=512)
parser.add_argument("--size", type=int, default=64)
args = parser.parse_args()
keras.utils.set_random_seed(0)

# The loss on a hand-made case: a perfect prediction costs ~0, a border error more than an interior one.
truth = np.zeros((1, 6, 6), "int32")
truth[0, :, 3:] = 1
logits = np.stack([truth == 0, truth == 1], axis=-1).astype("float32") * 20 - 10  # confident and right
loss = BoundaryCrossEntropy()
border_wrong, inside_wrong = logits.copy(), logits.copy()
border_wrong[0, 2, 3] = border_wrong[0, 2, 3, ::-1]  # one pixel next to the border flipped
inside_wrong[0, 2, 5] = inside_wrong[0, 2, 5, ::-1]  # one pixel far from it flipped
values = [float(loss(truth, x)) for x in (logits, border_wrong, inside_wrong)]
print("perfect / border error / interior error: " + " / ".join(f"{v:.4f}" for v in values))
assert values[0] < 1e-4 and values[1] > values[2] > values[0]

train = data.prepare(data.shapes("train", args.num_train, args.size), 16, shuffle=512)
val = data.prepare(data.shapes("val", 64, args.size), 16)
model = keras_seg.models.UNet(4, widths=(16, 32, 64))
model.compile(
    optimizer=keras.optimizers.AdamW(3e-3),
    loss=BoundaryCrossEntropy(boost=4.0) + 0.5 * keras_seg.losses.DiceLoss(),
    metrics=[keras_seg.metrics.MeanIoU(4)],
)
model.fit(train, validation_data=val, epochs=args.epochs, shuffle=False, verbose=2)  # prepare() shuffles

path = os.path.join(tempfile.mkdtemp(), "boundary.keras")
model.save(path)
reloaded = keras.saving.load_model(path)  # the custom loss comes back from the file
print("reloaded loss:", reloaded.loss.losses[0].get_config()["name"], "| val:", reloaded.evaluate(val, verbose=0))
