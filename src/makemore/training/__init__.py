"""Training: the loop (loop.py), its settings (config.py), optimisers, schedules and the one step (optim.py),
the loss and evaluation (loss.py), and what a run records (metrics.py).

Names are imported on first use, so that reading the settings (config.py, e.g. to build the CLI's flags) does not
import torch."""

import importlib

_WHERE = {
    "TrainConfig": "config",
    "calibrate_batchnorm": "loss", "evaluate": "loss", "loss_fn": "loss",
    "Interrupted": "loop", "Result": "loop", "StepInfo": "loop", "StopTraining": "loop", "build_model": "loop",
    "saved_run": "loop",
    "train": "loop",
    "METRICS": "metrics", "read_metrics": "metrics",
    "OPTIMIZERS": "optim", "Stepper": "optim", "lr_at": "optim", "resolve_device": "optim",
}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
