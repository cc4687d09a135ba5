"""Our GPT against karpathy/nanoGPT's CPU recipe on tiny Shakespeare, side by side on this machine.

    python benchmarks/shakespeare_vs_nanogpt.py /tmp/nanoGPT                  # every part, 3 reps of each
    python benchmarks/shakespeare_vs_nanogpt.py /tmp/nanoGPT --parts speed --iters 300 --reps 3
    python benchmarks/shakespeare_vs_nanogpt.py /tmp/nanoGPT --parts sample
    python benchmarks/shakespeare_vs_nanogpt.py /tmp/nanoGPT --parts lockstep --reps 3

NANOGPT is a checkout of github.com/karpathy/nanoGPT (run from a scratch folder, never copied into this repository).
Its data preparation downloads the text, so this script writes the same files itself from the local text (first
90% train, last 10% val, character ids as uint16 in sorted-character order, meta.pkl with the vocabulary) into a
scratch folder that links nanoGPT's scripts. nanoGPT needs numpy, and tiktoken for sample.py's imports.

Parts (each run is a child process: its wall time from launch to exit, peak RSS and minor page faults are the OS's
figures):
- speed (goal 1): nanoGPT's `train.py config/train_shakespeare_char.py --device=cpu --compile=False --eval_iters=20
  --log_interval=1 --block_size=64 --batch_size=12 --n_layer=4 --n_head=4 --n_embd=128 --max_iters=ITERS
  --lr_decay_iters=ITERS --dropout=0.0` against our trainer on the same model (4 layers, 4 heads, 128 wide, block 64,
  no biases, tied weights) and recipe (batch 12, AdamW 1e-3 betas 0.9/0.99, weight decay 0.1 on matrices, warmup
  100 then cosine to 1e-4, clipping at 1.0, an evaluation of 20x12x64 val targets every 250 steps), with bf16
  autocast (matmuls and attention in bf16; weights, LayerNorm and loss in fp32) and the trainer's thread choice
  (for a step of this size: torch's default, both cores here). Time per
  iteration is the median of the per-iteration times each program measures between consecutive iterations
  (nanoGPT prints them; ours are taken by a step callback). Both final models are then scored on the SAME fixed
  set: every consecutive 64-character window of the val split (nanoGPT's own figure is 20 random batches).
  A nanoGPT run with one thread (OMP_NUM_THREADS=1) is interleaved too, so that the thread choice can be told apart
  from the rest.
- lockstep (goal 1 under the same conditions): the same two trainings alive at once but never running together,
  each stopped (SIGSTOP) while the other runs, in turns of --turn seconds (default 2); our run restarts when it ends
  first, so nanoGPT never runs alone. A burst of load from elsewhere on a shared machine then falls on both alike,
  where the sequential runs above put it on whichever ran then. ms/iter: medians of each program's own
  per-iteration times, without the iterations a pause cut; the ratio of one call is the median over --reps calls.
  Also their 10th percentiles: the iterations the machine's other work disturbed least, so their ratio estimates
  the two programs' costs without it (the median ratio includes its share).
- ttt (goal 2): `makemore train --preset cpu` from launch to exit (its last evaluation must reach val <= 1.886 on
  the whole val split) against the nanoGPT run's wall time (same reps).
- sample (goal 3): 500 new characters, temperature 0.8, top-k 200 (sample.py's settings), batch 1, one process:
  nanoGPT's own GPT.generate (what sample.py runs: the whole cropped context again at every token) on its
  checkpoint, at torch's default thread count (as sample.py runs) and at one thread, against our
  sampling.generate with the KV cache on one thread, on a model of the same size; interleaved reps.
  Our cached output is checked to be identical to the uncached path for the same seed. Then sample.py's whole
  job as it runs by default, 10 samples of 500 characters: nanoGPT draws them one after another (10 generate
  calls), ours in one batch (`generate(n=10)`, what `makemore sample -n 10` runs); tokens/s of the whole job.
- MFU: model FLOPs per token as nanoGPT counts them (6N + 12 L C T) x tokens/s, over the best fp32 matmul rate
  measured in this process on one thread (several GEMM shapes, best of many) times the threads the run used.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_DATA = Path(os.environ.get("MAKEMORE_SHARED_DATA", "/work/shared/data")) / "tinyshakespeare.txt"
TARGET = 1.886
SHAPE = {"block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128, "dropout": 0.0, "bias": False}
BATCH, EVAL_TARGETS = 12, 20 * 12 * 64
SAMPLES = 10  # sample.py's num_samples


def nanogpt_flags(iters: int, out_dir: str, compile: bool = False) -> list[str]:
    """The issue's recipe (compile=False); compile=True only for the lockstep part's --nanogpt-compile."""
    return ["config/train_shakespeare_char.py", "--device=cpu", f"--compile={compile}", "--eval_iters=20",
            "--log_interval=1", "--block_size=64", "--batch_size=12", "--n_layer=4", "--n_head=4", "--n_embd=128",
            f"--max_iters={iters}", f"--lr_decay_iters={iters}", "--dropout=0.0", f"--out_dir={out_dir}"]


def our_recipe(iters: int, compile: bool = False) -> dict:
    return {"steps": iters, "batch_size": BATCH, "optimizer": "adamw", "lr": 1e-3, "betas": (0.9, 0.99),
            "weight_decay": 0.1, "schedule": "cosine", "warmup": 100, "min_lr": 1e-4, "grad_clip": 1.0,
            "eval_interval": 250, "eval_max": EVAL_TARGETS, "seed": 1337, "device": "cpu", "autocast": "bf16",
            "compile": compile}


def prepare(nanogpt: Path, text_path: Path, work: Path) -> None:
    """A scratch folder that runs nanoGPT's scripts on our copy of the data, as its prepare.py would lay it out."""
    import numpy as np

    for name in ("train.py", "model.py", "sample.py", "configurator.py", "config"):
        link = work / name
        if not link.exists():
            link.symlink_to(nanogpt.resolve() / name)
    text = text_path.read_text(encoding="utf-8")
    chars = sorted(set(text))
    stoi = {c: i for i, c in enumerate(chars)}
    ids = np.array([stoi[c] for c in text], dtype=np.uint16)
    folder = work / "data" / "shakespeare_char"
    folder.mkdir(parents=True, exist_ok=True)
    n = int(0.9 * len(text))
    ids[:n].tofile(folder / "train.bin")
    ids[n:].tofile(folder / "val.bin")
    with open(folder / "meta.pkl", "wb") as f:
        pickle.dump({"vocab_size": len(chars), "itos": dict(enumerate(chars)), "stoi": stoi}, f)


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> dict:
    """A child process's stdout, wall seconds, peak RSS (MiB), CPU seconds and minor page faults (new pages
    touched: memory the allocator took from the kernel), as the OS accounts them."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}):\n{out[-3000:]}")
    return {"out": out, "wall": wall, "peak_mib": usage.ru_maxrss / 1024, "cpu": usage.ru_utime + usage.ru_stime,
            "page_faults": usage.ru_minflt}


def nanogpt_train(work: Path, iters: int, out_dir: Path, threads: int | None = None, extra: tuple = ()) -> dict:
    env = {"OMP_NUM_THREADS": str(threads)} if threads else None
    r = run([sys.executable, "train.py", *nanogpt_flags(iters, str(out_dir)), *extra], cwd=work, env=env)
    vals = re.findall(r"val loss ([\d.]+)", r["out"])
    return {**r, "ms_per_iter": statistics.median(nanogpt_iter_ms(r["out"])), "own_val": float(vals[-1]),
            "out": None}


def nanogpt_iter_ms(log: str) -> list[float]:
    """The per-iteration times nanoGPT prints, without its first 5 (warm-up), unless that is all there is."""
    found = re.findall(r"^iter (\d+): loss [\d.]+, time ([\d.]+)ms", log, re.M)
    return [float(ms) for it, ms in found if int(it) >= 5] or [float(ms) for _, ms in found]


def load_nanogpt(work: Path, out_dir: Path):
    """nanoGPT's model from its checkpoint in out_dir, in eval mode (its own classes, from the scratch folder;
    the checkpoint is one nanoGPT wrote in this run, so unpickling it is safe)."""
    import torch

    sys.path.insert(0, str(work))
    from model import GPT, GPTConfig

    ckpt = torch.load(out_dir / "ckpt.pt", map_location="cpu", weights_only=False)
    model = GPT(GPTConfig(**ckpt["model_args"]))
    model.load_state_dict({k.removeprefix("_orig_mod."): v for k, v in ckpt["model"].items()})
    return model.eval()


def nanogpt_full_val(work: Path, out_dir: Path, text_path: Path) -> float:
    """nanoGPT's saved model scored on every consecutive 64-character val window (our evaluation set)."""
    import torch

    from makemore.batches import SequenceExamples
    from makemore.data import load_corpus
    from makemore.training.loss import loss_fn

    model = load_nanogpt(work, out_dir)
    corpus = load_corpus(str(text_path), "text")
    val = SequenceExamples(corpus.items("val"), corpus.vocab, 64)
    total, count = 0.0, 0
    with torch.no_grad():
        for X, Y in val.chunks():
            logits, _ = model(X, Y)  # with targets nanoGPT returns every position's logits
            total += float(loss_fn(logits, Y, reduction="sum"))
            count += int((Y >= 0).sum())
    return total / count


