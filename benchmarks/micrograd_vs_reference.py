"""Time the lecture's moons demo loop with makemore.micrograd and with the reference micrograd.

Both engines train MLP(2, [16, 16, 1]) from the same weights (seed 1337) on the same
100 points, in this one process; a step is forward (loss), zero_grad, backward and the
SGD update, exactly the notebook's loop.  The reference (PyPI ``micrograd==0.1.0``, the
repository's code) is slow, so by default it runs only the first 10 steps; per-step
times are compared on those same steps.  Losses must agree to 1e-12 at every step both
ran, and ours must reach the notebook's step-99 loss 0.010978370135492717.

Usage:  python benchmarks/micrograd_vs_reference.py [--steps 100] [--ref-steps 10]

The reference is fed plain Python floats (the notebook feeds numpy scalars, whose
arithmetic is slower): that only makes it faster.  The cyclic garbage collector runs with
its default settings for both; everything is collected between the two runs.
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
        total_loss, acc = demo_loss(model, X, y, value=Value)  # the same loss, on the reference engine
        model.zero_grad()
        total_loss.backward()
        learning_rate = 1.0 - 0.9 * k / total_steps
        for p in model.parameters():
            p.data -= learning_rate * p.grad
        times.append(time.perf_counter() - t0)
        losses.append(total_loss.data)
        print(f"  reference step {k:3d}: loss {total_loss.data!r:<22} {times[-1]:.3f} s", flush=True)
    return losses, times


def our_loop(X: list[list[float]], y: list[int], steps: int) -> tuple[list, list]:
    """The same loop on makemore.micrograd (demo.train_step); returns (losses, seconds per step)."""
    from makemore.micrograd.demo import make_model, train_step

    model = make_model(1337)
    losses, times = [], []
    for k in range(steps):
        t0 = time.perf_counter()
        loss, _acc = train_step(model, X, y, k, steps)
        times.append(time.perf_counter() - t0)
        losses.append(loss)
    return losses, times


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100, help="steps for makemore.micrograd (default 100)")
    ap.add_argument("--ref-steps", type=int, default=10, help="steps for the reference (default 10)")
    args = ap.parse_args()
    if not 1 <= args.ref_steps <= args.steps:
        ap.error("need 1 <= --ref-steps <= --steps")

    from makemore.micrograd.demo import make_moons

    X, y01 = make_moons(100, noise=0.1, seed=1337)
    y = [2 * v - 1 for v in y01]
    print(f"python {platform.python_version()} ({platform.python_implementation()}), {_cpu()}")
    print(f"demo loop: MLP(2, [16, 16, 1]) on 100 moons points; reference {args.ref_steps} steps, ours {args.steps}")

    gc.collect()
    ref_losses, ref_times = reference_loop(X, y, args.ref_steps, args.steps)
    gc.collect()  # the reference's cyclic garbage must not weigh on our run
    our_losses, our_times = our_loop(X, y, args.steps)

    n = args.ref_steps
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
    print(f"ours, all {args.steps} steps: {statistics.fmean(our_times):.4f} s/step (mean), "
          f"{statistics.median(our_times):.4f} (median), {sum(our_times):.2f} s in all")
    print(f"largest loss difference over steps 0-{n - 1}: {worst:.3g}")
    ok = worst <= 1e-12
    if args.steps == 100:
        diff = abs(our_losses[99] - NOTEBOOK_STEP_99_LOSS)
        print(f"ours, step 99 loss {our_losses[99]!r} (notebook {NOTEBOOK_STEP_99_LOSS!r}, diff {diff:.3g})")
        ok = ok and diff <= 1e-12
    print("losses agree" if ok else "LOSSES DIFFER")
    return 0 if ok else 1


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
