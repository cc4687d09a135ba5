"""The best model for a text file within a time budget: a search over model families and their settings with
Optuna (the `tune` extra: pip install -e '.[tune]').

Each trial is an ordinary training run in DIR/trials/NNNN of a family and settings that Optuna's TPE sampler
proposes. The trial reports its val loss at each of its evaluations, and a successive-halving pruner (ASHA)
stops the trials that are behind the others at the same point of their training, which leaves the time to the
promising ones. A new study starts with the floor and the best recipes known for names, which are never pruned:
they are what the others are measured against. The search takes the first half of the budget, in trials of an
eighth of it each (so that the pruner compares them at the same points of their time). The other half trains
the best settings found once more, for all of that time (a final trial; with --workers N, the N best settings,
one in each process), as a longer run of a good recipe reaches a lower loss than another short one.
DIR/best is a link to the best trial's folder: `makemore sample --out DIR/best` and
`checkpoint.load_model` read it as any run. The study lives in Optuna storage (a SQLite file in DIR unless told
otherwise), so several processes share it and running again continues it; a trial whose process died (kill -9)
is marked failed by the next process that starts a trial (Optuna's heartbeat), never reused.

Several machines share a study through a database server: on each, `makemore tune --storage
postgresql://USER:PASS@HOST/DB --out DIR` (with a driver such as psycopg2 installed) and DIR on a disk they all
mount at the same path, since DIR/best may be a trial that another machine trained; each command ends with
final trials of its own (the best settings of the whole study when it gets there). A trial trains in one
process: tune refuses to run under torchrun (every rank would run a study of its own); to train the winner
further with DDP, run `torchrun ... -m makemore train --out DIR/best --resume --steps N`.
"""

from __future__ import annotations

import logging
import math
import os
import re
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from makemore.errors import MakemoreError

logger = logging.getLogger("makemore")

STUDY = "makemore-tune"
STORAGE_FILE = "study.db"
FAMILIES = ("bigram", "mlp", "mlp-deep", "wavenet", "rnn", "gru", "lstm", "transformer")
# The search space: a list of choices, or a [low, high] range. A --space TOML file overrides any of these keys.
SPACE: dict[str, list[Any]] = {
    "families": list(FAMILIES),
    "schedule": ["constant", "cosine"],
    "lr": [3e-4, 3e-2],
    "batch_size": [32, 256],
    "weight_decay": [0.0, 0.2],
    "block_size": [2, 8],  # context models' context (wavenet: the power of two at most this)
    "n_embd": [8, 128],
    "n_hidden": [32, 512],
    "n_layer": [1, 4],  # mlp-deep's layers, the transformer's blocks
    "dropout": [0.0, 0.5],  # all but mlp-deep's (BatchNorm's noise regularises it)
}
CHOICES = {"families": FAMILIES, "schedule": ("constant", "cosine")}
INTS = {"batch_size", "block_size", "n_embd", "n_hidden", "n_layer"}
LOG = {"lr", "batch_size", "n_embd", "n_hidden"}  # searched on a log scale: their effect is by ratios
LOWEST = {"lr": 1e-8, "batch_size": 2, "weight_decay": 0.0, "block_size": 1, "n_embd": 1, "n_hidden": 1,
          "n_layer": 1, "dropout": 0.0}  # (dropout is also below 1)
# The settings each family reads besides the training ones (lr, batch_size, weight_decay, schedule).
USES = {"bigram": (), "mlp": ("block_size", "n_embd", "n_hidden", "dropout"),
        "mlp-deep": ("block_size", "n_embd", "n_hidden", "n_layer"),
        "wavenet": ("block_size", "n_embd", "n_hidden", "dropout"), "rnn": ("n_embd", "n_hidden", "dropout"),
        "gru": ("n_embd", "n_hidden", "dropout"), "lstm": ("n_embd", "n_hidden", "dropout"),
        "transformer": ("n_embd", "n_layer", "dropout")}
