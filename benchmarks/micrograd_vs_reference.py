"""Time the lecture's moons demo loop with makemore.micrograd and with the reference micrograd.

Both engines train MLP(2, [16, 16, 1]) from the same weights (seed 1337) on the same
100 points, in this one process; a step is forward (loss), zero_grad, backward and the
SGD update, exactly the notebook's loop.  The reference (PyPI ``micrograd==0.1.0``, the
repository's code) is slow, so by default it runs only the first 10 steps; per-step
times are compared on those same steps.  Losses must agree to 1e-12 at every step both
ran, and ours must reach the notebook's step-99 loss 0.010978370135492717.

Usage:  python benchmarks/micrograd_vs_reference.py [--steps 100] [--ref-steps 10] [--mode demo|notebook]

--mode demo (the default): the reference is fed plain Python floats (the notebook feeds
numpy scalars, whose arithmetic is slower): that only makes it faster.

--mode notebook: the loop as the notebook runs it, for both engines: numpy, matplotlib and
scikit-learn imported (tens of thousands more live objects for the garbage collector to
walk), ``make_moons`` arrays fed to ``Value`` and numpy integer labels.  Ours is also run a
second time with each step's forward and backward inside ``with gc_paused():`` (as the demo's
``train_step`` does), what the notebook gains by adding that one line.  Without scikit-learn
the same moons come from numpy (makemore.micrograd.demo), and the script says so.

The cyclic garbage collector runs with its default settings for both; everything is
collected between the runs.
"""

from __future__ import annotations

import argparse
import gc
import platform
import random
import statistics
import sys
import time

NOTEBOOK_STEP_99_LOSS = 0.010978370135492717


def reference_loop(X: list[list[float]], y: list[int], steps: int, total_steps: int) -> tuple[list, list]:
    """The notebook's training loop, on the reference engine; returns (losses, seconds per step)."""
    from micrograd.engine import Value
    from micrograd.nn import MLP

    from makemore.micrograd.demo import loss as demo_loss

    random.seed(1337)  # the notebook seeds the global RNG before building the model
    model = MLP(2, [16, 16, 1])

    losses, times = [], []
    for k in range(steps):
        t0 = time.perf_counter()
        c0 = time.process_time()
        total_loss, acc = demo_loss(model, X, y, value=Value)  # the same loss, on the reference engine
        model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * k / total_steps
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        times.append((time.perf_counter() - t0, time.process_time() - c0))
        losses.append(total_loss.data)
        print(f"  reference step {k:3d}: loss {total_loss.data!r:<22} {times[-1][0]:.3f} s", flush=True)
    return losses, times


def our_loop(X: list[list[float]], y: list[int], steps: int) -> tuple[list, list]:
    """The same loop on makemore.micrograd (demo.train_step); returns (losses, seconds per step)."""
    from makemore.micrograd.demo import make_model, train_step

    model = make_model(1337)
    losses, times = [], []
    for k in range(steps):
        t0 = time.perf_counter()
        c0 = time.process_time()
        loss, _acc = train_step(model, X, y, k, steps)
        times.append((time.perf_counter() - t0, time.process_time() - c0))
        losses.append(loss)
    return losses, times


def notebook_moons():
    """The notebook's data: global numpy and random seeds, then sklearn's make_moons (numpy arrays)."""
    import numpy as np

    np.random.seed(1337)
    random.seed(1337)
    try:
        from sklearn.datasets import make_moons
    except ImportError:
        print("scikit-learn is not installed: the same moons from numpy (makemore.micrograd.demo.make_moons)")
        from makemore.micrograd.demo import make_moons as ours

        X, y = ours(100, noise=0.1, seed=1337)
        return np.array(X), np.array(y) * 2 - 1
    X, y = make_moons(n_samples=100, noise=0.1)
    return X, y * 2 - 1


