"""Every figure makemore draws. Each `*_figure` function returns a matplotlib Figure (a notebook shows it); the
function of the same name without `_figure` writes it to a PNG, atomically, and returns the path.

Figures are made with matplotlib's object-oriented API (Figure, not pyplot): no backend is chosen and no global
state changes, so a notebook's own plotting is left as it was.
"""

from __future__ import annotations

import functools
import io
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from makemore.atomic import atomic_write

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure


def _png(fig: Figure, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


@functools.cache
def _figure_class() -> type[Figure]:
    from matplotlib.figure import Figure

    class ShownFigure(Figure):
        """A Figure that Jupyter shows as a picture even when pyplot (which registers that display) was never
        imported."""

        def _repr_png_(self) -> bytes:
            return _png(self)

    return ShownFigure


def _figure(**kw) -> Figure:
    return _figure_class()(**kw)  # not pyplot: nothing registered globally, nothing left open between figures


def save(fig: Figure, path: str | Path, dpi: int = 100) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, _png(fig, dpi))
    return path


def counts_figure(counts: torch.Tensor, itos: Sequence[str]) -> Figure:
    """The lecture's bigram table: each cell shows the pair of characters and how often it occurs."""
    from matplotlib.colors import Normalize

    n = len(itos)
    fig = _figure(figsize=(n * 0.6, n * 0.6))
    ax = fig.add_subplot()
    image = ax.imshow(counts.numpy(), cmap="Blues", norm=Normalize(0, max(float(counts.max()), 1.0)))
    for i in range(n):
        for j in range(n):
            r, g, b, _ = image.cmap(image.norm(float(counts[i, j])))
            # white on dark cells, dark grey on light ones (perceived brightness, ITU-R BT.601 weights)
            color = "white" if 0.299 * r + 0.587 * g + 0.114 * b < 0.5 else "#333333"
            ax.text(j, i, itos[i] + itos[j], ha="center", va="bottom", color=color, fontsize=7)
            ax.text(j, i, str(int(counts[i, j])), ha="center", va="top", color=color, fontsize=7)
    ax.set_axis_off()
    return fig


def loss_figure(metrics_csv: str | Path, title: str | None = None) -> Figure | None:
    """log10 of the training loss per step, its running mean, and the val evaluations; None if no step was
    recorded. The title defaults to the run folder's name (the folder holding metrics_csv)."""
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
    ax.set_title(Path(metrics_csv).resolve().parent.name if title is None else title)
    ax.set_xlabel("step")
    ax.set_ylabel("log10 loss")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def loss_curve(metrics_csv: str | Path, path: str | Path, title: str | None = None) -> Path | None:
    fig = loss_figure(metrics_csv, title)
    return None if fig is None else save(fig, path)


def embedding_figure(C: torch.Tensor, itos: Sequence[str]) -> Figure:
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
    return fig


def embedding_scatter(C: torch.Tensor, itos: Sequence[str], path: str | Path) -> Path:
    return save(embedding_figure(C, itos), path)


def lr_find_figure(exponents: Sequence[float], losses: Sequence[float], suggested: float) -> Figure:
    import math

    fig = _figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    ax.plot(exponents, losses, lw=0.8)
    ax.axvline(math.log10(suggested), color="red", ls="--", label=f"suggested lr {suggested:.3g}")
    ax.set_xlabel("log10 learning rate")
    ax.set_ylabel("loss")
    ax.legend()
    ax.grid(alpha=0.3)
    return fig


def lr_find(exponents: Sequence[float], losses: Sequence[float], suggested: float, path: str | Path) -> Path:
    return save(lr_find_figure(exponents, losses, suggested), path)


def histograms_figure(tensors: dict[str, torch.Tensor], xlabel: str, notes: Sequence[str]) -> Figure:
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
    return fig


def saturation_figure(flat: dict[str, torch.Tensor], rules: Sequence[str]) -> Figure:
    """White where a layer is saturated (flat: it passes no gradient back), by the rule given for it; rows are
    examples (times positions), columns units. A white column is a dead unit."""
    n = max(1, len(flat))
    fig = _figure(figsize=(12, 2.2 * n + 0.5))
    for i, ((name, mask), rule) in enumerate(zip(flat.items(), rules, strict=True)):
        ax = fig.add_subplot(n, 1, i + 1)
        sat = mask.detach().cpu().reshape(-1, mask.shape[-1]).numpy()
        ax.imshow(sat, cmap="gray", interpolation="nearest", aspect="auto", vmin=0, vmax=1)
        ax.set_title(f"{name}: {100 * sat.mean():.1f}% saturated ({rule})", fontsize=9)
        ax.set_ylabel("example (× position)")
        ax.set_xlabel("unit")
    fig.tight_layout()
    return fig


def update_ratios_figure(steps: Sequence[int], ratios: dict[str, Sequence[float]]) -> Figure:
    """log10(std(update) / std(data)) per weight over training, with the 1e-3 guide line."""
    fig = _figure(figsize=(11, 4.5))
    ax = fig.add_subplot()
    for name, values in ratios.items():
        ax.plot(steps, values, lw=1, label=name)
    ax.axhline(-3, color="black", ls="--", lw=1, label="1e-3 guide")
    ax.set_xlabel("step")
    ax.set_ylabel("log10 update:data")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    return fig
