"""Training: a ``model.fit`` recipe (AdamW, warmup + cosine/poly, encoder freeze) and atomic checkpoints with resume."""

from keras_seg.training.callbacks import BestCheckpoint
from keras_seg.training.callbacks import ResumeCheckpoint
from keras_seg.training.callbacks import read_state
from keras_seg.training.callbacks import save_checkpoint
from keras_seg.training.recipe import TrainResult
from keras_seg.training.recipe import default_metrics
from keras_seg.training.recipe import train
from keras_seg.training.schedules import WarmupDecay

__all__ = [
    "BestCheckpoint",
    "ResumeCheckpoint",
    "TrainResult",
    "WarmupDecay",
    "default_metrics",
    "read_state",
    "save_checkpoint",
    "train",
]
