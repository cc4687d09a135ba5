"""The Python API (makemore.train / load / Run): what the CLI does, callable from a notebook."""

import csv
import math
from pathlib import Path

import pytest
from matplotlib.figure import Figure

import makemore as mm
from makemore.errors import MakemoreError

SMALL = {"config": {"n_embd": 4, "n_hidden": 16}, "progress": False, "batch_size": 32, "seed": 3}


def lrs(out: Path) -> dict[int, float]:
    with open(out / "metrics.csv") as f:
        return {int(r["step"]): float(r["lr"]) for r in csv.DictReader(f) if r["lr"]}


def test_train_sample_evaluate_plot(tiny_names, tmp_path):
    run = mm.train(tiny_names, "mlp", out=tmp_path / "a", steps=40, eval_interval=20, **SMALL)
    assert run.result.step == 40 and run.step == 40
    samples = run.sample(5, prompt="em", temperature=0.8, seed=1)
    assert len(samples) == 5 and all(s.startswith("em") for s in samples)
    assert run.sample(5, prompt="em", temperature=0.8, seed=1) == samples  # seeded
    losses = run.evaluate()
    assert set(losses) == {"train", "val", "test"} and all(math.isfinite(v) for v in losses.values())
    # The run's reported train loss is the training split's, evaluated as val is, not the last batch's.
    assert run.result.train_loss == pytest.approx(run.evaluate(["train"], last=True)["train"], abs=1e-6)
    assert run.result.val_loss == pytest.approx(run.evaluate(["val"], last=True)["val"], abs=1e-6)
    assert run.result.tokens == 40 * 32 and run.result.tokens_per_second > 0
    assert 0 < run.result.eval_seconds < run.result.seconds
    figure = run.plot_loss()
    assert isinstance(figure, Figure) and figure.axes[0].get_title() == "a"
    assert (tmp_path / "a" / "loss.png").is_file()  # drawn after training, as the CLI does


def test_resume_continues_and_keeps_the_schedule(tiny_names, tmp_path):
    out = tmp_path / "run"
    mm.train(tiny_names, "mlp", out=out, steps=30, eval_interval=10, schedule="cosine", warmup=5, lr=0.01, min_lr=0.001,
             **SMALL)
    planned = lrs(out)
    run = mm.load(out).resume(steps=50, progress=False)
    assert run.step == 50 and run.settings()["schedule_steps"] == 30
    after = lrs(out)
    assert all(after[s] == planned[s] for s in planned)  # the rows before are the run's own
    assert all(after[s] == pytest.approx(0.001) for s in range(30, 50))  # then the final rate, not a jump back up
    # The same data may be named again (the run's own file); another file is refused.
    mm.train(tiny_names, out=out, resume=True, steps=55, progress=False)
    other = tmp_path / "other.txt"
    other.write_text("zed\nzoe\n" * 20)
    with pytest.raises(MakemoreError, match="was trained on different data"):
        mm.train(str(other), out=out, resume=True, steps=60, progress=False)


def test_existing_run_resume_auto_and_force(tiny_names, tmp_path):
    out = tmp_path / "run"
    run = mm.train(tiny_names, "mlp", out=out, steps=10, resume="auto", **SMALL)  # nothing there: starts
    assert run.step == 10
    with pytest.raises(MakemoreError, match="already holds a run"):
        mm.train(tiny_names, "mlp", out=out, steps=10, **SMALL)
    assert mm.train(out=out, resume="auto", steps=20, progress=False).step == 20  # continues
    assert mm.train(tiny_names, "mlp", out=out, steps=5, force=True, **SMALL).step == 5
    with pytest.raises(MakemoreError, match="drop the preset"):
        mm.train(out=out, preset="lecture2", resume=True, steps=30, progress=False)
    with pytest.raises(MakemoreError, match="no checkpoint"):
        mm.load(tmp_path / "nothing")


def test_diagnose_and_counts_return_figures(tiny_names, tmp_path):
    run = mm.train(tiny_names, "mlp", out=tmp_path / "a", steps=20, **SMALL)
    found = run.diagnose(tmp_path / "d", probe_steps=5, batch_size=8)
    assert found.files and all(Path(p).is_file() for p in found.files)
    assert found.snapshot.to_json()
    figure = mm.counts_figure(tiny_names)
    assert isinstance(figure, Figure) and figure._repr_png_().startswith(b"\x89PNG")  # shown in a notebook


def test_the_cli_holds_no_library_logic():
    """Every command parses, calls the API, prints: no checkpoint reading, data loading or model building."""
    source = (Path(mm.__file__).parent / "cli.py").read_text()
    for name in ("makemore.checkpoint", "makemore.data", "load_corpus", "build_model", "saved_run", "presets.resolve"):
        assert name not in source, name
