import dataclasses
import json

import pytest
import torch
from torch import nn

from makemore import diagnostics, models
from makemore import training as train
from makemore.batches import ContextExamples as Examples
from makemore.batches import examples_for
from makemore.cli import main


@pytest.fixture(scope="module")
def batch(names_corpus):
    ex = Examples(names_corpus.items("train"), names_corpus.vocab, 3)
    return ex, *ex.random_batch(32, torch.Generator().manual_seed(0))


def build(name, **config):
    return models.build(name, models.make_config(name, vocab_size=27, **config))


def test_broken_init_is_saturated_and_fixed_is_not(batch):
    _, X, Y = batch
    broken = diagnostics.snapshot(build("mlp", init="raw"), X, Y)
    fixed = diagnostics.snapshot(build("mlp", init="scaled"), X, Y)
    assert broken.saturated_layers == ["act"] and broken.layers[0].saturated > 0.6
    assert fixed.saturated_layers == [] and fixed.layers[0].saturated < 0.25
    assert broken.layers[0].function == "tanh" and broken.layers[0].flat_rule == "|t| > 0.97"
    assert broken.loss > 20 and fixed.loss == pytest.approx(3.30, abs=0.05)


def test_deep_statistics_are_sensible(batch):
    _, X, Y = batch
    model = build("mlp-deep", batchnorm=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    snap = diagnostics.snapshot(model, X, Y)
    assert [s.name for s in snap.layers] == [f"net.layers.{i}" for i in (3, 5, 7, 9, 11)]
    for s in snap.layers:
        assert abs(s.mean) < 0.1 and 0.5 < s.std < 0.8  # gain 5/3 keeps tanh outputs spread, not squashed
    # the output layer's weights get the largest grad:data ratio at init: they were scaled down by 0.1
    ratios = {p.name: p.grad_data_ratio for p in snap.params}
    assert max(ratios, key=ratios.get) == "net.layers.12.weight"
    assert all(p.grad is None for p in model.parameters())  # the snapshot leaves no gradients behind
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    json.dumps(snap.to_json())


def test_update_ratios_follow_the_learning_rate(batch):
    ex, _, _ = batch
    model = build("mlp-deep")
    slow = diagnostics.probe_updates(model, ex, train.TrainConfig(optimizer="sgd", lr=0.001), steps=20)
    fast = diagnostics.probe_updates(model, ex, train.TrainConfig(optimizer="sgd", lr=0.1), steps=20)
    for name in slow.ratios:
        assert fast.ratios[name][0] == pytest.approx(slow.ratios[name][0] + 2, abs=0.05)  # 100x lr = +2 in log10


def test_diagnose_command_writes_pictures(tmp_path, names_path, capsys):
    assert main(["diagnose", "--model", "mlp-deep", "--data", names_path, "--dir", str(tmp_path),
                 "--probe-steps", "20", "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert len(stats["layers"]) == 5 and stats["saturated_layers"] == []
    for name in ("activations", "activation_grads", "weight_grads", "saturation", "update_ratios"):
        assert (tmp_path / f"{name}.png").stat().st_size > 5000, name
    assert main(["diagnose", "--preset", "lecture2", "--data", names_path, "--dir", str(tmp_path / "b"),
                 "--probe-steps", "5"]) == 0
    assert "saturated (>" in capsys.readouterr().out


def test_train_with_diagnose(tmp_path, tiny_names, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "mlp-deep", "--data", tiny_names, "--out", str(out), "--steps", "50",
                 "--quiet", "--samples", "0", "--diagnose"]) == 0
    assert (out / "diagnostics" / "update_ratios.png").stat().st_size > 5000
    rows = (out / "diagnostics" / "update_ratios.csv").read_text().splitlines()
    assert len(rows) == 50 and rows[0].startswith("step,net.layers.0.weight")


def test_lr_find_suggests_a_sensible_rate(tmp_path, names_path, capsys):
    assert main(["lr-find", "--preset", "lecture2", "--data", names_path, "--num", "300",
                 "--file", str(tmp_path / "lr.png")]) == 0
    out = capsys.readouterr().out
    lr = float(out.split()[2])
    assert 0.02 <= lr <= 0.6  # the lecture settles on 0.1 from this plot
    assert (tmp_path / "lr.png").stat().st_size > 5000


# The non-linearities each model family is made of; a model not listed here must still show at least one.
FUNCTIONS = {"rnn": {"tanh"}, "gru": {"sigmoid", "tanh"}, "lstm": {"sigmoid", "tanh"}, "transformer": {"gelu"},
             "gpt": {"gelu"}, "bow": {"gelu"}, "mlp": {"tanh"}, "mlp-deep": {"tanh"}, "wavenet": {"tanh"}}
LINEAR = {"bigram"}  # one linear layer: nothing between input and softmax to look at


SMALL = {"n_embd": 16, "n_hidden": 32, "n_layer": 2, "n_head": 2}  # for any model whose config has these fields


def small_batch(name, corpus, block_size=8, batch_size=16):
    fields = {f.name for f in dataclasses.fields(models.get(name).config)}
    small = {k: v for k, v in SMALL.items() if k in fields}
    model = models.build(name, models.make_config(name, vocab_size=corpus.vocab.size, block_size=block_size, **small))
    ex = examples_for(model, corpus.items("train")[:500], corpus.vocab)
    return model, *ex.random_batch(batch_size, torch.Generator().manual_seed(0))


@pytest.mark.parametrize("name", [n for n, e in models.MODELS.items() if e.model.trainable])
def test_every_trainable_model_shows_its_activations(name, names_corpus):
    torch.manual_seed(0)
    model, X, Y = small_batch(name, names_corpus)
    snap = diagnostics.snapshot(model, X, Y)
    if name in LINEAR:
        assert snap.layers == []
        return
    assert snap.layers, f"{name}: no non-linearity found (add it to diagnostics.NONLINEARITIES or make it a module)"
    assert {s.function for s in snap.layers} == FUNCTIONS.get(name, {s.function for s in snap.layers})
    for s in snap.layers:
        assert s.std > 0.01 and s.grad_std > 0, s.name  # real activations, reached by the backward pass
        assert snap.activations[s.name].shape == snap.act_grads[s.name].shape == snap.flat[s.name].shape


def test_a_recurrent_cell_is_seen_at_every_time_step(names_corpus):
    torch.manual_seed(0)
    model, X, Y = small_batch("lstm", names_corpus, block_size=8, batch_size=16)
    snap = diagnostics.snapshot(model, X, Y)
    assert [s.name for s in snap.layers] == ["cell.forget_gate", "cell.input_gate", "cell.candidate",
                                             "cell.output_gate", "cell.memory_out"]
    assert snap.activations["cell.forget_gate"].shape == (16 * 8, 32)  # 16 rows x 8 steps, 32 hidden units
    gates = [s for s in snap.layers if s.function == "sigmoid"]
    assert all(0.4 < s.mean < 0.6 for s in gates)  # small initial weights: gates half open
    # the learned start state is all zeros at first: no grad:data ratio (it used to print inf)
    ratios = {p.name: p.grad_data_ratio for p in snap.params}
    assert ratios["start"] is None and 1e-4 < ratios["cell.xh_to_gates.weight"] < 1
    assert "inf" not in diagnostics.format_table(snap)
    figs = diagnostics.figures(snap)  # for a notebook: Figures, nothing written
    assert list(figs) == ["activations", "activation_grads", "weight_grads", "saturation"]
    assert len(figs["saturation"].axes) == 5 and len(figs["activations"].axes[0].lines) == 5


def test_saturated_gates_are_flagged(names_corpus):
    torch.manual_seed(0)
    model, X, Y = small_batch("gru", names_corpus)
    with torch.no_grad():
        model.cell.xh_to_z.weight.mul_(40)  # pre-activations far beyond +-7: the update gate is stuck at 0 or 1
    snap = diagnostics.snapshot(model, X, Y)
    stats = {s.name: s for s in snap.layers}
    assert stats["cell.update_gate"].saturated > 0.5 and stats["cell.reset_gate"].saturated < 0.05
    assert snap.saturated_layers == ["cell.update_gate"]
    assert stats["cell.update_gate"].flat_rule == "s < 0.015 or s > 0.985"


class Rectified(nn.Module):
    """A context model with one hidden layer through `act`; units 0-7 of 16 get a bias of -100: dead."""

    def __init__(self, act: nn.Module):
        super().__init__()
        self.emb = nn.Embedding(27, 8)
        self.fc = nn.Linear(3 * 8, 16)
        self.act = act
        self.head = nn.Linear(16, 27)
        with torch.no_grad():
            self.fc.bias[:8] = -100

    def forward(self, idx):
        return self.head(self.act(self.fc(self.emb(idx).flatten(1))))


@pytest.mark.parametrize("act", [nn.ReLU(), nn.GELU()])
def test_dead_rectifier_units_are_counted(batch, act):
    _, X, Y = batch
    torch.manual_seed(0)
    snap = diagnostics.snapshot(Rectified(act), X, Y)
    (s,) = snap.layers
    assert s.name == "act" and s.dead == 0.5  # exactly the 8 units pushed to -100, on all 32 examples
    assert 0.5 <= s.saturated < 0.9  # the live units are off for some inputs too (a rectifier's nature)
    assert snap.saturated_layers == ["act"]
    healthy = Rectified(act)
    with torch.no_grad():
        healthy.fc.bias.zero_()
    assert diagnostics.snapshot(healthy, X, Y).layers[0].dead == 0 and snap.layers[0].grad_std > 0
