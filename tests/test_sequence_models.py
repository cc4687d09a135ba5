"""Every model of the zoo through the one contract: shapes, causality, learning, checkpoints, generation."""

import math

import pytest
import torch

from makemore import models
from makemore import training as train
from makemore.batches import IGNORE, SequenceExamples, examples_for
from makemore.checkpoint import load_model
from makemore.data import Vocab, load_corpus
from makemore.sampling import generate, next_token_probs, stream

SMALL = {
    "rnn": {"block_size": 8, "n_embd": 8, "n_hidden": 16},
    "gru": {"block_size": 8, "n_embd": 8, "n_hidden": 16},
    "lstm": {"block_size": 8, "n_embd": 8, "n_hidden": 16},
    "bow": {"block_size": 8, "n_embd": 8, "n_hidden": 16},
    "transformer": {"block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16},
}
SEQUENCE = list(SMALL)


def build(name, vocab_size=11, **over):
    torch.manual_seed(0)
    return models.build(name, models.make_config(name, vocab_size=vocab_size, **{**SMALL[name], **over})).eval()


@pytest.mark.parametrize("name", SEQUENCE)
def test_shapes(name):
    m = build(name)
    assert m.kind == "sequence"
    for T in (1, 5, 8):
        assert m(torch.randint(0, 11, (3, T))).shape == (3, T, 11)


@pytest.mark.parametrize("name", SEQUENCE)
def test_causal(name):
    """Changing a later character never changes an earlier position's logits."""
    m = build(name)
    x = torch.randint(0, 11, (2, 8), generator=torch.Generator().manual_seed(1))
    base = m(x)
    for j in range(8):
        y = x.clone()
        y[:, j] = (y[:, j] + 1) % 11
        out = m(y)
        torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=1e-6)
        assert not torch.allclose(out[:, j:], base[:, j:])  # and it does change the later ones


@pytest.mark.parametrize("name", SEQUENCE)
def test_cached_forward_equals_forward(name):
    m = build(name)
    x = torch.randint(0, 11, (2, 8))
    full = m(x)
    state, parts = None, []
    for a, b in ((0, 3), (3, 4), (4, 8)):  # a prefill, one token, then several after a filled cache
        out, state = (m.forward_cached(x[:, a:b], state) if m.cached else (m(x[:, :b])[:, a:b], None))
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, dim=1), full, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", [*SEQUENCE, "wavenet"])
def test_learns_and_round_trips(name, tiny_names, tmp_path):
    corpus = load_corpus(tiny_names)
    config = SMALL.get(name, {"block_size": 4, "n_embd": 8, "n_hidden": 16})
    cfg = train.TrainConfig(steps=150, batch_size=16, lr=1e-2, eval_interval=150, seed=1)
    r = train.train(name, config, corpus, cfg, tmp_path, progress=False)
    uniform = math.log(corpus.vocab.size)
    assert r.val_loss < uniform - 0.8, (r.val_loss, uniform)
    loaded = load_model(tmp_path, "last")
    x = torch.randint(0, corpus.vocab.size, (2, r.model.block_size))
    torch.testing.assert_close(loaded.model(x), r.model(x), rtol=0, atol=0)
    val = examples_for(loaded.model, corpus.items("val"), corpus.vocab)
    assert train.evaluate(loaded.model, val) == pytest.approx(r.val_loss, abs=1e-6)


def test_wavenet_is_the_lectures_network():
    m = models.build("wavenet", models.make_config("wavenet", vocab_size=27))
    assert models.registry.count_parameters(m) == 76_579
    X = torch.randint(0, 27, (32, 8))
    assert m(X).shape == (32, 27)
    kinds = [type(layer).__name__ for layer in m.net.layers]
    assert kinds == ["Embedding"] + ["FlattenConsecutive", "Linear", "BatchNorm1d", "Tanh"] * 3 + ["Linear"]
    with pytest.raises(Exception, match="power"):
        models.make_config("wavenet", block_size=6)


def test_sequence_batches_hold_the_same_targets_as_context_batches():
    vocab = Vocab.build("abcdefg", "lines")
    items = ["abc", "defgabcdefg", "a"]
    seq = SequenceExamples(items, vocab, 4)
    X, Y = seq.all()
    assert X.shape == Y.shape == (1 + 3 + 1, 4)
    assert seq.n_targets == sum(len(s) + 1 for s in items) == int((Y != IGNORE).sum())
    assert X[0].tolist() == [0, 1, 2, 3] and Y[0].tolist() == [1, 2, 3, 0]
    assert X[-1].tolist() == [0, 1, 0, 0] and Y[-1].tolist() == [1, 0, IGNORE, IGNORE]
    ctx = examples_for(models.build("mlp", models.make_config("mlp", vocab_size=vocab.size)), items, vocab)
    assert ctx.n_targets == seq.n_targets
    assert sorted(ctx.Y.tolist()) == sorted(Y[Y != IGNORE].tolist())