def worker_recipe(iters: int, text: str, out: str, live: bool = False, compile: bool = False) -> None:
    """Child process: our trainer on nanoGPT's recipe; prints JSON (per-iteration ms, val on every window), and
    with live=True every step's time as it is taken."""
    import torch

    from makemore import training
    from makemore.batches import examples_for
    from makemore.data import load_corpus

    corpus = load_corpus(text, "text")
    stamps: list[float] = []
    threads: list[int] = []

    def stamp(info: training.StepInfo) -> None:
        stamps.append(time.perf_counter())
        if live and len(stamps) > 5:  # lockstep: the parent may stop this run at any time, so report as it goes
            print(f"step_ms {(stamps[-1] - stamps[-2]) * 1e3:.3f}", flush=True)
        if not threads:
            threads.append(torch.get_num_threads())  # the trainer's choice, in force during training

    cfg = training.TrainConfig.from_dict(our_recipe(iters, compile))
    r = training.train("gpt", SHAPE, corpus, cfg, out, progress=False, callbacks=[stamp])
    dts = [(b - a) * 1e3 for a, b in zip(stamps[4:], stamps[5:], strict=False)]
    val = training.evaluate(r.model, examples_for(r.model, corpus.items("val"), corpus.vocab))
    print(json.dumps({"ms_per_iter": statistics.median(dts), "val": val, "train_seconds": r.seconds,
                      "threads": threads[0]}))


