"""The one training loop every model uses: optimiser, schedule, clipping, evaluation, checkpoints, resume."""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import logging
import math
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from makemore import checkpoint, models
from makemore.config import build as build_settings
from makemore.data import Corpus, Examples
from makemore.errors import MakemoreError

METRICS = "metrics.csv"
logger = logging.getLogger("makemore")


@dataclass
class TrainConfig:
    steps: int = 10_000
    batch_size: int = 32  # 0: the whole training split every step (full-batch gradient descent)
    optimizer: str = "adamw"  # sgd | adamw
    lr: float = 1e-2
    momentum: float = 0.0  # sgd only
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.0
    schedule: str = "constant"  # constant | step | cosine
    milestones: tuple[int, ...] = ()  # step schedule: multiply the rate by gamma at each of these steps
    gamma: float = 0.1
    warmup: int = 0  # cosine: steps of linear warm-up
    min_lr: float = 0.0  # cosine: the rate it decays to
    grad_clip: float = 0.0  # max global grad norm; 0 = off
    eval_interval: int = 1000  # steps between evaluations (and checkpoints); the last step always evaluates
    eval_max: int = 0  # examples per evaluation; 0 = the full val split
    calibrate_bn: bool = False  # after training, set BatchNorm statistics from the whole training split
    train_split: str = "train"  # "all": fit every item of the file (the lecture-1 count figures)
    seed: int = 1337
    device: str = "auto"
    threads: int = 0  # 0: one thread for small models on CPU (faster than two here), else torch's default
    compile: bool = False

    def __post_init__(self) -> None:
        def finite(x: float) -> bool:
            return math.isfinite(x)

        checks = [
            (self.optimizer in OPTIMIZERS, f"unknown optimizer {self.optimizer!r} (sgd, adamw)"),
            (self.schedule in SCHEDULES, f"unknown schedule {self.schedule!r} ({', '.join(SCHEDULES)})"),
            (self.steps >= 0, f"--steps must be >= 0, not {self.steps}"),
            (self.batch_size >= 0, f"--batch-size must be >= 0 (0 means the whole training split), "
                                   f"not {self.batch_size}"),
            (finite(self.lr) and self.lr > 0, f"the learning rate (--lr) must be a finite number > 0, not {self.lr}"),
            (finite(self.min_lr) and self.min_lr >= 0, f"--min-lr must be a finite number >= 0, not {self.min_lr}"),
            (self.eval_interval > 0, f"--eval-interval must be > 0, not {self.eval_interval}"),
            (finite(self.momentum) and 0 <= self.momentum < 1, f"--momentum must be in [0, 1), not {self.momentum}"),
            (finite(self.gamma) and self.gamma > 0, f"--gamma must be a finite number > 0, not {self.gamma}"),
            (all(finite(b) and 0 <= b < 1 for b in self.betas), f"betas must be in [0, 1), not {self.betas}"),
            (finite(self.weight_decay) and self.weight_decay >= 0,
             f"--weight-decay must be a finite number >= 0, not {self.weight_decay}"),
            (finite(self.grad_clip) and self.grad_clip >= 0,
             f"--grad-clip must be a finite number >= 0 (0: off), not {self.grad_clip}"),
            (self.warmup >= 0, f"--warmup must be >= 0, not {self.warmup}"),
            (self.eval_max >= 0, f"--eval-max must be >= 0 (0: the whole split), not {self.eval_max}"),
            (self.threads >= 0, f"--threads must be >= 0 (0: automatic), not {self.threads}"),
            (self.device in ("auto", "cpu") or self.device.startswith("cuda"), f"unknown device {self.device!r} "
             "(cpu, cuda, cuda:N, auto)"),
        ]
        for ok, msg in checks:
            if not ok:
                raise MakemoreError(msg)
        self.betas = tuple(self.betas)  # type: ignore[assignment]
        self.milestones = tuple(self.milestones)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        return build_settings(cls, values, "training")


def lr_at(step: int, cfg: TrainConfig) -> float:
    return SCHEDULES[cfg.schedule](step, cfg)


