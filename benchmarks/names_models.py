"""Every names model with its best preset, side by side with karpathy/makemore's default transformer.

    python benchmarks/names_models.py --karpathy /tmp/karpathy_makemore/makemore.py --pythonpath /tmp/tb_pkgs
    python benchmarks/names_models.py --only names-best transformer --no-karpathy   # a few of ours, no reference

Each of our presets runs as `makemore train --preset P --data names.txt --out DIR --quiet --samples 0` in a child
process, with the trainer's evaluation wrapped to print every val loss the moment it is computed; this script
timestamps the lines as they arrive, so "wall" is seconds from launching the process (imports, reading the data
and every evaluation included) and "train s" is from the start of train() to the end of the run. The losses in
the table are the best checkpoint's (`makemore eval --out DIR --json`: full train, val and test splits of the
lectures' split), and 10 samples come from `makemore sample --out DIR -n 10`.

karpathy/makemore's `makemore.py -i names.txt --type transformer --device cpu --max-steps 15000` (its defaults
otherwise: 4 data workers, torch's default threads) is run the same way from its own folder (never copied here);
its log lines "step N train loss: X test loss: Y" (every 500 steps; its own test split, 1000 random words, 10
batches of 100) give its curve. Its script imports tensorboard: install it somewhere and pass --pythonpath.

The two targets (issue 9): our best names model reaches val <= 1.90 within 600 s of wall time, and reaches 1.9655
(makemore.py's best test loss in the reference run) in at most a fifth of makemore.py's time to 1.9655, both
measured in this one run. The table goes into benchmarks/RESULTS.md between the markers below, the figure (val
loss against wall time, every model) into benchmarks/figures/names_val_vs_time.png, the raw data into
benchmarks/names_models.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_DATA = Path(os.environ.get("MAKEMORE_SHARED_DATA", "/work/shared/data")) / "names.txt"
MODELS = ["bigram", "best", "mlp-deep", "wavenet", "rnn", "gru", "lstm", "bow", "transformer", "names-best"]
BEST = "names-best"
GOAL_VAL, GOAL_SECONDS = 1.90, 600.0
REFERENCE = 1.9655  # makemore.py's best test loss in the reference run (15,000 steps, 338 s)
BEGIN, END = "<!-- names_models:begin -->", "<!-- names_models:end -->"
FIGURE = HERE / "figures" / "names_val_vs_time.png"
KARPATHY_EVAL = re.compile(r"^step (\d+) train loss: \S+ test loss: (\S+)")
OURS_EVAL = re.compile(r"^EVAL step (\d+) val (\S+)")


def child(argv: list[str]) -> int:
    """`makemore train ...`, printing START when training begins and each val loss as it is computed."""
    from makemore import cli
    from makemore.training import loop

    evaluate, step = loop.evaluate, [0]

    def counting(info):
        step[0] = info.step + 1

    def timed(model, examples, *args, **kwargs):
        loss = evaluate(model, examples, *args, **kwargs)
        print(f"EVAL step {step[0]} val {loss:.6f}", flush=True)
        return loss

    inner = loop.train

    def train(*args, **kwargs):
        print("START", flush=True)
        kwargs["callbacks"] = [*kwargs.get("callbacks", ()), counting]
        result = inner(*args, **kwargs)
        print(f"END {result.step} {result.seconds:.3f}", flush=True)
        return result

    loop.evaluate = timed
    import makemore.training as training

    training.train = train
    return cli.main(argv)


def loadavg() -> str:
    try:
        return " ".join(open("/proc/loadavg").read().split()[:3])
    except OSError:
        return "?"


def watch(cmd: list[str], env: dict[str, str], pattern: re.Pattern, cwd: str | None, log: Path) -> dict:
    """Run cmd to its end; timestamp its stdout lines. Returns the curve [(seconds, step, loss)] and more."""
    load_before = loadavg()
    t0 = time.perf_counter()
    with open(log, "w") as errf:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=errf, text=True, env=env, cwd=cwd, bufsize=1)
        curve: list[tuple[float, int, float]] = []
        start = end = None
        last_step = 0
        lines = []
        assert proc.stdout is not None
        for line in proc.stdout:
            now = time.perf_counter() - t0
            lines.append(line)
            if start is None and (line.startswith("START") or line.startswith("step 0 ")):
                start = now
            m = pattern.search(line)
            if m:
                curve.append((now, int(m.group(1)), float(m.group(2))))
            m = re.match(r"^step (\d+) \|", line)
            if m:
                last_step = int(m.group(1)) + 1
            m = re.match(r"^END (\d+)", line)
            if m:
                last_step, end = int(m.group(1)), now
        proc.wait()
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{log.read_text()[-3000:]}")
    return {"curve": curve, "start": start, "end": end if end is not None else wall, "wall": wall,
            "steps": last_step, "load": f"{load_before} -> {loadavg()}", "stdout": "".join(lines)}


def first_at_or_below(curve: list[tuple[float, int, float]], target: float) -> tuple[float, int] | None:
    for t, step, loss in curve:
        if loss <= target:
            return t, step
    return None


def run_ours(preset: str, data: Path, root: Path) -> dict:
    out = root / preset
    cmd = [sys.executable, "-u", __file__, "--child", "train", "--preset", preset, "--data", str(data), "--out",
           str(out), "--force", "--quiet", "--samples", "0"]
    print(f"$ makemore train --preset {preset} ... (load {loadavg()})", flush=True)
    r = watch(cmd, {**os.environ, "PYTHONUNBUFFERED": "1"}, OURS_EVAL, None, root / f"{preset}.log")
    m = re.search(r"\(([\d,]+) parameters\)", (root / f"{preset}.log").read_text())
    r["params"] = int(m.group(1).replace(",", "")) if m else None
    mm = [sys.executable, "-m", "makemore"]
    r["losses"] = json.loads(subprocess.run([*mm, "eval", "--out", str(out), "--json"], capture_output=True,
                                            text=True, check=True).stdout)
    r["samples"] = subprocess.run([*mm, "sample", "--out", str(out), "-n", "10", "--seed", "0"], capture_output=True,
                                  text=True, check=True).stdout.split("\n")[:10]
    del r["stdout"]
    return r


def run_karpathy(script: Path, data: Path, root: Path, pythonpath: str, steps: int, threads: int) -> dict:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": str(threads),
           "PYTHONPATH": os.pathsep.join(p for p in (pythonpath, os.environ.get("PYTHONPATH", "")) if p)}
    cmd = [sys.executable, "-u", str(script), "-i", str(data), "-o", str(root / "karpathy"), "--type", "transformer",
           "--device", "cpu", "--max-steps", str(steps)]
    print(f"$ {' '.join(cmd)} (load {loadavg()})", flush=True)
    r = watch(cmd, env, KARPATHY_EVAL, str(script.parent), root / "karpathy.log")
    m = re.search(r"model #params: (\d+)", r["stdout"])
    r["params"] = int(m.group(1)) if m else None
    r["steps"] = max(r["steps"], steps)
    del r["stdout"]
    return r


def fmt(x, spec=".4f") -> str:
    return "-" if x is None else format(x, spec)


def table(results: dict, karpathy: dict | None) -> str:
    rows = ["| model (preset) | params | steps | wall s | train s | steps/s | train | val | test | best val at |",
            "|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        train_s = r["end"] - (r["start"] or 0)
        best = min(r["curve"], key=lambda c: c[2]) if r["curve"] else None
        at = f"{best[0]:.0f} s (step {best[1]})" if best else "-"
        L = r["losses"]
        rows.append(f"| {name} | {r['params']:,} | {r['steps']:,} | {r['wall']:.1f} | {train_s:.1f} | "
                    f"{r['steps'] / train_s:.1f} | {fmt(L.get('train'))} | {fmt(L.get('val'))} | "
                    f"{fmt(L.get('test'))} | {at} |")
    if karpathy:
        k = karpathy
        train_s = k["end"] - (k["start"] or 0)
        best = min(k["curve"], key=lambda c: c[2])
        rows.append(f"| karpathy/makemore transformer | {k['params']:,} | {k['steps']:,} | {k['wall']:.1f} | "
                    f"{train_s:.1f} | {k['steps'] / train_s:.1f} | - | - | {best[2]:.4f} (its test split, best) | "
                    f"{best[0]:.0f} s (step {best[1]}) |")
    return "\n".join(rows)


def goals(results: dict, karpathy: dict | None) -> list[str]:
    """The two targets, for whichever of our models gets there first (names-best is the preset made for them)."""
    lines = []
    if not results:
        return lines
    hits = {n: first_at_or_below(r["curve"], GOAL_VAL) for n, r in results.items()}
    hits = {n: h for n, h in hits.items() if h}
    if hits:
        n, h = min(hits.items(), key=lambda kv: kv[1][0])
        lines.append(f"- Goal 1, val <= {GOAL_VAL} within {GOAL_SECONDS:.0f} s: {n} at {h[0]:.1f} s wall (step {h[1]}):"
                     f" ratio {h[0] / GOAL_SECONDS:.2f} of the budget. " + ("**Met.**" if h[0] <= GOAL_SECONDS
                                                                            else "**Not met.**"))
    else:
        within = [(c[2], c[0], c[1], n) for n, r in results.items() for c in r["curve"] if c[0] <= GOAL_SECONDS]
        v, t, step, n = min(within)
        lines.append(f"- Goal 1, val <= {GOAL_VAL} within {GOAL_SECONDS:.0f} s: **not reached** by any model; the "
                     f"lowest val within {GOAL_SECONDS:.0f} s is {n}'s {v:.4f} at {t:.1f} s (step {step}).")
    ours = {n: first_at_or_below(r["curve"], REFERENCE) for n, r in results.items()}
    ours = {n: h for n, h in ours.items() if h}
    if karpathy:
        theirs = first_at_or_below(karpathy["curve"], REFERENCE)
        kbest = min(karpathy["curve"], key=lambda c: c[2])
        if theirs is None:
            lines.append(f"- makemore.py did not reach {REFERENCE} in this run (best {kbest[2]:.4f} at "
                         f"{kbest[0]:.1f} s, step {kbest[1]}): its time to {REFERENCE} is more than "
                         f"{karpathy['wall']:.1f} s (its whole run).")
        denom = theirs[0] if theirs else karpathy["wall"]
        for n, h in sorted(ours.items(), key=lambda kv: kv[1][0]):
            r = h[0] / denom
            lines.append(f"- Goal 2, {REFERENCE} in <= 1/5 of makemore.py's time: {n} (val) {h[0]:.1f} s wall "
                         f"(step {h[1]}), makemore.py (its test) "
                         + (f"{theirs[0]:.1f} s (step {theirs[1]})" if theirs else f"> {denom:.1f} s")
                         + f": ratio {'<= ' if not theirs else ''}{r:.3f}; against makemore.py's time to its own "
                         f"best ({kbest[2]:.4f}, {kbest[0]:.1f} s): {h[0] / kbest[0]:.3f} (goal <= 0.200). "
                         + ("**Met.**" if (h[0] / kbest[0] if not theirs else r) <= 0.2 else "**Not met.**"))
        if not ours:
            lines.append(f"- Goal 2: none of ours reached {REFERENCE}.")
        lines.append("- makemore.py's own curve (wall s, step, test loss): "
                     + ", ".join(f"{t:.0f}/{s}/{v:.4f}" for t, s, v in karpathy["curve"]))
    return lines


def plot(results: dict, karpathy: dict | None, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(8, 5))
    ax = fig.add_subplot()
    for name, r in results.items():
        if r["curve"]:
            t, _, v = zip(*r["curve"], strict=True)
            ax.plot(t, v, marker="." if len(t) < 30 else None, label=name, lw=2.2 if name == BEST else 1.2)
    if karpathy and karpathy["curve"]:
        t, _, v = zip(*karpathy["curve"], strict=True)
        ax.plot(t, v, "k--", label="karpathy/makemore transformer (its test)")
    ax.axhline(GOAL_VAL, color="grey", lw=0.8, ls=":")
    ax.axhline(REFERENCE, color="grey", lw=0.8, ls="-.")
    ax.set_xscale("log")
    ax.set_ylim(1.85, 2.6)
    ax.set_xlabel("wall seconds from process launch (log)")
    ax.set_ylabel("held-out loss (nats per character)")
    ax.set_title("names: val loss against wall time, 2 shared CPU cores")
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80, bbox_inches="tight")


def write_results(md: str, path: Path) -> None:
    text = path.read_text()
    block = f"{BEGIN}\n{md}\n{END}"
    if BEGIN in text:
        text = text[:text.index(BEGIN)] + block + text[text.index(END) + len(END):]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.write_text(text)


def report(results: dict, karpathy: dict | None, header: str, args: argparse.Namespace) -> None:
    """The JSON, the figure and the RESULTS.md section, rewritten after every run (a cut-short run keeps its part)."""
    ordered = {m: results[m] for m in MODELS if m in results} | {m: results[m] for m in results if m not in MODELS}
    args.json.write_text(json.dumps({"header": header, "ours": ordered, "karpathy": karpathy}, indent=1) + "\n")
    plot(ordered, karpathy, FIGURE)
    md = [f"Run: {header}.", "", table(ordered, karpathy), "", *goals(ordered, karpathy), "",
          "Load (1/5/15-min load average before -> after each run): "
          + "; ".join(f"{k} {r['load']}" for k, r in [*ordered.items(), *([("karpathy", karpathy)] if karpathy
                                                                          else [])]), "",
          "Samples (10 each, `makemore sample -n 10 --seed 0`, best checkpoint):", ""]
    for name, r in ordered.items():
        md.append(f"- {name}: " + ", ".join(s for s in r["samples"] if s))
    md.append("")
    md.append(f"![val loss against wall time](figures/{FIGURE.name})")
    text = "\n".join(md)
    print("\n" + text, flush=True)
    write_results(text, args.results)


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        return child(sys.argv[2:])
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--only", nargs="*", default=MODELS, help="presets to run (default: all)")
    p.add_argument("--karpathy", type=Path, default=Path("/tmp/karpathy_makemore/makemore.py"))
    p.add_argument("--no-karpathy", action="store_true")
    p.add_argument("--karpathy-steps", type=int, default=15_000)
    p.add_argument("--karpathy-threads", type=int, default=1,
                   help="OMP_NUM_THREADS for makemore.py (1, as our trainer uses for small models: on a shared "
                        "2-core box two OpenMP threads per process stall each other, ~0.4 s a step)")
    p.add_argument("--pythonpath", default="/tmp/tb_pkgs", help="where tensorboard is installed, for karpathy's")
    p.add_argument("--work", type=Path, help="where runs go (default: a new temporary folder)")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md")
    p.add_argument("--json", type=Path, default=HERE / "names_models.json")
    p.add_argument("--report-only", action="store_true", help="rewrite the table and figure from --json")
    args = p.parse_args()
    if args.report_only:
        saved = json.loads(args.json.read_text())
        report(saved["ours"], saved["karpathy"], saved["header"], args)
        return 0
    if not args.data.is_file():
        p.error(f"no data file {args.data}")
    if not args.no_karpathy and not args.karpathy.is_file():
        p.error(f"no {args.karpathy}: check karpathy/makemore out there, or pass --no-karpathy")
    root = args.work or Path(tempfile.mkdtemp(prefix="names_models_"))
    root.mkdir(parents=True, exist_ok=True)
    import torch

    header = (f"torch {torch.__version__}, {os.cpu_count()} cpus, data {args.data}, "
              f"{time.strftime('%Y-%m-%d %H:%M')}, load at start {loadavg()}")
    print(header, flush=True)
    # makemore.py and our best run back to back (the pair the ratio compares), then the rest.
    order = [m for m in args.only if m == BEST] + [m for m in args.only if m != BEST]
    karpathy = None
    results: dict = {}
    for i, name in enumerate(order):
        if i == 0 and not args.no_karpathy:
            karpathy = run_karpathy(args.karpathy, args.data, root, args.pythonpath, args.karpathy_steps,
                                    args.karpathy_threads)
            print(f"  karpathy: {karpathy['wall']:.1f} s, curve {karpathy['curve'][-3:]}", flush=True)
        results[name] = r = run_ours(name, args.data, root)
        print(f"  {name}: {r['wall']:.1f} s, {r['steps']} steps, {r['losses']}, load {r['load']}", flush=True)
        report(results, karpathy, header, args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
