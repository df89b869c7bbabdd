"""Training: a ``model.fit`` recipe (AdamW, warmup + cosine/poly, encoder freeze), atomic checkpoints with resume, data parallelism."""

from keras_seg.training.callbacks import BestCheckpoint
from keras_seg.training.callbacks import ResumableEarlyStopping
from keras_seg.training.callbacks import ResumeCheckpoint
from keras_seg.training.callbacks import StopOnNaN
from keras_seg.training.callbacks import TrainingDiverged
from keras_seg.training.callbacks import read_state
from keras_seg.training.callbacks import save_checkpoint
from keras_seg.training.distribute import DistributeError
from keras_seg.training.distribute import Replicas
from keras_seg.training.distribute import data_parallel
from keras_seg.training.distribute import simulate_cpu_devices
from keras_seg.training.recipe import TrainResult
from keras_seg.training.recipe import default_metrics
from keras_seg.training.recipe import train
from keras_seg.training.schedules import WarmupDecay

__all__ = [
    "BestCheckpoint",
    "DistributeError",
    "Replicas",
    "ResumableEarlyStopping",
    "ResumeCheckpoint",
    "StopOnNaN",
    "TrainResult",
    "TrainingDiverged",
    "WarmupDecay",
    "data_parallel",
    "default_metrics",
    "read_state",
    "save_checkpoint",
    "simulate_cpu_devices",
    "train",
]
