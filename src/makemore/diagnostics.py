"""What lecture 3 looks at to see whether a network trains well: activation and gradient statistics per layer,
grad:data and update:data ratios per weight, saturation, and the learning-rate finder.

Works on any model: activations are read with forward hooks on its non-linearity modules (tanh, sigmoid, ReLU,
GELU), so layers need no bookkeeping of their own. A module called once per time step (a recurrent cell's) has
all its calls pooled.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from makemore import nn as mnn
from makemore.batches import Examples
from makemore.training import StepInfo, Stepper, TrainConfig, loss_fn, lr_at

if TYPE_CHECKING:
    from matplotlib.figure import Figure

SATURATED = 0.97  # |tanh| beyond this passes almost no gradient back (1 - t**2 < 0.06)
GELU_OFF = -3.0  # below this GELU's output and slope are within 1.2% of zero: the flat side of a rectifier
# A Kaiming-initialised tanh layer (pre-activation std 5/3) has ~21% of |t| beyond 0.97 by design; well past
# that, most units pass little gradient and the layer learns slowly.
SATURATION_ALARM = 0.33
# A rectifier is flat for about half its inputs by design; a unit flat for every example of a batch is dead (it
# gets no gradient, so it may never come back).
DEAD_ALARM = 0.10


@dataclass(frozen=True)
class Nonlinearity:
    """Where a non-linearity passes (almost) no gradient back, told from its input x and output y."""

    name: str
    flat_rule: str  # that place in words, for tables and figures
    flat: Callable[[Tensor, Tensor], Tensor]  # (x, y) -> a bool tensor like y
    rectifier: bool  # flat on half its inputs by design: only dead units are alarming


TANH = Nonlinearity("tanh", f"|t| > {SATURATED}", lambda x, y: y.abs() > SATURATED, rectifier=False)
# sigmoid(x) = (1 + tanh(x / 2)) / 2: the same threshold, on the gate's own scale (near 0 or near 1)
SIGMOID = Nonlinearity("sigmoid", f"s < {(1 - SATURATED) / 2:.3f} or s > {(1 + SATURATED) / 2:.3f}",
                       lambda x, y: (2 * y - 1).abs() > SATURATED, rectifier=False)
RELU = Nonlinearity("relu", "x <= 0", lambda x, y: x <= 0, rectifier=True)
GELU = Nonlinearity("gelu", f"x < {GELU_OFF}", lambda x, y: x < GELU_OFF, rectifier=True)
NONLINEARITIES: dict[type[nn.Module], Nonlinearity] = {mnn.Tanh: TANH, nn.Tanh: TANH, nn.Sigmoid: SIGMOID,
                                                      nn.ReLU: RELU, nn.GELU: GELU}
NONLINEARITIES_BY_NAME = {n.name: n for n in NONLINEARITIES.values()}


@dataclass
class LayerStats:
    name: str
    function: str  # tanh, sigmoid, relu, gelu
    mean: float
    std: float
    saturated: float  # share of outputs where the function is flat (its flat_rule)
    dead: float  # share of units flat for every example of the batch
    grad_mean: float
    grad_std: float
    flat_rule: str

    @property
    def alarming(self) -> bool:
        rectifier = NONLINEARITIES_BY_NAME[self.function].rectifier
        return self.dead > DEAD_ALARM if rectifier else self.saturated > SATURATION_ALARM


@dataclass
class ParamStats:
    name: str
    shape: tuple[int, ...]
    grad_mean: float
    grad_std: float
    grad_data_ratio: float | None  # None where the data has no spread to compare with


@dataclass
class Snapshot:
    """One forward/backward pass on one batch: the statistics and the raw tensors to draw, each as (rows, units)
    where rows are the batch's examples (times positions or time steps, for sequence models)."""

    loss: float
    layers: list[LayerStats]
    params: list[ParamStats]
    activations: dict[str, Tensor] = field(repr=False)
    act_grads: dict[str, Tensor] = field(repr=False)
    param_grads: dict[str, Tensor] = field(repr=False)
    flat: dict[str, Tensor] = field(repr=False)  # where each layer passes no gradient (bool)

    @property
    def saturated_layers(self) -> list[str]:
        return [s.name for s in self.layers if s.alarming]

    def to_json(self) -> dict:
        return {"loss": self.loss, "layers": [asdict(s) for s in self.layers],
                "params": [asdict(p) for p in self.params], "saturated_layers": self.saturated_layers}


def activation_layers(model: nn.Module) -> dict[str, tuple[nn.Module, Nonlinearity]]:
    """The model's non-linearity modules by name, each with what saturation means for it."""
    found = {}
    for name, m in model.named_modules():
        for cls, kind in NONLINEARITIES.items():
            if isinstance(m, cls):
                found[name] = (m, kind)
                break
    return found


def _rows(parts: list[Tensor]) -> Tensor:
    """A module's outputs from all its calls as one (rows, units) tensor."""
    return torch.cat([t.reshape(-1, t.shape[-1]) for t in parts])


