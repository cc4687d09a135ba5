"""The `makemore` command: parses arguments, calls the library, prints. Heavy imports (torch, matplotlib) happen
inside the commands so that --help answers at once."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from pathlib import Path
from typing import Any

from makemore import __version__, flags
from makemore.errors import MakemoreError
from makemore.limits import MAX_LEN, MAX_SAMPLES


def _setting(text: str) -> tuple[str, Any]:
    key, value = flags.key_value(text)
    if key == "vocab_size":
        raise argparse.ArgumentTypeError("vocab_size is the data's number of characters: it cannot be set")
    return key, value


TEXTS_APART = "\n---\n"  # between sampled texts, which hold newlines of their own (items: one per line)


def _train_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The training settings given on the command line (the flags generated from TrainConfig's fields)."""
    from makemore.training.config import TrainConfig

    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
            if f.metadata["flag"] is not None and getattr(args, f.name, None) is not None}


def cmd_train(args: argparse.Namespace) -> int:
    import makemore as mm
    from makemore.training import Interrupted

    config = dict(args.set or [])
    if args.smoothing is not None:
        config["smoothing"] = args.smoothing
    before = time.perf_counter() - args.started  # (importing torch and reading the data are in the API's figure)
    try:
        run = mm.train(args.data, args.model, args.preset, args.out, mode=args.mode, config=config,
                       tokenizer=args.tokenizer, vocab_size=args.vocab_size, resume=args.resume, force=args.force,
                       diagnose=args.diagnose, progress=not args.quiet, **_train_settings(args))
    except Interrupted as e:
        print(f"makemore: {e}", file=sys.stderr)
        return e.exit_code
    r = run.result
    r.startup_seconds += before
    if not r.main:  # another rank of a distributed run: rank 0 reports
        return 0
    print(f"step {r.step}: train loss {_fmt(r.train_loss)}, val loss {_fmt(r.val_loss)}")
    print(f"{r.tokens:,} tokens trained at {r.tokens_per_second:,.0f} tokens/s; wall time {_duration(r)}")
    if args.samples:
        samples = run.sample(args.samples, seed=run.settings()["seed"])
        # items one per line; texts (which hold newlines themselves) apart, as `makemore sample -n` shows them
        print(*samples, sep="\n" if run.trained().vocab.boundary else TEXTS_APART)
    return 0


def _duration(r) -> str:
    training = r.seconds - r.eval_seconds
    return (f"{r.startup_seconds + r.seconds:.1f} s (start-up {r.startup_seconds:.1f} s, training {training:.1f} s, "
            f"evaluation {r.eval_seconds:.1f} s)")


def _fmt(x: float | None) -> str:
    """A loss in nats per token, with its bits per character when it knows them (evaluate's Loss)."""
    if x is None:
        return "-"
    bpc = getattr(x, "bpc", None)
    return f"{x:.4f}" if bpc is None else f"{x:.4f} ({bpc:.3f} bits/char)"


def cmd_sample(args: argparse.Namespace) -> int:
    import makemore as mm

    run = mm.load(args.out)
    options = {"prompt": args.prompt, "temperature": args.temperature, "top_k": args.top_k, "max_len": args.max_len,
               "seed": args.seed, "last": args.last}
    text = not run.trained("last" if args.last else "best").vocab.boundary
    if text and args.n in (None, 1) and not args.unique:  # one text: shown as it is made
        for piece in run.stream(**options):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    # several texts are drawn together in one batch (n for about the price of one), printed apart
    print(*run.sample(args.n, unique=args.unique, **options), sep=TEXTS_APART if text else "\n")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    import makemore as mm

    splits = None if args.split == "train,val,test" else [s for s in args.split.split(",") if s]
    losses = mm.load(args.out).evaluate(splits, data=args.data, last=args.last)
    if args.json:  # nats per token by split, and the same in bits per character
        print(json.dumps({**losses, "bpc": {s: getattr(v, "bpc", None) for s, v in losses.items()}}))
    else:
        for s, v in losses.items():
            print(f"{s:5s} {_fmt(v)}")
    return 0


