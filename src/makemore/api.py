"""The Python API: what the `makemore` command does, as functions a notebook or a script calls.

    import makemore as mm
    run = mm.train(data="names", preset="lecture2", out="runs/a", steps=2000)
    run.sample(10, temperature=0.8, prompt="ka")
    run.evaluate()            # {"train": ..., "val": ..., "test": ...}
    run.plot_loss()           # a matplotlib Figure (shown inline in Jupyter)
    run = mm.load("runs/a").resume(steps=4000)

The CLI is a thin shell over these functions: it parses flags, calls one of them, and prints.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from makemore.errors import MakemoreError

if TYPE_CHECKING:  # (torch and matplotlib are imported when a function needs them: `import makemore` stays quick)
    from matplotlib.figure import Figure

    from makemore.checkpoint import Trained
    from makemore.diagnostics import Snapshot
    from makemore.training import Result, StepInfo

logger = logging.getLogger("makemore")
RUN_FILES = ("checkpoint.json", "metrics.csv", "loss.png")  # what marks a folder as holding a run


def train(data: str | None = None, model: str | None = None, preset: str | None = None,
          out: str | Path | None = None, *, mode: str = "auto", config: dict[str, Any] | None = None,
          tokenizer: str | None = None, vocab_size: int | None = None, resume: bool | str = False, force: bool = False,
          diagnose: bool = False, progress: bool = True, callbacks: Sequence[Callable[[StepInfo], None]] = (),
          **settings: Any) -> Run:
    """Train a model into the run folder `out` and return the Run.

    data: a UTF-8 file, "names" (bundled, the default), or a store folder made by `prepare`. model / preset: see
    `makemore models`. config: model settings (e.g. {"n_hidden": 300}). tokenizer: "char" or "bpe" with
    `vocab_size` tokens learned from the training split (default: the preset's, else "char"). settings: training
    settings, the fields of TrainConfig (steps, lr, ...).
    resume: True continues the run in `out` (its model, data and split as they were; settings given here change
    the rest, e.g. more steps); "auto" continues it when there is one and starts one otherwise. force: replace a
    run already in `out`. diagnose: record update ratios and write the diagnostic figures to out/diagnostics.
    """
    from makemore.runlock import locked

    if resume not in (False, True, "auto"):
        raise MakemoreError(f"resume must be True, False or 'auto', not {resume!r}")
    out = Path(out or f"runs/{preset or model or 'mlp'}")
    if out.exists() and not out.is_dir():
        raise MakemoreError(f"--out {out} is a file, not a directory")
    with locked(out):  # one training per folder; also the check that `out` is writable, before any data is read
        return _train(data, model, preset, out, mode, dict(config or {}), (tokenizer, vocab_size), resume, force,
                      diagnose, progress, callbacks, settings)


def _train(data: str | None, model: str | None, preset: str | None, out: Path, mode: str, config: dict[str, Any],
           tokens: tuple[str, int | None], resume: bool | str, force: bool, diagnose: bool, progress: bool,
           callbacks: Sequence[Callable[[StepInfo], None]], settings: dict[str, Any]) -> Run:
    from makemore import checkpoint, limits, models, presets, training
    from makemore.training import distributed

    started = time.perf_counter()
    if resume == "auto":
        resume = checkpoint.exists(out)
        force = force or distributed.restarts() > 0  # a restarted group before its first checkpoint: start again
    if resume:
        name, model_config, train_settings, corpus = _saved_run(out, data, model, preset, mode)
    else:
        held = [f for f in RUN_FILES if (out / f).exists()]
        if held and not force:
            raise MakemoreError(f"{out} already holds a run ({', '.join(held)}): resume it, or force to replace it")
        name, model_config, train_settings = presets.resolve(model, preset)
        corpus = None
    model_config.update(config)
    train_settings.update(settings)
    cfg = training.TrainConfig.from_dict(train_settings)
    models.make_config(name, **model_config)  # unknown model or setting: said before any data is read
    limits.check_model(name, model_config)  # and settings too large for this machine
    if corpus is None:
        named = presets.tokens(preset)
        tokenizer = tokens[0] or named.get("tokenizer", "char")
        vocab_size = tokens[1] or (named.get("vocab_size") if tokenizer == named.get("tokenizer") else None)
        corpus = _new_corpus(data or "names", mode, tokenizer, vocab_size, out, progress)
    recorder = None
    if diagnose:
        from makemore import diagnostics

        require_trainable(models.get(name).model)
        recorder = diagnostics.UpdateRecorder(every=max(1, cfg.steps // 500))
        callbacks = [*callbacks, recorder]
    group, failed = distributed.from_environment(), True
    try:
        result = training.train(name, model_config, corpus, cfg, out, resume=bool(resume), progress=progress,
                                callbacks=callbacks)
        failed = False
    except training.Interrupted:
        failed = False
        raise
    except OSError as e:  # a full disk or a folder gone read-only mid-run; checkpoints are all-or-nothing
        kept = f"the last checkpoint in {out} was kept" if checkpoint.exists(out) else "no checkpoint was written"
        raise MakemoreError(f"cannot write to {out}: {e.strerror or e}; {kept}") from None
    finally:
        # Rank 0 alone writes into `out` under torchrun. Not after an error there: the other ranks end at once,
        # torchrun then stops rank 0, and the seconds spent drawing would cost it its report of the error.
        if (out / training.METRICS).exists() and group.main and not (failed and group.active):
            _draw_loss(out)
    result.startup_seconds = max(0.0, time.perf_counter() - started - result.seconds)
    if recorder is not None and result.main:
        from makemore import diagnostics
        from makemore.batches import examples_for

        examples = examples_for(result.model, corpus.items("train"), corpus.vocab)
        diagnostics.write_all(result.model, examples, recorder, out / "diagnostics", seed=cfg.seed)
        logger.info(f"diagnostics written to {out}/diagnostics")
    return Run(out, result)


def _new_corpus(data: str, mode: str, tokenizer: str, vocab_size: int | None, out: Path, progress: bool):
    """The data of a new run: read into memory, or, for a large text file, tokenized once into a store in the run
    folder (out/store) that training reads through np.memmap, so that memory does not grow with the file."""
    from makemore import store
    from makemore.data import load_corpus

    if store.wants_store(data, mode):
        return store.train_store(data, out / "store", tokenizer=tokenizer, vocab_size=vocab_size, progress=progress)
    return load_corpus(data, mode, tokenizer=tokenizer, vocab_size=vocab_size)


def _saved_run(out: Path, data: str | None, model: str | None, preset: str | None, mode: str):
    """What a resumed run continues: the model, its settings, its training settings and its data, split as it was.
    The schedule stays the one the run was planned with (more steps go on at its final rate)."""
    from makemore import tokenizers, training
    from makemore.data import load_corpus, split_seed, training_corpus

    saved = training.saved_run(out)
    if preset is not None or (model is not None and model != saved.model):
        raise MakemoreError(f"resuming continues the run in {out} as it was (a {saved.model}): drop the "
                            f"{'preset' if preset is not None else 'model'}")
    if mode not in ("auto", saved.data["mode"]):
        raise MakemoreError(f"{out} was trained in {saved.data['mode']} mode, not {mode}")
    vocab = tokenizers.from_json(saved.vocab)
    if data is None:
        corpus = training_corpus(saved.data, vocab)
    else:  # the same file, maybe named from elsewhere: its checksum must be the run's
        corpus = load_corpus(data, saved.data["mode"], seed=split_seed(saved.data), vocab=vocab)
        if corpus.fingerprint != saved.data.get("sha256"):
            raise MakemoreError(f"cannot resume: {out} was trained on different data ({saved.data['source']})")
    settings = dict(saved.train)
    settings["schedule_steps"] = settings.get("schedule_steps") or settings.get("steps", 0)
    return saved.model, {k: v for k, v in saved.config.items() if k != "vocab_size"}, settings, corpus


def _draw_loss(out: Path) -> None:
    from makemore import plots
    from makemore.training import METRICS

    try:
        plots.loss_curve(out / METRICS, out / "loss.png")
    except OSError:  # the figure is a convenience: never hide why training stopped
        pass


def prepare(data: str, out: str | Path, *, tokenizer: str = "char", vocab_size: int | None = None,
            progress: bool = True) -> Path:
    """Tokenize a (large) text file once into the store folder `out`: train.bin and val.bin, read by training
    through np.memmap (`train(data=out)`), so memory does not grow with the corpus. Returns store.json's path."""
    from makemore import store

    return store.prepare(data, out, tokenizer=tokenizer, vocab_size=vocab_size, progress=progress)


def load(out: str | Path) -> Run:
    """The run saved in `out` (refused with one line if there is none or it is damaged)."""
    from makemore import checkpoint

    out = Path(out)
    if not checkpoint.exists(out):
        raise MakemoreError(f"no checkpoint in {out}")
    return Run(out)


def require_trainable(model: Any) -> None:
    """Diagnostics and lr-find need gradients; counting models (a model or its class) have none."""
    if not model.trainable:
        name = getattr(model, "__name__", type(model).__name__)
        raise MakemoreError(f"a {name} model is counted, not trained by gradients: nothing to see")


@dataclasses.dataclass
class Run:
    """A run folder: a checkpoint (best and last weights), metrics.csv and figures; `result` holds the figures of
    the training call that made it (None for a run loaded from disk)."""

    out: Path
    result: Result | None = None
    _loaded: dict[str, Trained] = dataclasses.field(default_factory=dict, repr=False)

    def trained(self, which: str = "best") -> Trained:
        """The model with its vocabulary and checkpoint record; "best" (lowest val loss) or "last" weights."""
        if which not in self._loaded:
            from makemore.checkpoint import load_model

            self._loaded[which] = load_model(self.out, which)
        return self._loaded[which]

    @property
    def model(self):
        return self.trained().model

    @property
    def step(self) -> int:
        return self.trained("last").ckpt.step

    def settings(self) -> dict[str, Any]:
        """The run's training settings (TrainConfig's fields), as its checkpoint holds them."""
        return dict(self.trained("last").ckpt.train)

    def resume(self, steps: int | None = None, *, progress: bool = True, **settings: Any) -> Run:
        """Continue this run (e.g. to more steps); returns the continued Run."""
        if steps is not None:
            settings["steps"] = steps
        return train(out=self.out, resume=True, progress=progress, **settings)

    def sample(self, n: int | None = None, *, temperature: float = 1.0, top_k: int | None = None,
               prompt: str = "", seed: int = 0, unique: bool = False, max_len: int | None = None,
               last: bool = False) -> list[str]:
        """n new samples (default 20 items, or 1 text); unique: only items not in the training file."""
        from makemore.sampling import make_more

        trained = self.trained("last" if last else "best")
        if n is None:
            n = 20 if trained.vocab.boundary else 1
        if n < 1:
            raise MakemoreError(f"the number of samples must be at least 1, not {n}")
        if unique and not trained.vocab.boundary:
            raise MakemoreError("unique samples need a model trained on lines (items to compare samples against)")
        unique_against = set(trained.corpus().items("all")) if unique else None
        return make_more(trained, n, seed=seed, unique_against=unique_against, prompt=prompt,
                         temperature=temperature, top_k=top_k, max_len=max_len)

    def stream(self, prompt: str = "", *, temperature: float = 1.0, top_k: int | None = None, seed: int = 0,
               max_len: int | None = None, last: bool = False) -> Iterator[str]:
        """One sample, piece by piece as it is generated (the prompt first)."""
        import torch

        from makemore.sampling import stream

        trained = self.trained("last" if last else "best")
        return stream(trained.model, trained.vocab, prompt=prompt, temperature=temperature, top_k=top_k,
                      max_len=max_len, generator=torch.Generator().manual_seed(seed))

    def evaluate(self, splits: Sequence[str] | None = None, data: str | None = None,
                 last: bool = False) -> dict[str, float | None]:
        """Mean loss (nats per token) on each split (default train, val, test: those the data has); with `data`,
        on another file read the same way. An empty split has no loss (None)."""
        from makemore.batches import examples_for
        from makemore.data import load_corpus
        from makemore.training import evaluate

        trained = self.trained("last" if last else "best")
        if data is not None:
            corpus = load_corpus(data, trained.ckpt.data["mode"], vocab=trained.vocab)
        else:
            corpus = trained.corpus()
        if splits is None:
            splits = [s for s in ("train", "val", "test") if s in corpus.splits]
        losses: dict[str, float | None] = {}
        for s in splits:
            examples = examples_for(trained.model, corpus.items(s), trained.vocab)
            losses[s] = evaluate(trained.model, examples) if examples.n_targets else None
        return losses

    def plot_loss(self, file: str | Path | None = None) -> Figure:
        """The loss curve (every step, and val at each evaluation) as a matplotlib Figure; also written to
        `file` when given."""
        from makemore import plots
        from makemore.training import METRICS

        figure = plots.loss_figure(self.out / METRICS, title=self.out.name)
        if figure is None:
            raise MakemoreError(f"no training losses in {self.out / METRICS} yet")
        if file is not None:
            plots.save(figure, file)
        return figure

    def diagnose(self, folder: str | Path | None = None, *, batch_size: int = 32, probe_steps: int = 200,
                 seed: int = 0) -> Diagnosis:
        """Lecture 3's diagnostics of the trained model (last weights): activation and gradient statistics of a
        batch, and the update:data ratios of `probe_steps` optimiser steps; figures written to `folder`
        (default out/diagnostics)."""
        from makemore import training

        trained = self.trained("last")
        cfg = training.TrainConfig.from_dict(trained.ckpt.train)
        at = min(trained.ckpt.step, max(cfg.steps - 1, 0))  # the rate the run had reached
        return _diagnose(trained.model, trained.corpus(), cfg, folder or self.out / "diagnostics", batch_size,
                         probe_steps, seed, at)


@dataclasses.dataclass
class Diagnosis:
    snapshot: Snapshot
    updates: Any  # diagnostics.UpdateRecorder
    files: list[Path]

    def to_json(self) -> dict[str, Any]:
        return {**self.snapshot.to_json(), "updates": {k: v[-1] for k, v in self.updates.ratios.items()}}


def _diagnose(model, corpus, cfg, folder: str | Path, batch_size: int, probe_steps: int, seed: int,
              at_step: int | None) -> Diagnosis:
    import torch

    from makemore import diagnostics
    from makemore.batches import examples_for

    require_trainable(model)
    examples = examples_for(model, corpus.items("train"), corpus.vocab)
    X, Y = examples.random_batch(batch_size, torch.Generator().manual_seed(seed))
    snap = diagnostics.snapshot(model, X, Y)
    updates = diagnostics.probe_updates(model, examples, cfg, steps=probe_steps, seed=seed, at_step=at_step)
    return Diagnosis(snap, updates, diagnostics.write_plots(snap, updates, folder))


def fresh_model(model: str | None = None, preset: str | None = None, data: str = "names", mode: str = "auto",
                config: dict[str, Any] | None = None):
    """A freshly initialised model of the registry for `data`, with its corpus and training settings: what
    lr-find and diagnose look at before any training."""
    from makemore import presets, training
    from makemore.data import load_corpus

    name, model_config, settings = presets.resolve(model, preset)
    model_config.update(config or {})
    corpus = load_corpus(data, mode)
    cfg = training.TrainConfig.from_dict(settings)
    return training.build_model(name, model_config, corpus.vocab.size, cfg.seed), corpus, cfg


def diagnose(model: str | None = None, preset: str | None = None, data: str = "names", *, mode: str = "auto",
             config: dict[str, Any] | None = None, folder: str | Path = "diagnostics", batch_size: int = 32,
             probe_steps: int = 200, seed: int = 0) -> Diagnosis:
    """Lecture 3's diagnostics of a freshly initialised model (see Run.diagnose for a trained one)."""
    net, corpus, cfg = fresh_model(model, preset, data, mode, config)
    return _diagnose(net, corpus, cfg, folder, batch_size, probe_steps, seed, None)


def lr_find(model: str | None = None, preset: str | None = None, data: str = "names", *, out: str | Path | None = None,
            mode: str = "auto", config: dict[str, Any] | None = None, low: float = -3.0, high: float = 0.0,
            num: int = 1000, seed: int = 0, file: str | Path = "lr_find.png") -> tuple[float, Path]:
    """The lecture's learning-rate search (one step per rate, from 10**low to 10**high) on a fresh model, or the
    run in `out`; returns the suggested rate and the plot's path."""
    from makemore import diagnostics, plots, training
    from makemore.batches import examples_for

    if not low < high:
        raise MakemoreError(f"the lowest exponent ({low:g}) must be below the highest ({high:g})")
    if out is not None:
        trained = load(out).trained("last")
        net, corpus = trained.model, trained.corpus()
        cfg = training.TrainConfig.from_dict(trained.ckpt.train)
    else:
        net, corpus, cfg = fresh_model(model, preset, data, mode, config)
    require_trainable(net)
    examples = examples_for(net, corpus.items("train"), corpus.vocab)
    exps, losses, lr = diagnostics.lr_find(net, examples, cfg, low, high, num, seed)
    return lr, plots.lr_find(exps, losses, lr, file)


def counts_figure(data: str = "names", file: str | Path | None = None):
    """Lecture 1's table of bigram counts of a lines file, as a Figure (and written to `file` when given)."""
    from makemore import plots
    from makemore.data import load_corpus
    from makemore.models.bigram import count_bigrams

    corpus = load_corpus(data, "lines")
    figure = plots.counts_figure(count_bigrams(corpus), corpus.vocab.itos)
    if file is not None:
        plots.save(figure, file)
    return figure
