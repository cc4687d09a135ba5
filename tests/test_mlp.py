import pytest
import torch

from makemore import models, presets
from makemore import training as train
from makemore.batches import ContextExamples as Examples


def test_lecture2_initialisation_is_generator_exact():
    _, config, _ = presets.resolve(None, "lecture2")
    model = models.build("mlp", models.make_config("mlp", vocab_size=27, **config))
    g = torch.Generator().manual_seed(2147483647)
    expected = {"C": torch.randn((27, 10), generator=g), "W1": torch.randn((30, 200), generator=g),
                "b1": torch.randn(200, generator=g), "W2": torch.randn((200, 27), generator=g),
                "b2": torch.randn(27, generator=g)}
    params = dict(model.named_parameters())
    assert set(params) == set(expected)
    for name, t in expected.items():
        assert torch.equal(params[name], t), name
    assert sum(p.numel() for p in model.parameters()) == 11897  # the lecture's count


def test_lecture3_scaled_initialisation():
    model = models.build("mlp", models.make_config("mlp", vocab_size=27, init="scaled"))
    g = torch.Generator().manual_seed(2147483647)
    C = torch.randn((27, 10), generator=g)
    W1 = torch.randn((30, 200), generator=g) * (5 / 3) / 30**0.5
    b1 = torch.randn(200, generator=g) * 0.01
    W2 = torch.randn((200, 27), generator=g) * 0.01
    for ours, ref in [(model.C, C), (model.W1, W1), (model.b1, b1), (model.W2, W2)]:
        torch.testing.assert_close(ours.detach(), ref, rtol=0, atol=0)
    assert torch.equal(model.b2, torch.zeros(27))


def test_first_loss_of_the_lectures(names_corpus):
    # Lecture 3: the raw init starts at a loss of ~27 (confidently wrong); the fixed one at ~3.3 = -log(1/27).
    ex = Examples(names_corpus.items("train"), names_corpus.vocab, 3)
    X, Y = ex.random_batch(4096, torch.Generator().manual_seed(0))
    losses = {}
    for init in ("raw", "scaled"):
        m = models.build("mlp", models.make_config("mlp", vocab_size=27, init=init))
        losses[init] = train.loss_fn(m(X), Y).item()
    assert 20 < losses["raw"] < 35
    assert losses["scaled"] == pytest.approx(torch.log(torch.tensor(27.0)).item(), abs=0.05)


@pytest.mark.parametrize("name, config", [
    ("mlp", {"block_size": 5, "n_embd": 7, "n_hidden": 13}),
    ("mlp", {"batchnorm": True}),
    ("mlp-deep", {"n_layers": 3, "n_hidden": 20}),
    ("mlp-deep", {"batchnorm": False, "block_size": 8}),
])
def test_shapes(name, config):
    m = models.build(name, models.make_config(name, vocab_size=30, **config))
    T = m.block_size
    assert m(torch.randint(0, 30, (6, T))).shape == (6, 30)


def test_deep_mlp_matches_the_lecture_parameter_count():
    m = models.build("mlp-deep", models.make_config("mlp-deep", vocab_size=27))
    assert sum(p.numel() for p in m.parameters()) == 47024
    torch.testing.assert_close(m.net[-1].gamma.detach(), torch.full((27,), 0.1))


def test_batchnorm_calibration_sets_training_statistics(names_corpus):
    m = models.build("mlp", models.make_config("mlp", vocab_size=27, batchnorm=True, bn_momentum=0.001))
    ex = Examples(names_corpus.items("train"), names_corpus.vocab, 3)
    train.calibrate_batchnorm(m, ex)
    with torch.no_grad():
        hpre = m.C[ex.X].view(len(ex), -1) @ m.W1
    torch.testing.assert_close(m.bn.running_mean, hpre.mean(0), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(m.bn.running_var, hpre.var(0), rtol=1e-4, atol=1e-5)
    assert m.bn.momentum == 0.001


def test_unknown_settings_are_user_errors():
    from makemore.errors import MakemoreError

    with pytest.raises(MakemoreError, match="no setting n_hiden"):
        models.make_config("mlp", n_hiden=3)
    with pytest.raises(MakemoreError, match="unknown model"):
        models.get("transformer9")