def cmd_diagnose(args: argparse.Namespace) -> int:
    import makemore as mm

    options = {"batch_size": args.batch_size, "probe_steps": args.probe_steps, "seed": args.seed}
    if args.out:
        found = mm.load(args.out).diagnose(args.dir, **options)
    else:
        found = mm.diagnose(args.model, args.preset, args.data, mode=args.mode, config=dict(args.set or []),
                            folder=args.dir or "diagnostics", **options)
    if args.json:
        print(json.dumps(found.to_json()))
    else:
        from makemore import diagnostics

        print(diagnostics.format_table(found.snapshot))
        print(*(f"wrote {p}" for p in found.files), sep="\n", file=sys.stderr)
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    import makemore as mm

    lr, path = mm.lr_find(args.model, args.preset, args.data, out=args.out, mode=args.mode,
                          config=dict(args.set or []), low=args.min, high=args.max, num=args.num, seed=args.seed,
                          file=args.file)
    print(f"suggested lr {lr:.3g} (10^{math.log10(lr):.2f}); plot: {path}")
    return 0


def cmd_prepare(args: argparse.Namespace) -> int:
    import makemore as mm

    path = mm.prepare(args.data, args.out, tokenizer=args.tokenizer or "char", vocab_size=args.vocab_size,
                      progress=not args.quiet)
    print(path)
    return 0


def _tokenizer_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizer", choices=["char", "bpe"],
                   help="char: every character a token (the default, unless a preset names another); bpe: "
                   "byte-level byte-pair encoding")
    p.add_argument("--vocab-size", type=flags.number_in(int, 1, 1 << 31), help="bpe: the number of tokens")


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="a checkpoint directory (default: a freshly initialised model)")
    p.add_argument("--model", help="model name, for a fresh model")
    p.add_argument("--preset", help="preset, for a fresh model")
    p.add_argument("--data", default="names")
    p.add_argument("--mode", default="auto", choices=["auto", "lines", "text"])
    p.add_argument("--set", type=_setting, action="append", metavar="KEY=VALUE")
    p.add_argument("--seed", type=flags.seed, default=0)


def cmd_models(args: argparse.Namespace) -> int:
    from makemore.models import MODELS
    from makemore.presets import PRESETS

    width = max(map(len, [*MODELS, *PRESETS])) + 2
    print("models:")
    for name, entry in MODELS.items():
        print(f"  {name:{width}s}{entry.help}")
    print("presets:")
    for name, p in PRESETS.items():
        print(f"  {name:{width}s}model {p['model']}, {p.get('train', {}).get('steps', '-')} steps")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    import makemore as mm

    if args.what == "counts":
        path = args.file or "counts.png"
        mm.counts_figure(args.data, path)
    else:
        if args.out is None:
            raise MakemoreError(f"plot {args.what} needs --out, the checkpoint directory")
        out = Path(args.out)
        if args.what == "loss":
            from makemore.training.metrics import METRICS

            if not (out / METRICS).is_file():
                raise MakemoreError(f"no {METRICS} in {out}")
            path = args.file or out / "loss.png"
            mm.Run(out).plot_loss(path)
        else:
            from makemore import plots

            trained = mm.load(out).trained()
            C = dict(trained.model.named_parameters()).get("C")
            if C is None:
                raise MakemoreError(f"a {trained.ckpt.model} model has no embedding table C to plot")
            path = plots.embedding_scatter(C, trained.vocab.itos, args.file or out / "embedding.png")
    print(path)
    return 0


_LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"  # what str.splitlines() and terminals break on


def _one_line(text: str) -> str:
    """An error quotes the user's input (a --set key, a path): its line breaks are shown escaped, not obeyed."""
    return text.translate({ord(c): c.encode("unicode_escape").decode() for c in _LINE_BREAKS})


class _Parser(argparse.ArgumentParser):
    """A bad flag is one line too, like every other input error (argparse would print the usage first)."""

    def error(self, message: str):
        self.exit(2, f"makemore: error: {self.prog}: {_one_line(message)} (see {self.prog} --help)\n")


def _resume(text: str) -> str:
    if text != "auto":
        raise argparse.ArgumentTypeError(f"--resume takes no value or 'auto', not {text!r}")
    return text


