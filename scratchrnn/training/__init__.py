"""Training: optimizers, clipping, schedules, the trainer, checkpoints, sampling."""

from .checkpoint import Checkpoint, load_checkpoint, save_checkpoint
from .clip import clip_grad_norm_, clip_grad_value_, grad_norm
from .optim import OPTIMIZERS, SGD, Adagrad, Adam, AdamW, Optimizer, RMSprop, make_optimizer
from .sampling import generate, next_token, sample
from .schedules import (
    Constant,
    Cosine,
    LinearWarmup,
    Plateau,
    Schedule,
    StepDecay,
    make_schedule,
)
from .tasks import ClassificationTask, LanguageModelTask, RegressionTask, Task
from .trainer import History, TrainConfig, Trainer, TrainingDiverged

__all__ = [
    "Optimizer", "SGD", "Adam", "AdamW", "Adagrad", "RMSprop", "OPTIMIZERS", "make_optimizer",
    "clip_grad_norm_", "clip_grad_value_", "grad_norm",
    "Schedule", "Constant", "StepDecay", "Cosine", "LinearWarmup", "Plateau", "make_schedule",
    "Checkpoint", "save_checkpoint", "load_checkpoint", "generate", "next_token", "sample",
    "Task", "LanguageModelTask", "ClassificationTask", "RegressionTask",
    "Trainer", "TrainConfig", "History", "TrainingDiverged",
]