def test_text_windows_cover_every_target_once():
    vocab = Vocab.build("hello world", "text")
    seq = SequenceExamples(["hello world"], vocab, 4)
    X, Y = seq.all()
    assert seq.n_targets == 10 and len(seq) == 3
    assert vocab.decode(Y[Y != IGNORE].tolist()) == "ello world"
    x, y = seq.random_batch(5, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (5, 4) and torch.equal(x[:, 1:], y[:, :-1])


@pytest.mark.parametrize("name", ["transformer", "gru", "lstm"])
def test_cached_and_uncached_generation_are_identical(name):
    """Past the block size too: the cached model restarts its window exactly where the uncached one does."""
    vocab = Vocab.build("abcdefghij", "text")
    m = build(name, vocab_size=vocab.size)
    kw = {"prompt": "abc", "max_len": 30, "temperature": 1.5}
    a = generate(m, vocab, 4, generator=torch.Generator().manual_seed(3), use_cache=True, **kw)
    b = generate(m, vocab, 4, generator=torch.Generator().manual_seed(3), use_cache=False, **kw)
    assert a == b and all(len(s) == 33 for s in a)
    c = "".join(stream(m, vocab, generator=torch.Generator().manual_seed(3), **kw))
    d = generate(m, vocab, 1, generator=torch.Generator().manual_seed(3), **kw)[0]
    assert c == d


def test_generation_options(tiny_names, tmp_path):
    corpus = load_corpus(tiny_names)
    cfg = train.TrainConfig(steps=200, batch_size=16, lr=1e-2, eval_interval=200, seed=1)
    model = train.train("transformer", SMALL["transformer"], corpus, cfg, tmp_path, progress=False).model
    gen = torch.Generator().manual_seed(0)
    out = generate(model, corpus.vocab, 50, prompt="em", top_k=1, generator=gen)
    assert len(set(out)) == 1 and out[0].startswith("em")  # top-1 is greedy: one answer
    probs = dict(next_token_probs(model, corpus.vocab, "em"))
    assert sum(probs.values()) == pytest.approx(1.0, abs=1e-5)
    assert out[0][2] == max(probs, key=probs.get)


def test_a_literal_dot_is_not_the_boundary(tmp_path):
    data = tmp_path / "saints.txt"
    data.write_text("\n".join(["st. john", "st. mary", "mt. hood", "dr. who", "jr. smith"] * 6) + "\n")
    corpus = load_corpus(str(data))
    vocab = corpus.vocab
    assert "." in vocab.chars and vocab.boundary_name != "."
    assert len(set(vocab.itos)) == len(vocab.itos)  # every token prints differently
    assert vocab.itos[vocab.stoi["."]] == "." and vocab.itos[0] == vocab.boundary_name
    assert vocab.decode(vocab.encode("st. john")) == "st. john"
    cfg = train.TrainConfig(steps=300, batch_size=16, lr=1e-2, eval_interval=300, seed=1)
    model = train.train("transformer", SMALL["transformer"], corpus, cfg, tmp_path / "run", progress=False).model
    out = generate(model, vocab, 20, generator=torch.Generator().manual_seed(0), temperature=0.5)
    assert sum("." in s for s in out) >= 10  # the dot is a character it learned to write inside items
    assert Vocab.build("abc", "lines").boundary_name == "."  # the lectures' name when it is free


def test_huge_sample_requests_are_refused_at_once():
    from makemore.errors import MakemoreError

    vocab = Vocab.build("abc", "lines")
    m = build("gru", vocab_size=vocab.size)
    with pytest.raises(MakemoreError, match="-n must be between 0 and"):
        generate(m, vocab, 10**11)
    with pytest.raises(MakemoreError, match="--max-len must be between 0 and"):
        generate(m, vocab, 1, max_len=10**12)


@pytest.mark.parametrize("temperature", [1e-42, 1e-45, 1e-300])  # logits / T overflowed: NaN
def test_a_temperature_near_zero_is_greedy_decoding(temperature):
    vocab = Vocab.build("abcdefghij", "lines")
    model = build("transformer", vocab_size=vocab.size)
    greedy = ""
    for _ in range(6):  # each next character the most likely one at T = 1
        ch, _p = max(next_token_probs(model, vocab, greedy), key=lambda tp: tp[1])
        if ch == vocab.boundary_name:
            break
        greedy += ch
    for seed in range(3):
        out = generate(model, vocab, 2, temperature=temperature, max_len=len(greedy),
                       generator=torch.Generator().manual_seed(seed))
        assert out == [greedy, greedy]
    cold = dict(next_token_probs(model, vocab, greedy[:2], temperature=temperature))
    assert sorted(cold.values())[-2:] == [0.0, 1.0]