def _add_train_flags(p: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field, with the help written beside the field; unset flags stay None (the
    preset's or the run's value is kept)."""
    import typing

    from makemore.training.config import TrainConfig

    hints = typing.get_type_hints(TrainConfig)
    for f in dataclasses.fields(TrainConfig):
        flag = f.metadata["flag"]
        if flag is None:
            continue
        name = "--" + f.name.replace("_", "-")
        if hints[f.name] is bool:
            p.add_argument(name, action="store_true", default=None, help=f.metadata["help"])
        else:
            p.add_argument(name, default=None, help=f.metadata["help"], **{"type": hints[f.name], **flag})


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="makemore", description="Character-level language models: "
                                "train on any text, then make more of it.")
    p.add_argument("--version", action="version", version=f"makemore {__version__}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model and save it to --out")
    t.add_argument("--model", help="model name (see `makemore models`); default mlp")
    t.add_argument("--preset", help="a named recipe of model and training settings (see `makemore models`)")
    t.add_argument("--data", help="a UTF-8 text file, 'names' (bundled, the default), or a folder `makemore "
                   "prepare` made")
    t.add_argument("--mode", default="auto", choices=["auto", "lines", "text"],
                   help="lines: one item per line; text: one continuous text (default: detected)")
    t.add_argument("--out", help="checkpoint directory (default runs/PRESET)")
    _tokenizer_flags(t)
    t.add_argument("--resume", nargs="?", const=True, default=False, type=_resume,
                   help="continue the run in --out; --resume auto: continue it if there is one, else start one")
    t.add_argument("--force", action="store_true", help="replace a checkpoint already in --out")
    _add_train_flags(t)
    t.add_argument("--smoothing", type=float, help="bigram-counts: add-k smoothing")
    t.add_argument("--set", type=_setting, action="append", metavar="KEY=VALUE",
                   help="a model setting, e.g. --set n_hidden=300")
    t.add_argument("--samples", type=flags.number_in(int, 0, 1_000_000), default=10,
                   help="samples to print after training (default 10)")
    t.add_argument("--diagnose", action="store_true", help="record update ratios, write diagnostic plots")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate new text from a trained model")
    s.add_argument("--out", required=True, help="checkpoint directory")
    s.add_argument("-n", type=flags.number_in(int, 1, MAX_SAMPLES),
                   help="how many samples (default 20 items, or 1 text, streamed; several texts are "
                   "drawn together in one batch and printed when done, so with the same seed the first of them "
                   "differs from the single streamed text)")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--top-k", type=int)
    s.add_argument("--prompt", default="", help="text the samples start with")
    s.add_argument("--seed", type=flags.seed, default=0)
    s.add_argument("--unique", action="store_true", help="drop samples that appear in the training data")
    s.add_argument("--max-tokens", "--max-len", type=flags.number_in(int, 0, MAX_LEN), dest="max_len",
                   help="new characters per sample at most (default 64 for items, 500 for text)")
    s.add_argument("--last", action="store_true", help="use the last weights, not the best on val")
    s.set_defaults(func=cmd_sample)

    e = sub.add_parser("eval", help="mean loss (nats per character) of a trained model on each split")
    e.add_argument("--out", required=True, help="checkpoint directory")
    e.add_argument("--data", help="another file to evaluate on (default: the training file)")
    e.add_argument("--split", default="train,val,test", help="comma-separated splits, or 'all'")
    e.add_argument("--json", action="store_true", help="print one JSON object {split: loss}")
    e.add_argument("--last", action="store_true", help="use the last weights, not the best on val")
    e.set_defaults(func=cmd_eval)

    pr = sub.add_parser("prepare", help="tokenize a large text once into a store that training reads from disk",
                        description="Stream --data once, in chunks, into --out/train.bin and val.bin (the token ids) "
                        "and store.json; `makemore train --data OUT` then reads random windows through a memory "
                        "map, so memory does not grow with the corpus.")
    pr.add_argument("--data", required=True, help="a UTF-8 text file")
    pr.add_argument("--out", required=True, help="the store's folder")
    _tokenizer_flags(pr)
    pr.add_argument("--quiet", action="store_true", help="no progress bar")
    pr.set_defaults(func=cmd_prepare)

    m = sub.add_parser("models", help="list the models and presets")
    m.set_defaults(func=cmd_models)

    pl = sub.add_parser("plot", help="figures: counts (bigram heat map), loss (curve of a run), embedding")
    pl.add_argument("what", choices=["counts", "loss", "embedding"])
    pl.add_argument("--data", default="names", help="counts: the text file (default: bundled names)")
    pl.add_argument("--out", help="loss, embedding: the checkpoint directory")
    pl.add_argument("--file", help="the PNG to write")
    pl.set_defaults(func=cmd_plot)

    d = sub.add_parser("diagnose", help="activation, gradient and update statistics, as plots and a table")
    _model_flags(d)
    d.add_argument("--batch-size", type=flags.number_in(int, 2, 1 << 20), default=32)
    d.add_argument("--probe-steps", type=flags.number_in(int, 0, 1_000_000), default=200,
                   help="optimiser steps to measure update ratios")
    d.add_argument("--dir", help="where to write the PNGs (default OUT/diagnostics)")
    d.add_argument("--json", action="store_true", help="the statistics as JSON on stdout")
    d.set_defaults(func=cmd_diagnose)

    lf = sub.add_parser("lr-find", help="the lecture's learning-rate search: one step per rate, plotted")
    _model_flags(lf)
    lf.add_argument("--min", type=flags.number_in(float, -30, 30), default=-3.0, help="lowest log10 rate")
    lf.add_argument("--max", type=flags.number_in(float, -30, 30), default=0.0, help="highest log10 rate")
    lf.add_argument("--num", type=flags.number_in(int, 2, 1_000_000), default=1000,
                    help="rates to try, one step each")
    lf.add_argument("--file", default="lr_find.png")
    lf.set_defaults(func=cmd_lr_find)

    from makemore.backprop_cli import register as register_backprop
    from makemore.micrograd.cli import register

    register(sub)
    register_backprop(sub)
    from makemore.serve.cli import register as register_serve

    register_serve(sub)
    from makemore.tune_cli import register as register_tune

    register_tune(sub)
    return p


class _StderrHandler(logging.StreamHandler):
    """Logs to sys.stderr as it is at each message, not as it was at the first call of main (callers and tests
    swap it)."""

    @property  # type: ignore[override]
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass


def main(argv: list[str] | None = None) -> int:
    started = time.perf_counter()
    args = build_parser().parse_args(argv)
    args.started = started
    log = logging.getLogger("makemore")  # the library reports through this logger; the CLI shows it on stderr
    if not log.handlers:
        handler = _StderrHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)
        log.propagate = False
    return _run(args)


def console() -> int:
    """The `makemore` command (and `python -m makemore`): main(), then, in a process that was a rank of a
    torchrun group, the end of the process without the interpreter's teardown. With the group's gloo threads
    still alive there, a rank aborted now and again ("terminate called without an active exception") or hung,
    and torchrun then killed the other ranks, rank 0 sometimes before it had reported. Nothing is left to run
    by then: the checkpoint is written and closed, the output printed."""
    try:
        code = main()
    except Exception:
        if not _was_rank():
            raise
        import traceback

        traceback.print_exc()
        code = 1
    if _was_rank():
        _leave(code)
    return code


def _was_rank() -> bool:
    group = sys.modules.get("makemore.training.distributed")  # (not imported: not a rank)
    return group is not None and group.joined()


def _leave(code: int) -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BrokenPipeError:
            code = code or 141
        except (OSError, ValueError):  # output lost (a full disk): not a success, as at a normal exit
            code = code or 120
    logging.shutdown()
    os._exit(code)


def _run(args: argparse.Namespace) -> int:
    try:
        return args.func(args)
    except MakemoreError as e:
        print(f"makemore: error: {_one_line(str(e))}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("makemore: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`makemore sample | head -1`): stop quietly, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (no second error when Python exits)
        return 141
    except OSError as e:  # a full disk, a folder made read-only mid-run: the environment, not a bug
        where = f" ({e.filename})" if e.filename else ""
        print(f"makemore: error: {_one_line(f'{e.strerror or e}{where}')}", file=sys.stderr)
        return 2
