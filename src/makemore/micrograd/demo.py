"""The lecture's demo: a small MLP learns the two-moons data set with an SVM loss.

Reproduces the reference notebook: the same data (sklearn's ``make_moons`` re-implemented
with numpy, same random calls), the same network (seed 1337), and the same floating-point
operations in the same order, so the losses match the reference's to 1e-12 at every step
(step 99: loss 0.010978370135492717, accuracy 100%).  Only the order in which gradient
contributions are summed may differ, by rounding: the reference's follows set iteration
order (memory addresses), so its own last bits vary from run to run; ours is fixed.
"""

from __future__ import annotations

import math
import os
import random
from collections.abc import Callable, Sequence
from typing import Any

from makemore.atomic import atomic_write
from makemore.errors import MakemoreError
from makemore.micrograd.engine import Value, gc_paused
from makemore.micrograd.nn import MLP

__all__ = [
    "SEED", "make_moons", "make_model", "loss", "train_step", "run_demo", "predict", "plot_decision_boundary",
]

SEED = 1337
ALPHA = 1e-4  # L2 regularization strength


def make_moons(
    n_samples: int = 100, noise: float | None = 0.1, seed: int = SEED
) -> tuple[list[list[float]], list[int]]:
    """Two interleaving half circles; the same points as sklearn's ``make_moons``.

    sklearn (with ``random_state=None`` after ``np.random.seed(seed)``) draws from the
    global numpy RandomState; a fresh ``RandomState(seed)`` yields the same stream
    without touching global state.  The call order matters for identical data: build
    both half circles, shuffle the indices, then add gaussian noise.
    Returns ``(X, y)`` as plain Python lists, ``y`` in {0, 1}.
    """
    import numpy as np

    rs = np.random.RandomState(seed)
    n_out = n_samples // 2
    n_in = n_samples - n_out
    outer_x = np.cos(np.linspace(0, np.pi, n_out))
    outer_y = np.sin(np.linspace(0, np.pi, n_out))
    inner_x = 1 - np.cos(np.linspace(0, np.pi, n_in))
    inner_y = 1 - np.sin(np.linspace(0, np.pi, n_in)) - 0.5
    X = np.vstack([np.append(outer_x, inner_x), np.append(outer_y, inner_y)]).T
    y = np.hstack([np.zeros(n_out, dtype=np.intp), np.ones(n_in, dtype=np.intp)])
    indices = np.arange(n_samples)
    rs.shuffle(indices)
    X, y = X[indices], y[indices]
    if noise is not None:
        X += rs.normal(scale=noise, size=X.shape)
    return X.tolist(), y.tolist()


def make_model(seed: int = SEED) -> MLP:
    """The lecture's MLP(2, [16, 16, 1]), weights from ``random.Random(seed)``."""
    return MLP(2, [16, 16, 1], rng=random.Random(seed))


def loss(model: MLP, X: Sequence[Sequence[float]], y: Sequence[int], value: Callable = Value) -> tuple[Value, float]:
    """SVM max-margin loss + L2 regularization, and the accuracy; ``y`` in {-1, +1}.

    Mirrors the reference notebook operation by operation (including summing from 0
    and multiplying by 1/n rather than dividing) so the floats come out identical.
    ``value`` wraps the inputs: another engine's Value class runs the same loss on it.
    """
    inputs = [[value(a) for a in row] for row in X]
    scores = [model(x) for x in inputs]
    losses = [(1 + -yi * si).relu() for yi, si in zip(y, scores, strict=True)]
    data_loss = sum(losses) * (1.0 / len(losses))
    reg_loss = ALPHA * sum(p * p for p in model.parameters())
    total_loss = data_loss + reg_loss
    accuracy = [(yi > 0) == (si.data > 0) for yi, si in zip(y, scores, strict=True)]
    return total_loss, sum(accuracy) / len(accuracy)


def train_step(
    model: MLP, X: Sequence[Sequence[float]], y: Sequence[int], k: int, steps: int
) -> tuple[float, float]:
    """One full-batch SGD step (forward, backward, update); returns (loss, accuracy).

    The garbage collector is paused for the step and left as it was after it (see ``gc_paused``).
    """
    with gc_paused():
        total_loss, acc = loss(model, X, y)
        model.zero_grad()
        total_loss.backward()
    learning_rate = 1.0 - 0.9 * k / steps
    for p in model.parameters():
        p.data -= learning_rate * p.grad
    return total_loss.data, acc