def our_worker(kind: str, iters: int, text: Path, out: Path, compile: bool = False) -> list[str]:
    """The command of a child running worker_recipe: kind "recipe" (JSON at the end) or "live" (each step too)."""
    return [sys.executable, __file__, "--worker", kind, "--iters", str(iters), "--data", str(text), "--out",
            str(out), *(["--ours-compile"] if compile else [])]


def ours_train(iters: int, text: Path, out: Path) -> dict:
    r = run(our_worker("recipe", iters, text, out))
    return {**r, **json.loads(r["out"].strip().splitlines()[-1]), "out": None}


def lockstep(work: Path, text: Path, iters: int, turn_s: float, rep: int, threads: int | None,
             compiled: tuple[bool, bool] = (False, False)) -> dict:
    """Goal 1 with both programs under the same conditions of a shared machine: nanoGPT's run and ours are alive
    at the same time but never run together. Each is stopped (SIGSTOP) while the other runs, in turns of turn_s
    seconds, so a burst of load from elsewhere falls on both alike instead of on whichever ran then. When our run
    ends first it starts again, so nanoGPT never runs alone; ours is killed when nanoGPT's ends. ms/iter: the
    median of each program's own per-iteration times from those turns, without the iterations a pause cut
    (longer than half a turn: one or two a turn). compiled: torch.compile for (nanoGPT, ours), both off in
    the issue's recipe."""
    import signal

    logs = {name: work / f"lockstep-{name}-{rep}.log" for name in ("nanogpt", "ours")}
    for log in logs.values():
        log.unlink(missing_ok=True)  # our restarts append to theirs; nothing from an earlier call

    def start(name: str, k: int) -> subprocess.Popen:
        if name == "nanogpt":
            flags = nanogpt_flags(iters, str(work / f"lockstep-nano-{rep}"), compiled[0])
            cmd, cwd = [sys.executable, "train.py", *flags], work
        else:
            cmd, cwd = our_worker("live", iters, text, work / f"lockstep-ours-{rep}-{k}", compiled[1]), None
        env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads and name == "nanogpt" else {})}
        with open(logs[name], "a") as log:
            p = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        p.send_signal(signal.SIGSTOP)
        return p

    procs = {"nanogpt": start("nanogpt", 0), "ours": start("ours", 0)}
    ours_runs, turns = 1, 0
    try:
        while procs["nanogpt"].poll() is None:
            for name in ("nanogpt", "ours"):
                p = procs[name]
                p.send_signal(signal.SIGCONT)
                try:
                    p.wait(timeout=turn_s)
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGSTOP)
                if p.returncode is not None and name == "ours":
                    if p.returncode != 0:
                        raise SystemExit(f"our run failed ({p.returncode}): see {logs['ours']}")
                    procs["ours"] = start("ours", ours_runs)
                    ours_runs += 1
                if procs["nanogpt"].returncode is not None:
                    break
            turns += 1
    finally:  # never leave a stopped child behind (an error, Ctrl-C)
        for p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    if procs["nanogpt"].returncode != 0:
        raise SystemExit(f"nanoGPT failed ({procs['nanogpt'].returncode}): see {logs['nanogpt']}")
    nano_text, ours_text = logs["nanogpt"].read_text(), logs["ours"].read_text()
    nano = nanogpt_iter_ms(nano_text)
    ours = [float(ms) for ms in re.findall(r"^step_ms ([\d.]+)", ours_text, re.M)]
    nano, ours = ([t for t in ts if t < turn_s * 500] for ts in (nano, ours))
    return {**iteration_stats(nano, ours), "turns": turns, "our_runs": ours_runs}