def _step_schedule(step: int, cfg: TrainConfig) -> float:
    return cfg.lr * cfg.gamma ** sum(step >= m for m in cfg.milestones)


def _cosine_schedule(step: int, cfg: TrainConfig) -> float:
    if step < cfg.warmup:
        return cfg.lr * (step + 1) / cfg.warmup
    progress = (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


SCHEDULES: dict[str, Callable[[int, TrainConfig], float]] = {
    "constant": lambda step, cfg: cfg.lr,
    "step": _step_schedule,
    "cosine": _cosine_schedule,
}


def _decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
    # Decay matrices only: decaying gains, biases and norms' parameters only hurts (nanoGPT does the same).
    # One group when nothing decays: every group costs set-up time in each optimiser step.
    params = [p for p in model.parameters() if p.requires_grad]
    if weight_decay == 0:
        return [{"params": params, "weight_decay": 0.0}]
    return [{"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
            {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0}]


OPTIMIZERS: dict[str, Callable[[torch.nn.Module, TrainConfig], torch.optim.Optimizer]] = {
    "sgd": lambda m, c: torch.optim.SGD(_decay_groups(m, c.weight_decay), lr=c.lr, momentum=c.momentum),
    "adamw": lambda m, c: torch.optim.AdamW(_decay_groups(m, c.weight_decay), lr=c.lr, betas=c.betas),
}


@torch.no_grad()
def _plain_sgd_step(optimizer: torch.optim.Optimizer) -> None:
    """torch.optim.SGD's update without momentum, op for op (so bit-identical), minus the per-call
    bookkeeping that costs a quarter of a small model's step on CPU."""
    for group in optimizer.param_groups:
        lr, wd = group["lr"], group["weight_decay"]
        for p in group["params"]:
            if p.grad is not None:
                p.add_(p.grad if wd == 0 else p.grad.add(p, alpha=wd), alpha=-lr)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MakemoreError("--device cuda was asked for, but no CUDA device is available")
    try:
        return torch.device(name)
    except RuntimeError:
        raise MakemoreError(f"unknown device {name!r} (cpu, cuda, auto)") from None


def loss_fn(logits: Tensor, targets: Tensor, reduction: str = "mean") -> Tensor:
    return F.cross_entropy(logits.float(), targets, reduction=reduction)


@torch.no_grad()
def evaluate(model: models.LanguageModel, examples: Examples, device: torch.device | str = "cpu",
             max_examples: int = 0) -> float:
    """Mean negative log-likelihood per target over the examples (all of them unless max_examples)."""
    was_training = model.training
    model.eval()
    n = min(len(examples), max_examples) if max_examples else len(examples)
    total = sum(loss_fn(model(X.to(device)), Y.to(device), reduction="sum").item()
                for X, Y in examples.chunks(limit=n))
    model.train(was_training)
    return total / max(n, 1)


@torch.no_grad()
def calibrate_batchnorm(model: torch.nn.Module, examples: Examples, device: torch.device | str = "cpu",
                        limit: int = 1 << 18) -> None:
    """Set every BatchNorm's running statistics to those of (up to `limit` examples of) the training split,
    in one batch, as the lecture does after training."""
    from makemore.nn import BatchNorm1d

    bns = [m for m in model.modules() if isinstance(m, BatchNorm1d)]
    if not bns:
        return
    saved = [(bn.momentum, bn.training) for bn in bns]
    model.train()
    for bn in bns:
        bn.reset_running_stats()
        bn.momentum = None
    X, _ = examples.batch(torch.arange(min(len(examples), limit)))
    model(X.to(device))
    for bn, (momentum, training) in zip(bns, saved, strict=True):
        bn.momentum = momentum
        bn.train(training)


class Interrupted(Exception):
    """Ctrl-C (SIGINT) or SIGTERM during training; `saved` tells whether a checkpoint of the current step was
    written; `exit_code` is the shell's convention for death by that signal (130, 143)."""

    def __init__(self, out: Path, step: int, saved: bool, signum: int = signal.SIGINT):
        what = "interrupted" if signum == signal.SIGINT else f"stopped by {signal.Signals(signum).name}"
        if saved:
            msg = f"{what} at step {step}; checkpoint saved in {out} (continue with --resume)"
        elif checkpoint.exists(out):
            msg = f"{what} at step {step}; the last checkpoint in {out} was kept (continue with --resume)"
        else:
            msg = f"{what} at step {step}, before any checkpoint was written"
        super().__init__(msg)
        self.out, self.step, self.saved, self.signum = out, step, saved, signum
        self.exit_code = 128 + int(signum)


class _StopOnSignal:
    """Turns the first SIGINT (Ctrl-C) or SIGTERM (a scheduler, a container stop, a shutdown) into a flag that
    the loop reads between steps, so a checkpoint never holds half an update. A second signal interrupts at once.
    (Signals reach only the main thread; elsewhere it does nothing.)"""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signum is not None:
            raise KeyboardInterrupt
        self.signum = signum

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            for sig in self.SIGNALS:
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)


@dataclass
class StepInfo:
    """What a callback sees after each optimisation step (diagnostics hook in here)."""

    step: int
    lr: float
    loss: float
    model: torch.nn.Module


@dataclass
class Result:
    out: Path
    step: int
    train_loss: float | None
    val_loss: float | None
    best: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0


@contextlib.contextmanager
def _threads(cfg: TrainConfig, device: torch.device, model: torch.nn.Module):
    """Small models step faster on one CPU thread (no hand-off between threads); restored afterwards."""
    before = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    elif device.type == "cpu" and models.registry.count_parameters(model) < 1_000_000:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(model_name: str, model_config: dict[str, Any], corpus: Corpus, cfg: TrainConfig, out: str | Path, *,
          resume: bool = False, progress: bool = True,
          callbacks: Sequence[Callable[[StepInfo], None]] = ()) -> Result:
    out = Path(out)
    device = resolve_device(cfg.device)
    config = models.make_config(model_name, **{**model_config, "vocab_size": corpus.vocab.size})
    torch.manual_seed(cfg.seed)
    model = models.build(model_name, config)
    with _threads(cfg, device, model):
        return _fit(model_name, model, corpus, cfg, out, device, resume, progress, callbacks)


def _fit(model_name: str, model: models.LanguageModel, corpus: Corpus, cfg: TrainConfig, out: Path,
         device: torch.device, resume: bool, progress: bool, callbacks: Sequence[Callable[[StepInfo], None]]) -> Result:
    config = model.config
    data_info = {"source": corpus.source, "mode": corpus.mode, "sha256": corpus.fingerprint}
    train_ex = Examples(corpus.items(cfg.train_split), corpus.vocab, config.block_size)
    val_ex = Examples(corpus.items("val"), corpus.vocab, config.block_size)
    if len(train_ex) == 0:
        raise MakemoreError(f"no training examples in {corpus.source}: too few lines, or a text shorter than "
                            f"the context of {config.block_size} characters")
    if model.trainable and cfg.steps == 0:
        raise MakemoreError("--steps must be > 0 for a model trained by gradient descent")
    logger.info(f"training {model_name} ({models.registry.count_parameters(model):,} parameters) on {corpus.source} "
             f"({corpus.mode} mode, {corpus.vocab.size} tokens, {len(train_ex):,} examples) -> {out}")
    ckpt = checkpoint.Checkpoint(model_name, dataclasses.asdict(config), corpus.vocab.to_json(), data_info,
                                 _jsonable(cfg))
    start = time.perf_counter()

    if not model.trainable:  # counting models: one pass over the data is the whole training
        model.fit(*train_ex.batch(torch.arange(len(train_ex))))
        val = evaluate(model, val_ex) if len(val_ex) else None
        ckpt.weights = model.state_dict()
        checkpoint.save(out, ckpt)
        return Result(out, 0, evaluate(model, train_ex), val, seconds=time.perf_counter() - start)

    model.to(device)
    params = list(model.parameters())
    optimizer = OPTIMIZERS[cfg.optimizer](model, cfg)
    plain_sgd = cfg.optimizer == "sgd" and cfg.momentum == 0
    update = (lambda: _plain_sgd_step(optimizer)) if plain_sgd else optimizer.step
    gen = torch.Generator().manual_seed(cfg.seed)
    step = 0
    if resume:
        step = _restore(out, ckpt, model, optimizer, gen)
    fwd = torch.compile(model) if cfg.compile else model
    # bf16 autocast on GPUs that have it (no loss scaling needed); everything else runs in float32.
    bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if bf16 else None
    full_batch = cfg.batch_size == 0 or cfg.batch_size >= len(train_ex)
    if full_batch:
        Xall, Yall = (t.to(device) for t in train_ex.batch(torch.arange(len(train_ex))))

    def save() -> None:
        ckpt.step = step
        ckpt.weights = model.state_dict()
        tensors, ckpt.state_meta = checkpoint.optimizer_to_flat(optimizer)
        ckpt.state = {**tensors, "rng.batches": gen.get_state()}
        checkpoint.save(out, ckpt)
        ckpt.best_weights = None  # written once; later saves keep the file on disk

    with _StopOnSignal() as stop:
        log = _Metrics(out / METRICS, step)
        bar = _progress(progress, step, cfg.steps)
        loss_val = val = None
        model.train()
        in_step = False  # between the first and the last line of a step, a checkpoint would hold half an update
        try:
            lr = None
            while step < cfg.steps:
                if stop.requested:
                    raise KeyboardInterrupt
                in_step = True
                if (new_lr := lr_at(step, cfg)) != lr:  # most schedules change it rarely; setting it is not free
                    lr = new_lr
                    for group in optimizer.param_groups:
                        group["lr"] = lr
                if full_batch:
                    X, Y = Xall, Yall
                else:
                    X, Y = train_ex.sample(cfg.batch_size, gen)
                    if device.type != "cpu":
                        X, Y = X.to(device, non_blocking=True), Y.to(device, non_blocking=True)
                for p in params:  # what zero_grad(set_to_none=True) does, without its per-call overhead
                    p.grad = None
                if model.manual_gradients:  # gradients derived by hand (lecture 4): no graph at all
                    with torch.no_grad():
                        loss = model.forward_backward(X, Y)
                else:
                    if autocast is None:
                        loss = loss_fn(fwd(X), Y)
                    else:
                        with autocast:
                            loss = loss_fn(fwd(X), Y)
                    penalty = model.penalty()
                    total = loss + penalty if penalty is not None else loss
                    total.backward()
                if cfg.grad_clip > 0:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                update()
                loss_val = loss.item()
                if not math.isfinite(loss_val):
                    kept = f"the last good checkpoint in {out} was kept" if checkpoint.exists(out) else "nothing saved"
                    raise MakemoreError(f"loss became {loss_val} at step {step} (lower the learning rate?); {kept}")
                log.row(step, lr, loss_val)
                step += 1
                in_step = False
                if callbacks:
                    info = StepInfo(step - 1, lr, loss_val, model)
                    for cb in callbacks:
                        cb(info)
                if bar is not None and step % 10 == 0:
                    bar.update(step - bar.n)
                    if step % 100 == 0:
                        bar.set_postfix(loss=f"{loss_val:.4f}", val=f"{val:.4f}" if val is not None else "-")
                if step % cfg.eval_interval == 0 or step == cfg.steps:
                    if step == cfg.steps and cfg.calibrate_bn:
                        calibrate_batchnorm(model, train_ex, device)
                    val = evaluate(model, val_ex, device, cfg.eval_max) if len(val_ex) else None
                    log.val(step, val)
                    if val is not None and val < ckpt.best.get("val", math.inf):
                        ckpt.best = {"step": step, "val": val}
                        ckpt.best_weights = {k: v.clone() for k, v in model.state_dict().items()}
                    save()
        except KeyboardInterrupt:
            saved = step > 0 and not in_step
            if saved:
                save()
            raise Interrupted(out, step, saved, stop.signum or signal.SIGINT) from None
        finally:
            log.close()
            if bar is not None:
                bar.update(step - bar.n)
                bar.close()
    return Result(out, step, loss_val, val, ckpt.best, time.perf_counter() - start)


def _restore(out: Path, ckpt: checkpoint.Checkpoint, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
             gen: torch.Generator) -> int:
    saved = checkpoint.load(out)
    if (saved.model, saved.config) != (ckpt.model, ckpt.config):
        raise MakemoreError(f"cannot resume: {out} holds a {saved.model} with another configuration")
    if saved.data.get("sha256") != ckpt.data["sha256"]:
        raise MakemoreError(f"cannot resume: {out} was trained on different data ({saved.data.get('source')})")
    try:
        model.load_state_dict(saved.weights)
        checkpoint.optimizer_from_flat(optimizer, saved.state, saved.state_meta)
        gen.set_state(saved.state["rng.batches"])
    except (RuntimeError, ValueError, KeyError) as e:
        raise MakemoreError(f"cannot resume from {out}: its saved state does not fit this run ({e})") from None
    ckpt.best = saved.best
    return saved.step


def _jsonable(cfg: TrainConfig) -> dict[str, Any]:
    d = dataclasses.asdict(cfg)
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


def _progress(enabled: bool, initial: int, total: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True, mininterval=0.5, smoothing=0.05)


def _tensorboard(folder: Path):
    """A TensorBoard writer into folder/tb when the tensorboard package is installed, else None."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        return None
    return SummaryWriter(str(folder / "tb"))


class _Metrics:
    """metrics.csv: one row per step (step, lr, loss) and val rows (step,,,val_loss). On resume the rows past
    the checkpoint's step are dropped, so the file reads as one uninterrupted run. Also to TensorBoard, if
    installed (train loss every TB_EVERY steps, every val loss)."""

    TB_EVERY = 100

    def __init__(self, path: Path, start: int):
        path.parent.mkdir(parents=True, exist_ok=True)
        rows: list[list[str]] = []
        if start > 0 and path.exists():
            with open(path, newline="") as f:  # a run killed mid-write can leave a torn last row: skip it
                rows = [r for r in csv.reader(f) if len(r) == 4 and r[0].isdigit()
                        and int(r[0]) < start + (r[3] != "")]
        self.file = open(path, "w", newline="")  # noqa: SIM115  (kept open for the whole run)
        self.writer = csv.writer(self.file, lineterminator="\n")
        self.writer.writerow(["step", "lr", "loss", "val_loss"])
        self.writer.writerows(rows)
        self.pending: list[tuple] = []  # written in one go at each evaluation: a row per step is a hot path
        self.tb = _tensorboard(path.parent)

    def row(self, step: int, lr: float, loss: float) -> None:
        self.pending.append((step, lr, loss))
        if self.tb is not None and step % self.TB_EVERY == 0:
            self.tb.add_scalar("loss/train", loss, step)
            self.tb.add_scalar("lr", lr, step)

    def _drain(self) -> None:
        self.writer.writerows([s, f"{lr:.6g}", f"{loss:.6f}", ""] for s, lr, loss in self.pending)
        self.pending.clear()

    def val(self, step: int, val: float | None) -> None:
        self._drain()
        if val is not None:
            self.writer.writerow([step, "", "", f"{val:.6f}"])
            if self.tb is not None:
                self.tb.add_scalar("loss/val", val, step)
        self.file.flush()

    def close(self) -> None:
        self._drain()
        self.file.close()
        if self.tb is not None:
            self.tb.close()


def read_metrics(path: str | Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(step, loss) per step and (step, val_loss) per evaluation, from a metrics.csv."""
    steps, vals = [], []
    with open(path, newline="") as f:
        for r in csv.DictReader(f):
            if r["loss"]:
                steps.append((int(r["step"]), float(r["loss"])))
            if r["val_loss"]:
                vals.append((int(r["step"]), float(r["val_loss"])))
    return steps, vals
