import errno

import matplotlib
import pytest
import torch
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure

from makemore import diagnostics, models, plots
from makemore.atomic import atomic_write


def write_metrics(path, losses, vals=()):
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = ["step,lr,loss,val_loss"] + [f"{i},0.1,{v},{dict(vals).get(i, '')}" for i, v in enumerate(losses)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_loss_figure_is_titled_with_the_run(tmp_path):
    csv = write_metrics(tmp_path / "names-mlp" / "metrics.csv", [3.3, 2.9, 2.7, 2.5], {3: 2.6})
    fig = plots.loss_figure(csv)
    assert isinstance(fig, Figure) and fig.axes[0].get_title() == "names-mlp"
    assert plots.loss_figure(csv, title="lecture 2").axes[0].get_title() == "lecture 2"
    assert plots.loss_curve(csv, tmp_path / "loss.png").stat().st_size > 5000
    assert plots.loss_figure(write_metrics(tmp_path / "empty" / "metrics.csv", [])) is None


def test_saturation_figure_counts_what_the_table_counts(names_corpus):
    from makemore.batches import ContextExamples

    X, Y = ContextExamples(names_corpus.items("train"), names_corpus.vocab, 3).random_batch(
        32, torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    snap = diagnostics.snapshot(models.build("mlp", models.make_config("mlp", init="raw")), X, Y)
    (layer,) = snap.layers
    fig = plots.saturation_figure(snap.flat, [s.flat_rule for s in snap.layers])
    (ax,) = fig.axes
    # one threshold: the title's share is the table's, by the same rule (it used to count |t| > 0.99)
    assert ax.get_title() == f"act: {100 * layer.saturated:.1f}% saturated (|t| > 0.97)"
    assert f"{100 * layer.saturated:8.1f}%" in diagnostics.format_table(snap)
    assert ax.get_xlabel() == "unit" and ax.get_ylabel() == "example (× position)"


def test_counts_table_text_stays_readable():
    counts = torch.tensor([[0.0, 5.0], [100.0, 40.0]])
    fig = plots.counts_figure(counts, [".", "a"])
    colors = {t.get_text(): to_rgb(t.get_color()) for t in fig.axes[0].texts}
    assert colors["100"] == (1.0, 1.0, 1.0)  # the darkest cell: white text
    assert sum(colors["0"]) < 0.7 and sum(colors["5"]) < 0.7  # light cells: dark text


def test_figures_change_no_global_matplotlib_state(monkeypatch, tmp_path):
    def refuse(*args, **kwargs):
        raise AssertionError("plots must not choose matplotlib's backend: a notebook's own plots would change")

    monkeypatch.setattr(matplotlib, "use", refuse)
    before = dict(matplotlib.rcParams)
    path = plots.lr_find([-3, -2, -1], [3.0, 2.5, 4.0], 0.01, tmp_path / "lr.png")
    assert path.stat().st_size > 5000 and dict(matplotlib.rcParams) == before


def test_a_failed_write_names_the_users_path(tmp_path):
    fig = plots.lr_find_figure([-3, -2, -1], [3.0, 2.5, 4.0], 0.01)
    with pytest.raises(OSError) as e:
        plots.save(fig, "/proc/x.png")  # no file can be made there, not even the temporary one
    assert "'/proc/x.png'" in str(e.value) and ".tmp" not in str(e.value)

    def disk_full(f):
        f.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device")

    target = tmp_path / "loss.png"
    with pytest.raises(OSError) as e:
        atomic_write(target, disk_full)
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(target)
    assert list(tmp_path.iterdir()) == []  # and no temporary left behind


def test_a_notebook_shows_a_figure_as_a_picture():
    formatters = pytest.importorskip("IPython.core.formatters")
    fig = plots.lr_find_figure([-3, -2, -1], [3.0, 2.5, 4.0], 0.01)
    data, _ = formatters.DisplayFormatter().format(fig)  # what Jupyter puts in the cell's output
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