def iteration_stats(nano: list[float], ours: list[float]) -> dict:
    """Medians and their ratio, and the same at the 10th percentile: a program's fast iterations are the ones
    the machine's other work disturbed least (timeit's reasoning for its minimum), so the p10 ratio estimates the
    two programs' cost without that work, where the median ratio includes its share of it."""
    def p10(ts: list[float]) -> float:
        return statistics.quantiles(ts, n=10)[0]

    return {"nanogpt_ms": statistics.median(nano), "ours_ms": statistics.median(ours),
            "ratio": statistics.median(ours) / statistics.median(nano), "iterations": [len(nano), len(ours)],
            "nanogpt_p10_ms": p10(nano), "ours_p10_ms": p10(ours), "ratio_p10": p10(ours) / p10(nano)}


def ours_cpu_preset(text: Path, out: Path) -> dict:
    r = run([sys.executable, "-m", "makemore", "train", "--preset", "cpu", "--data", str(text), "--out", str(out),
             "--force", "--quiet", "--samples", "0"])
    m = re.search(r"step (\d+): train loss [\d.]+, val loss ([\d.]+)", r["out"])
    return {**r, "steps": int(m[1]), "val": float(m[2]), "out": None}


def fp32_peak_gflops(reps: int = 200) -> float:
    import torch

    best, threads = 0.0, torch.get_num_threads()
    torch.set_num_threads(1)
    for m, k, n in ((768, 128, 512), (768, 512, 128), (512, 768, 512), (256, 256, 256)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(reps):
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * m * k * n / (time.perf_counter() - t) / 1e9)
    torch.set_num_threads(threads)
    return best


def flops_per_token(n_params_no_pos: int, n_layer: int, n_embd: int, T: int) -> float:
    return 6 * n_params_no_pos + 12 * n_layer * n_embd * T


