import json

import pytest
import torch
import torch.nn.functional as F

from makemore import backprop, models, presets
from makemore import training as train
from makemore.batches import ContextExamples as Examples
from makemore.checkpoint import load_model
from makemore.cli import main
from makemore.data import load_corpus
from makemore.models.mlp_manual import ManualMLP
from makemore.sampling import make_more as sample

LECTURE_SEED = 2147483647


@pytest.fixture(scope="module")
def batch(names_path):
    corpus = load_corpus(names_path)
    g = torch.Generator().manual_seed(LECTURE_SEED)
    p = backprop.init_params(generator=g)
    X, Y = Examples(corpus.items("train"), corpus.vocab, 3).random_batch(32, g)
    return p, X, Y


def as_double(p):
    return backprop.Params(**{k: v.double() for k, v in p.tensors().items()})


def test_every_gradient_row_matches_autograd_in_float64(batch):
    p, X, Y = batch
    rows = backprop.check(as_double(p), X, Y)
    assert [r.name for r in rows] == [*backprop.ROWS, backprop.FUSED_CE, backprop.FUSED_BN]
    for r in rows:
        assert r.approximate and r.maxdiff <= 1e-10, r


def test_float32_table_as_the_lecture(batch):
    p, X, Y = batch
    rows = {r.name: r for r in backprop.check(p, X, Y)}
    assert all(r.approximate for r in rows.values())
    # The loss back to the second layer is bit-exact on every machine (the same kernels as autograd's).
    for name in backprop.ROWS[:backprop.ROWS.index("b2") + 1]:
        assert rows[name].exact, name
    assert rows[backprop.FUSED_CE].maxdiff < 1e-8
    assert rows[backprop.FUSED_BN].maxdiff < 1e-8


def test_fused_cross_entropy_against_autograd():
    g = torch.Generator().manual_seed(0)
    logits = (torch.randn(50, 27, generator=g, dtype=torch.float64) * 3).requires_grad_()
    Y = torch.randint(0, 27, (50,), generator=g)
    F.cross_entropy(logits, Y).backward()
    torch.testing.assert_close(backprop.cross_entropy_backward(logits.detach(), Y), logits.grad, rtol=0, atol=1e-12)


@pytest.mark.parametrize("n", [2, 7, 64])
def test_fused_batchnorm_against_autograd(n):
    g = torch.Generator().manual_seed(n)
    x = (torch.randn(n, 13, generator=g, dtype=torch.float64) * 2 + 1).requires_grad_()
    gain = torch.randn(13, generator=g, dtype=torch.float64)
    upstream = torch.randn(n, 13, generator=g, dtype=torch.float64)
    var_inv = (x.var(0, keepdim=True) + backprop.BN_EPS) ** -0.5  # torch's var: Bessel-corrected
    xhat = (x - x.mean(0, keepdim=True)) * var_inv
    (gain * xhat * upstream).sum().backward()
    dx = backprop.batchnorm_backward(upstream, xhat.detach(), var_inv.detach(), gain)
    torch.testing.assert_close(dx, x.grad, rtol=0, atol=1e-10)


def test_lecture_initialisation_and_parameter_count():
    m = models.build("mlp-manual", models.make_config("mlp-manual", n_hidden=200))
    g = torch.Generator().manual_seed(LECTURE_SEED)
    C = torch.randn(27, 10, generator=g)
    W1 = torch.randn(30, 200, generator=g) * (5 / 3) / 30**0.5
    b1 = torch.randn(200, generator=g) * 0.1
    W2 = torch.randn(200, 27, generator=g) * 0.1
    b2 = torch.randn(27, generator=g) * 0.1
    for ours, ref in [(m.C, C), (m.W1, W1), (m.b1, b1), (m.W2, W2), (m.b2, b2)]:
        assert torch.equal(ours.detach(), ref)
    assert sum(p.numel() for p in m.parameters()) == 12297  # the lecture's count for n_hidden 200
    assert m.bn.unbiased and 0.5 < m.bn.gamma.mean() < 1.5 and m.bn.beta.abs().max() < 1


def test_model_gradients_equal_autograd(batch):
    _, X, Y = batch
    m = ManualMLP(models.make_config("mlp-manual"))
    ref = ManualMLP(models.make_config("mlp-manual"))
    loss_ref = train.loss_fn(ref(X), Y)
    loss_ref.backward()
    with torch.no_grad():
        loss = m.forward_backward(X, Y)
    assert loss.item() == pytest.approx(loss_ref.item(), abs=1e-6)
    for (name, p), q in zip(m.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=0, atol=1e-7, msg=name)
    # The running statistics move the same way as the BatchNorm layer's own.
    torch.testing.assert_close(m.bn.running_mean, ref.bn.running_mean)
    torch.testing.assert_close(m.bn.running_var, ref.bn.running_var)


def test_batchnorm_unbiased_option():
    x = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    from makemore.nn import BatchNorm1d

    bn = BatchNorm1d(5, unbiased=True)
    expected = (x - x.mean(0)) / torch.sqrt(x.var(0, unbiased=True) + bn.eps)
    torch.testing.assert_close(bn(x), expected)
    torch.testing.assert_close(bn.running_var, 0.9 + 0.1 * x.var(0, unbiased=True))


def test_manual_training_follows_autograd_step_by_step(names_path, tmp_path, monkeypatch):
    """The trainer with hand-derived gradients and with loss.backward() gives the same losses at every step."""
    corpus = load_corpus(names_path)
    _, config, settings = presets.resolve(None, "lecture4")
    cfg = train.TrainConfig.from_dict({**settings, "steps": 200, "eval_interval": 200, "eval_max": 1000,
                                       "calibrate_bn": False})
    runs = {}
    for manual in (True, False):
        monkeypatch.setattr(ManualMLP, "manual_gradients", manual)
        losses = []
        train.train("mlp-manual", config, corpus, cfg, tmp_path / str(manual), progress=False,
                    callbacks=[lambda info, losses=losses: losses.append(info.loss)])
        runs[manual] = losses
    assert len(runs[True]) == 200
    diffs = [abs(a - b) for a, b in zip(runs[True], runs[False], strict=True)]
    assert max(diffs) < 1e-6, max(diffs)
    assert runs[True][-1] < runs[True][0] - 0.5


def test_lecture4_preset_checkpoint_samples_and_evaluates(tiny_names, tmp_path, capsys):
    out = str(tmp_path / "l4")
    assert main(["train", "--preset", "lecture4", "--data", tiny_names, "--out", out, "--steps", "30",
                 "--eval-interval", "30", "--quiet", "--samples", "0"]) == 0
    loaded = load_model(out)
    assert isinstance(loaded.model, ManualMLP) and loaded.model.config.n_hidden == 200
    assert len(sample(loaded, 3, seed=1)) == 3
    capsys.readouterr()
    assert main(["eval", "--out", out, "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)) == {"train", "val", "test", "bpc"}


def test_check_command(names_path, capsys):
    assert main(["backprop", "check", "--data", names_path, "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["name"] for r in rows][:3] == ["logprobs", "probs", "counts_sum_inv"]
    assert set(rows[0]) == {"name", "exact", "approximate", "maxdiff"}
    assert all(r["approximate"] for r in rows)
    assert main(["backprop", "check", "--data", names_path]) == 0
    table = capsys.readouterr().out.splitlines()
    assert len(table) == len(rows) and table[0].startswith("logprobs") and "maxdiff" in table[0]
    with pytest.raises(SystemExit) as refused:  # (a flag's range: argparse's one line)
        main(["backprop", "check", "--data", names_path, "--batch-size", "1"])
    assert refused.value.code == 2
