"""Every figure makemore draws, with matplotlib's headless backend. Each function writes one PNG atomically
and returns its path."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from makemore.atomic import atomic_write

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure


def _figure(**kw) -> Figure:
    from matplotlib.figure import Figure

    # Not pyplot and no matplotlib.use(): no global state changed (a notebook keeps its backend), nothing left
    # open between figures; savefig renders with Agg whatever the backend.
    return Figure(**kw)


def save(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    atomic_write(path, buf.getvalue())
    return path


def counts_heatmap(counts: torch.Tensor, itos: Sequence[str], path: str | Path) -> Path:
    return save(counts_figure(counts, itos), path)


def counts_figure(counts: torch.Tensor, itos: Sequence[str]) -> Figure:
    """The lecture's bigram table: each cell shows the pair of characters and how often it occurs."""
    n = len(itos)
    fig = _figure(figsize=(n * 0.6, n * 0.6))
    ax = fig.add_subplot()
    ax.imshow(counts.numpy(), cmap="Blues")
    for i in range(n):
        for j in range(n):
            ax.text(j, i, itos[i] + itos[j], ha="center", va="bottom", color="gray", fontsize=7)
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="top", color="gray", fontsize=7)
    ax.set_axis_off()
    return fig


def loss_curve(metrics_csv: str | Path, path: str | Path) -> Path | None:
    fig = loss_figure(metrics_csv, title=Path(metrics_csv).parent.name)
    return None if fig is None else save(fig, path)


def loss_figure(metrics_csv: str | Path, title: str | None = None) -> Figure | None:
    """log10 of the training loss per step, its running mean, and the val evaluations (None: no losses yet)."""
    import numpy as np

    from makemore.training import read_metrics

    steps, vals = read_metrics(metrics_csv)
    if not steps:
        return None
    x = np.array([s for s, _ in steps])
    y = np.log10(np.array([v for _, v in steps]))
    fig = _figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    ax.plot(x, y, lw=0.3, alpha=0.35, label="train (per step)")
    # Means over consecutive blocks of steps: of 1000 steps in long runs, as lecture 5 plots it.
    block = 1000 if len(y) >= 20_000 else max(1, len(y) // 100)
    if block > 1 and len(y) >= 2 * block:
        n = len(y) // block * block
        ax.plot(x[:n].reshape(-1, block).mean(1), y[:n].reshape(-1, block).mean(1), lw=1.5,
                label=f"train (mean of every {block} steps)")
    if vals:
        ax.plot([s for s, _ in vals], np.log10([v for _, v in vals]), "o-", ms=4, label="val")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 loss")
    ax.grid(alpha=0.3)
    ax.legend()
    if title:
        ax.set_title(title)
    return fig


def embedding_scatter(C: torch.Tensor, itos: Sequence[str], path: str | Path) -> Path:
    """The first two embedding dimensions, one labelled dot per character (the lecture's 2-D plot)."""
    C = C.detach().float().cpu()
    fig = _figure(figsize=(8, 8))
    ax = fig.add_subplot()
    ax.scatter(C[:, 0], C[:, 1], s=200)
    for i, ch in enumerate(itos):
        ax.text(C[i, 0].item(), C[i, 1].item(), ch, ha="center", va="center", color="white")
    ax.grid(alpha=0.3)
    ax.set_xlabel("embedding dim 0")
    ax.set_ylabel("embedding dim 1")
    return save(fig, path)


def lr_find(exponents: Sequence[float], losses: Sequence[float], suggested: float, path: str | Path) -> Path:
    import math

    fig = _figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    ax.plot(exponents, losses, lw=0.8)
    ax.axvline(math.log10(suggested), color="red", ls="--", label=f"suggested lr {suggested:.3g}")
    ax.set_xlabel("log10 learning rate")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    return save(fig, path)


def histograms(tensors: dict[str, torch.Tensor], path: str | Path, xlabel: str, notes: Sequence[str]) -> Path:
    """One density curve per layer, overlaid, with its statistics in the legend (the lecture's histograms)."""
    import torch

    fig = _figure(figsize=(11, 4.5))
    ax = fig.add_subplot()
    for (name, t), note in zip(tensors.items(), notes, strict=True):
        hy, hx = torch.histogram(t.detach().float().cpu().flatten(), bins=60, density=True)
        ax.plot(((hx[:-1] + hx[1:]) / 2).numpy(), hy.numpy(), label=f"{name}: {note}")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("density")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)


def saturation_map(activations: dict[str, torch.Tensor], path: str | Path, threshold: float = 0.99) -> Path:
    """White where |tanh| > threshold: examples down, units across. A white column is a dead unit."""
    n = max(1, len(activations))
    fig = _figure(figsize=(12, 2.2 * n + 0.5))
    for i, (name, t) in enumerate(activations.items()):
        ax = fig.add_subplot(n, 1, i + 1)
        sat = (t.detach().float().cpu().reshape(t.shape[0], -1).abs() > threshold).numpy()
        ax.imshow(sat, cmap="gray", interpolation="nearest", aspect="auto", vmin=0, vmax=1)
        ax.set_title(f"{name}: {100 * sat.mean():.1f}% of |t| > {threshold}", fontsize=9)
        ax.set_ylabel("example")
    return save(fig, path)


def update_ratios(steps: Sequence[int], ratios: dict[str, Sequence[float]], path: str | Path) -> Path:
    """log10(std(lr * grad) / std(data)) per weight over training, with the 1e-3 guide line."""
    fig = _figure(figsize=(11, 4.5))
    ax = fig.add_subplot()
    for name, values in ratios.items():
        ax.plot(steps, values, lw=1, label=name)
    ax.axhline(-3, color="black", ls="--", lw=1, label="1e-3 guide")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 update:data")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return save(fig, path)