def part_sample(work: Path, nano_out: Path, text: Path, reps: int, tokens: int = 500) -> dict:
    import torch

    from makemore import models
    from makemore.data import load_corpus
    from makemore.sampling import generate

    default_threads = torch.get_num_threads()  # nanoGPT's sample.py runs with torch's default; ours with one
    nano = load_nanogpt(work, nano_out)
    corpus = load_corpus(str(text), "text")
    torch.manual_seed(0)
    ours = models.build("gpt", models.make_config("gpt", vocab_size=corpus.vocab.size, **SHAPE)).eval()
    start = torch.tensor([[corpus.vocab.stoi["\n"]]])
    kw = {"temperature": 0.8, "top_k": 200, "max_len": tokens}
    a = generate(ours, corpus.vocab, 1, generator=torch.Generator().manual_seed(1), use_cache=True, **kw)
    b = generate(ours, corpus.vocab, 1, generator=torch.Generator().manual_seed(1), use_cache=False, **kw)
    times: dict[str, list[float]] = {k: [] for k in ("nanogpt", "nanogpt_1thread", "ours", "ours_uncached",
                                                     "nanogpt_job", "ours_job")}
    for _ in range(reps):
        for name, threads in (("nanogpt", default_threads), ("nanogpt_1thread", 1)):
            torch.set_num_threads(threads)
            with torch.no_grad():
                t = time.perf_counter()
                nano.generate(start, tokens, temperature=0.8, top_k=200)
                times[name].append((time.perf_counter() - t) / tokens * 1e3)
        torch.set_num_threads(1)
        for name, cache in (("ours", True), ("ours_uncached", False)):
            t = time.perf_counter()
            generate(ours, corpus.vocab, 1, generator=torch.Generator().manual_seed(1), use_cache=cache, **kw)
            times[name].append((time.perf_counter() - t) / tokens * 1e3)
    # sample.py's whole job, as it runs by default: 10 samples of 500 characters, drawn one after another;
    # `makemore sample -n 10` draws them together in one batch.
    for _ in range(max(1, reps // 3)):
        torch.set_num_threads(default_threads)
        with torch.no_grad():
            t = time.perf_counter()
            for _ in range(SAMPLES):
                nano.generate(start, tokens, temperature=0.8, top_k=200)
            times["nanogpt_job"].append((time.perf_counter() - t) / (SAMPLES * tokens) * 1e3)
        torch.set_num_threads(1)
        t = time.perf_counter()
        generate(ours, corpus.vocab, SAMPLES, generator=torch.Generator().manual_seed(1), use_cache=True, **kw)
        times["ours_job"].append((time.perf_counter() - t) / (SAMPLES * tokens) * 1e3)
    med = {k: statistics.median(v) for k, v in times.items()}
    pairs = {"nanogpt": "ours", "nanogpt_1thread": "ours", "nanogpt_job": "ours_job"}
    speedup = {n: statistics.median(x / o for x, o in zip(times[n], times[ours_name], strict=True))
               for n, ours_name in pairs.items()}
    return {"ms_per_token": med, "tokens_per_s": {k: 1e3 / v for k, v in med.items()},
            "speedup_vs": speedup, "default_threads": default_threads, "cached_equals_uncached": a == b}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("nanogpt", nargs="?", help="a checkout of karpathy/nanoGPT")
    ap.add_argument("--data", default=str(DEFAULT_DATA))
    ap.add_argument("--parts", default="speed,lockstep,ttt,sample")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--iters", type=int, default=2000)
    ap.add_argument("--work", help="scratch folder (default: a new temporary one)")
    ap.add_argument("--nanogpt-threads", type=int, help="OMP_NUM_THREADS for nanoGPT's runs (default: torch's "
                    "default, and a one-thread run beside it); on a loaded machine 1 spares it the spinning threads")
    ap.add_argument("--turn", type=float, default=2.0, help="lockstep part: seconds each program runs while the "
                    "other is stopped")
    ap.add_argument("--ours-compile", action="store_true", help="lockstep part: our trainer with --compile "
                    "(torch.compile; not the issue's recipe, which compiles neither)")
    ap.add_argument("--nanogpt-compile", action="store_true", help="lockstep part: nanoGPT with --compile=True")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker in ("recipe", "live"):
        return worker_recipe(args.iters, args.data, args.out, live=args.worker == "live", compile=args.ours_compile)
    if not args.nanogpt or not (Path(args.nanogpt) / "train.py").is_file():
        raise SystemExit("give the path of a karpathy/nanoGPT checkout (it has train.py)")
    text = Path(args.data)
    work = Path(args.work or tempfile.mkdtemp(prefix="mm-vs-nanogpt-"))
    work.mkdir(parents=True, exist_ok=True)
    prepare(Path(args.nanogpt), text, work)
    parts = args.parts.split(",")
    report: dict = {"load_before": os.getloadavg(), "date": time.strftime("%Y-%m-%d %H:%M"), "iters": args.iters,
                    "nanogpt_threads": args.nanogpt_threads or "torch default"}
    rows: dict[str, list[dict]] = {"nanogpt": [], "nanogpt_1thread": [], "ours": [], "cpu_preset": []}
    if "speed" in parts or "ttt" in parts:
        for rep in range(args.reps):
            order = ["nanogpt"]
            order += ["ours"] if "speed" in parts else []
            order += ["nanogpt_1thread"] if "speed" in parts and args.nanogpt_threads is None else []
            order += ["cpu_preset"] if "ttt" in parts else []
            for name in order if rep % 2 == 0 else order[::-1]:
                out = work / f"{name}-{rep}"
                if name == "nanogpt":
                    r = nanogpt_train(work, args.iters, out, threads=args.nanogpt_threads)
                elif name == "nanogpt_1thread":
                    r = nanogpt_train(work, args.iters, out, threads=1)
                elif name == "ours":
                    r = ours_train(args.iters, text, out)
                else:
                    r = ours_cpu_preset(text, out)
                rows[name].append(r)
                print(name, rep, {k: v for k, v in r.items() if v is not None}, flush=True)
        report["runs"] = rows
        has_ckpt = (work / "nanogpt-0" / "ckpt.pt").exists()  # saved at an evaluation (every 250 iterations)
        nano_val = nanogpt_full_val(work, work / "nanogpt-0", text) if has_ckpt else None
        report["nanogpt_full_val"] = nano_val

        def med(name: str, key: str) -> float:
            return statistics.median(r[key] for r in rows[name])

        def paired(a: str, b: str, key: str) -> float:
            return statistics.median(x[key] / y[key] for x, y in zip(rows[a], rows[b], strict=True))

        from makemore import models

        m = models.build("gpt", models.make_config("gpt", vocab_size=65, **SHAPE))
        n = models.registry.count_parameters(m) - m.wpe.weight.numel()
        fpt = flops_per_token(n, SHAPE["n_layer"], SHAPE["n_embd"], SHAPE["block_size"])
        peak = fp32_peak_gflops()
        tok = BATCH * SHAPE["block_size"]
        summary = {"fp32_peak_gflops_1thread": peak, "params_no_pos": n}
        import torch

        threads = {"nanogpt": args.nanogpt_threads or torch.get_num_threads(), "nanogpt_1thread": 1,
                   "ours": rows["ours"][0]["threads"] if rows["ours"] else 1}
        for name in ("nanogpt", "nanogpt_1thread", "ours"):
            if rows[name]:
                ms = med(name, "ms_per_iter")
                summary[name] = {"ms_per_iter": ms, "tokens_per_s": tok / ms * 1e3, "wall_s": med(name, "wall"),
                                 "peak_mib": med(name, "peak_mib"),
                                 "page_faults_whole_process": med(name, "page_faults"),
                                 "threads": threads[name],  # MFU: against the peak of the cores it used
                                 "mfu_vs_fp32_peak": fpt * tok / ms * 1e3 / 1e9 / (peak * threads[name])}
        if rows["ours"]:
            summary["ours"]["val_full"] = [r["val"] for r in rows["ours"]]
            summary["goal1_ms_ratio_vs_nanogpt"] = paired("ours", "nanogpt", "ms_per_iter")
            if rows["nanogpt_1thread"]:
                summary["goal1_ms_ratio_vs_nanogpt_1thread"] = paired("ours", "nanogpt_1thread", "ms_per_iter")
        summary["nanogpt_val_full"] = nano_val
        summary["nanogpt_own_val"] = [r["own_val"] for r in rows["nanogpt"]]
        if rows["cpu_preset"]:
            summary["cpu_preset"] = {"wall_s": med("cpu_preset", "wall"), "val": [r["val"] for r in rows["cpu_preset"]],
                                     "steps": rows["cpu_preset"][0]["steps"], "peak_mib": med("cpu_preset", "peak_mib")}
            summary["goal2_wall_ratio_vs_nanogpt"] = paired("cpu_preset", "nanogpt", "wall")
        report["summary"] = summary
    if "lockstep" in parts:
        runs = []
        for rep in range(args.reps):
            runs.append(lockstep(work, text, args.iters, args.turn, rep, args.nanogpt_threads,
                                 (args.nanogpt_compile, args.ours_compile)))
            print("lockstep", rep, runs[-1], flush=True)
        report["lockstep"] = {"runs": runs, "goal1_ms_ratio_vs_nanogpt": statistics.median(r["ratio"] for r in runs),
                              "goal1_p10_ratio": statistics.median(r["ratio_p10"] for r in runs)}
    if "sample" in parts:
        nano_out = work / "nanogpt-0"
        if not (nano_out / "ckpt.pt").exists():
            # only a checkpoint of the right size is needed: the speed does not depend on the weights
            nanogpt_train(work, 10, nano_out, extra=("--eval_interval=5",))
        report["sample"] = part_sample(work, nano_out, text, args.reps * 3)
    report["load_after"] = os.getloadavg()
    report.pop("runs", None)
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
