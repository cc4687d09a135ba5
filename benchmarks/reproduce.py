"""Reproduce the lectures' runs and the `best` preset end to end on the lectures' names.txt.

    python benchmarks/reproduce.py                    # every preset below, then the 2-D embedding figure
    python benchmarks/reproduce.py --only lecture2    # one of them (lecture2-2d: the figure)

Each preset is trained by the command line tool, exactly as a user would:
    makemore train --preset X --data names.txt --out /tmp/repro/X --force --quiet --samples 0
then its LAST weights are evaluated on the full train and val splits (`makemore.train.evaluate`). Wall time is
the whole command (start-up, training, loss.png); "trainer s" is what the trainer itself reports.
The figure: `makemore plot embedding --out /tmp/repro/lecture2-2d --file benchmarks/figures/embedding_2d.png`.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

DEFAULT_DATA = Path(os.environ.get("MAKEMORE_SHARED_DATA", "/work/shared/data")) / "names.txt"
FIGURE = Path(__file__).resolve().parent / "figures" / "embedding_2d.png"
FIGURE_MAX_BYTES = 200_000

# preset -> (reference train, reference val, tolerance, where the reference comes from); None: report only.
# Lecture 3's references are its notebook's "loss log" (nn-zero-to-hero, makemore_part3_bn.ipynb):
#   original 2.1245 / 2.1682; fix softmax confidently wrong 2.07 / 2.13; fix tanh saturation 2.0356 / 2.1027;
#   semi-principled "kaiming init" 2.0377 / 2.1070 (= our `scaled` init); add batch norm 2.0668 / 2.1048.
TARGETS: dict[str, tuple[float | None, float | None, float | None, str]] = {
    "lecture2": (2.1260, 2.1701, 0.02, "lecture makemore 2 notebook"),
    "lecture3-init": (2.0377, 2.1070, 0.02, "lecture 3 loss log, kaiming init"),
    "lecture3-bn": (2.0668, 2.1048, 0.02, "lecture 3 loss log, batch norm"),
    "lecture3-deep": (None, None, None, "report only"),
    "best": (None, 2.10, None, "target: val <= 2.10 in < 180 s wall"),
}
BEST_MAX_SECONDS = 180.0
FIGURE_PRESET = "lecture2-2d"


def makemore(*args: str) -> list[str]:
    return [sys.executable, "-m", "makemore", *args]


def run(cmd: list[str]) -> tuple[float, str]:
    print("$ " + " ".join(cmd), flush=True)
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds, proc.stdout


def train_preset(preset: str, data: Path, root: Path, extra: list[str]) -> tuple[Path, float, float | None]:
    out = root / preset
    seconds, stdout = run(makemore("train", "--preset", preset, "--data", str(data), "--out", str(out), "--force",
                                   "--quiet", "--samples", "0", *extra))
    m = re.search(r"\(([\d.]+) s\)", stdout)
    return out, seconds, float(m.group(1)) if m else None


def final_losses(out: Path, data: Path) -> dict[str, float]:
    from makemore.batches import examples_for
    from makemore.checkpoint import load_model
    from makemore.data import load_corpus
    from makemore.training import evaluate

    loaded = load_model(out, "last")
    corpus = load_corpus(str(data), loaded.ckpt.data["mode"], vocab=loaded.vocab)
    return {s: evaluate(loaded.model, examples_for(loaded.model, corpus.items(s), loaded.vocab))
            for s in ("train", "val")}


def check(preset: str, losses: dict[str, float], wall: float) -> str:
    ref_train, ref_val, tol, _ = TARGETS[preset]
    if preset == "best":
        ok = losses["val"] <= ref_val and wall < BEST_MAX_SECONDS  # type: ignore[operator]
        return "PASS" if ok else "FAIL"
    if tol is None:
        return "-"
    ok = all(abs(losses[s] - ref) <= tol for s, ref in (("train", ref_train), ("val", ref_val)) if ref is not None)
    return "PASS" if ok else "FAIL"


def figure(data: Path, root: Path) -> None:
    out, wall, trainer_s = train_preset(FIGURE_PRESET, data, root, [])
    losses = final_losses(out, data)
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    run(makemore("plot", "embedding", "--out", str(out), "--file", str(FIGURE)))
    size = FIGURE.stat().st_size
    print(f"{FIGURE_PRESET}: train {losses['train']:.4f}, val {losses['val']:.4f}, wall {wall:.1f} s "
          f"(trainer {trainer_s} s); figure {FIGURE} {size / 1000:.0f} kB "
          f"({'ok' if size < FIGURE_MAX_BYTES else 'TOO BIG'}: limit {FIGURE_MAX_BYTES // 1000} kB)", flush=True)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", choices=[*TARGETS, FIGURE_PRESET], help="run one preset (lecture2-2d: the figure)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--root", type=Path, default=Path("/tmp/repro"), help="where the checkpoints go")
    p.add_argument("--no-figure", action="store_true", help="skip the lecture2-2d figure")
    p.add_argument("extra", nargs=argparse.REMAINDER,
                   help="after --: flags passed to every `makemore train` (e.g. -- --set n_hidden=300)")
    args = p.parse_args()
    if not args.data.is_file():
        p.error(f"no data file {args.data}")
    extra = [a for a in args.extra if a != "--"]
    presets = [args.only] if args.only else list(TARGETS)
    rows = []
    for preset in presets:
        if preset == FIGURE_PRESET:
            continue
        out, wall, trainer_s = train_preset(preset, args.data, args.root, extra)
        losses = final_losses(out, args.data)
        verdict = check(preset, losses, wall)
        rows.append((preset, losses, wall, trainer_s, verdict))
        print(f"{preset}: train {losses['train']:.4f}, val {losses['val']:.4f}, wall {wall:.1f} s "
              f"(trainer {trainer_s} s) {verdict}", flush=True)
    if rows:
        print("\n| preset | train | val | reference (train / val) | wall s | trainer s | check |")
        print("|---|---|---|---|---|---|---|")
        for preset, losses, wall, trainer_s, verdict in rows:
            ref_train, ref_val, tol, where = TARGETS[preset]
            ref = " / ".join("-" if r is None else f"{r:.4f}" for r in (ref_train, ref_val))
            ref += f" ± {tol}" if tol else ""
            print(f"| {preset} | {losses['train']:.4f} | {losses['val']:.4f} | {ref} ({where}) | {wall:.1f} | "
                  f"{trainer_s} | {verdict} |")
    if (args.only is None and not args.no_figure) or args.only == FIGURE_PRESET:
        figure(args.data, args.root)
    return 0 if all(r[-1] != "FAIL" for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
