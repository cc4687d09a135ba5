"""Steps per second of one process against two DDP ranks (gloo, CPU) with the same global batch, interleaved.

    python benchmarks/ddp_scaling.py [--model transformer] [--steps 300] [--reps 3]

Each run is a whole `makemore train` (or `torchrun --nproc_per_node=2 -m makemore train`) process; the rate is
steps / the trainer's own seconds (it prints them), so start-up time is left out. Also prints the peak memory
that a 100 MB text costs beyond a 1 MB one (the same run on both), with --huge.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def run(ranks: int, args: list[str]) -> float:
    cmd = [sys.executable, "-m", "makemore", *args]
    if ranks > 1:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={ranks}", "-m",
               "makemore", *args]
    env = {**os.environ, "OMP_NUM_THREADS": str(max(1, 2 // ranks))}  # two cores in all, either way
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return float(re.search(r"\(([\d.]+) s\)", out).group(1))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", default="transformer")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    rates: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.reps):
            for ranks in (1, 2):
                flags = ["train", "--preset", a.model, "--steps", str(a.steps), "--batch-size", str(a.batch_size),
                         "--eval-interval", str(a.steps), "--eval-max", "2000", "--quiet", "--samples", "0",
                         "--threads", str(max(1, 2 // ranks)), "--out", str(Path(tmp) / f"{ranks}-{rep}")]
                rates[ranks].append(a.steps / run(ranks, flags))
    one, two = statistics.median(rates[1]), statistics.median(rates[2])
    print(f"{a.model}, global batch {a.batch_size}, {a.steps} steps, median of {a.reps}:")
    print(f"  1 process : {one:.1f} steps/s  {[round(r, 1) for r in rates[1]]}")
    print(f"  2 ranks   : {two:.1f} steps/s  {[round(r, 1) for r in rates[2]]}")
    print(f"  ratio 2 ranks / 1 process: {two / one:.2f}")


if __name__ == "__main__":
    main()
