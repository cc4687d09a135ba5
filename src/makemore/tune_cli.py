"""``makemore tune``: parse, call makemore.tune.run, print the table. Optuna is imported inside the command so
that --help answers at once (and without the `tune` extra)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from makemore.errors import MakemoreError

__all__ = ["register"]


def register(subparsers: Any) -> None:
    """Add the ``tune`` command to ``subparsers``."""
    p = subparsers.add_parser(
        "tune",
        help="search model families and settings for the best val loss in a time budget (Optuna)",
        description="Train many models on --data within --budget of wall time, each an ordinary run in "
        "OUT/trials/NNNN; OUT/best is the best one (use it with sample, eval, serve). Running the same command "
        "again continues the study; processes given the same --storage share it.",
        epilog="--space FILE.toml overrides the search space, e.g. families = [\"mlp\", \"transformer\"] and "
        "lr = [1e-3, 1e-2]; keys: " + ", ".join(_space_keys()),
    )
    p.add_argument("--data", default="names", help="a UTF-8 text file, or 'names' (bundled, the default)")
    p.add_argument("--budget", required=True, help="wall time to search for: 90s, 10m, 1.5h")
    p.add_argument("--out", required=True, help="the study's folder: trials/, best, study.db, figures")
    p.add_argument("--storage", help="an Optuna storage URL (default: sqlite in OUT), e.g. "
                   "postgresql://user:pass@host/db to share one study between machines")
    p.add_argument("--workers", type=_whole(1, 256), default=1,
                   help="processes on this machine (default 1); up to one per core pays, as most trials train on "
                   "one thread")
    p.add_argument("--space", metavar="FILE.toml", help="search-space overrides (see below)")
    p.add_argument("--seed", type=_whole(0, 2**31), default=0, help="the sampler's seed (default 0)")
    p.set_defaults(func=cmd_tune)


def _space_keys() -> list[str]:
    from makemore.tune import SPACE

    return list(SPACE)


def _whole(low: int, high: int):
    """An argparse type: a whole number from low to high."""
    def parse(text: str) -> int:
        try:
            n = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, not {n}")
        return n
    return parse


def cmd_tune(args: argparse.Namespace) -> int:
    from makemore import tune

    budget = tune.parse_budget(args.budget)  # bad input is said before Optuna is looked for
    space = tune.read_space(args.space) if args.space else None
    tune.check_space(space)
    try:
        import optuna  # noqa: F401
    except ImportError:
        raise MakemoreError("makemore tune needs Optuna: pip install 'makemore[tune]'") from None
    from makemore.training import Interrupted

    try:
        summary = tune.run(args.data, budget, args.out, storage=args.storage, workers=args.workers, space=space,
                           seed=args.seed)
    except Interrupted as e:  # Ctrl-C: the running trial is failed, every other one kept
        print(f"makemore: tune interrupted; the study in {args.out} is kept (the same command continues it)",
              file=sys.stderr)
        return e.exit_code
    rows = tune.table(summary.study)
    print(f"{'trial':>5}  {'family':11s} {'state':8s} {'val':>7}  {'seconds':>7}  {'steps':>6}  settings")
    for r in rows:
        val = "-" if r["val"] is None else f"{r['val']:.4f}"
        secs = "-" if r["seconds"] is None else f"{r['seconds']:.1f}"
        print(f"{r['trial']:5d}  {r['family']:11s} {r['state']:8s} {val:>7}  {secs:>7}  {r['steps'] or '-':>6}  "
              f"{r['settings']}")
    if summary.best is None:
        print("no trial finished within the budget: give it more time (the same command continues)", file=sys.stderr)
        return 1
    print(f"best: {summary.best} -> {summary.best.resolve().name} (makemore sample --out {summary.best})")
    for path in summary.figures:
        print(f"figure: {path}", file=sys.stderr)
    return 0
