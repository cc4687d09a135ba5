"""Speed of our trainer against the lecture's bare notebook loop, and time to val 2.17 against karpathy/makemore.

    python benchmarks/mlp_speed.py                       # both parts
    python benchmarks/mlp_speed.py --part speed --steps 20000 --reps 5
    python benchmarks/mlp_speed.py --part ttt --karpathy /tmp/karpathy_makemore/makemore.py
    python benchmarks/mlp_speed.py --part profile        # cProfile of our trainer (lecture2, 20,000 steps)

Part `speed`: per-step time of (a) `makemore.train.train` with the `lecture2` preset (progress bar to /dev/null,
metrics.csv, full-val evaluation every 10,000 steps, checkpoints: everything `makemore train` does inside the
trainer) and (b) the lecture-2 notebook loop written out below, on the lecture's split. Every variant runs the
same number of steps, interleaved, several times; medians are reported. Our per-step time is the whole train()
call (building the examples, evaluations and checkpoints included) divided by the steps; the bare loop's is the
loop alone.

Part `ttt` (time to target): wall time from process start until the first reported held-out loss <= 2.17, for
karpathy/makemore's `--type mlp` (its defaults; its own test split of 1000 words, evaluated every 500 steps) and
for `makemore train --preset best` (the lecture split's val, 22,655 examples). Both run as child processes with
one torch thread (OMP_NUM_THREADS=1, which our trainer keeps: it only ever lowers torch's thread count).
karpathy's makemore.py imports torch.utils.tensorboard: install tensorboard somewhere and pass --pythonpath.

The data file is /work/shared/data/names.txt (or $MAKEMORE_SHARED_DATA/names.txt, or --data).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(os.environ.get("MAKEMORE_SHARED_DATA", "/work/shared/data")) / "names.txt"
TARGET = 2.17


# ----------------------------------------------------------------------------------------------------------------
# (b) the lecture's notebook, as bare as it is there


def lecture_split(path: str | Path, block_size: int = 3):
    import torch

    words = open(path).read().splitlines()
    chars = sorted(set("".join(words)))
    stoi = {s: i + 1 for i, s in enumerate(chars)}
    stoi["."] = 0

    def build_dataset(words):
        X, Y = [], []
        for w in words:
            context = [0] * block_size
            for ch in w + ".":
                ix = stoi[ch]
                X.append(context)
                Y.append(ix)
                context = context[1:] + [ix]
        return torch.tensor(X), torch.tensor(Y)

    random.seed(42)
    random.shuffle(words)
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return build_dataset(words[:n1]), build_dataset(words[n1:n2])


def bare_loop(Xtr, Ytr, steps: int) -> float:
    """The lecture-2 training cell; returns seconds per step (the loop alone)."""
    import torch
    import torch.nn.functional as F

    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((27, 10), generator=g)
    W1 = torch.randn((30, 200), generator=g)
    b1 = torch.randn(200, generator=g)
    W2 = torch.randn((200, 27), generator=g)
    b2 = torch.randn(27, generator=g)
    parameters = [C, W1, b1, W2, b2]
    for p in parameters:
        p.requires_grad = True
    lossi, stepi = [], []
    t0 = time.perf_counter()
    for i in range(steps):
        ix = torch.randint(0, Xtr.shape[0], (32,))
        emb = C[Xtr[ix]]
        h = torch.tanh(emb.view(-1, 30) @ W1 + b1)
        logits = h @ W2 + b2
        loss = F.cross_entropy(logits, Ytr[ix])
        for p in parameters:
            p.grad = None
        loss.backward()
        lr = 0.1 if i < 100000 else 0.01
        for p in parameters:
            p.data += -lr * p.grad
        stepi.append(i)
        lossi.append(loss.log10().item())
    return (time.perf_counter() - t0) / steps


# ----------------------------------------------------------------------------------------------------------------
# (a) our trainer


def lecture2_settings(steps: int):
    from makemore import presets
    from makemore import training as train

    name, config, settings = presets.resolve(None, "lecture2")
    settings.update(steps=steps, eval_interval=10_000)
    return name, config, train.TrainConfig(**settings)


def ours(corpus, steps: int) -> float:
    """One `makemore.train.train` run of the lecture2 preset; seconds per step (the whole call)."""
    from makemore import training as train

    name, config, cfg = lecture2_settings(steps)
    out = tempfile.mkdtemp(prefix="mlp_speed_")
    try:
        with open(os.devnull, "w") as devnull, contextlib.redirect_stderr(devnull):  # tqdm writes to stderr
            t0 = time.perf_counter()
            train.train(name, config, corpus, cfg, out, progress=True)
            seconds = time.perf_counter() - t0
    finally:
        shutil.rmtree(out, ignore_errors=True)
    return seconds / steps


def part_speed(data: Path, steps: int, reps: int) -> None:
    import torch

    from makemore import data as mdata

    default_threads = torch.get_num_threads()
    corpus = mdata.load_corpus(str(data), "lines")
    (Xtr, Ytr), _ = lecture_split(data)

    def run_ours(n):
        torch.set_num_threads(default_threads)  # the trainer picks its own thread count (1 for this model)
        return ours(corpus, n)

    def run_bare_1(n):
        torch.set_num_threads(1)
        return bare_loop(Xtr, Ytr, n)

    def run_bare_default(n):
        torch.set_num_threads(default_threads)
        return bare_loop(Xtr, Ytr, n)

    variants = {"ours (1 thread)": run_ours, "bare (1 thread)": run_bare_1,
                f"bare ({default_threads} threads, default)": run_bare_default}
    for fn in variants.values():  # warm-up: allocator, kernels, page cache
        fn(500)
    times: dict[str, list[float]] = {k: [] for k in variants}
    names = list(variants)
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            times[k].append(variants[k](steps))
        print(f"rep {r + 1}/{reps}: " + ", ".join(f"{k} {times[k][-1] * 1e6:.1f}" for k in names) + " us/step",
              flush=True)
    torch.set_num_threads(default_threads)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\nper-step time, median of {reps} interleaved runs of {steps} steps (lecture2: mlp 3/10/200, "
          f"SGD 0.1, batch 32):")
    for k in names:
        print(f"  {k:28s} {med[k] * 1e6:8.1f} us/step   (runs: "
              + ", ".join(f"{t * 1e6:.1f}" for t in times[k]) + ")")
    base = med["bare (1 thread)"]
    print(f"  ratio ours / bare (1 thread): {med['ours (1 thread)'] / base:.3f}  (goal <= 1.10)")
    print(f"  ratio ours / bare ({default_threads} threads): "
          f"{med['ours (1 thread)'] / med[names[2]]:.3f}")
    print(f"  ratio bare {default_threads} threads / bare 1 thread: {med[names[2]] / base:.3f}")


def part_profile(data: Path, steps: int) -> None:
    import cProfile
    import pstats

    from makemore import data as mdata

    corpus = mdata.load_corpus(str(data), "lines")
    ours(corpus, 500)
    prof = cProfile.Profile()
    prof.enable()
    per_step = ours(corpus, steps)
    prof.disable()
    print(f"ours under cProfile: {per_step * 1e6:.1f} us/step (cProfile inflates Python-level costs)")
    stats = pstats.Stats(prof).sort_stats("tottime")
    stats.print_stats(30)
    stats.sort_stats("cumulative").print_stats(40)


# ----------------------------------------------------------------------------------------------------------------
# (c) time to val 2.17


def _watch(cmd: list[str], env: dict[str, str], pattern: re.Pattern, cwd: str | None, timeout: float):
    """Run cmd, timestamp its stdout lines; stop it at the first held-out loss <= TARGET.
    Returns (seconds from launch to that line or None, [(seconds, step, loss)], seconds to the first step)."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env, cwd=cwd,
                            bufsize=1)
    evals: list[tuple[float, int, float]] = []
    hit = first_step = None
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter() - t0
            if first_step is None and (line.startswith("step 0 ") or line.startswith("START")):
                first_step = now
            m = pattern.search(line)
            if m:
                step, loss = int(m.group(1)), float(m.group(2))
                evals.append((now, step, loss))
                if loss <= TARGET:
                    hit = now
                    break
            if now > timeout:
                break
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return hit, evals, first_step


