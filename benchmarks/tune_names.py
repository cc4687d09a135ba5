"""`makemore tune` on the lectures' names.txt against the named presets, in the same wall-time budget.

    python benchmarks/tune_names.py --budget 5m                      # the tune, then every preset
    python benchmarks/tune_names.py --budget 30m --presets none      # the tune alone
    python benchmarks/tune_names.py --budget 5m --workers 2 --presets best names-best

The tune runs in this process (makemore.tune.run, into a temporary folder unless --out); its best run is then
evaluated on val and test (the lectures' split). Each preset runs as `python -m makemore train --preset P` in a
child process with the budget as its time limit: one that has not finished by then does not fit the budget and
is reported as such. The goals (issue 24): a 5-minute tune ends below the val of every preset that fits in 5
minutes; a 30-minute tune ends at val <= 1.93. Runs one after another, never side by side on the same cores.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(os.environ.get("MAKEMORE_SHARED_DATA", "/work/shared/data")) / "names.txt"
PRESETS = ["mlp", "best", "lecture2", "lecture5", "wavenet", "rnn", "gru", "lstm", "transformer", "names-best",
           "names-lstm"]


def eval_run(folder: Path) -> dict[str, float]:
    from makemore.batches import examples_for
    from makemore.checkpoint import load_model
    from makemore.training import evaluate

    trained = load_model(folder)
    corpus = trained.corpus()
    return {split: evaluate(trained.model, examples_for(trained.model, corpus.items(split), trained.vocab))
            for split in ("val", "test")}


def curve(study) -> list[tuple[float, float]]:
    """(minutes since the study's first trial started, best val so far) at each finished trial that improved it."""
    done = sorted((t for t in study.trials if t.state.name == "COMPLETE" and t.value is not None),
                  key=lambda t: t.datetime_complete)
    start = min(t.datetime_start for t in study.trials if t.datetime_start is not None)
    points, best = [], float("inf")
    for t in done:
        if t.value < best:
            best = t.value
            points.append((round((t.datetime_complete - start).total_seconds() / 60, 2), round(best, 4)))
    return points


def run_preset(preset: str, data: Path, budget: float, root: Path) -> dict:
    out = root / preset
    cmd = [sys.executable, "-m", "makemore", "train", "--preset", preset, "--data", str(data), "--out", str(out),
           "--quiet", "--samples", "0"]
    start = time.perf_counter()
    try:
        subprocess.run(cmd, check=True, timeout=budget, capture_output=True)
    except subprocess.TimeoutExpired:
        return {"preset": preset, "fits": False, "seconds": round(time.perf_counter() - start, 1)}
    return {"preset": preset, "fits": True, "seconds": round(time.perf_counter() - start, 1), **eval_run(out)}


def main() -> None:
    import logging

    from makemore import tune

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--budget", default="5m")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--out", type=Path, help="the study's folder (default: a temporary one)")
    ap.add_argument("--presets", nargs="*", default=PRESETS, help="presets to compare ('none': no preset)")
    args = ap.parse_args()
    budget = tune.parse_budget(args.budget)
    log = logging.getLogger("makemore")
    log.addHandler(logging.StreamHandler())
    log.setLevel(logging.INFO)
    log.propagate = False
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        out = args.out or root / "tune"
        start = time.perf_counter()
        summary = tune.run(str(args.data), budget, out, workers=args.workers)
        wall = time.perf_counter() - start
        best = summary.study.best_trial
        result = {"budget_s": budget, "workers": args.workers, "wall_s": round(wall, 1),
                  "trials": len(summary.study.trials),
                  "pruned": sum(t.state.name == "PRUNED" for t in summary.study.trials),
                  "best_trial": best.number, "best_family": best.params["family"], "best_params": best.params,
                  "best_retrains": best.user_attrs.get("final"), "best_seconds": best.user_attrs.get("seconds"),
                  "curve_minutes_val": curve(summary.study), **eval_run(summary.best)}
        print(json.dumps({"tune": result}), flush=True)
        presets = [] if args.presets == ["none"] else args.presets
        rows = [run_preset(p, args.data, budget, root) for p in presets]
        for row in rows:
            print(json.dumps(row), flush=True)
    fitting = [r for r in rows if r["fits"]]
    print(f"tune ({args.budget}, {args.workers} worker(s)): val {result['val']:.4f} test {result['test']:.4f} "
          f"({result['best_family']}, trial {result['best_trial']} of {result['trials']}, {result['pruned']} pruned)")
    for r in rows:
        print(f"  {r['preset']:12s} " + (f"val {r['val']:.4f} test {r['test']:.4f} {r['seconds']:.0f} s" if r["fits"]
                                         else f"did not finish in {args.budget}"))
    if fitting:
        beaten = all(result["val"] < r["val"] for r in fitting)
        print(f"below every preset that fits: {'yes' if beaten else 'no'}")


if __name__ == "__main__":
    main()
