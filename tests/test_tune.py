"""makemore tune: the trainer's hook for it (val in StepInfo, StopTraining), then the search on Optuna with small
budgets: trials complete and are pruned, DIR/best is a run, workers share one study, a killed worker's trial
is failed, a finished study continues, bad input is one line."""

import os
import signal
import subprocess
import sys
import time
from importlib import resources
from pathlib import Path

import pytest
from conftest import missing

from makemore import checkpoint
from makemore import training as train
from makemore.data import load_corpus
from makemore.errors import MakemoreError

SMALL = {"block_size": 3, "n_embd": 8, "n_hidden": 32}
# Small and fast: every trial a tiny model of fixed steps, so a few seconds hold several trials.
SPACE = {"families": ["mlp"], "lr": [1e-4, 0.3], "batch_size": [16, 64], "n_embd": [4, 12], "n_hidden": [16, 48],
         "block_size": [2, 4]}
STEPS = 60


def cfg(**kw):
    base = {"steps": 40, "batch_size": 16, "optimizer": "adamw", "lr": 1e-2, "eval_interval": 10, "seed": 3}
    return train.TrainConfig(**{**base, **kw})


def test_callbacks_see_val_after_each_evaluation(tiny_names, tmp_path):
    seen = []
    train.train("mlp", SMALL, load_corpus(tiny_names), cfg(), tmp_path, progress=False,
                callbacks=[lambda info: seen.append((info.step, info.val))])
    vals = train.read_metrics(tmp_path / train.METRICS)[1]
    assert [(s, v) for s, v in seen if v is not None] == [(s - 1, pytest.approx(v, abs=1e-6)) for s, v in vals]
    assert [s for s, _ in vals] == [10, 20, 30, 40] and len(seen) == 40


def test_stop_training_ends_the_run_evaluated_and_saved(tiny_names, tmp_path):
    def stop(info):
        if info.step == 14:
            raise train.StopTraining

    r = train.train("mlp", SMALL, load_corpus(tiny_names), cfg(), tmp_path, progress=False, callbacks=[stop])
    assert r.step == 15 and checkpoint.load(tmp_path).step == 15
    assert [s for s, _ in train.read_metrics(tmp_path / train.METRICS)[1]] == [10, 15]
    assert r.val_loss == pytest.approx(train.read_metrics(tmp_path / train.METRICS)[1][-1][1], abs=1e-6)


# --- the search (needs Optuna) ---


@pytest.fixture(scope="module")
def optuna():
    try:
        import optuna
    except ImportError:
        missing("needs Optuna: pip install -e '.[tune]'")
    return optuna


@pytest.fixture(scope="module")
def small_names(tmp_path_factory) -> str:
    """The first 400 bundled names: enough for trials to differ, small enough to evaluate at once."""
    names = resources.files("makemore").joinpath("datasets/names.txt").read_text().splitlines()[:400]
    path = tmp_path_factory.mktemp("data") / "names400.txt"
    path.write_text("\n".join(names) + "\n")
    return str(path)


@pytest.fixture(scope="module")
def tuned(optuna, small_names, tmp_path_factory):
    from makemore import tune

    out = tmp_path_factory.mktemp("tune") / "study"
    summary = tune.run(small_names, 20, out, space=SPACE, steps=STEPS)
    return out, summary


def _states(optuna, out: Path) -> list[str]:
    from makemore import tune

    study = optuna.load_study(study_name=tune.STUDY, storage=f"sqlite:///{out / tune.STORAGE_FILE}")
    return [t.state.name for t in study.trials]


def test_a_short_tune_completes_trials_and_prunes_some(tuned, optuna):
    out, summary = tuned
    states = [t.state.name for t in summary.study.trials]
    assert states.count("COMPLETE") >= 1 and states.count("PRUNED") >= 1, states
    assert "RUNNING" not in states and "FAIL" not in states
    pruned = [t for t in summary.study.trials if t.state.name == "PRUNED"]
    assert all(checkpoint.load(out / t.user_attrs["folder"]).step < STEPS for t in pruned)  # stopped early, kept
    assert {p.name for p in summary.figures} >= {"tune_val_vs_time.png", "tune_history.png"}


def test_best_is_the_best_trial_and_loads_and_samples(tuned):
    from makemore.checkpoint import load_model
    from makemore.sampling import make_more

    out, summary = tuned
    best = summary.study.best_trial
    assert summary.best == out / "best" and (out / "best").resolve() == (out / best.user_attrs["folder"]).resolve()
    trained = load_model(out / "best")
    assert trained.ckpt.best["val"] == pytest.approx(best.value, abs=1e-9)
    samples = make_more(trained, 5, seed=0)
    assert len(samples) == 5 and all(isinstance(s, str) for s in samples)


