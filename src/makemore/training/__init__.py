"""Training: the loop (loop.py), its settings (config.py), optimisers, schedules and the one step (optim.py),
the loss and evaluation (evaluate.py), and what a run records (metrics.py)."""

from makemore.training.config import TrainConfig
from makemore.training.evaluate import calibrate_batchnorm, evaluate, loss_fn
from makemore.training.loop import Interrupted, Result, StepInfo, StopTraining, build_model, saved_run, train
from makemore.training.metrics import METRICS, read_metrics
from makemore.training.optim import OPTIMIZERS, Stepper, lr_at, resolve_device

__all__ = ["METRICS", "OPTIMIZERS", "Interrupted", "Result", "StepInfo", "Stepper", "StopTraining", "TrainConfig",
           "build_model", "calibrate_batchnorm", "evaluate", "loss_fn", "lr_at", "read_metrics", "resolve_device",
           "saved_run", "train"]