def snapshot(model: nn.Module, X: Tensor, Y: Tensor) -> Snapshot:
    """Forward and backward on (X, Y) in training mode; the model's own .grad fields are left untouched."""
    outs: dict[str, list[Tensor]] = {}
    flats: dict[str, list[Tensor]] = {}

    def keep(name: str, kind: Nonlinearity) -> Callable:
        def hook(_module: nn.Module, inputs: tuple, out: Tensor) -> None:
            out.retain_grad()
            outs.setdefault(name, []).append(out)
            flats.setdefault(name, []).append(kind.flat(inputs[0].detach(), out.detach()))

        return hook

    layers_found = activation_layers(model)
    handles = [m.register_forward_hook(keep(name, kind)) for name, (m, kind) in layers_found.items()]
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
    acts = {n: _rows([t.detach() for t in ts]).float() for n, ts in outs.items()}
    act_grads = {n: _rows([t.grad for t in ts]).float() for n, ts in outs.items()}
    flat = {n: _rows(ms) for n, ms in flats.items()}
    layers = []
    for name, t in acts.items():
        kind, g, f = layers_found[name][1], act_grads[name], flat[name]
        layers.append(LayerStats(name, kind.name, t.mean().item(), t.std().item(), f.float().mean().item(),
                                 f.all(0).float().mean().item(), g.mean().item(), g.std().item(), kind.flat_rule))
    params, grads = [], {}
    for name, p in model.named_parameters():
        if p.dim() == 2 and p.grad is not None:
            g = p.grad.detach().clone()
            grads[name] = g
            spread = p.detach().std().item()  # 0 for a parameter still at its constant start (an RNN's state)
            params.append(ParamStats(name, tuple(p.shape), g.mean().item(), g.std().item(),
                                     g.std().item() / spread if spread > 0 else None))
        p.grad = saved_grads[name]
    return Snapshot(loss.item(), layers, params, acts, act_grads, grads, flat)


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


def figures(snap: Snapshot, updates: UpdateRecorder | None = None) -> dict[str, Figure]:
    """The lecture's pictures of one snapshot (and of the update ratios, if recorded), by name: matplotlib
    Figures, which a notebook shows."""
    from makemore import plots

    ratio = {p.name: "-" if p.grad_data_ratio is None else f"{p.grad_data_ratio:.2e}" for p in snap.params}
    figs = {
        "activations": plots.histograms_figure(
            snap.activations, "activation (output of each non-linearity)",
            [f"{s.function}, mean {s.mean:+.2f}, std {s.std:.2f}, {100 * s.saturated:.1f}% saturated ({s.flat_rule})"
             for s in snap.layers]),
        "activation_grads": plots.histograms_figure(
            snap.act_grads, "gradient at the non-linearity's output",
            [f"mean {s.grad_mean:+.2e}, std {s.grad_std:.2e}" for s in snap.layers]),
        "weight_grads": plots.histograms_figure(
            snap.param_grads, "weight gradient", [f"{p.shape} grad:data {ratio[p.name]}" for p in snap.params]),
        "saturation": plots.saturation_figure(snap.flat, [s.flat_rule for s in snap.layers]),
    }
    if updates is not None and updates.steps:
        figs["update_ratios"] = plots.update_ratios_figure(updates.steps, updates.ratios)
    return figs


def write_plots(snap: Snapshot, updates: UpdateRecorder | None, folder: str | Path) -> list[Path]:
    """The figures as PNGs in `folder`, one per name (activations.png, saturation.png, ...)."""
    from makemore import plots

    return [plots.save(fig, Path(folder) / f"{name}.png") for name, fig in figures(snap, updates).items()]


def format_table(snap: Snapshot) -> str:
    rows = [f"loss {snap.loss:.4f}", "", f"{'layer':24s} {'function':>8s} {'mean':>8s} {'std':>7s} "
            f"{'saturated':>9s} {'dead':>6s} {'grad mean':>10s} {'grad std':>9s}"]
    rows += [f"{s.name:24s} {s.function:>8s} {s.mean:+8.3f} {s.std:7.3f} {100 * s.saturated:8.1f}% "
             f"{100 * s.dead:5.1f}% {s.grad_mean:+10.2e} {s.grad_std:9.2e}" for s in snap.layers]
    rules = sorted({f"{s.function}: {s.flat_rule}" for s in snap.layers})
    if rules:
        rows.append("saturated: the share of outputs where the function is flat (" + "; ".join(rules)
                    + "); dead: the share of units saturated on every example")
    rows += ["", f"{'weight':24s} {'shape':>12s} {'grad mean':>10s} {'grad std':>9s} {'grad:data':>9s}"]
    rows += [f"{p.name:24s} {str(p.shape):>12s} {p.grad_mean:+10.2e} {p.grad_std:9.2e} "
             + ("        -" if p.grad_data_ratio is None else f"{p.grad_data_ratio:9.2e}") for p in snap.params]
    if snap.saturated_layers:
        rows += ["", f"saturated (> {100 * SATURATION_ALARM:.0f}% of outputs saturated, or for a rectifier "
                 f"> {100 * DEAD_ALARM:.0f}% of units dead): " + ", ".join(snap.saturated_layers)]
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