def notebook_loop(
    engine: str, X, y, steps: int, total_steps: int, label: str, paused: bool = False
) -> tuple[list, list]:
    """The notebook's cells as written (its loss() and its loop) on ``engine`` ('micrograd' or
    'makemore.micrograd'); the model comes from the global random module seeded 1337, as there.
    ``paused``: forward and backward inside makemore.micrograd's ``with gc_paused():``."""
    import contextlib
    import importlib

    Value = importlib.import_module(engine + ".engine").Value
    from makemore.micrograd.engine import gc_paused
    MLP = importlib.import_module(engine + ".nn").MLP
    random.seed(1337)
    model = MLP(2, [16, 16, 1])

    def loss():
        inputs = [list(map(Value, xrow)) for xrow in X]
        scores = list(map(model, inputs))
        losses = [(1 + -yi * scorei).relu() for yi, scorei in zip(y, scores, strict=True)]
        data_loss = sum(losses) * (1.0 / len(losses))
        alpha = 1e-4
        reg_loss = alpha * sum(p * p for p in model.parameters())
        total_loss = data_loss + reg_loss
        accuracy = [(yi > 0) == (scorei.data > 0) for yi, scorei in zip(y, scores, strict=True)]
        return total_loss, sum(accuracy) / len(accuracy)

    losses, times = [], []
    for k in range(steps):
        t0 = time.perf_counter()
        c0 = time.process_time()
        with gc_paused() if paused else contextlib.nullcontext():
            total_loss, acc = loss()
            model.zero_grad()
            total_loss.backward()
        learning_rate = 1.0 - 0.9 * k / total_steps
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        times.append((time.perf_counter() - t0, time.process_time() - c0))
        losses.append(float(total_loss.data))
        if engine == "micrograd":
            print(f"  {label} step {k:3d}: loss {losses[-1]!r:<22} {times[-1][0]:.3f} s", flush=True)
    return losses, times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="steps for makemore.micrograd (default 100)")
    ap.add_argument("--ref-steps", type=int, default=10, help="steps for the reference (default 10)")
    ap.add_argument("--mode", choices=["demo", "notebook"], default="demo",
                    help="demo: plain floats; notebook: the notebook's loop as written (numpy, sklearn imported)")
    args = ap.parse_args()
    if not 1 <= args.ref_steps <= args.steps:
        ap.error("need 1 <= --ref-steps <= --steps")

    print(f"python {platform.python_version()} ({platform.python_implementation()}), {_cpu()}")
    paused_losses = paused_times = None
    if args.mode == "notebook":
        import matplotlib.pyplot  # noqa: F401  (the notebook's imports: live objects the collector walks)
        import numpy  # noqa: F401

        X, y = notebook_moons()
        print(f"notebook loop as written: {len(gc.get_objects()):,} objects tracked by the collector before it; "
              f"reference {args.ref_steps} steps, ours {args.steps}")
        gc.collect()
        ref_losses, ref_times = notebook_loop("micrograd", X, y, args.ref_steps, args.steps, "reference")
        gc.collect()
        our_losses, our_times = notebook_loop("makemore.micrograd", X, y, args.steps, args.steps, "ours")
        gc.collect()
        paused_losses, paused_times = notebook_loop("makemore.micrograd", X, y, args.steps, args.steps, "ours",
                                                    paused=True)
    else:
        from makemore.micrograd.demo import make_moons

        X, y01 = make_moons(100, noise=0.1, seed=1337)
        y = [2 * v - 1 for v in y01]
        print(f"demo loop: MLP(2, [16, 16, 1]) on 100 moons points; reference {args.ref_steps} steps, "
              f"ours {args.steps}")
        gc.collect()
        ref_losses, ref_times = reference_loop(X, y, args.ref_steps, args.steps)
        gc.collect()  # the reference's cyclic garbage must not weigh on our run
        our_losses, our_times = our_loop(X, y, args.steps)

    n = args.ref_steps
    ref_times, ref_cpu = _split(ref_times)
    our_times, our_cpu = _split(our_times)
    worst = max(abs(a - b) for a, b in zip(ref_losses, our_losses[:n], strict=True))
    print(f"\n{'step':>4}  {'reference s':>11}  {'ours s':>8}  {'ratio':>6}  loss (ours)")
    for k in range(n):
        print(f"{k:4d}  {ref_times[k]:11.4f}  {our_times[k]:8.4f}  {ref_times[k] / our_times[k]:6.1f}  "
              f"{our_losses[k]!r}")
    ref_mean, our_mean = statistics.fmean(ref_times), statistics.fmean(our_times[:n])
    ref_med, our_med = statistics.median(ref_times), statistics.median(our_times[:n])
    print(f"\nsteps 0-{n - 1}: reference {ref_mean:.4f} s/step, ours {our_mean:.4f} s/step (mean): "
          f"{ref_mean / our_mean:.1f}x faster")
    print(f"steps 0-{n - 1}: reference {ref_med:.4f} s/step, ours {our_med:.4f} s/step (median): "
          f"{ref_med / our_med:.1f}x faster")
    # CPU time of this process only: on a shared machine, less at the mercy of the other processes.
    ref_cpu_mean, our_cpu_mean = statistics.fmean(ref_cpu), statistics.fmean(our_cpu[:n])
    print(f"steps 0-{n - 1}: reference {ref_cpu_mean:.4f} CPU s/step, ours {our_cpu_mean:.4f} CPU s/step (mean): "
          f"{ref_cpu_mean / our_cpu_mean:.1f}x faster")
    print(f"ours, all {args.steps} steps: {statistics.fmean(our_times):.4f} s/step (mean), "
          f"{statistics.median(our_times):.4f} (median), {sum(our_times):.2f} s in all; "
          f"{statistics.fmean(our_cpu):.4f} CPU s/step")
    print(f"largest loss difference over steps 0-{n - 1}: {worst:.3g}")
    ok = worst <= 1e-12
    if paused_times is not None:
        paused_times, paused_cpu = _split(paused_times)
        paused_mean, paused_cpu_mean = statistics.fmean(paused_times[:n]), statistics.fmean(paused_cpu[:n])
        print(f"ours with each step inside gc_paused(), steps 0-{n - 1}: {paused_mean:.4f} s/step (mean), "
              f"{ref_mean / paused_mean:.1f}x the reference ({paused_cpu_mean:.4f} CPU s/step, "
              f"{ref_cpu_mean / paused_cpu_mean:.1f}x); ours as written (collector on) takes "
              f"{our_mean / paused_mean:.2f}x that ({our_cpu_mean / paused_cpu_mean:.2f}x in CPU time); "
              f"all {args.steps} steps: {statistics.fmean(paused_times):.4f} s/step")
        ok = ok and paused_losses == our_losses
    if args.steps == 100:
        diff = abs(our_losses[99] - NOTEBOOK_STEP_99_LOSS)
        print(f"ours, step 99 loss {our_losses[99]!r} (notebook {NOTEBOOK_STEP_99_LOSS!r}, diff {diff:.3g})")
        ok = ok and diff <= 1e-12
    print("losses agree" if ok else "LOSSES DIFFER")
    return 0 if ok else 1


def _split(times: list[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """(wall, cpu) pairs as a list of wall times and a list of CPU times."""
    return [t[0] for t in times], [t[1] for t in times]


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


if __name__ == "__main__":
    sys.exit(main())
