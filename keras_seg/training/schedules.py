"""Learning-rate schedules with a linear warmup: cosine and poly decay (the DeepLab recipe)."""

import math

import keras
from keras import ops

DECAYS = ("cosine", "poly", "constant")


@keras.saving.register_keras_serializable(package="keras_seg")
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """``learning_rate`` reached linearly over ``warmup_steps``, then decayed to ``min_learning_rate``.

    With ``w`` warmup steps, ``T`` total steps and ``t = (step - w) / (T - w)`` clipped to [0, 1]:

    - warmup (``step < w``): ``lr * (step + 1) / w``
    - ``"cosine"``: ``min + (lr - min) * (1 + cos(pi * t)) / 2``
    - ``"poly"``: ``min + (lr - min) * (1 - t) ** power`` (DeepLab's ``power=0.9``)
    - ``"constant"``: ``lr``

    ``step`` counts optimizer updates from 0 (Keras passes ``optimizer.iterations``).
    """

    def __init__(self, learning_rate, total_steps, warmup_steps=0, decay="cosine", power=0.9, min_learning_rate=0.0):
        if decay not in DECAYS:
            raise ValueError(f"decay={decay!r} is not supported; expected one of {DECAYS}.")
        if not learning_rate > 0:
            raise ValueError(f"learning_rate={learning_rate!r} must be positive.")
        if int(total_steps) < 1 or not 0 <= int(warmup_steps) <= int(total_steps):
            raise ValueError(
                f"total_steps={total_steps!r} must be >= 1 and warmup_steps={warmup_steps!r} in [0, total_steps]."
            )
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.decay = decay
        self.power = float(power)
        self.min_learning_rate = float(min_learning_rate)

    def __call__(self, step):
        step = ops.cast(step, "float32")
        lr, low = self.learning_rate, self.min_learning_rate
        t = ops.clip((step - self.warmup_steps) / max(self.total_steps - self.warmup_steps, 1), 0.0, 1.0)
        if self.decay == "cosine":
            decayed = low + (lr - low) * 0.5 * (1.0 + ops.cos(math.pi * t))
        elif self.decay == "poly":
            decayed = low + (lr - low) * ops.power(1.0 - t, self.power)
        else:
            decayed = lr + 0.0 * t
        if self.warmup_steps == 0:
            return decayed
        warm = lr * (step + 1.0) / self.warmup_steps
        return ops.where(step < self.warmup_steps, warm, decayed)

    def get_config(self):
        return {
            "learning_rate": self.learning_rate,
            "total_steps": self.total_steps,
            "warmup_steps": self.warmup_steps,
            "decay": self.decay,
            "power": self.power,
            "min_learning_rate": self.min_learning_rate,
        }