TRAINING = ("lr", "batch_size", "weight_decay", "schedule")

# The first trials of a new study, where the space holds them: the floor, then the best names recipes known
# (preset `names-lstm` with less dropout, see below; the presets `best` and `names-best`), so that a short
# budget starts from what is known to work.
STARTS = [
    {"family": "bigram"},
    {"family": "lstm", "n_embd": 64, "n_hidden": 256, "dropout": 0.3, "lr": 5e-3, "batch_size": 128,
     "weight_decay": 0.05, "schedule": "cosine"},  # (the trials' own min_lr, warm-up and clipping)
    {"family": "mlp", "block_size": 5, "n_embd": 24, "n_hidden": 400, "dropout": 0.0, "lr": 3e-3,
     "batch_size": 256, "weight_decay": 0.05, "schedule": "cosine"},
    {"family": "transformer", "n_embd": 64, "n_layer": 4, "dropout": 0.1, "lr": 2e-3, "batch_size": 64,
     "weight_decay": 0.1, "schedule": "cosine"},
]
# The lstm's dropout for the time its final trial would have: a longer run over-fits more. Measured on names
# (one thread each, side by side): 150 s, val 1.952 at 0.3 against 1.987 at 0.45; 850 s, 1.934 against 1.925.
LONG_RUN, LONG_DROPOUT = 600, 0.45
SEARCH = 0.5  # the share of the budget for the search; the rest is the final trial's
TRIAL = 1 / 8  # a search trial's share of the budget
EVALS = 20  # evaluations per trial: the points where the pruner compares trials
PRUNER_MIN = 3  # evaluations before the first comparison; then every 3x as many (3, 9)
PROBE = 0.01  # the share of a trial's time spent timing its step with each choice of threads
MIN_STEPS = 100  # a trial that has time for fewer steps is pruned before it starts: too slow to learn
HEARTBEAT = 2  # seconds between a running trial's signs of life in the storage
GRACE = 20  # seconds without one after which a running trial counts as dead (failed)


def starts(budget: float) -> list[dict[str, Any]]:
    """STARTS for a study of this budget (seconds), the lstm's dropout set for its final trial's time."""
    final = budget * (1 - SEARCH)
    return [{**p, "dropout": LONG_DROPOUT} if p["family"] == "lstm" and final >= LONG_RUN else p for p in STARTS]


def parse_budget(text: str) -> float:
    """'90s', '10m', '1.5h' or plain seconds -> seconds (> 0)."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([smh]?)\s*", str(text))
    if not match:
        raise MakemoreError(f"--budget must be a time such as 90s, 10m or 1.5h, not {text!r}")
    seconds = float(match[1]) * {"": 1, "s": 1, "m": 60, "h": 3600}[match[2]]
    if not 0 < seconds <= 365 * 24 * 3600:
        raise MakemoreError(f"--budget must be more than 0 and at most a year, not {text!r}")
    return seconds


def check_space(overrides: dict[str, Any] | None) -> dict[str, list[Any]]:
    """The default space with `overrides` (a --space file's keys) checked and put in."""
    space = {k: list(v) for k, v in SPACE.items()}
    for key, value in (overrides or {}).items():
        if key not in SPACE:
            raise MakemoreError(f"unknown key {key!r} in the search space (known: {', '.join(SPACE)})")
        if key in CHOICES:
            bad = [v for v in value if v not in CHOICES[key]] if isinstance(value, list) else [value]
            if bad or not value:
                raise MakemoreError(f"{key} in the search space must be a non-empty list of "
                                    f"{', '.join(CHOICES[key])}, not {value!r}")
            space[key] = list(dict.fromkeys(value))
            continue
        kind = int if key in INTS else (int, float)
        if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, kind) and not isinstance(v, bool)
                                                                     and math.isfinite(v) for v in value)):
            raise MakemoreError(f"{key} in the search space must be a range [low, high] of "
                                f"{'whole numbers' if key in INTS else 'numbers'}, not {value!r}")
        low, high = value
        if low > high:
            raise MakemoreError(f"{key} in the search space is an empty range [{low}, {high}]")
        if low < LOWEST[key] or (key == "dropout" and high >= 1):
            raise MakemoreError(f"{key} in the search space must be >= {LOWEST[key]:g}"
                                + (" and below 1" if key == "dropout" else "") + f", not {value!r}")
        space[key] = [low, high]
    return space


