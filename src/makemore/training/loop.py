"""The one training loop every model uses: batches of the model's kind, the one step, periodic evaluation,
checkpoints, resume, and a clean stop on Ctrl-C or SIGTERM."""

from __future__ import annotations

import contextlib
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

from makemore import checkpoint, models
from makemore import nn as mnn
from makemore.batches import chars_per_target, examples_for
from makemore.data import Corpus
from makemore.errors import MakemoreError
from makemore.limits import MAX_INT
from makemore.training import distributed
from makemore.training.config import TrainConfig
from makemore.training.loss import calibrate_batchnorm, evaluate
from makemore.training.metrics import METRICS, MetricsLog, progress_bar
from makemore.training.optim import Stepper, lr_at, resolve_device

logger = logging.getLogger("makemore")
SINGLE = distributed.Group()  # one process, no torchrun
BATCH_NORMS = (mnn.BatchNorm1d, torch.nn.modules.batchnorm._BatchNorm)
RESUME_FIXED = ("optimizer", "momentum", "weight_decay")  # the saved optimiser state only fits these


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


class StopTraining(Exception):
    """Raised by a callback to end a run early on purpose (a tuning trial pruned, or out of time): the loop
    then ends as at its last step, evaluated and saved, and train() returns normally. Under DDP every rank must
    raise it after the same step (the others would wait for it in the next one)."""


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
    """What a callback sees after each optimisation step (diagnostics hook in here); `val` is set on the steps
    that ended with an evaluation (callbacks run after it), so a tuner can prune on it."""

    step: int
    lr: float
    loss: float
    model: torch.nn.Module
    val: float | None = None


@dataclass
class Result:
    out: Path
    step: int
    train_loss: float | None  # the training split's loss, evaluated as val is (not a batch's)
    val_loss: float | None
    best: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0  # this call's training, evaluations included
    model: models.LanguageModel | None = None  # the trained model, last weights, in eval mode
    main: bool = True  # False on the other ranks of a distributed run: they report nothing
    last_batch_loss: float | None = None
    eval_seconds: float = 0.0  # of `seconds`, spent evaluating and saving
    tokens: int = 0  # target tokens trained on in this call (all ranks)
    startup_seconds: float = 0.0  # reading the data and building the model (set by the API)

    @property
    def tokens_per_second(self) -> float:
        busy = self.seconds - self.eval_seconds
        return self.tokens / busy if busy > 0 else 0.0


TRAIN_EVAL_MAX = 1 << 20  # targets of the training split evaluated at the end (all of a names file)


def build_model(name: str, config: dict[str, Any], vocab_size: int, seed: int) -> models.LanguageModel:
    """A freshly initialised model: the registry's config with the data's vocabulary, torch seeded first."""
    cfg = models.make_config(name, **{**config, "vocab_size": vocab_size})
    torch.manual_seed(seed)
    return models.build(name, cfg)


def saved_run(out: str | Path) -> checkpoint.Checkpoint:
    """The run in `out`, to continue it: its model, settings and data (the tensors are read by the trainer)."""
    if not checkpoint.exists(out):
        raise MakemoreError(f"nothing to resume: no checkpoint in {out}")
    return checkpoint.load(out, state=False)


PARALLEL_WORK = 50e6  # floating-point operations a step needs before a second CPU thread pays for its hand-offs


def one_thread_pays(model: models.LanguageModel, targets_per_step: int) -> bool:
    """Whether a CPU step is faster on one thread: when it is little work (about 6 operations per parameter per
    target), or when the model is recurrent (many small operations, one position after another). Measured on two
    cores, one thread against two: names MLP at 92 MFLOP a step 1.9x slower, WaveNet at 15 MFLOP the same, the
    LSTM 1.15x faster, the Transformers at 1.2-3.7 GFLOP 1.3-1.45x slower."""
    work = 6 * models.registry.count_parameters(model) * targets_per_step
    return model.recurrent or work < PARALLEL_WORK


@contextlib.contextmanager
def _threads(cfg: TrainConfig, device: torch.device, model: models.LanguageModel, targets_per_step: int):
    """The CPU threads of the training steps (cfg.threads, or the choice above); restored afterwards. Otherwise
    torch's own number stays: all cores, or OMP_NUM_THREADS (torchrun sets 1 per process)."""
    before = torch.get_num_threads()
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    elif device.type == "cpu" and one_thread_pays(model, targets_per_step):
        torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(model_name: str, model_config: dict[str, Any], corpus: Corpus, cfg: TrainConfig, out: str | Path, *,
          resume: bool = False, progress: bool = True,
          callbacks: Sequence[Callable[[StepInfo], None]] = ()) -> Result:
    """Train a model of the registry on a corpus into the checkpoint directory `out` (continuing the run there
    with resume=True). Returns the figures and the trained model."""
    out = Path(out)
    group = distributed.from_environment()
    model = build_model(model_name, model_config, corpus.vocab.size, cfg.seed)
    distributed.check(group, cfg.batch_size, model)
    device = distributed.start(group, resolve_device(cfg.device))
    try:
        result = _train(model_name, model, corpus, cfg, out, group, device, resume, progress, callbacks)
        distributed.finish(group)
        return result
    finally:
        distributed.stop(group)