def _s(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


KARPATHY_EVAL = re.compile(r"^step (\d+) train loss: \S+ test loss: (\S+)")
OURS_EVAL = re.compile(r"^EVAL step (\d+) val (\S+)")


def ours_child(argv: list[str]) -> int:
    """`makemore train ...` with train.evaluate wrapped to print each val loss the moment it is computed."""
    from makemore import cli
    from makemore import training as train

    evaluate, steps = train.evaluate, [0]

    def counting(info):
        steps[0] = info.step + 1

    def timed(model, examples, *args, **kwargs):
        loss = evaluate(model, examples, *args, **kwargs)
        print(f"EVAL step {steps[0]} val {loss:.6f}", flush=True)
        return loss

    inner = train.train

    def train_wrapper(*args, **kwargs):
        print("START", flush=True)
        kwargs["callbacks"] = [*kwargs.get("callbacks", ()), counting]
        return inner(*args, **kwargs)

    train.evaluate, train.train = timed, train_wrapper
    return cli.main(argv)


def part_ttt(data: Path, karpathy: Path, pythonpath: str, reps: int, timeout: float) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    kenv = {**env, "PYTHONPATH": os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH", "")) if p)}
    out = Path(tempfile.mkdtemp(prefix="ttt_"))
    runs = {
        "karpathy mlp": ([sys.executable, "-u", str(karpathy), "-i", str(data), "-o", str(out / "km"), "--type",
                          "mlp", "-n", "0", "--max-steps", "100000"], kenv, KARPATHY_EVAL, str(karpathy.parent)),
        "ours best, eval 250": ([sys.executable, "-u", __file__, "--ours-child", "train", "--preset", "best",
                                 "--data", str(data), "--out", str(out / "best250"), "--force", "--samples", "0",
                                 "--eval-interval", "250"], env, OURS_EVAL, None),
        "ours best, eval 500": ([sys.executable, "-u", __file__, "--ours-child", "train", "--preset", "best",
                                 "--data", str(data), "--out", str(out / "best500"), "--force", "--samples", "0",
                                 "--eval-interval", "500"], env, OURS_EVAL, None),
    }
    results: dict[str, list] = {k: [] for k in runs}
    names = list(runs)
    for r in range(reps):
        order = names[r % len(names):] + names[:r % len(names)]
        for k in order:
            cmd, e, pat, cwd = runs[k]
            hit, evals, first = _watch(cmd, e, pat, cwd, timeout)
            results[k].append((hit, evals, first))
            trail = ", ".join(f"{s}:{v:.4f}@{t:.1f}s" for t, s, v in evals)
            reached = f"{hit:.1f} s" if hit else "not reached"
            print(f"rep {r + 1} {k}: {reached} (training starts at {_s(first)} s; evals step:loss@s {trail})",
                  flush=True)
    shutil.rmtree(out, ignore_errors=True)

    def med(k, i):
        vals = [x[i] for x in results[k] if x[i] is not None]
        return statistics.median(vals) if vals else None

    print(f"\ntime to held-out loss <= {TARGET}, one torch thread, median of {reps} interleaved runs:")
    print("  (wall s from process launch; 'train s' from the start of training: karpathy's 'step 0' line, our")
    print("   train() call, so start-up (imports, reading the data; for karpathy also the model) is excluded)")
    for k in names:
        hit, first = med(k, 0), med(k, 2)
        steps = statistics.median([x[1][-1][1] for x in results[k] if x[0] is not None] or [0])
        split = ("its own test split: 1000 random words (torch.randperm, seed 3407), mean of 10 batch means"
                 if k.startswith("karpathy") else "lecture split val: 3,203 words, 22,655 examples, full")
        print(f"  {k:22s} wall {_s(hit)} s, train {_s(hit - first if hit and first else None)} s, at step {steps}"
              f"  [{split}]")
    k0 = med(names[0], 0)
    for k in names[1:]:
        h = med(k, 0)
        if h and k0:
            print(f"  ratio {k} / karpathy: {h / k0:.2f}  (goal <= 0.50)")


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--ours-child":
        return ours_child(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["all", "speed", "ttt", "profile"], default="all")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--steps", type=int, default=20_000)
    p.add_argument("--reps", type=int, default=5, help="speed: interleaved repetitions")
    p.add_argument("--ttt-reps", type=int, default=3, help="ttt: interleaved repetitions")
    p.add_argument("--karpathy", type=Path, default=Path("/tmp/karpathy_makemore/makemore.py"))
    p.add_argument("--pythonpath", default="/tmp/tb_pkgs", help="where tensorboard is installed, for karpathy's")
    p.add_argument("--timeout", type=float, default=900.0)
    args = p.parse_args()
    if not args.data.is_file():
        p.error(f"no data file {args.data}")
    import torch

    print(f"torch {torch.__version__}, {os.cpu_count()} cpus, default threads {torch.get_num_threads()}, "
          f"data {args.data}", flush=True)
    if args.part in ("all", "speed"):
        part_speed(args.data, args.steps, args.reps)
    if args.part == "profile":
        part_profile(args.data, args.steps)
    if args.part in ("all", "ttt"):
        if not args.karpathy.is_file():
            p.error(f"no {args.karpathy}: git --git-dir=<fetched karpathy/makemore> show HEAD:makemore.py > it")
        part_ttt(args.data, args.karpathy, args.pythonpath, args.ttt_reps, args.timeout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
