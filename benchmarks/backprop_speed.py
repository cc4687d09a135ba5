"""One training step of the lecture-4 network with hand-derived gradients against one with autograd, same run.

The network is the lecture4 preset's (mlp-manual, n_hidden 200, batch 32, one torch thread as the trainer uses
for small models). A step is what the trainer does: draw a batch, clear the gradients, compute them, SGD update.

- manual (fused): ManualMLP.forward_backward under torch.no_grad(), the trainer's path for this model;
- autograd: the same model's forward, F.cross_entropy, loss.backward();
- manual (piecewise): exercise 1's forward through every intermediate and its line-by-line backward.

The variants run interleaved in --reps rounds of --steps steps each, from the same weights and batches;
the medians over rounds are compared.

Usage:  python benchmarks/backprop_speed.py [--steps 2000] [--reps 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time

import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--data", default="../shared/data/names.txt")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from makemore import backprop, models, presets
    from makemore.batches import ContextExamples as Examples
    from makemore.data import load_corpus
    from makemore.training import loss_fn

    corpus = load_corpus(args.data)
    name, config, _ = presets.resolve(None, "lecture4")
    examples = Examples(corpus.items("train"), corpus.vocab, config["block_size"])
    model = models.build(name, models.make_config(name, vocab_size=corpus.vocab.size, **config))
    params = list(model.parameters())
    start = [p.detach().clone() for p in params]
    lr = 0.1

    def update() -> None:
        with torch.no_grad():
            for p in params:
                p.add_(p.grad, alpha=-lr)

    def manual(X, Y):
        with torch.no_grad():
            return model.forward_backward(X, Y)

    def autograd(X, Y):
        loss = loss_fn(model(X), Y)
        loss.backward()
        return loss

    def piecewise(X, Y):
        with torch.no_grad():
            p = model.params()
            t = backprop.forward(p, X, Y)
            d = backprop.backward(p, X, Y, t)
            for k in backprop.PARAMS:
                getattr(p, k).grad = d[k]
        return t["loss"]

    variants = {"manual (fused)": manual, "autograd": autograd, "manual (piecewise)": piecewise}
    times: dict[str, list[float]] = {k: [] for k in variants}
    last: dict[str, float] = {}
    for _ in range(args.reps):
        for label, fn in variants.items():
            with torch.no_grad():
                for p, s in zip(params, start, strict=True):
                    p.copy_(s)
            gen = torch.Generator().manual_seed(42)
            t0 = time.perf_counter()
            for _ in range(args.steps):
                X, Y = examples.random_batch(32, gen)
                for p in params:
                    p.grad = None
                loss = fn(X, Y)
                update()
            times[label].append((time.perf_counter() - t0) / args.steps * 1e6)
            last[label] = loss.item()

    print(f"python {platform.python_version()}, torch {torch.__version__}, {args.threads} thread(s), {_cpu()}")
    print(f"lecture4 network ({sum(p.numel() for p in params):,} parameters), batch 32, {args.steps} steps x "
          f"{args.reps} interleaved rounds; medians")
    med = {k: statistics.median(v) for k, v in times.items()}
    for label in variants:
        print(f"  {label:20s} {med[label]:7.1f} us/step   (rounds: {', '.join(f'{t:.0f}' for t in times[label])};"
              f" loss after the last step {last[label]:.6f})")
    print(f"manual (fused) / autograd = {med['manual (fused)'] / med['autograd']:.2f}")
    print(f"manual (piecewise) / autograd = {med['manual (piecewise)'] / med['autograd']:.2f}")
    return 0


def _cpu() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown cpu"


if __name__ == "__main__":
    sys.exit(main())
