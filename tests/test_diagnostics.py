import json

import pytest
import torch

from makemore import diagnostics, models
from makemore import training as train
from makemore.batches import ContextExamples as Examples
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