def read_space(path: str | Path) -> dict[str, Any]:
    """A --space TOML file's keys (checked by check_space when the study starts)."""
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as e:
        raise MakemoreError(f"cannot read --space {path}: {e.strerror or e}") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise MakemoreError(f"--space {path} is not valid TOML: {e}") from None


def suggest(trial: Any, space: dict[str, list[Any]]) -> dict[str, Any]:
    """A trial's family and settings, drawn from the space (each name keeps one distribution in the study, so
    the sampler learns across families what the training settings do)."""
    family = trial.suggest_categorical("family", space["families"])
    names = USES[family] + (TRAINING if family != "bigram" else ())
    params: dict[str, Any] = {"family": family}
    for name in names:
        if name in CHOICES:
            params[name] = trial.suggest_categorical(name, space[name])
        elif name in INTS:
            params[name] = trial.suggest_int(name, *space[name], log=name in LOG)
        else:
            params[name] = trial.suggest_float(name, *space[name], log=name in LOG)
    return params


def in_space(params: dict[str, Any], space: dict[str, list[Any]]) -> bool:
    """Whether the space holds these settings (a family and its values)."""
    if params["family"] not in space["families"]:
        return False
    for name, value in params.items():
        if name in CHOICES:
            if value not in space[name]:
                return False
        elif name != "family" and not space[name][0] <= value <= space[name][1]:
            return False
    return True


def sequence_length(corpus: Any) -> int:
    """Rows of sequence models: the longest item and its end (names: 16), at most 64; texts: 64."""
    if corpus.mode == "lines":
        return min(64, 1 + max(len(x) for x in corpus.items("train")))
    return 64


