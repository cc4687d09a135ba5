"""Quality per second on tiny Shakespeare: the char GPT preset `cpu` against the same model on byte-pair tokens
(`cpu-bpe`), in one run, reps interleaved. Losses compare in bits per character of the text (a BPE token stands
for several characters); wall time is each training's own (start-up excluded).

    python benchmarks/bpe_vs_char.py [--data ../shared/data/tinyshakespeare.txt] [--reps 2] [--steps N]

nanoGPT's char recipe (issue 23's reference): val 1.886 nats per character = 2.72 bits per character.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import makemore as mm

DEFAULT_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "tinyshakespeare.txt"


def run(preset: str, data: str, out: Path, steps: int | None) -> tuple[float, float, float]:
    settings = {"steps": steps, "eval_interval": steps} if steps else {}
    r = mm.train(data, preset=preset, out=out, progress=False, force=True, **settings).result
    return r.val_loss.bpc, r.seconds - r.eval_seconds, r.seconds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=str(DEFAULT_DATA))
    p.add_argument("--reps", type=int, default=2)
    p.add_argument("--steps", type=int, help="steps of both (default: the presets', 1300)")
    args = p.parse_args()
    found: dict[str, list[tuple[float, float, float]]] = {"cpu": [], "cpu-bpe": []}
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(args.reps):
            for preset in found:
                found[preset].append(run(preset, args.data, Path(tmp) / preset, args.steps))
                bpc, train_s, all_s = found[preset][-1]
                print(f"rep {rep} {preset:8s} val {bpc:.4f} bits/char, training {train_s:.1f} s "
                      f"(with evaluation {all_s:.1f} s)", flush=True)
    print("\n| preset | val bits/char (median) | training s (median) |\n|---|---|---|")
    for preset, rows in found.items():
        print(f"| {preset} | {statistics.median(r[0] for r in rows):.4f} | "
              f"{statistics.median(r[1] for r in rows):.1f} |")


if __name__ == "__main__":
    main()
