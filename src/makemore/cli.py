"""The `makemore` command: parses arguments, calls the library, prints. Heavy imports (torch, matplotlib) happen
inside the commands so that --help answers at once."""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import sys
from pathlib import Path
from typing import Any

from makemore.errors import MakemoreError
from makemore.limits import MAX_INT

TRAIN_FLAGS = {  # flag -> TrainConfig field; None defaults mean "the preset's value"
    "steps": int, "batch_size": int, "optimizer": str, "lr": float, "momentum": float, "weight_decay": float,
    "schedule": str, "warmup": int, "min_lr": float, "gamma": float, "grad_clip": float, "eval_interval": int,
    "eval_max": int, "seed": int, "device": str, "threads": int, "train_split": str, "autocast": str,
}


TRAIN_HELP = {
    "steps": "optimisation steps in all (a resumed run continues up to this step)",
    "batch_size": "examples per step; 0 means the whole training split every step (full-batch descent)",
    "lr": "learning rate, a finite number > 0 (the peak rate of a schedule)",
    "eval_interval": "steps between evaluations on val (and checkpoints)",
    "eval_max": "target characters per evaluation; 0 means the whole val split",
    "threads": "CPU threads; 0 chooses (one for a small step or a recurrent model, else all)",
    "train_split": "the split to fit: train (default) or all",
    "autocast": "bf16 autocast: auto (on CUDA with bf16), bf16 (also on CPU) or off",
}

def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key = key.replace("-", "_")
    if key == "vocab_size":
        raise argparse.ArgumentTypeError("vocab_size is the data's number of characters: it cannot be set")
    return key, _value(value)


def _number_in(kind: type[int] | type[float], low: float, high: float, shown: str | None = None):
    """An argparse type: a number of `kind` from low to high (never NaN); `shown` names the range in errors."""
    noun = "a whole number" if kind is int else "a number"
    shown = shown or (f"{low:,} and {high:,}" if kind is int else f"{low:g} and {high:g}")

    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {noun}, got {text!r}") from None
        if not low <= value <= high:  # (False for NaN)
            raise argparse.ArgumentTypeError(f"must be between {shown}, not {text}")
        return value
    return parse


_seed = _number_in(int, 0, MAX_INT, "0 and 2**63-1")  # what torch's generators take


def cmd_train(args: argparse.Namespace) -> int:
    from makemore.runlock import locked

    out = Path(args.out or f"runs/{args.preset or args.model or 'mlp'}")
    if out.exists() and not out.is_dir():
        raise MakemoreError(f"--out {out} is a file, not a directory")
    with locked(out):  # one training per folder; also the check that --out is writable, before any data is read
        return _train(args, out)