def recipe(params: dict[str, Any], seq_len: int) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """(model name, model settings, training settings but steps) for a trial's parameters."""
    p, family = params, params["family"]
    if family == "bigram":
        return "bigram-counts", {}, {"steps": 0}
    if family == "mlp":
        config = {"block_size": p["block_size"], "n_embd": p["n_embd"], "n_hidden": p["n_hidden"],
                  "dropout": p["dropout"]}
    elif family == "mlp-deep":
        config = {"block_size": p["block_size"], "n_embd": p["n_embd"], "n_hidden": p["n_hidden"],
                  "n_layers": p["n_layer"]}
    elif family == "wavenet":  # the hierarchy fuses pairs: a power of two
        config = {"block_size": 2 ** max(1, int(math.log2(p["block_size"]))), "n_embd": p["n_embd"],
                  "n_hidden": p["n_hidden"], "dropout": p["dropout"]}
    elif family == "transformer":
        n_head = max(1, min(4, p["n_embd"] // 16))  # heads of 16 or more dimensions
        config = {"block_size": seq_len, "n_layer": p["n_layer"], "n_head": n_head,
                  "n_embd": max(n_head, p["n_embd"] // n_head * n_head), "dropout": p["dropout"]}
    else:
        config = {"block_size": seq_len, "n_embd": p["n_embd"], "n_hidden": p["n_hidden"], "dropout": p["dropout"]}
    train = {"optimizer": "adamw", "lr": p["lr"], "batch_size": p["batch_size"], "weight_decay": p["weight_decay"],
             "schedule": p["schedule"], "min_lr": p["lr"] / 10, "grad_clip": 1.0}
    return family, config, train


def trial_seconds(remaining: float, budget: float) -> float:
    """A search trial's time: an eighth of the budget, or what is left of the search when that is less."""
    return min(budget * TRIAL, remaining)


def seconds_per_step(model_name: str, config: dict[str, Any], corpus: Any, settings: dict[str, Any],
                     limit: float) -> float:
    """The mean time of the model's steps on this data, taken as the trainer takes them (same threads, a batch
    drawn each step) for about `limit` seconds. The first step pays for allocations and is not counted; a model
    far too slow for its time is seen as such after two steps."""
    import torch

    from makemore import training
    from makemore.batches import examples_for
    from makemore.training.loop import _threads  # the trainer's own choice of CPU threads

    cfg = training.TrainConfig.from_dict(settings)
    model = training.build_model(model_name, config, corpus.vocab.size, cfg.seed)
    examples = examples_for(model, corpus.items("train"), corpus.vocab)
    device = training.resolve_device(cfg.device)
    model.to(device).train()
    stepper = training.Stepper(model, cfg, device)
    stepper.set_lr(cfg.lr)
    gen = torch.Generator().manual_seed(cfg.seed)
    targets = cfg.batch_size * (model.block_size if model.kind == "sequence" else 1)
    with _threads(cfg, device, model, targets):
        times: list[float] = []
        while len(times) < 2 or sum(times[1:]) < limit:
            start = time.perf_counter()
            X, Y = (t.to(device) for t in examples.random_batch(cfg.batch_size, gen))
            float(stepper(X, Y))
            times.append(time.perf_counter() - start)
    return sum(times[1:]) / len(times[1:])


def fit_steps(model_name: str, config: dict[str, Any], corpus: Any, settings: dict[str, Any],
              seconds: float) -> int:
    """The steps that fit in `seconds`, on one CPU thread or on the trainer's choice (two for a big step),
    whichever is faster now; the choice goes into settings["threads"]. On a shared machine, or with --workers, a
    second thread can wait on a busy core and make each step many times slower (a 2-core box under load 8: a
    small Transformer took 0.029 s a step on one thread, 1.4 s on two). Each choice is timed for a hundredth of
    the time: a few steps of a tiny model vary by 2x, hundreds of them do not."""
    per_step = {n: seconds_per_step(model_name, config, corpus, {**settings, "threads": n}, seconds * PROBE)
                for n in (1, 0)}
    settings["threads"] = min(per_step, key=per_step.get)
    return int(0.85 * seconds / per_step[settings["threads"]])  # the rest: evaluations and these probes


class _Watch:
    """The trainer's callback in a trial: reports each val to Optuna, stops the run when the pruner says so or
    when the trial's time is up, and keeps the val curve against wall time for the figure."""

    def __init__(self, trial: Any, stop_at: float, study_start: float, prune: bool = True):
        self.trial, self.stop_at, self.study_start, self.prune = trial, stop_at, study_start, prune
        self.evals = 0
        self.curve: list[tuple[float, float]] = []
        self.pruned = False

    def __call__(self, info: Any) -> None:
        from makemore.training import StopTraining

        if info.val is not None:
            self.evals += 1
            self.curve.append((round(time.time() - self.study_start, 2), float(info.val)))
            self.trial.report(info.val, self.evals)
            if self.prune and self.trial.should_prune():
                self.pruned = True
                raise StopTraining
        if time.time() >= self.stop_at:
            raise StopTraining


@dataclass
class _Plan:
    """What every worker process of one `run` is told (plain data: it goes to spawned processes)."""
    data: str
    out: Path
    storage: str | None
    space: dict[str, list[Any]]
    budget: float
    search_end: float
    deadline: float
    steps: int | None


@dataclass
class _Context:
    """A worker's view of a trial: its run's plan, the data and the study's space and start."""
    plan: _Plan
    corpus: Any
    space: dict[str, list[Any]]
    study_start: float


def describe(params: dict[str, Any]) -> str:
    """A trial's settings in one short line."""
    def fmt(v: Any) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    return " ".join(f"{k}={fmt(v)}" for k, v in params.items() if k != "family")


def _floor_done(study: Any) -> bool:
    from optuna.trial import TrialState

    done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    return any(t.params.get("family") == "bigram" for t in done)


def _objective(trial: Any, ctx: _Context) -> float:
    import optuna

    from makemore import training

    params = suggest(trial, ctx.space)
    if params["family"] == "bigram" and _floor_done(trial.study):
        raise optuna.TrialPruned  # the floor is counted once: its counts come out the same every time
    model, config, train = recipe(params, sequence_length(ctx.corpus))
    train["seed"] = trial.number
    start, plan = time.time(), ctx.plan
    final = trial.user_attrs.get("final")  # a final trial: the number of the trial it trains again
    if final is not None and trial.user_attrs.get("deadline") != plan.deadline:  # queued by a run that was
        # stopped before it trained it: a search trial now, not one with that run's time
        final = None
        trial.set_user_attr("final", None)
    if final is not None:
        seconds = max(plan.deadline - start, 0.0)
    else:
        seconds = trial_seconds(max(plan.search_end - start, 0.0), plan.budget)
    if model != "bigram-counts":
        steps = plan.steps or fit_steps(model, config, ctx.corpus, train, seconds)
        if steps < MIN_STEPS and not plan.steps:
            logger.info(f"trial {trial.number:4d} {params['family']:11s} too slow: {steps} steps in "
                        f"{seconds:.0f} s  {describe(params)}")
            raise optuna.TrialPruned
        train.update(steps=steps, eval_interval=max(1, steps // EVALS))
        if train["schedule"] == "cosine":
            train["warmup"] = min(100, steps // 10)
    folder = plan.out / "trials" / f"{trial.number:04d}"
    trial.set_user_attr("folder", str(folder.relative_to(plan.out)))
    trial.set_user_attr("model", model)
    trial.set_user_attr("config", config)
    trial.set_user_attr("pid", os.getpid())  # which worker ran it
    # A final is longer than the trials it would be compared with; a known recipe is what the others are measured
    # against (pruned after 3 of its 20 evaluations, a slow starter such as an lstm loses to a fast mlp it beats later).
    prune = final is None and not trial.user_attrs.get("start")
    watch = _Watch(trial, plan.deadline if plan.steps else min(plan.deadline, start + 1.25 * seconds), ctx.study_start,
                   prune=prune)
    try:
        result = training.train(model, config, ctx.corpus, training.TrainConfig.from_dict(train), folder,
                                progress=False, callbacks=[watch])
    except MakemoreError as e:  # a diverging run (too high a rate): this trial fails, the study goes on
        logger.info(f"trial {trial.number:4d} {params['family']:11s} failed: {e}")
        raise
    val = result.best.get("val", result.val_loss)
    if not watch.curve and val is not None:  # a counted model: one val, at its end
        watch.curve.append((round(time.time() - ctx.study_start, 2), float(val)))
    took = time.time() - start
    trial.set_user_attr("curve", watch.curve)
    trial.set_user_attr("seconds", round(took, 1))
    trial.set_user_attr("steps", result.step)
    state = f"pruned at step {result.step}" if watch.pruned else f"{result.step} steps"
    if final is not None:
        state += f" (final: trial {final})"
    logger.info(f"trial {trial.number:4d} {params['family']:11s} val {val:.4f} {took:6.1f} s  {state:22s} "
                f"{describe(params)}")
    if watch.pruned:
        raise optuna.TrialPruned
    return val


def link_best(study: Any, out: Path) -> Path | None:
    """Point DIR/best at the best finished trial's folder (a symlink replaced in one rename, under a lock so
    that two processes finishing trials together leave the better one)."""
    from filelock import FileLock

    with FileLock(out / ".best.lock"):
        try:
            best = study.best_trial
        except ValueError:  # no trial finished yet
            return None
        link, tmp = out / "best", out / f".best.{os.getpid()}.tmp"
        tmp.unlink(missing_ok=True)
        os.symlink(best.user_attrs["folder"], tmp)
        os.replace(tmp, link)
        return link


def _storage(url: str):
    import optuna
    import sqlalchemy.exc

    kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}  # wait for the others' writes
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=kwargs, heartbeat_interval=HEARTBEAT,
                                          grace_period=GRACE)
    except (sqlalchemy.exc.SQLAlchemyError, ImportError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise MakemoreError(f"cannot open the study storage {url}: {first}") from None


def open_study(out: Path, storage: str | None, corpus: Any, seed: int, space: dict[str, Any] | None = None,
               budget: float = 0.0) -> tuple[Any, dict[str, list[Any]]]:
    """The study in `storage` (made on first use, starting with the known recipes for `budget` seconds) and
    its search space: the default with `space`'s overrides for a new study, the one it was made with for an
    existing one (Optuna cannot change a choice's options within a study). Refused if it was made for other
    data or another space. Trials of processes that died are marked failed here."""
    from filelock import FileLock

    # Optuna makes its tables on first use, and two processes doing it at once collide: they take turns here
    # (processes on other machines sharing a database: start one first).
    with FileLock(out / ".study.lock"):
        return _open_study(out, storage, corpus, seed, space, budget)


def _open_study(out: Path, storage: str | None, corpus: Any, seed: int, overrides: dict[str, Any] | None,
                budget: float) -> tuple[Any, dict[str, list[Any]]]:
    import optuna

    url = storage or f"sqlite:///{(out / STORAGE_FILE).resolve()}"
    store = _storage(url)
    data = {"sha256": corpus.fingerprint, "source": corpus.source, "mode": corpus.mode}
    try:
        existing = optuna.load_study(study_name=STUDY, storage=store)
    except KeyError:
        existing = None
    if existing is not None:
        made_for = existing.user_attrs.get("data")
        if made_for is not None and (made_for["sha256"], made_for["mode"]) != (data["sha256"], data["mode"]):
            raise MakemoreError(f"the study in {url} was made for other data ({made_for['source']}): "
                                "tune into another --out or --storage")
    stored = existing.user_attrs.get("space") if existing is not None else None
    space = stored if overrides is None and stored is not None else check_space(overrides)
    if stored is not None and space != stored:
        differ = [k for k in SPACE if space.get(k) != stored.get(k)]
        raise MakemoreError(f"the study in {url} searches another space ({', '.join(differ)}): drop --space to "
                            "continue it as it was, or tune into another --out or --storage")
    n_before = len(existing.trials) if existing is not None else 0
    sampler = optuna.samplers.TPESampler(seed=seed + n_before, n_startup_trials=8)  # a resumed study samples anew
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=PRUNER_MIN, reduction_factor=3)
    study = optuna.create_study(study_name=STUDY, storage=store, sampler=sampler, pruner=pruner,
                                direction="minimize", load_if_exists=True)
    if existing is None:
        study.set_user_attr("data", data)
        study.set_user_attr("created", time.time())
        study.set_user_attr("space", space)
        for params in starts(budget):
            if in_space(params, space):
                study.enqueue_trial(params, user_attrs={"start": True})
    optuna.storages.fail_stale_trials(study)
    return study, space


@contextmanager
def _quiet_optuna() -> Iterator[None]:
    """Optuna's own log lines and warnings off while we work (restored after)."""
    import optuna

    before = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # (a few trials are all a short study has: the importances figure says as much by its bars)
            warnings.filterwarnings("ignore", message="Some regimes for parameter")
            yield
    finally:
        optuna.logging.set_verbosity(before)


def _work(plan: _Plan, seed: int, until: float, n_trials: int | None = None, corpus: Any = None) -> None:
    """One worker: trials on the shared study until `until` (or `n_trials` of them)."""
    import optuna

    from makemore.data import load_corpus

    if not logger.handlers:  # a process of our own (--workers): its trial lines go to stderr like the parent's
        logger.addHandler(logging.StreamHandler())
        logger.setLevel(logging.INFO)
        logger.propagate = False
    corpus = corpus or load_corpus(plan.data)
    with _quiet_optuna():
        study, space = open_study(plan.out, plan.storage, corpus, seed, plan.space)
        ctx = _Context(plan, corpus, space, study.user_attrs.get("created", time.time()))

        def after(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
            if trial.state == optuna.trial.TrialState.COMPLETE:
                link_best(study, plan.out)

        # No search trial starts in the last quarter of a trial's time: cut short, it would report a loss its
        # settings do not deserve (an mlp of one step), and teach the sampler to avoid them.
        margin = 0.0 if plan.steps or n_trials is not None else plan.budget * TRIAL / 4
        study.optimize(lambda t: _objective(t, ctx), n_trials=n_trials,
                       timeout=max(until - time.time() - margin, 0.0), catch=(MakemoreError,), callbacks=[after])


def _side_by_side(plan: _Plan, workers: int, seed: int, until: float, n_trials: int | None, corpus: Any) -> None:
    """`workers` processes on the study: this one and workers - 1 fresh interpreters (spawned: no copy of this
    one's torch threads)."""
    import multiprocessing

    spawn = multiprocessing.get_context("spawn")
    others = [spawn.Process(target=_work, args=(plan, seed + 1000 * i, until, n_trials)) for i in range(1, workers)]
    for p in others:
        p.start()
    try:
        _work(plan, seed, until, n_trials, corpus)
    finally:
        for p in others:
            p.join()


def enqueue_finals(study: Any, deadline: float, n: int) -> int:
    """Queue the final trials of a run that ends at `deadline`: the n best finished trials' settings (each once;
    never the floor's), those whose run would be at least 1.5x as long with the time left. Returns how many were
    queued."""
    from optuna.trial import TrialState

    left = deadline - time.time()
    done = sorted((t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                   if t.params.get("family") != "bigram"), key=lambda t: t.value)
    chosen: list[Any] = []
    for t in done:
        if len(chosen) < n and left >= 1.5 * t.user_attrs["seconds"] and all(t.params != c.params for c in chosen):
            chosen.append(t)
    for t in chosen:
        study.enqueue_trial(t.params, user_attrs={"final": t.number, "deadline": deadline})
    return len(chosen)


@dataclass
class Summary:
    study: Any  # the optuna.Study
    best: Path | None  # DIR/best, or None when no trial finished
    figures: list[Path]


def run(data: str, budget_seconds: float, out: str | Path, storage: str | None = None, workers: int = 1,
        space: dict[str, Any] | None = None, seed: int = 0, steps: int | None = None) -> Summary:
    """Search for the best model of `data` in `budget_seconds` of wall time into `out` (see the module's
    docstring). `workers` processes on this machine share the study, and in the time after the search each
    trains one of the best settings again; `space` overrides keys of SPACE; `steps` fixes each trial's steps
    instead of deriving them from its time (and leaves out the final trials)."""
    from makemore.data import load_corpus

    if not (isinstance(budget_seconds, int | float) and math.isfinite(budget_seconds) and budget_seconds > 0):
        raise MakemoreError(f"the budget must be a number of seconds > 0, not {budget_seconds!r}")
    if not 1 <= workers <= 256:
        raise MakemoreError(f"--workers must be between 1 and 256, not {workers}")
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:  # every rank would run a study of its own
        raise MakemoreError("makemore tune is not run under torchrun: its trials each train in one process "
                            "(--workers N runs N of them side by side)")
    check_space(space)  # (a bad --space is said before anything is read or made)
    corpus = load_corpus(data)  # a missing or unreadable file: said before anything is made
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise MakemoreError(f"--out {out} is a file, not a directory")
    start = time.time()
    deadline = start + budget_seconds
    out.mkdir(parents=True, exist_ok=True)
    with _quiet_optuna():
        study, checked = open_study(out, storage, corpus, seed, space, budget_seconds)  # made or checked once
    plan = _Plan(data, out, storage, checked, budget_seconds, deadline if steps else start + SEARCH * budget_seconds,
                 deadline, steps)
    _side_by_side(plan, workers, seed, plan.search_end, None, corpus)
    with _quiet_optuna():
        finals = 0 if steps else enqueue_finals(study, deadline, workers)
    if finals:
        _side_by_side(plan, finals, seed, deadline, 1, corpus)
    elif time.time() < deadline:  # nothing worth training again (a resumed study's best is an earlier final)
        _side_by_side(replace(plan, search_end=deadline), workers, seed, deadline, None, corpus)
    with _quiet_optuna():
        study, _ = open_study(out, storage, corpus, seed, checked)
        best = link_best(study, out)
        return Summary(study, best, figures(study, out))


def table(study: Any) -> list[dict[str, Any]]:
    """One row per trial, best first: number, family, state, val, seconds, steps, settings."""
    rows = []
    for t in study.trials:
        val = t.value if t.value is not None else (min(t.intermediate_values.values())
                                                   if t.intermediate_values else None)
        rows.append({"trial": t.number, "family": t.params.get("family", "-"), "state": t.state.name.lower(),
                     "val": val, "seconds": t.user_attrs.get("seconds"), "steps": t.user_attrs.get("steps"),
                     "settings": describe(t.params)})
    return sorted(rows, key=lambda r: (r["state"] != "complete", math.inf if r["val"] is None else r["val"]))


def figures(study: Any, out: Path) -> list[Path]:
    """DIR/tune_val_vs_time.png, DIR/tune_history.png and DIR/tune_importances.png (when enough trials
    finished). Optuna draws with pyplot, so its backend is Agg while they are drawn, and the caller's afterwards
    (a notebook keeps its own)."""
    import matplotlib

    backend = matplotlib.get_backend()
    matplotlib.use("Agg")
    try:
        return _figures(study, out)
    finally:
        matplotlib.use(backend)


def _figures(study: Any, out: Path) -> list[Path]:
    import matplotlib
    import matplotlib.pyplot as plt
    import optuna
    from matplotlib.figure import Figure

    from makemore.plots import save

    done = [t for t in study.trials if t.user_attrs.get("curve")]
    paths = []
    if done:
        fig = Figure(figsize=(8, 5))
        ax = fig.add_subplot()
        best = min((t for t in done if t.value is not None), key=lambda t: t.value, default=None)
        for t in done:
            x, y = zip(*t.user_attrs["curve"], strict=True)
            pruned = t.state == optuna.trial.TrialState.PRUNED
            ax.plot(x, y, "-" if len(x) > 1 else "o", color="0.7" if pruned else None, lw=2.5 if t is best else 1,
                    label=f"best: trial {t.number} ({t.params.get('family')})" if t is best else None)
        ax.set(xlabel="wall time since the study began (s)", ylabel="val loss (nats/char)",
               title="every trial's val loss (pruned: grey)")
        if best is not None:
            ax.legend()
        paths.append(save(fig, out / "tune_val_vs_time.png"))
    completed = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    drawings = [("tune_history.png", lambda: optuna.visualization.matplotlib.plot_optimization_history(study))]
    shared = [p for p in TRAINING if sum(p in t.params for t in completed) >= 2]
    if len(completed) >= 2 and shared:  # importances compare the trials that have these settings
        drawings.append(("tune_importances.png", lambda: optuna.visualization.matplotlib.plot_param_importances(
            study, params=shared)))
    for name, draw in drawings:
        if not completed:
            break
        with matplotlib.rc_context():  # optuna sets pyplot's style for the whole process: put it back after
            ax = draw()
            try:
                paths.append(save(ax.figure, out / name))
            finally:
                plt.close(ax.figure)  # optuna draws with pyplot: let go of its figure
    return paths
