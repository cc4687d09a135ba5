"""Sequence models and generation: the lectures' WaveNet, sequence batches, sampling options and edge cases.
What every registered model must do (shapes, causality, caches, checkpoints) is tests/test_contract.py."""

import pytest
import torch
from test_contract import build, small

from makemore import models
from makemore import training as train
from makemore.batches import IGNORE, SequenceExamples, examples_for
from makemore.data import Vocab, load_corpus
from makemore.sampling import generate, next_token_probs


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


def test_generation_options(tiny_names, tmp_path):
    corpus = load_corpus(tiny_names)
    cfg = train.TrainConfig(steps=200, batch_size=16, lr=1e-2, eval_interval=200, seed=1)
    model = train.train("transformer", small("transformer"), corpus, cfg, tmp_path, progress=False).model
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
    model = train.train("transformer", small("transformer"), corpus, cfg, tmp_path / "run", progress=False).model
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