def run_demo(
    steps: int = 100,
    plot_path: str | os.PathLike[str] | None = None,
    log: Callable[[str], Any] | None = print,
    seed: int = SEED,
) -> list[tuple[float, float]]:
    """Train the moons classifier; returns (loss, accuracy) for every step.

    Logs ``step k loss L, accuracy A%`` per step through ``log`` (None: silent) and,
    if ``plot_path`` is given, saves the decision boundary there.
    """
    if steps < 1:
        raise ValueError("steps must be at least 1")
    if plot_path is not None:
        check_plot_path(plot_path)  # fail before training, not after
    X, y01 = make_moons(100, noise=0.1, seed=seed)
    y = [2 * v - 1 for v in y01]  # -1 / +1 labels for the SVM loss
    model = make_model(seed)
    history: list[tuple[float, float]] = []
    for k in range(steps):
        loss_value, acc = train_step(model, X, y, k, steps)
        history.append((loss_value, acc))
        if log is not None:
            log(f"step {k} loss {loss_value}, accuracy {acc * 100}%")
    if plot_path is not None:
        plot_decision_boundary(model, X, y, plot_path)
        if log is not None:
            log(f"saved decision boundary to {os.fspath(plot_path)}")
    return history


def check_plot_path(path: str | os.PathLike[str]) -> None:
    """Raise MakemoreError unless a plot can be saved at ``path`` (format and directory)."""
    from matplotlib.figure import Figure

    path = os.fspath(path)
    fmt = os.path.splitext(path)[1].lstrip(".").lower() or "png"
    supported = Figure().canvas.get_supported_filetypes()
    if fmt not in supported:
        raise MakemoreError(f"unknown plot format {fmt!r} in {path}: use one of {', '.join(sorted(supported))}")
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise MakemoreError(f"cannot save the plot: no directory {directory}")


def predict(model: MLP, points: Sequence[Sequence[float]]) -> list[float]:
    """The model's scores for ``points``."""
    return [model(list(p)).data for p in points]


def plot_decision_boundary(
    model: MLP,
    X: Sequence[Sequence[float]],
    y: Sequence[int],
    path: str | os.PathLike[str],
    step: float = 0.1,
) -> None:
    """Save the model's decision regions and the data points as an image at ``path``.

    The format follows the file extension (png, svg, pdf, ...).  Written to a
    temporary file first and renamed, so an existing file is never left half-written.
    """
    # A bare Figure renders with Agg and leaves pyplot's global backend alone.
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.figure import Figure

    xs = [p[0] for p in X]
    ys = [p[1] for p in X]
    x_min, x_max = min(xs) - 1, max(xs) + 1
    y_min, y_max = min(ys) - 1, max(ys) + 1
    gx = np.linspace(x_min, x_max, math.ceil((x_max - x_min) / step) + 1)
    gy = np.linspace(y_min, y_max, math.ceil((y_max - y_min) / step) + 1)
    xx, yy = np.meshgrid(gx, gy)
    scores = predict(model, np.c_[xx.ravel(), yy.ravel()].tolist())
    Z = (np.asarray(scores) > 0).astype(float).reshape(xx.shape)

    cmap = colormaps["Spectral"]
    fig = Figure(figsize=(6, 5))
    ax = fig.add_subplot()
    ax.contourf(xx, yy, Z, levels=[-0.5, 0.5, 1.5], cmap=cmap, alpha=0.8)  # two flat regions
    ax.scatter(xs, ys, c=list(y), s=40, cmap=cmap, edgecolors="k", linewidths=0.5)
    ax.set_xlim(x_min, x_max)
    ax.set_ylim(y_min, y_max)
    ax.set_title("micrograd MLP(2, [16, 16, 1]) decision boundary")
    fmt = os.path.splitext(os.fspath(path))[1].lstrip(".").lower() or "png"
    atomic_write(path, lambda f: fig.savefig(f, format=fmt))