def test_figures_leave_matplotlib_as_it_was(tuned, tmp_path):
    import matplotlib

    from makemore import tune

    backend = matplotlib.get_backend()
    with matplotlib.rc_context():
        matplotlib.rcdefaults()
        matplotlib.use("svg")  # a caller's own backend (a notebook's) is given back too
        before = dict(matplotlib.rcParams)
        paths = tune.figures(tuned[1].study, tmp_path)
        assert dict(matplotlib.rcParams) == before and matplotlib.get_backend() == "svg"
    matplotlib.use(backend)
    assert [p.name for p in paths][:2] == ["tune_val_vs_time.png", "tune_history.png"]


def _tune_cli(argv: list[str]) -> int:
    """`makemore tune ...` as the CLI runs it (its one-line errors and exit codes)."""
    from makemore import cli, tune_cli

    parser = cli._Parser(prog="makemore")
    tune_cli.register(parser.add_subparsers(dest="command", required=True))
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a bad flag: argparse's one line
        return e.code
    return cli._run(args)


@pytest.mark.parametrize("flags, message", [
    (["--budget", "0"], "--budget must be more than 0"),
    (["--budget=-5m"], "--budget must be a time"),
    (["--budget", "ten minutes"], "--budget must be a time"),
    (["--budget", "5s", "--storage", "sqlite:////no/such/dir/study.db"], "cannot open the study storage"),
    (["--budget", "5s", "--space", "SPACE:unknown = [1, 2]"], "unknown key 'unknown'"),
    (["--budget", "5s", "--space", "SPACE:lr = [0.1, 0.01]"], "empty range"),
    (["--budget", "5s", "--space", "SPACE:families = []"], "non-empty list"),
    (["--budget", "5s", "--space", "SPACE:lr = ["], "not valid TOML"),
    (["--budget", "5s", "--data", "OTHER"], "was made for other data"),
    (["--budget", "5s", "--workers", "0"], "--workers: must be between 1 and 256"),
    (["--budget", "5s", "--seed=-1"], "--seed: must be between 0"),
    (["--budget", "5s", "--space", "SPACE:families = [\"gru\"]"], "searches another space (families, lr"),
])
def test_bad_input_is_one_line_and_the_study_is_kept(tuned, optuna, small_names, tmp_path, capsys, flags, message):
    out, _ = tuned
    before = _states(optuna, out)
    flags = list(flags)
    for i, flag in enumerate(flags):
        if flag.startswith("SPACE:"):
            (tmp_path / "space.toml").write_text(flag.removeprefix("SPACE:") + "\n")
            flags[i] = str(tmp_path / "space.toml")
        elif flag == "OTHER":
            (tmp_path / "other.txt").write_text("alpha\nbeta\ngamma\ndelta\n" * 20)
            flags[i] = str(tmp_path / "other.txt")
    argv = ["tune", "--out", str(out), *flags]
    if "--data" not in flags:
        argv += ["--data", small_names]
    assert _tune_cli(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("makemore: error: ") and message in err, err
    assert _states(optuna, out) == before


def test_the_command_prints_a_table_and_the_best(tuned, small_names, capsys):
    out, _ = tuned
    assert _tune_cli(["tune", "--data", small_names, "--budget", "1s", "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["trial", "family", "state", "val"]
    assert lines[1].split()[1:3] == ["mlp", "complete"]  # best first
    assert lines[-1].startswith(f"best: {out / 'best'} -> ")


def _start(code: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent / "src")}
    return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)


def test_two_workers_share_one_study(optuna, small_names, tmp_path):
    from makemore import tune

    out = tmp_path / "study"
    trials = tune.run(small_names, 30, out, workers=2, space=SPACE, steps=STEPS).study.trials
    assert [t.number for t in trials] == list(range(len(trials)))
    assert all(t.state.name in ("COMPLETE", "PRUNED") for t in trials), [t.state.name for t in trials]
    assert len({t.user_attrs["pid"] for t in trials}) == 2  # both processes ran trials
    folders = [t.user_attrs["folder"] for t in trials]
    assert len(set(folders)) == len(folders) and all(checkpoint.exists(out / f) for f in folders)


def test_a_killed_workers_trial_fails_and_the_study_goes_on(optuna, small_names, tmp_path, monkeypatch):
    from makemore import tune

    out = tmp_path / "study"
    long = {**SPACE, "lr": [1e-3, 1e-3]}
    code = (f"from makemore import tune; tune.run({small_names!r}, 120, {str(out)!r}, space={long!r}, "
            "steps=10**9)")  # one trial that trains until it is killed
    proc = _start(code)
    storage = f"sqlite:///{out / tune.STORAGE_FILE}"
    try:
        for _ in range(600):
            if (out / "trials" / "0000" / train.METRICS).exists():  # training, so its trial is in the storage
                break
            assert proc.poll() is None, proc.communicate()[0]
            time.sleep(0.1)
        else:
            pytest.fail("the worker never started its trial")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.communicate()
    study = optuna.load_study(study_name=tune.STUDY, storage=storage)
    assert [t.state.name for t in study.trials] == ["RUNNING"]
    monkeypatch.setattr(tune, "GRACE", 1)
    time.sleep(tune.HEARTBEAT + 1)
    summary = tune.run(small_names, 6, out, space=long, steps=STEPS)
    states = [t.state.name for t in summary.study.trials]
    assert states[0] == "FAIL" and len(states) > 1 and "COMPLETE" in states[1:], states
    assert (out / "best").resolve().name != "0000"


def test_running_again_continues_a_finished_study(optuna, small_names, tmp_path):
    from makemore import tune

    out = tmp_path / "study"
    first = [t.number for t in tune.run(small_names, 3, out, space=SPACE, steps=STEPS).study.trials]
    again = tune.run(small_names, 3, out, space=SPACE, steps=STEPS).study.trials
    assert first and [t.number for t in again][: len(first)] == first and len(again) > len(first)


def test_the_floor_is_trained_once(optuna, small_names, tmp_path):
    from makemore import tune

    trials = tune.run(small_names, 3, tmp_path / "s", space={"families": ["bigram"]}).study.trials
    states = [t.state.name for t in trials]
    assert states[0] == "COMPLETE" and len(states) > 1 and set(states[1:]) == {"PRUNED"}, states


def test_the_time_after_the_search_trains_the_best_settings_again_for_longer(optuna, small_names, tmp_path):
    from makemore import tune

    start = time.time()
    trials = tune.run(small_names, 12, tmp_path / "s", space=SPACE).study.trials
    assert time.time() - start < 12 + 10  # (the last trial may overrun a little; start-up and figures)
    final = trials[-1]
    searched = [t for t in trials if "final" not in t.user_attrs]
    assert final.user_attrs["final"] == min((t for t in searched if t.value is not None), key=lambda t: t.value).number
    retrained = trials[final.user_attrs["final"]]
    assert final.state.name == "COMPLETE" and final.params == retrained.params
    # It trains for what the search left (half the budget), longer than the trial it repeats (an eighth).
    took = [t.user_attrs["seconds"] for t in (retrained, final)]
    assert took[1] > 1.5 * took[0] and final.user_attrs["steps"] > retrained.user_attrs["steps"], took
    given = start + 12 - final.datetime_start.timestamp()
    assert took[1] > 0.4 * given, (took, given)  # it fills the time it has (here ~65%: evaluations take the rest)
    assert all(t.datetime_complete <= final.datetime_start for t in searched)


def test_with_two_workers_the_two_best_settings_are_trained_again_side_by_side(optuna, small_names, tmp_path):
    from makemore import tune

    trials = tune.run(small_names, 20, tmp_path / "s", workers=2, space=SPACE).study.trials
    finals = [t for t in trials if t.user_attrs.get("final") is not None]
    searched = sorted((t for t in trials if t.value is not None and t not in finals), key=lambda t: t.value)
    assert [t.user_attrs["final"] for t in finals] == [searched[0].number, searched[1].number]
    assert all(t.state.name == "COMPLETE" and t.params == trials[t.user_attrs["final"]].params for t in finals)
    assert len({t.user_attrs["pid"] for t in finals}) == 2


def test_a_final_queued_by_a_stopped_run_is_a_search_trial_next_time(optuna, small_names, tmp_path):
    from makemore import tune

    out = tmp_path / "study"
    first = tune.run(small_names, 3, out, space=SPACE, steps=STEPS).study
    best, n = first.best_trial, len(first.trials)
    first.enqueue_trial(best.params, user_attrs={"final": best.number})  # as a run stopped before it trained it
    again = tune.run(small_names, 3, out, space=SPACE, steps=STEPS).study.trials
    queued = again[n]
    assert queued.params == best.params and queued.user_attrs["final"] is None
    assert queued.user_attrs["steps"] <= STEPS and queued.state.name in ("COMPLETE", "PRUNED")


def test_parse_budget():
    from makemore.tune import parse_budget

    assert [parse_budget(t) for t in ("90s", "10m", "1.5h", "45", " 2m ")] == [90, 600, 5400, 45, 120]
    for bad in ("0", "0s", "-1", "1d", "", "m", "nan", "inf", "1e3"):
        with pytest.raises(MakemoreError):
            parse_budget(bad)


def test_a_new_study_starts_from_the_known_recipes_its_space_holds():
    from makemore.tune import STARTS, check_space, in_space

    assert [p["family"] for p in STARTS if in_space(p, check_space(None))] == ["bigram", "lstm", "mlp", "transformer"]
    assert not any(in_space(p, check_space(SPACE)) for p in STARTS)  # (the tests' small space: none)
    assert [in_space(p, check_space({"families": ["mlp"]})) for p in STARTS] == [False, False, True, False]


def test_the_lstm_start_has_more_dropout_when_its_final_trial_is_long():
    from makemore.tune import STARTS, starts

    def lstm(budget):
        return [p for p in starts(budget) if p["family"] == "lstm"][0]

    assert lstm(300) == [p for p in STARTS if p["family"] == "lstm"][0] and lstm(300)["dropout"] == 0.3
    assert lstm(30 * 60) == {**lstm(300), "dropout": 0.45}
    assert [p for p in starts(30 * 60) if p["family"] != "lstm"] == [p for p in STARTS if p["family"] != "lstm"]


def test_the_known_recipes_are_never_pruned(optuna, small_names, tmp_path, monkeypatch):
    from makemore import tune

    start = {"family": "mlp", "block_size": 3, "n_embd": 8, "n_hidden": 32, "dropout": 0.0, "lr": 1e-2,
             "batch_size": 32, "weight_decay": 0.0, "schedule": "constant"}
    monkeypatch.setattr(tune, "STARTS", [start])
    monkeypatch.setattr(optuna.pruners.SuccessiveHalvingPruner, "prune", lambda self, study, trial: True)
    trials = tune.run(small_names, 3, tmp_path / "s", space=SPACE, steps=STEPS).study.trials
    assert trials[0].params == start and trials[0].user_attrs["start"] is True
    states = [t.state.name for t in trials]  # (the last may be cut short by the deadline before it is compared)
    assert states[0] == "COMPLETE" and len(states) > 2 and set(states[1:-1]) == {"PRUNED"}, states
    assert trials[0].user_attrs["steps"] == STEPS


def test_space_overrides_are_checked():
    from makemore.tune import SPACE as DEFAULT
    from makemore.tune import check_space

    assert check_space({"lr": [1e-3, 1e-2], "families": ["gru", "gru"]}) == {**DEFAULT, "lr": [1e-3, 1e-2],
                                                                               "families": ["gru"]}
    for bad, message in [({"n_embd": [8.5, 16]}, "whole numbers"), ({"dropout": [0.1, 1.0]}, "below 1"),
                         ({"families": ["gpt"]}, "non-empty list"), ({"lr": [0, 1e-2]}, ">= 1e-08"),
                         ({"lr": 0.1}, "range")]:
        with pytest.raises(MakemoreError, match=message):
            check_space(bad)


def test_not_under_torchrun(small_names, tmp_path, monkeypatch):
    from makemore import tune

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(MakemoreError, match="not run under torchrun"):
        tune.run(small_names, 5, tmp_path / "study")
    assert not (tmp_path / "study").exists()


# --- dropout in the models the search tries (default 0: the models as they were) ---


@pytest.mark.parametrize("name, config", [("mlp", {}), ("wavenet", {"block_size": 4}), ("gru", {"block_size": 8}),
                                          ("lstm", {"block_size": 8})])
def test_dropout_is_off_by_default_and_only_in_training(name, config):
    import torch

    from makemore import models

    def build(**extra):
        torch.manual_seed(0)  # (the recurrent nets draw their weights from torch's generator)
        return models.build(name, models.make_config(name, **config, **extra))

    plain, dropped = build(), build(dropout=0.5)
    x = torch.randint(0, 27, (64, config.get("block_size", 3)))
    assert models.make_config(name, **config).dropout == 0.0
    assert sum(isinstance(m, torch.nn.Dropout) and m.p > 0 for m in plain.modules()) == 0
    plain.eval()
    dropped.eval()
    assert torch.equal(plain(x), dropped(x))  # the same weights, and no dropout in evaluation
    dropped.train()
    torch.manual_seed(1)
    a = dropped(x)
    assert not torch.allclose(a, dropped.eval()(x))
    with pytest.raises(MakemoreError, match="dropout must be in"):
        models.make_config(name, **config, dropout=1.0)