def _train(args: argparse.Namespace, out: Path) -> int:
    from makemore import checkpoint, limits, models, presets, training
    from makemore.data import load_corpus
    from makemore.training import distributed

    if args.resume:
        if args.data is not None or args.model or args.preset:
            raise MakemoreError("--resume continues the run as it was: drop --data, --model and --preset")
        saved = training.saved_run(out)
        model, settings = saved.model, saved.train
        config = {k: v for k, v in saved.config.items() if k != "vocab_size"}
        data, mode, seed = saved.data["source"], saved.data["mode"], saved.data.get("split_seed", 42)
        if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed < 2**63:
            raise MakemoreError(f"corrupt checkpoint in {out}: the split seed {seed!r} is not a whole number")
    else:
        ours = [f for f in (checkpoint.META, training.METRICS, "loss.png") if (out / f).exists()]
        if ours and not args.force:
            raise MakemoreError(f"{out} already holds a run ({', '.join(ours)}): --resume to continue it, "
                                "--force to replace it")
        model, config, settings = presets.resolve(args.model, args.preset)
        data, mode, seed = args.data or "names", args.mode, 42
    config.update(dict(args.set or []))
    if args.smoothing is not None:
        config["smoothing"] = args.smoothing
    settings.update({k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None})
    if args.milestones is not None:
        settings["milestones"] = args.milestones
    for flag in ("calibrate_bn", "compile"):
        if getattr(args, flag):
            settings[flag] = True
    cfg = training.TrainConfig.from_dict(settings)
    models.make_config(model, **config)  # unknown model or setting: say so before reading any data
    limits.check_model(model, config)  # and settings too large for this machine
    corpus = load_corpus(data, mode, seed=seed)
    callbacks = []
    if args.diagnose:
        from makemore import diagnostics

        _require_trainable(models.get(model).model)
        recorder = diagnostics.UpdateRecorder(every=max(1, cfg.steps // 500))
        callbacks.append(recorder)
    group, failed = distributed.from_environment(), True
    try:
        result = training.train(model, config, corpus, cfg, out, resume=args.resume, progress=not args.quiet,
                                callbacks=callbacks)
        failed = False
    except training.Interrupted as e:
        failed = False
        print(f"makemore: {e}", file=sys.stderr)
        return e.exit_code
    except OSError as e:  # a full disk or a folder gone read-only mid-run; checkpoints are all-or-nothing
        kept = f"the last checkpoint in {out} was kept" if checkpoint.exists(out) else "no checkpoint was written"
        raise MakemoreError(f"cannot write to {out}: {e.strerror or e}; {kept}") from None
    finally:
        # Rank 0 alone writes into `out` under torchrun (the other ranks' figure would be the same file again);
        # not after an error there: the other ranks end at once, torchrun then stops rank 0, and the seconds spent
        # drawing would cost it its report of the error.
        if (out / training.METRICS).exists() and group.main and not (failed and group.active):
            from makemore import plots

            try:
                plots.loss_curve(out / training.METRICS, out / "loss.png")
            except OSError:  # the figure is a convenience: never hide why training stopped
                pass
    if not result.main:  # another rank of a distributed run: rank 0 reports
        return 0
    print(f"step {result.step}: train loss {_fmt(result.train_loss)}, val loss {_fmt(result.val_loss)}"
          f" ({result.seconds:.1f} s)")
    if args.diagnose:
        from makemore.batches import examples_for

        examples = examples_for(result.model, corpus.items("train"), corpus.vocab)
        diagnostics.write_all(result.model, examples, recorder, out / "diagnostics", seed=cfg.seed)
        print(f"diagnostics written to {out}/diagnostics", file=sys.stderr)
    if args.samples:
        from makemore.sampling import make_more

        trained = checkpoint.load_model(out)
        # items one per line; texts (which hold newlines themselves) apart, as `makemore sample -n` shows them
        print(*make_more(trained, args.samples, seed=cfg.seed), sep="\n" if trained.vocab.boundary else "\n---\n")
    return 0


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.4f}"


def cmd_sample(args: argparse.Namespace) -> int:
    from makemore.checkpoint import load_model
    from makemore.sampling import make_more, stream

    trained = load_model(args.out, "last" if args.last else "best")
    options = {"prompt": args.prompt, "temperature": args.temperature, "top_k": args.top_k, "max_len": args.max_len}
    if args.unique and not trained.vocab.boundary:
        raise MakemoreError("--unique needs a model trained on lines (items to compare samples against)")
    if not trained.vocab.boundary and args.n in (None, 1):  # one text: shown as it is made
        import torch

        for piece in stream(trained.model, trained.vocab, generator=torch.Generator().manual_seed(args.seed),
                            **options):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        return 0
    if not trained.vocab.boundary:  # several texts: drawn together in one batch (n for about the price of one)
        texts = make_more(trained, args.n, seed=args.seed, **options)
        if texts:
            print(*texts, sep="\n---\n")
        return 0
    unique = set(trained.corpus().items("all")) if args.unique else None
    samples = make_more(trained, 20 if args.n is None else args.n, seed=args.seed, unique_against=unique, **options)
    print(*samples, sep="\n")
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from makemore.batches import examples_for
    from makemore.checkpoint import load_model
    from makemore.data import load_corpus
    from makemore.training import evaluate

    trained = load_model(args.out, "last" if args.last else "best")
    if args.data:
        corpus = load_corpus(args.data, trained.ckpt.data["mode"], vocab=trained.vocab)
    else:
        corpus = trained.corpus()
    splits = [s for s in args.split.split(",") if s] or ["train", "val", "test"]
    if args.split == "train,val,test":
        splits = [s for s in splits if s in corpus.splits]
    losses = {}
    for s in splits:
        examples = examples_for(trained.model, corpus.items(s), trained.vocab)
        losses[s] = evaluate(trained.model, examples) if examples.n_targets else None  # an empty split: no loss
    if args.json:
        print(json.dumps(losses))
    else:
        for s, v in losses.items():
            print(f"{s:5s} {_fmt(v)}")
    return 0


def _model_from_args(args: argparse.Namespace):
    """A trained model from --out, or a freshly initialised one from --model/--preset/--set; its training
    examples and settings, and the step it reached (None for a fresh model)."""
    from makemore import presets, training
    from makemore.batches import examples_for
    from makemore.data import load_corpus

    if args.out:
        from makemore.checkpoint import load_model

        trained = load_model(args.out, "last")
        model, corpus = trained.model, trained.corpus()
        cfg, step = training.TrainConfig.from_dict(trained.ckpt.train), trained.ckpt.step
    else:
        name, config, settings = presets.resolve(args.model, args.preset)
        config.update(dict(args.set or []))
        corpus = load_corpus(args.data, args.mode)
        cfg, step = training.TrainConfig.from_dict(settings), None
        model = training.build_model(name, config, corpus.vocab.size, cfg.seed)
    _require_trainable(model)
    return model, examples_for(model, corpus.items("train"), corpus.vocab), cfg, step


def _require_trainable(model) -> None:
    """Diagnostics and lr-find need gradients; counting models (a model or its class) have none."""
    if not model.trainable:
        name = getattr(model, "__name__", type(model).__name__)
        raise MakemoreError(f"a {name} model is counted, not trained by gradients: nothing to see")


def cmd_diagnose(args: argparse.Namespace) -> int:
    import torch

    from makemore import diagnostics

    model, examples, cfg, step = _model_from_args(args)
    X, Y = examples.random_batch(args.batch_size, torch.Generator().manual_seed(args.seed))
    snap = diagnostics.snapshot(model, X, Y)
    at = None if step is None else min(step, max(cfg.steps - 1, 0))  # the rate the run had reached
    updates = diagnostics.probe_updates(model, examples, cfg, steps=args.probe_steps, seed=args.seed, at_step=at)
    folder = Path(args.dir or (Path(args.out) / "diagnostics" if args.out else "diagnostics"))
    paths = diagnostics.write_plots(snap, updates, folder)
    if args.json:
        print(json.dumps({**snap.to_json(), "updates": {k: v[-1] for k, v in updates.ratios.items()}}))
    else:
        print(diagnostics.format_table(snap))
        print(*(f"wrote {p}" for p in paths), sep="\n", file=sys.stderr)
    return 0


def cmd_lr_find(args: argparse.Namespace) -> int:
    from makemore import diagnostics, plots

    if not args.min < args.max:
        raise MakemoreError(f"--min ({args.min:g}) must be below --max ({args.max:g})")
    model, examples, cfg, _ = _model_from_args(args)
    exps, losses, lr = diagnostics.lr_find(model, examples, cfg, args.min, args.max, args.num, args.seed)
    path = plots.lr_find(exps, losses, lr, args.file)
    print(f"suggested lr {lr:.3g} (10^{math.log10(lr):.2f}); plot: {path}")
    return 0


def _model_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", help="a checkpoint directory (default: a freshly initialised model)")
    p.add_argument("--model", help="model name, for a fresh model")
    p.add_argument("--preset", help="preset, for a fresh model")
    p.add_argument("--data", default="names")
    p.add_argument("--mode", default="auto", choices=["auto", "lines", "text"])
    p.add_argument("--set", type=_key_value, action="append", metavar="KEY=VALUE")
    p.add_argument("--seed", type=_seed, default=0)


def cmd_models(args: argparse.Namespace) -> int:
    from makemore.models import MODELS
    from makemore.presets import PRESETS

    print("models:")
    for name, entry in MODELS.items():
        print(f"  {name:14s} {entry.help}")
    print("presets:")
    for name, p in PRESETS.items():
        print(f"  {name:14s} model {p['model']}, {p.get('train', {}).get('steps', '-')} steps")
    return 0


def cmd_plot(args: argparse.Namespace) -> int:
    from makemore import plots

    if args.what == "counts":
        from makemore.data import load_corpus
        from makemore.models.bigram import count_bigrams

        corpus = load_corpus(args.data, "lines")
        path = plots.counts_heatmap(count_bigrams(corpus), corpus.vocab.itos, args.file or "counts.png")
    else:
        if args.out is None:
            raise MakemoreError(f"plot {args.what} needs --out, the checkpoint directory")
        out = Path(args.out)
        if args.what == "loss":
            from makemore.training import METRICS

            if not (out / METRICS).is_file():
                raise MakemoreError(f"no {METRICS} in {out}")
            path = plots.loss_curve(out / METRICS, args.file or out / "loss.png")
            if path is None:
                raise MakemoreError(f"no training losses in {out / METRICS} yet")
        else:
            from makemore.checkpoint import load_model

            trained = load_model(out)
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


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="makemore", description="Character-level language models: "
                                "train on any text, then make more of it.")
    p.add_argument("--version", action="version", version="makemore 0.1.0")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    t = sub.add_parser("train", help="train a model and save it to --out")
    t.add_argument("--model", help="model name (see `makemore models`); default mlp")
    t.add_argument("--preset", help="a named recipe of model and training settings (see `makemore models`)")
    t.add_argument("--data", help="a UTF-8 text file, or 'names' (bundled, the default)")
    t.add_argument("--mode", default="auto", choices=["auto", "lines", "text"],
                   help="lines: one item per line; text: one continuous text (default: detected)")
    t.add_argument("--out", help="checkpoint directory (default runs/PRESET)")
    t.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    t.add_argument("--force", action="store_true", help="replace a checkpoint already in --out")
    for name, typ in TRAIN_FLAGS.items():
        t.add_argument("--" + name.replace("_", "-"), type=typ, default=None, help=TRAIN_HELP.get(name))
    t.add_argument("--milestones", type=int, nargs="*", help="step schedule: steps where lr *= gamma")
    t.add_argument("--calibrate-bn", action="store_true", help="set BatchNorm statistics from the training set")
    t.add_argument("--compile", action="store_true", help="torch.compile the model")
    t.add_argument("--smoothing", type=float, help="bigram-counts: add-k smoothing")
    t.add_argument("--set", type=_key_value, action="append", metavar="KEY=VALUE",
                   help="a model setting, e.g. --set n_hidden=300")
    t.add_argument("--samples", type=_number_in(int, 0, 1_000_000), default=10,
                   help="samples to print after training (default 10)")
    t.add_argument("--diagnose", action="store_true", help="record update ratios, write diagnostic plots")
    t.add_argument("--quiet", action="store_true", help="no progress bar")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="generate new text from a trained model")
    s.add_argument("--out", required=True, help="checkpoint directory")
    s.add_argument("-n", type=int, help="how many samples (default 20 items, or 1 text, streamed; several texts are "
                   "drawn together in one batch and printed when done, so with the same seed the first of them "
                   "differs from the single streamed text)")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--top-k", type=int)
    s.add_argument("--prompt", default="", help="text the samples start with")
    s.add_argument("--seed", type=_seed, default=0)
    s.add_argument("--unique", action="store_true", help="drop samples that appear in the training data")
    s.add_argument("--max-len", "--max-tokens", type=int, dest="max_len",
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
    d.add_argument("--batch-size", type=_number_in(int, 2, 1 << 20), default=32)
    d.add_argument("--probe-steps", type=_number_in(int, 0, 1_000_000), default=200,
                   help="optimiser steps to measure update ratios")
    d.add_argument("--dir", help="where to write the PNGs (default OUT/diagnostics)")
    d.add_argument("--json", action="store_true", help="the statistics as JSON on stdout")
    d.set_defaults(func=cmd_diagnose)

    lf = sub.add_parser("lr-find", help="the lecture's learning-rate search: one step per rate, plotted")
    _model_flags(lf)
    lf.add_argument("--min", type=_number_in(float, -30, 30), default=-3.0, help="lowest log10 rate")
    lf.add_argument("--max", type=_number_in(float, -30, 30), default=0.0, help="highest log10 rate")
    lf.add_argument("--num", type=_number_in(int, 2, 1_000_000), default=1000, help="rates to try, one step each")
    lf.add_argument("--file", default="lr_find.png")
    lf.set_defaults(func=cmd_lr_find)

    from makemore.backprop_cli import register as register_backprop
    from makemore.micrograd.cli import register

    register(sub)
    register_backprop(sub)
    from makemore.serve.cli import register as register_serve

    register_serve(sub)
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
    args = build_parser().parse_args(argv)
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
