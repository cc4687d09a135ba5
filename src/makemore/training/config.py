"""TrainConfig: every training setting, checked once with a message that names the flag."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from makemore.config import build as build_settings
from makemore.errors import MakemoreError
from makemore.limits import MAX_INT, is_whole

OPTIMIZER_NAMES = ("sgd", "adamw")
MAX_THREADS = 1024
SCHEDULE_NAMES = ("constant", "step", "cosine")


def setting(default: Any, help: str, *, cli: bool = True, **options: Any) -> Any:
    """A training setting with its help text: the CLI's `train` flags are generated from these fields (`options`
    are extra argparse options, e.g. choices; cli=False for a setting that has no flag)."""
    return field(default=default, metadata={"help": help, "flag": options if cli else None})


@dataclass
class TrainConfig:
    steps: int = setting(10_000, "optimisation steps in all (a resumed run continues up to this step)")
    batch_size: int = setting(32, "examples per step; 0 means the whole training split every step (full-batch "
                                  "descent)")
    optimizer: str = setting("adamw", "the optimiser", choices=OPTIMIZER_NAMES)
    lr: float = setting(1e-2, "learning rate, a finite number > 0 (the peak rate of a schedule)")
    momentum: float = setting(0.0, "SGD momentum, in [0, 1)")
    betas: tuple[float, float] = setting((0.9, 0.99), "AdamW's betas", cli=False)
    weight_decay: float = setting(0.0, "weight decay, on matrices only")
    schedule: str = setting("constant", "learning-rate schedule", choices=SCHEDULE_NAMES)
    milestones: tuple[int, ...] = setting((), "step schedule: steps where lr *= gamma", nargs="*", type=int)
    gamma: float = setting(0.1, "step schedule: the factor at each milestone")
    warmup: int = setting(0, "cosine schedule: steps of linear warm-up")
    min_lr: float = setting(0.0, "cosine schedule: the rate it decays to")
    # Where the schedule ends (0: at `steps`). A resumed run given more steps keeps the schedule it was planned
    # with and goes on at its final rate, so its loss does not jump when the rate would be re-planned.
    schedule_steps: int = setting(0, "the step where the schedule ends (0: --steps)", cli=False)
    grad_clip: float = setting(0.0, "max global gradient norm; 0 = off")
    eval_interval: int = setting(1000, "steps between evaluations on val (and checkpoints); the last step always "
                                       "evaluates")
    eval_max: int = setting(0, "target characters per evaluation; 0 means the whole val split")
    calibrate_bn: bool = setting(False, "after training, set BatchNorm statistics from the training split")
    train_split: str = setting("train", "the split to fit: train (default) or all (the lecture-1 count figures)",
                               choices=("train", "all"))
    seed: int = setting(1337, "seed of the initialisation, the batches and dropout")
    device: str = setting("auto", "cpu, cuda, cuda:N or auto")
    threads: int = setting(0, "CPU threads; 0 chooses (one for a small step or a recurrent model, else all)")
    compile: bool = setting(False, "torch.compile the model")
    autocast: str = setting("auto", "bf16 autocast: auto (on CUDA with bf16), bf16 (also on CPU) or off",
                            choices=("auto", "bf16", "off"))

    @property
    def schedule_end(self) -> int:
        return self.schedule_steps or self.steps

    def __post_init__(self) -> None:
        def finite(x: float) -> bool:
            return math.isfinite(x)

        def number(x: object) -> bool:
            return isinstance(x, int | float) and not isinstance(x, bool)

        checks = [
            (self.optimizer in OPTIMIZER_NAMES, f"unknown optimizer {self.optimizer!r} (sgd, adamw)"),
            (self.schedule in SCHEDULE_NAMES, f"unknown schedule {self.schedule!r} ({', '.join(SCHEDULE_NAMES)})"),
            (0 <= self.steps <= MAX_INT, f"--steps must be between 0 and 2**63-1, not {self.steps}"),
            (0 <= self.batch_size <= 1 << 24, f"--batch-size must be between 0 and {1 << 24:,} (0 means the "
                                              f"whole training split), not {self.batch_size}"),
            (finite(self.lr) and self.lr > 0, f"the learning rate (--lr) must be a finite number > 0, not {self.lr}"),
            (finite(self.min_lr) and self.min_lr >= 0, f"--min-lr must be a finite number >= 0, not {self.min_lr}"),
            (0 < self.eval_interval <= MAX_INT, f"--eval-interval must be between 1 and 2**63-1, not "
                                                f"{self.eval_interval}"),
            (finite(self.momentum) and 0 <= self.momentum < 1, f"--momentum must be in [0, 1), not {self.momentum}"),
            (finite(self.gamma) and self.gamma > 0, f"--gamma must be a finite number > 0, not {self.gamma}"),
            (len(self.betas) == 2 and all(number(b) and finite(b) and 0 <= b < 1 for b in self.betas),
             f"betas must be two numbers in [0, 1), not {self.betas}"),
            (finite(self.weight_decay) and self.weight_decay >= 0,
             f"--weight-decay must be a finite number >= 0, not {self.weight_decay}"),
            (finite(self.grad_clip) and self.grad_clip >= 0,
             f"--grad-clip must be a finite number >= 0 (0: off), not {self.grad_clip}"),
            (0 <= self.schedule_steps <= MAX_INT, f"schedule_steps must be between 0 and 2**63-1, not "
                                                 f"{self.schedule_steps}"),
            (0 <= self.warmup <= MAX_INT, f"--warmup must be between 0 and 2**63-1, not {self.warmup}"),
            (0 <= self.eval_max <= MAX_INT, f"--eval-max must be between 0 (the whole split) and 2**63-1, not "
                                            f"{self.eval_max}"),
            (all(is_whole(m) for m in self.milestones),
             f"--milestones must be steps between 0 and 2**63-1, not {list(self.milestones)}"),
            (0 <= self.seed <= MAX_INT, f"--seed must be between 0 and 2**63-1, not {self.seed}"),
            (0 <= self.threads <= MAX_THREADS, f"--threads must be between 0 (automatic) and {MAX_THREADS}, "
                                               f"not {self.threads}"),
            (self.device in ("auto", "cpu") or self.device.startswith("cuda"), f"unknown device {self.device!r} "
             "(cpu, cuda, cuda:N, auto)"),
            (self.autocast in ("auto", "bf16", "off"), f"--autocast must be auto, bf16 or off, not {self.autocast!r}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise MakemoreError(msg)
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        self.milestones = tuple(self.milestones)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        return build_settings(cls, values, "training")

    def to_json(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(self).items()}