def _train(model_name: str, model: models.LanguageModel, corpus: Corpus, cfg: TrainConfig, out: Path,
           group: distributed.Group, device: torch.device, resume: bool, progress: bool,
           callbacks: Sequence[Callable[[StepInfo], None]]) -> Result:
    ckpt = checkpoint.Checkpoint(model_name, model.config_dict(), corpus.vocab.to_json(), corpus.describe(),
                                 cfg.to_json())
    train_ex = examples_for(model, corpus.items(cfg.train_split), corpus.vocab)
    val_ex = examples_for(model, corpus.items("val"), corpus.vocab)
    if len(train_ex) == 0:
        raise MakemoreError(f"no training examples in {corpus.source}: too few lines, or a text shorter than "
                            f"the context of {model.block_size} characters")
    if model.trainable and cfg.steps == 0:
        raise MakemoreError("--steps must be > 0 for a model trained by gradient descent")
    loop = Loop(model, ckpt, train_ex, val_ex, cfg, out, device, group) if model.trainable else None
    try:
        if loop is not None and resume:
            loop.restore()  # refuses a run that is not this one before anything else happens
        if group.main:
            n_params = models.registry.count_parameters(model)
            logger.info(f"training {model_name} ({n_params:,} parameters) on {corpus.source} "
                        f"({corpus.mode} mode, {corpus.vocab.size} tokens, {train_ex.n_targets:,} targets) -> {out}"
                        + (f" on {group.world} processes" if group.active else ""))
            if loop is not None and resume:
                logger.info(loop.describe_resume())
        start = time.perf_counter()
        if loop is None:  # counting models: one pass over the data is the whole training
            model.fit(*train_ex.all())
            ckpt.weights = model.state_dict()
            checkpoint.save(out, ckpt)
            val = evaluate(model, val_ex) if len(val_ex) else None
            train_loss = evaluate(model, train_ex)
            return Result(out, 0, train_loss, val, seconds=time.perf_counter() - start, model=model.eval(),
                          last_batch_loss=train_loss, tokens=train_ex.n_targets)
        first = loop.step
        with _threads(cfg, device, model, loop.targets_per_step):
            loop.run(progress, callbacks)
            train_loss = None
            if group.main:  # as val is evaluated, on up to TRAIN_EVAL_MAX targets (a batch's loss is noise)
                began = time.perf_counter()
                train_loss = evaluate(model, train_ex, device, cfg.eval_max or TRAIN_EVAL_MAX)
                loop.eval_seconds += time.perf_counter() - began
        return Result(out, loop.step, train_loss, loop.val, ckpt.best, time.perf_counter() - start, model.eval(),
                      group.main, loop.last_loss, loop.eval_seconds, (loop.step - first) * loop.targets_per_step)
    finally:
        if loop is not None:
            loop.close()


