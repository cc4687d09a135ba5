import time

import pytest
import torch

from makemore import presets
from makemore import training as train
from makemore.batches import SequenceExamples


@pytest.mark.parametrize("k, nll", [(1, 2.4546), (0, 2.4540)])
def test_counts_nll_over_all_bigrams(names_corpus, tmp_path, k, nll):
    r = train.train("bigram-counts", {"smoothing": k}, names_corpus, train.TrainConfig(steps=0, train_split="all"),
                    tmp_path, progress=False)
    assert round(r.train_loss, 4) == nll

def test_counting_is_fast_and_exact(names_corpus):
    from makemore.models.bigram import BigramCounts, BigramCountsConfig

    ex = SequenceExamples(names_corpus.items("all"), names_corpus.vocab, 1)
    assert len(ex) == 228_146
    model = BigramCounts(BigramCountsConfig(vocab_size=27))
    t = time.perf_counter()
    model.fit(ex.X, ex.Y)
    assert time.perf_counter() - t < 0.5
    stoi = names_corpus.vocab.stoi
    assert model.counts.sum() == 228_146
    assert model.counts[0, stoi["a"]] == 4410 and model.counts[stoi["n"], 0] == 6763  # the lecture's table

def test_neural_bigram_converges_to_counts(names_corpus, tmp_path):
    model, config, settings = presets.resolve("bigram", None)
    cfg = train.TrainConfig(**{**settings, "train_split": "all"})
    r = train.train(model, config, names_corpus, cfg, tmp_path, progress=False)
    from makemore.checkpoint import load_model

    m = load_model(tmp_path, "last").model
    nll = train.evaluate(m, SequenceExamples(names_corpus.items("all"), names_corpus.vocab, 1))
    assert r.step == cfg.steps
    assert abs(nll - 2.4546) < 0.01
    # the L2 pull towards uniform keeps it just above the counts optimum
    assert nll > 2.4540

def test_counts_probabilities_rows_sum_to_one():
    from makemore.models.bigram import BigramCounts, BigramCountsConfig

    m = BigramCounts(BigramCountsConfig(vocab_size=5, smoothing=1))
    m.fit(torch.tensor([[0], [1], [1]]), torch.tensor([[1], [2], [0]]))
    assert torch.allclose(m.log_probs().exp().sum(1), torch.ones(5))
    assert torch.isclose(m.log_probs()[1, 2].exp(), torch.tensor(2 / 7))


def test_counts_without_smoothing_leave_unseen_rows_uniform():
    from makemore.models.bigram import BigramCounts, BigramCountsConfig

    m = BigramCounts(BigramCountsConfig(vocab_size=4, smoothing=0.0))
    m.fit(torch.tensor([[0], [1], [1]]), torch.tensor([[1], [2], [0]]))
    p = m.log_probs().exp()
    assert torch.isclose(p[1, 2], torch.tensor(0.5)) and p[1, 3] == 0  # seen rows: the counts alone
    assert torch.allclose(p[3], torch.full((4,), 0.25))  # never followed by anything: uniform, not 0/0
