"""TrainConfig: every training setting, checked once with a message that names the flag."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from makemore.config import build as build_settings
from makemore.errors import MakemoreError
from makemore.limits import MAX_INT

OPTIMIZER_NAMES = ("sgd", "adamw")
MAX_THREADS = 1024
SCHEDULE_NAMES = ("constant", "step", "cosine")


@dataclass
class TrainConfig:
    steps: int = 10_000
    batch_size: int = 32  # 0: the whole training split every step (full-batch gradient descent)
    optimizer: str = "adamw"  # sgd | adamw
    lr: float = 1e-2
    momentum: float = 0.0  # sgd only
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0  # on matrices only
    schedule: str = "constant"  # constant | step | cosine
    milestones: tuple[int, ...] = ()  # step schedule: multiply the rate by gamma at each of these steps
    gamma: float = 0.1
    warmup: int = 0  # cosine: steps of linear warm-up
    min_lr: float = 0.0  # cosine: the rate it decays to
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    eval_interval: int = 1000  # steps between evaluations (and checkpoints); the last step always evaluates
    eval_max: int = 0  # targets per evaluation; 0 = the full val split
    calibrate_bn: bool = False  # after training, set BatchNorm statistics from the whole training split
    train_split: str = "train"  # "all": fit every item of the file (the lecture-1 count figures)
    seed: int = 1337
    device: str = "auto"
    threads: int = 0  # 0: one thread for a step of little work or a recurrent model, else torch's default
    compile: bool = False
    autocast: str = "auto"  # auto (bf16 on CUDA that has it) | bf16 | off

    def __post_init__(self) -> None:
        def finite(x: float) -> bool:
            return math.isfinite(x)

        def whole(x: object) -> bool:  # (a hand-edited checkpoint.json can hold anything in a list)
            return isinstance(x, int) and not isinstance(x, bool)

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
            (0 <= self.warmup <= MAX_INT, f"--warmup must be between 0 and 2**63-1, not {self.warmup}"),
            (0 <= self.eval_max <= MAX_INT, f"--eval-max must be between 0 (the whole split) and 2**63-1, not "
                                            f"{self.eval_max}"),
            (all(whole(m) and 0 <= m <= MAX_INT for m in self.milestones),
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
