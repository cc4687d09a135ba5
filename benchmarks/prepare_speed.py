"""`store.prepare` against karpathy/nanoGPT's data/shakespeare_char/prepare.py on one large text, side by side.

    python benchmarks/prepare_speed.py /tmp/nanoGPT                       # 1 GB for us, 256 MB for both
    python benchmarks/prepare_speed.py /tmp/nanoGPT --mb 1024 --same-mb 256 --parts char,nanogpt,train --reps 3
    python benchmarks/prepare_speed.py /tmp/nanoGPT --mb 64 --same-mb 64 --parts bpe

NANOGPT is a checkout of github.com/karpathy/nanoGPT (never copied into this repository). The text is tiny
Shakespeare (MAKEMORE_SHARED_DATA/tinyshakespeare.txt) repeated to the size asked, written into a temporary
folder and deleted at the end. Each program is a child process; its wall time, CPU time and peak RSS are the OS's
figures (os.wait4); the ratios take each program's fastest of --reps interleaved runs, by wall time and by CPU
time (which a shared machine's load disturbs less). nanoGPT's script runs from a scratch folder that links it,
with the big file as its input.txt (so it downloads nothing; a stub `requests` module stands in for the import it
does not use then). Its peak memory is about 12 bytes a character (the text, a Python list of ids, then a numpy
copy), so the side-by-side run uses --same-mb (256 MB: ~3 GB for nanoGPT) and ours alone also runs on --mb.

Parts: char (our char tokenizer), bpe (ours, vocabulary --vocab-size, learned from the first 32 M characters,
then all encoded), nanogpt. Throughput is MB of text a second, from launch to exit. train (after char): peak RSS
of the same short GPT run (50 steps, batch 32 of 64 tokens, evaluations of 4096 val tokens) on the --mb store and
on a store of tiny Shakespeare itself (1 MB): the batches' windows are read through np.memmap, so the two should
be within a few MB.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("MAKEMORE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def big_text(folder: Path, mb: int) -> Path:
    """Tiny Shakespeare repeated to `mb` MB (whole copies, the last one cut at a line end)."""
    seed = (SHARED / "tinyshakespeare.txt").read_bytes()
    path = folder / f"shakespeare-{mb}mb.txt"
    size = mb << 20
    with open(path, "wb") as f:
        written = 0
        while written + len(seed) <= size:
            f.write(seed)
            written += len(seed)
        rest = seed[: size - written]
        f.write(rest[: rest.rfind(b"\n") + 1])
    return path


def run(cmd: list[str], cwd: Path | None = None, env: dict | None = None) -> dict:
    """Wall seconds, CPU seconds and peak RSS (MiB) of a child process, as the OS accounts them."""
    start = time.perf_counter()
    p = subprocess.Popen(cmd, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                         stderr=subprocess.STDOUT, text=True)
    out = p.stdout.read()
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{out[-3000:]}")
    return {"wall": wall, "cpu": usage.ru_utime + usage.ru_stime, "peak_mib": usage.ru_maxrss / 1024}


def ours(text: Path, out: Path, tokenizer: str, vocab_size: int) -> dict:
    code = (f"from makemore import store; store.prepare({str(text)!r}, {str(out)!r}, tokenizer={tokenizer!r}, "
            f"vocab_size={vocab_size}, progress=False)")
    return run([sys.executable, "-c", code])


def nanogpt(nanogpt_dir: Path, text: Path, work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    (work / "prepare.py").symlink_to(nanogpt_dir / "data" / "shakespeare_char" / "prepare.py")
    (work / "input.txt").symlink_to(text)
    (work / "requests.py").write_text("")  # imported, unused when input.txt exists
    return run([sys.executable, "prepare.py"], cwd=work, env={"PYTHONPATH": str(work)})  # (the link's folder)


def train_on(store: Path, out: Path) -> dict:
    shape = {"block_size": 64, "n_layer": 2, "n_head": 4, "n_embd": 128}
    code = ("from makemore.data import load_corpus; from makemore.training import TrainConfig, train; "
            f"train('gpt', {shape!r}, load_corpus({str(store)!r}), "
            "TrainConfig(steps=50, batch_size=32, eval_interval=25, eval_max=4096, seed=1), "
            f"{str(out)!r}, progress=False)")
    return run([sys.executable, "-c", code])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("nanogpt", type=Path)
    ap.add_argument("--mb", type=int, default=1024, help="the large file, ours alone")
    ap.add_argument("--same-mb", type=int, default=256, help="the file both programs prepare")
    ap.add_argument("--parts", default="char,bpe,nanogpt")
    ap.add_argument("--vocab-size", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=1, help="runs of each, interleaved")
    ap.add_argument("--tmp", type=Path, default=None, help="where the text and the outputs go (deleted after)")
    args = ap.parse_args()
    parts = args.parts.split(",")
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        tmp = Path(tmp)
        rows = []
        for mb in sorted({args.same_mb, args.mb}):
            text = big_text(tmp, mb)
            for rep in range(args.reps):  # interleaved: a burst of load from elsewhere falls on both programs
                for part in parts:
                    if part == "train" or (part == "nanogpt" and mb != args.same_mb):
                        continue
                    if part == "nanogpt":
                        r = nanogpt(args.nanogpt, text, tmp / f"nanogpt-{mb}-{rep}")
                    else:
                        r = ours(text, tmp / f"{part}-{mb}", part, args.vocab_size)
                    r.update(part=part, mb=mb, mb_s=mb / r["wall"], mb_cpu_s=mb / r["cpu"])
                    rows.append(r)
                    print(f"{part:8s} {mb:6d} MB  {r['wall']:7.1f} s  {r['mb_s']:6.1f} MB/s  CPU {r['cpu']:7.1f} s "
                          f"{r['mb_cpu_s']:6.1f} MB/CPU-s  peak {r['peak_mib']:6.0f} MiB", flush=True)
                    for f in (tmp / f"nanogpt-{mb}-{rep}").glob("*.bin"):
                        f.unlink()
            text.unlink()
        if "train" in parts and "char" in parts:
            small = tmp / "char-1"
            ours(SHARED / "tinyshakespeare.txt", small, "char", args.vocab_size)
            for name, folder in (("1 MB", small), (f"{args.mb} MB", tmp / f"char-{args.mb}")):
                r = train_on(folder, tmp / f"run-{folder.name}")
                print(f"train on the {name} store: {r['wall']:.1f} s, peak {r['peak_mib']:.0f} MiB", flush=True)
        best = {}  # (part, mb) -> the fastest of the reps: the run the machine's other work disturbed least
        for r in rows:
            key = (r["part"], r["mb"])
            if key not in best or r["wall"] < best[key]["wall"]:
                best[key] = r
        base = best.get(("nanogpt", args.same_mb))
        if base is not None:
            for (part, mb), r in best.items():
                if part != "nanogpt":
                    print(f"{part} at {mb} MB against nanoGPT at {base['mb']} MB (fastest of {args.reps}): throughput "
                          f"{r['mb_s'] / base['mb_s']:.1f}x (per CPU second {r['mb_cpu_s'] / base['mb_cpu_s']:.1f}x), "
                          f"peak memory {r['peak_mib'] / base['peak_mib']:.3f}x")

if __name__ == "__main__":
    main()
