"""``makemore backprop check``: the lecture-4 comparison table of hand-derived gradients against autograd."""

from __future__ import annotations

import argparse
import json
from typing import Any

from makemore import flags

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``backprop`` command (subcommand ``check``) to ``subparsers``."""
    p = subparsers.add_parser("backprop", help="lecture 4: gradients derived by hand, checked against autograd",
                              description="The BatchNorm MLP of lecture 4, backpropagated by hand.")
    sub = p.add_subparsers(dest="backprop_command", metavar="COMMAND", required=True)
    c = sub.add_parser("check", help="compare every manual gradient of one batch with autograd's",
                       description="Initialise the lecture's network (n_hidden 64), draw one batch of 32 training "
                       "examples and print, for every intermediate tensor and parameter, whether the hand-derived "
                       "gradient equals autograd's exactly, approximately (torch.allclose), and the largest "
                       "difference; then the fused cross-entropy and BatchNorm gradients.")
    c.add_argument("--data", default="names", help="a UTF-8 text file, or 'names' (bundled, the default)")
    c.add_argument("--mode", default="auto", choices=["auto", "lines", "text"])
    c.add_argument("--batch-size", type=flags.number_in(int, 2, 1 << 20), default=32)
    c.add_argument("--seed", type=flags.seed, default=2147483647, help="the generator of the weights, then the batch")
    c.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    c.add_argument("--json", action="store_true", help='print {"rows": [{"name", "exact", "approximate", '
                   '"maxdiff"}, ...]}')
    c.set_defaults(func=cmd_check)


def cmd_check(args: argparse.Namespace) -> int:
    import dataclasses

    import torch

    from makemore import backprop
    from makemore.batches import ContextExamples
    from makemore.data import load_corpus
    from makemore.errors import MakemoreError

    if not 2 <= args.batch_size <= 1 << 20:
        raise MakemoreError(f"--batch-size must be between 2 (the batch variance divides by n - 1) and "
                            f"{1 << 20:,}, not {args.batch_size}")
    corpus = load_corpus(args.data, args.mode)
    examples = ContextExamples(corpus.items("train"), corpus.vocab, 3)
    if len(examples) == 0:
        raise MakemoreError(f"no training examples in {corpus.source}")
    g = torch.Generator().manual_seed(args.seed)
    p = backprop.init_params(vocab_size=corpus.vocab.size, generator=g)
    X, Y = examples.random_batch(args.batch_size, g)  # drawn after the weights, from the same generator
    dtype = getattr(torch, args.dtype)
    p = backprop.Params(**{k: v.to(dtype) for k, v in p.tensors().items()})
    rows = backprop.check(p, X, Y)
    if args.json:
        print(json.dumps({"rows": [dataclasses.asdict(r) for r in rows]}))
    else:
        print(backprop.format_table(rows))
    return 0
