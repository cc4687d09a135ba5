"""How long each command takes to give its answer on a tiny run (mostly start-up: imports, loading the checkpoint),
beside `python -c "import torch"`, the floor that every command that touches a model pays.

    python benchmarks/startup.py --rounds 5 [--tree OTHER_CHECKOUT ...]

Each --tree is another checkout (its src/ goes first on PYTHONPATH), run interleaved with this one round by round,
so that both meet the same load; the figures are medians and the ratio to `import torch` in the same rounds. For
where the time goes: python -X importtime -m makemore sample --out RUN 2> imports.txt. Run by hand, never in CI.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]


def commands(run: Path) -> dict[str, list[str]]:
    return {"--help": ["--help"], "models": ["models"], "sample": ["sample", "--out", str(run), "-n", "3"],
            "eval": ["eval", "--out", str(run)]}


def seconds(cmd: list[str], tree: Path) -> float:
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    start = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    return time.perf_counter() - start


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tree", action="append", default=[], help="another checkout to time beside this one")
    args = ap.parse_args()
    trees = [HERE, *(Path(t).resolve() for t in args.tree)]
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        subprocess.run([sys.executable, "-m", "makemore", "train", "--model", "mlp", "--steps", "20", "--quiet",
                        "--samples", "0", "--out", str(run)], check=True, env={**os.environ,
                       "PYTHONPATH": str(HERE / "src")}, stdout=subprocess.DEVNULL)
        jobs = {("import torch", HERE): [sys.executable, "-c", "import torch"]}
        for tree in trees:
            for name, argv in commands(run).items():
                jobs[(name, tree)] = [sys.executable, "-m", "makemore", *argv]
        times: dict[tuple[str, Path], list[float]] = {job: [] for job in jobs}
        for _ in range(args.rounds):
            for job, cmd in jobs.items():
                times[job].append(seconds(cmd, job[1]))
    floor = statistics.median(times[("import torch", HERE)])
    print(f"{args.rounds} rounds on {os.cpu_count()} CPUs; median (fastest) seconds, and x `import torch`")
    for (name, tree), t in times.items():
        where = "" if tree == HERE else f"  [{tree}]"
        print(f"{name:14s} {statistics.median(t):6.2f} ({min(t):5.2f})  {statistics.median(t) / floor:5.2f}x{where}")


if __name__ == "__main__":
    main()
