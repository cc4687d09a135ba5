"""An elastic 2-rank gloo run that loses a rank to kill -9 at a random step, against the same run uninterrupted.

    python benchmarks/elastic.py [--steps 2000] [--eval-interval 200] [--reps 3] [--seed 0]

The elastic run is `torchrun --max-restarts=1 --nproc_per_node=2 -m makemore train ... --resume auto`; once its
progress bar passes a step drawn at random, one rank (0 or 1, drawn too) is killed. Reported per run: the step
the bar showed at the kill (it is redrawn every 0.5 s: the rank was killed at that step or a little after), the
step the restarted group resumed from, the steps done again (at most one --eval-interval), the final val loss of
both runs and the wall time the loss of a rank cost.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
FLAGS = ["--data", "names", "--model", "mlp", "--set", "n_hidden=64", "--batch-size", "32", "--optimizer", "sgd",
         "--schedule", "constant", "--lr", "0.2", "--samples", "0"]


def _ranks(launcher: int) -> dict[int, int]:
    """torchrun's workers, pid by rank (RANK in each child's environment)."""
    pids = {}
    for pid in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        pids[int(next(v for v in env if v.startswith(b"RANK="))[5:])] = int(pid)
    return pids


def final_val(stdout: str) -> float:
    return float(re.findall(r"val loss ([\d.]+)", stdout)[-1])


def straight(out: Path, args: list[str]) -> tuple[float, float]:
    began = time.perf_counter()
    r = subprocess.run([*TORCHRUN, "-m", "makemore", "train", *args, "--quiet", "--out", str(out)],
                       capture_output=True, text=True, check=True)
    return final_val(r.stdout), time.perf_counter() - began


def elastic(out: Path, args: list[str], kill_at: int, rank: int) -> dict:
    cmd = [*TORCHRUN, "--max-restarts=1", "-m", "makemore", "train", *args, "--resume", "auto", "--out", str(out)]
    began = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen, err = {"step": 0, "killed": None}, []

    def read_progress() -> None:  # rank 0's progress bar ("137/2000 [...") and the logs, both on stderr
        for chunk in iter(lambda: p.stderr.read(256), ""):
            err.append(chunk)
            for n in re.findall(r"(\d+)/\d+ \[", chunk):
                seen["step"] = int(n)
                if seen["killed"] is None and int(n) >= kill_at:
                    seen["killed"] = int(n)
                    os.kill(_ranks(p.pid)[rank], signal.SIGKILL)

    reader = threading.Thread(target=read_progress)
    reader.start()
    stdout = p.stdout.read()
    p.wait()
    reader.join()
    log = "".join(err)
    if p.returncode != 0 or seen["killed"] is None:
        sys.exit(f"the elastic run failed (exit {p.returncode}, killed {seen['killed']}):\n{log[-3000:]}")
    resumed = int(re.search(r"resuming from step ([\d,]+)", log).group(1).replace(",", ""))
    return {"killed": seen["killed"], "resumed": resumed, "val": final_val(stdout),
            "seconds": time.perf_counter() - began, "restarted": "restart 1 of at most 1" in log}


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--eval-interval", type=int, default=200)
    p.add_argument("--reps", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args()
    draw = random.Random(a.seed)
    args = [*FLAGS, "--steps", str(a.steps), "--eval-interval", str(a.eval_interval)]
    os.environ["OMP_NUM_THREADS"] = "1"
    print(f"2 gloo ranks, mlp n_hidden=64 on names, {a.steps} steps, a checkpoint every {a.eval_interval}")
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(a.reps):
            kill_at, rank = draw.randrange(a.eval_interval, a.steps - a.eval_interval // 2), draw.randrange(2)
            val0, secs0 = straight(Path(tmp) / f"straight-{rep}", args)
            e = elastic(Path(tmp) / f"elastic-{rep}", args, kill_at, rank)
            lost = e["killed"] - e["resumed"]
            print(f"  rank {rank} killed at step {e['killed']} (drawn {kill_at}), resumed from {e['resumed']}: "
                  f"{lost} steps done again (<= {a.eval_interval}: {lost <= a.eval_interval}); "
                  f"restart logged: {e['restarted']}")
            print(f"    final val {e['val']:.4f} vs {val0:.4f} uninterrupted (|diff| {abs(e['val'] - val0):.4f}); "
                  f"wall {e['seconds']:.1f} s vs {secs0:.1f} s (+{e['seconds'] - secs0:.1f} s)")


if __name__ == "__main__":
    main()
