"""What lecture 3 looks at to see whether a network trains well: activation and gradient statistics per layer,
grad:data and update:data ratios per weight, tanh saturation, and the learning-rate finder.

Works on any model: activations are read with forward hooks on its Tanh modules, so layers need no
bookkeeping of their own.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from makemore import nn as mnn
from makemore.batches import Examples
from makemore.training import StepInfo, Stepper, TrainConfig, loss_fn, lr_at

SATURATED = 0.97  # |tanh| beyond this passes almost no gradient back (1 - t**2 < 0.06)
# A Kaiming-initialised tanh layer (pre-activation std 5/3) has ~21% of |t| beyond 0.97 by design; well past
# that, most units pass little gradient and the layer learns slowly.
SATURATION_ALARM = 0.33


@dataclass
class LayerStats:
    name: str
    mean: float
    std: float
    saturated: float  # share of |t| > SATURATED
    grad_mean: float
    grad_std: float


@dataclass
class ParamStats:
    name: str
    shape: tuple[int, ...]
    grad_mean: float
    grad_std: float
    grad_data_ratio: float


@dataclass
class Snapshot:
    """One forward/backward pass on one batch: the statistics and the raw tensors to draw."""

    loss: float
    layers: list[LayerStats]
    params: list[ParamStats]
    activations: dict[str, Tensor] = field(repr=False)
    act_grads: dict[str, Tensor] = field(repr=False)
    param_grads: dict[str, Tensor] = field(repr=False)

    @property
    def saturated_layers(self) -> list[str]:
        return [s.name for s in self.layers if s.saturated > SATURATION_ALARM]

    def to_json(self) -> dict:
        return {"loss": self.loss, "layers": [asdict(s) for s in self.layers],
                "params": [asdict(p) for p in self.params], "saturated_layers": self.saturated_layers}


def tanh_layers(model: nn.Module) -> dict[str, nn.Module]:
    return {name: m for name, m in model.named_modules() if isinstance(m, mnn.Tanh)}


def snapshot(model: nn.Module, X: Tensor, Y: Tensor) -> Snapshot:
    """Forward and backward on (X, Y) in training mode; the model's own .grad fields are left untouched."""
    acts: dict[str, Tensor] = {}

    def keep(name: str) -> Callable:
        def hook(_module: nn.Module, _inputs: tuple, out: Tensor) -> None:
            out.retain_grad()
            acts[name] = out

        return hook

    handles = [m.register_forward_hook(keep(name)) for name, m in tanh_layers(model).items()]
    saved_grads = {n: p.grad for n, p in model.named_parameters()}
    was_training = model.training
    model.train()
    try:
        with torch.random.fork_rng(devices=[]):  # a diagnostic pass must not change the training's randomness
            for p in model.parameters():
                p.grad = None
            loss = loss_fn(model(X), Y)
            loss.backward()
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    # BatchNorm's running statistics moved with this pass; that is the price of looking in training mode.
    layers = [LayerStats(name, t.mean().item(), t.std().item(), (t.abs() > SATURATED).float().mean().item(),
                         t.grad.mean().item(), t.grad.std().item()) for name, t in acts.items()]
    params, grads = [], {}
    for name, p in model.named_parameters():
        if p.dim() == 2 and p.grad is not None:
            g = p.grad.detach().clone()
            grads[name] = g
            params.append(ParamStats(name, tuple(p.shape), g.mean().item(), g.std().item(),
                                     (g.std() / p.detach().std()).item()))
        p.grad = saved_grads[name]
    return Snapshot(loss.item(), layers, params, {n: t.detach() for n, t in acts.items()},
                    {n: t.grad.detach() for n, t in acts.items()}, grads)


class UpdateRecorder:
    """A training callback: log10(std(update) / std(data)) per weight matrix every `every` steps, where update is
    the change the optimiser actually made (so it is right for AdamW too, not only for plain SGD). About -3 is
    healthy; much lower learns too slowly, much higher changes the weights too fast."""

    def __init__(self, every: int = 1):
        self.every = every
        self.steps: list[int] = []
        self.ratios: dict[str, list[float]] = {}
        self._before: dict[str, Tensor] | None = None  # the weights as they were before the step to measure

    def __call__(self, info: StepInfo) -> None:
        weights = {n: p.detach() for n, p in info.model.named_parameters() if p.dim() == 2}
        if self._before is not None:
            self.steps.append(info.step)
            for name, p in weights.items():
                before = self._before[name]
                r = ((p - before).std() / before.std()).item()
                self.ratios.setdefault(name, []).append(math.log10(r) if r > 0 else -math.inf)
            self._before = None
        if (info.step + 1) % self.every == 0:  # the callback sees weights after a step: keep them for the next
            self._before = {n: p.clone() for n, p in weights.items()}

    def write_csv(self, path: str | Path) -> None:
        with open(path, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["step", *self.ratios])
            for i, step in enumerate(self.steps):
                w.writerow([step, *(f"{v[i]:.4f}" for v in self.ratios.values())])


