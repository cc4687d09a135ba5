"""How often a finished 2-rank torchrun training fails anyway: many short runs, several at once (the load is
what brings the teardown race out), counting the ones that do not exit 0 and the way they failed.

    python benchmarks/ddp_teardown.py --runs 60 --parallel 3 [--tree OTHER_CHECKOUT ...]

Each --tree is another checkout (its src/ goes first on PYTHONPATH), run interleaved with this one, so that an
old commit and the current one meet the same load. Run by hand, never in CI.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
NAMES = "anna\nbob\ncarla\ndave\nevelyn\nfrank\ngina\nhal\nivy\njon\n"
FLAGS = ["--model", "mlp", "--set", "n_hidden=64", "--batch-size", "4000", "--optimizer", "sgd", "--schedule",
         "constant", "--lr", "0.2", "--eval-interval", "20", "--quiet", "--samples", "0", "--steps", "30"]


def one_run(tree: Path, work: Path, i: int) -> str:
    """'ok', or how the run failed."""
    out = work / f"run-{tree.name}-{i}"
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(tree / "src"))
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m", "makemore",
           "train", "--data", str(work / "few.txt"), *FLAGS, "--out", str(out)]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    except subprocess.TimeoutExpired:
        return "hang (timeout 180 s)"
    if r.returncode == 0 and "step 30:" in r.stdout:
        return "ok"
    if "terminate called without an active exception" in r.stderr:
        return "abort at exit" + ("" if "step 30:" in r.stdout else ", rank 0 killed before it reported")
    return f"exit {r.returncode}: {r.stderr.strip().splitlines()[-1][:120] if r.stderr.strip() else ''}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=60, help="runs per tree")
    ap.add_argument("--parallel", type=int, default=3, help="runs alive at once")
    ap.add_argument("--tree", action="append", default=[], help="another checkout to run beside this one")
    args = ap.parse_args()
    trees = [HERE, *(Path(t).resolve() for t in args.tree)]
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "few.txt").write_text(NAMES)
        jobs = [(tree, i) for i in range(args.runs) for tree in trees]  # interleaved: same load for each tree
        start = time.time()
        with ThreadPoolExecutor(args.parallel) as pool:
            outcomes = list(pool.map(lambda job: (job[0], one_run(job[0], work, job[1])), jobs))
    print(f"{len(jobs)} runs, {args.parallel} at a time, {time.time() - start:.0f} s")
    for tree in trees:
        counts = collections.Counter(o for t, o in outcomes if t == tree)
        failed = args.runs - counts["ok"]
        print(f"{tree}: {failed} of {args.runs} failed" + "".join(
            f"\n  {n} x {how}" for how, n in counts.most_common() if how != "ok"))


if __name__ == "__main__":
    main()