class Loop:
    """The state of one training run and its loop: step, optimiser, batch generator, best weights."""

    def __init__(self, model: models.LanguageModel, ckpt: checkpoint.Checkpoint, train_ex, val_ex,
                 cfg: TrainConfig, out: Path, device: torch.device, group: distributed.Group = SINGLE):
        self.model, self.ckpt, self.train_ex, self.val_ex = model, ckpt, train_ex, val_ex
        self.cfg, self.out, self.device, self.group = cfg, out, device, group
        self.full_batch = cfg.batch_size == 0 or cfg.batch_size >= len(train_ex)
        self.rows = rows = len(train_ex) if self.full_batch else cfg.batch_size  # of a step's global batch
        if rows < group.world:  # a rank without rows would have no loss to average
            raise MakemoreError(f"a batch of {rows} rows cannot be shared by {group.world} processes: "
                                f"use --batch-size >= {group.world}, or fewer processes")
        if rows // group.world < 2 and any(isinstance(m, BATCH_NORMS) for m in model.modules()):
            raise MakemoreError("BatchNorm needs at least 2 rows in a batch to take their statistics: "
                                "use --batch-size >= 2" + (" per process" if group.active else ""))
        model.to(device)
        forward = model
        if group.active:  # gradients averaged over the ranks during backward
            from torch.nn.parallel import DistributedDataParallel

            forward = DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)
        self.stepper = Stepper(model, cfg, device, torch.compile(forward) if cfg.compile else forward)
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self._seed_rank(0)
        self.step = 0
        self.last_loss: float | None = None
        self.val: float | None = None
        self.eval_seconds = 0.0

    def close(self) -> None:
        """Let go of the DDP wrapper, even while an error's traceback still holds the loop (distributed.stop)."""
        self.stepper.forward = self.model

    @property
    def targets_per_step(self) -> int:
        return self.rows * (self.model.block_size if self.model.kind == "sequence" else 1)

    def restore(self) -> None:
        """Continue the run saved in `out`: weights, optimiser, batch generator and step, after checking that it
        is this run (model, settings the optimiser state depends on, data)."""
        saved = checkpoint.load(self.out)
        if (saved.model, saved.config) != (self.ckpt.model, self.ckpt.config):
            raise MakemoreError(f"cannot resume: {self.out} holds a {saved.model} with another configuration")
        if saved.data.get("sha256") != self.ckpt.data["sha256"]:
            raise MakemoreError(f"cannot resume: {self.out} was trained on different data ({saved.data.get('source')})")
        if saved.step > self.cfg.steps:
            raise MakemoreError(f"cannot resume: {self.out} is already at step {saved.step}, past --steps "
                                f"{self.cfg.steps} (give more steps to train on)")
        for key in RESUME_FIXED:
            if key == "momentum" and self.cfg.optimizer != "sgd":
                continue  # (AdamW has none: a value given with it changes nothing)
            if saved.train.get(key) != self.ckpt.train[key]:
                raise MakemoreError(f"--{key.replace('_', '-')} cannot change when resuming "
                                    f"(the run uses {saved.train.get(key)})")
        try:
            self.model.load_state_dict(saved.weights)
            checkpoint.optimizer_from_flat(self.stepper.optimizer, saved.state, saved.state_meta)
            self.gen.set_state(saved.state["rng.batches"])
            if "rng.torch" in saved.state:  # (checkpoints before it was saved resume without it)
                torch.set_rng_state(saved.state["rng.torch"])
            if "rng.cuda" in saved.state and self.device.type == "cuda":
                torch.cuda.set_rng_state(saved.state["rng.cuda"], self.device)
            self._seed_rank(saved.step)  # (rank 0's state was saved; the others draw their own from here)
        except (RuntimeError, ValueError, KeyError) as e:
            raise MakemoreError(f"cannot resume from {self.out}: its saved state does not fit this run ({e})") from None
        self.ckpt.best = saved.best
        self.step = saved.step

    def chars_per_token(self) -> float:
        """What turns a batch's loss per token into bits per character: 1 for characters; for byte-pair tokens
        the training split's mean (one pass over its targets, a chunk at a time)."""
        if self.ckpt.vocab.get("tokenizer", "char") == "char":
            return 1.0
        return chars_per_target(self.train_ex)

    def describe_resume(self) -> str:
        end = self.cfg.schedule_end
        plan = "" if end == self.cfg.steps or self.cfg.schedule != "cosine" else (
            f"; the learning-rate schedule is the one planned for {end:,} steps"
            + (f", and steps after it use its final rate {lr_at(end, self.cfg):.3g}" if end < self.cfg.steps
               else ""))
        return f"resuming from step {self.step:,} to step {self.cfg.steps:,}{plan}"

    def _seed_rank(self, step: int) -> None:
        """Ranks after the first draw their own dropout masks (torch's generator, seeded apart from rank 0's,
        which is the single-process run's): with the same seed every rank would drop the same units of its rows."""
        if self.group.rank > 0:
            seed = (self.cfg.seed * 1_000_003 + self.group.rank * 7_919 + step) % (MAX_INT + 1)
            torch.manual_seed(seed)

    def save(self) -> None:
        if not self.group.main:
            return
        self.ckpt.step = self.step
        self.ckpt.weights = self.model.state_dict()
        tensors, self.ckpt.state_meta = checkpoint.optimizer_to_flat(self.stepper.optimizer)
        # The batches' generator, and torch's own that dropout draws from: a resumed run then takes the same
        # steps as one never stopped.
        rngs = {"rng.batches": self.gen.get_state(), "rng.torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            rngs["rng.cuda"] = torch.cuda.get_rng_state(self.device)
        self.ckpt.state = {**tensors, **rngs}
        checkpoint.save(self.out, self.ckpt)
        self.ckpt.best_weights = None  # written once; later saves keep the file on disk

    def evaluate_and_save(self, log: MetricsLog | None) -> None:
        if log is None:  # not the main rank
            return
        began = time.perf_counter()
        self._evaluate_and_save(log)
        self.eval_seconds += time.perf_counter() - began

    def _evaluate_and_save(self, log: MetricsLog) -> None:
        if self.step == self.cfg.steps and self.cfg.calibrate_bn:  # (before `final` below: the same condition)
            calibrate_batchnorm(self.model, self.train_ex, self.device)
        self.val = evaluate(self.model, self.val_ex, self.device, self.cfg.eval_max) if len(self.val_ex) else None
        log.val(self.step, self.val)
        # With calibration, mid-run evaluations use running statistics and the last one the calibrated ones: only
        # the calibrated model is the run's result, so it alone competes for best.
        final = self.step == self.cfg.steps
        counts = final or not self.cfg.calibrate_bn
        if counts and self.val is not None and self.val < self.ckpt.best.get("val", math.inf):
            self.ckpt.best = {"step": self.step, "val": self.val}
            self.ckpt.best_weights = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.save()

    def batches(self):
        """The training batches, on the device, one per step from the current step on."""
        mine = self.group.slice(self.rows) if self.group.active else slice(None)
        if self.full_batch:
            X, Y = (t[mine].to(self.device) for t in self.train_ex.all())
            while True:
                yield X, Y
        while True:
            X, Y = self.train_ex.random_batch(self.cfg.batch_size, self.gen)
            X, Y = X[mine], Y[mine]
            if self.device.type != "cpu":
                X, Y = X.to(self.device, non_blocking=True), Y.to(self.device, non_blocking=True)
            yield X, Y

    def run(self, progress: bool, callbacks: Sequence[Callable[[StepInfo], None]]) -> None:
        cfg, out = self.cfg, self.out
        with _StopOnSignal() as stop:
            main = self.group.main
            log = MetricsLog(out / METRICS, self.step, self.chars_per_token()) if main else None
            bar = progress_bar(progress and main, self.step, cfg.steps)
            self.model.train()
            in_step = False  # between the first and the last line of a step, a checkpoint would hold half an update
            batches = self.batches()
            try:
                while self.step < cfg.steps:
                    if stop.requested and not self.group.active:
                        raise KeyboardInterrupt
                    in_step = True
                    lr = lr_at(self.step, cfg)
                    self.stepper.set_lr(lr)
                    loss = self.stepper(*next(batches))
                    stop_together = False
                    if self.group.active:  # the global batch's loss, and whether any rank was told to stop
                        loss, stopping = self.group.mean(torch.stack([loss.double(), torch.tensor(
                            float(stop.requested), dtype=torch.float64, device=loss.device)])).tolist()
                        stop_together = stopping > 0
                        if stop_together and stop.signum is None:
                            stop.signum = signal.SIGTERM
                    loss = float(loss)
                    if not math.isfinite(loss):
                        kept = f"the last good checkpoint in {out} was kept" if checkpoint.exists(out) else \
                            "nothing was saved"
                        raise MakemoreError(f"loss became {loss} at step {self.step} (lower the learning rate?); "
                                            f"{kept}")
                    self.last_loss = loss
                    if log is not None:
                        log.row(self.step, lr, loss)
                    self.step += 1
                    in_step = False
                    if bar is not None and self.step % 10 == 0:
                        bar.update(self.step - bar.n)
                        if self.step % 100 == 0:
                            bar.set_postfix(loss=f"{loss:.4f}", val="-" if self.val is None else f"{self.val:.4f}",
                                            val_bpc=f"{getattr(self.val, 'bpc', math.nan):.3f}")
                    evaluated = self.step % cfg.eval_interval == 0 or self.step == cfg.steps
                    if evaluated:
                        self.evaluate_and_save(log)
                    if callbacks:
                        info = StepInfo(self.step - 1, lr, loss, self.model, self.val if evaluated else None)
                        try:
                            for cb in callbacks:
                                cb(info)
                        except StopTraining:
                            if not evaluated:
                                self.evaluate_and_save(log)
                            return
                    if stop_together:  # decided from the flags of every rank: all stop after the same step
                        raise KeyboardInterrupt
            except KeyboardInterrupt:
                saved = self.step > 0 and not in_step
                if saved:
                    self.save()
                raise Interrupted(out, self.step, saved, stop.signum or signal.SIGINT) from None
            finally:
                if log is not None:
                    log.close()
                if bar is not None:
                    bar.update(self.step - bar.n)
                    bar.close()