def probe_updates(model: nn.Module, examples: Examples, cfg: TrainConfig, steps: int = 200, seed: int = 0,
                  at_step: int | None = None) -> UpdateRecorder:
    """Update ratios over a few optimiser steps taken on a copy of the model (the model is not changed), at the
    schedule's rate for step `at_step` (default: the peak rate, after any warm-up)."""
    import copy

    at_step = cfg.warmup if at_step is None else at_step
    probe = copy.deepcopy(model).train()
    step_once = _plain_stepper(probe, cfg)
    gen = torch.Generator().manual_seed(seed)
    rec = UpdateRecorder()
    lr = lr_at(at_step, cfg)
    step_once.set_lr(lr)
    for step in range(steps):
        rec(StepInfo(step, lr, step_once(*examples.random_batch(cfg.batch_size or 32, gen)).item(), probe))
    return rec


def _plain_stepper(model: nn.Module, cfg: TrainConfig) -> Stepper:
    """The trainer's own step, on the CPU, without clipping: what one step at a given rate does."""
    import dataclasses

    return Stepper(model, dataclasses.replace(cfg, grad_clip=0.0), torch.device("cpu"))


def write_plots(snap: Snapshot, updates: UpdateRecorder | None, folder: str | Path) -> list[Path]:
    from makemore import plots

    folder = Path(folder)
    paths = [
        plots.histograms(snap.activations, folder / "activations.png", "activation (tanh output)",
                         [f"mean {s.mean:+.2f}, std {s.std:.2f}, saturated {100 * s.saturated:.1f}%"
                          for s in snap.layers]),
        plots.histograms(snap.act_grads, folder / "activation_grads.png", "gradient at the tanh output",
                         [f"mean {s.grad_mean:+.2e}, std {s.grad_std:.2e}" for s in snap.layers]),
        plots.histograms(snap.param_grads, folder / "weight_grads.png", "weight gradient",
                         [f"{tuple(p.shape)} grad:data {p.grad_data_ratio:.2e}" for p in snap.params]),
        plots.saturation_map(snap.activations, folder / "saturation.png"),
    ]
    if updates is not None and updates.steps:
        paths.append(plots.update_ratios(updates.steps, updates.ratios, folder / "update_ratios.png"))
    return paths


def format_table(snap: Snapshot) -> str:
    rows = [f"loss {snap.loss:.4f}", "", f"{'layer':24s} {'mean':>8s} {'std':>7s} {'saturated':>9s} "
            f"{'grad mean':>10s} {'grad std':>9s}"]
    rows += [f"{s.name:24s} {s.mean:+8.3f} {s.std:7.3f} {100 * s.saturated:8.1f}% {s.grad_mean:+10.2e} "
             f"{s.grad_std:9.2e}" for s in snap.layers]
    rows += ["", f"{'weight':24s} {'shape':>12s} {'grad mean':>10s} {'grad std':>9s} {'grad:data':>9s}"]
    rows += [f"{p.name:24s} {str(p.shape):>12s} {p.grad_mean:+10.2e} {p.grad_std:9.2e} {p.grad_data_ratio:9.2e}"
             for p in snap.params]
    if snap.saturated_layers:
        rows += ["", f"saturated (> {100 * SATURATION_ALARM:.0f}% of units beyond |{SATURATED}|): "
                 + ", ".join(snap.saturated_layers)]
    return "\n".join(rows)


def lr_find(model: nn.Module, examples: Examples, cfg: TrainConfig, lo: float = -3.0, hi: float = 0.0,
            num: int = 1000, seed: int = 0) -> tuple[list[float], list[float], float]:
    """The lecture's search: one step at each of `num` rates 10**linspace(lo, hi) in turn, recording the loss.
    The suggestion is the rate where the smoothed loss is lowest, before it climbs again."""
    exps = torch.linspace(lo, hi, num).tolist()
    step_once = _plain_stepper(model, cfg)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    losses = []
    for e in exps:
        step_once.set_lr(10**e)
        loss = step_once(*examples.random_batch(cfg.batch_size or 32, gen)).item()
        losses.append(loss if math.isfinite(loss) else math.inf)
    window = max(1, num // 20)
    kernel = torch.ones(window) / window
    finite = torch.tensor([min(v, 1e6) for v in losses])
    smooth = torch.nn.functional.conv1d(finite.view(1, 1, -1), kernel.view(1, 1, -1),
                                        padding=window // 2).view(-1)[:num]
    best = int(torch.argmin(smooth[window // 2: num - window // 2])) + window // 2
    return exps, losses, 10 ** exps[best]


def write_all(model: nn.Module, examples: Examples, updates: UpdateRecorder | None, folder: str | Path,
              batch_size: int = 32, seed: int = 0) -> list[Path]:
    """The plots for one batch of `examples`, plus the update ratios recorded during training."""
    X, Y = examples.random_batch(batch_size, torch.Generator().manual_seed(seed))
    device = next(model.parameters()).device  # (a model trained on a GPU is still there)
    paths = write_plots(snapshot(model, X.to(device), Y.to(device)), updates, folder)
    if updates is not None:
        updates.write_csv(Path(folder) / "update_ratios.csv")
    return paths
