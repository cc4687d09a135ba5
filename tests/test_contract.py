"""The contract every registered model keeps: built small, trained a few steps, saved, loaded and sampled.

The tests are parametrised over the registry itself (makemore.models.MODELS), so a new model file is tested as
soon as its `register` call runs. All a new model needs here is one line in SMALL: settings small enough to
train in a moment.
"""

import math
from typing import Any

import pytest
import torch

from makemore import models
from makemore import training as train
from makemore.batches import examples_for
from makemore.checkpoint import load_model
from makemore.data import load_corpus
from makemore.models.registry import LanguageModel, ModelConfig, register
from makemore.sampling import generate, stream

# Model settings small enough to train in a moment; vocab_size comes from the data. Windows are shorter than the
# sampling test's prompt, so that generation restarts a cached model's window.
SMALL: dict[str, dict[str, Any]] = {
    "bigram-counts": {},
    "bigram": {},
    "bow": {"block_size": 8, "n_embd": 8, "n_hidden": 16},
    "mlp": {"block_size": 3, "n_embd": 4, "n_hidden": 16},
    "mlp-deep": {"block_size": 3, "n_embd": 4, "n_hidden": 16, "n_layers": 2},
    "mlp-manual": {"block_size": 3, "n_embd": 4, "n_hidden": 16},
    "rnn": {"block_size": 8, "n_embd": 8, "n_hidden": 16},
    "gru": {"block_size": 8, "n_embd": 8, "n_hidden": 16},
    "lstm": {"block_size": 8, "n_embd": 8, "n_hidden": 16},
    "transformer": {"block_size": 8, "n_layer": 2, "n_head": 2, "n_embd": 16},
    "gpt": {"block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 16, "dropout": 0.1},
    "wavenet": {"block_size": 4, "n_embd": 8, "n_hidden": 16},
}

NAMES = ["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn", "abigail", "emily",
         "ella", "elizabeth", "camila", "luna"]


def small(name: str) -> dict[str, Any]:
    """The small settings of a registered model; a model without them fails its tests, saying what to add."""
    if name not in SMALL:
        pytest.fail(f"model {name} is registered but has no small settings in tests/test_contract.py: add one",
                    pytrace=False)
    return SMALL[name]


def registered(**flags: Any) -> list[str]:
    """The registry's model names, read when the tests are collected; with flags, those whose class has them
    (kind="sequence", cached=True)."""
    return [name for name, entry in models.MODELS.items()
            if all(getattr(entry.model, flag) == value for flag, value in flags.items())]


def build(name: str, vocab_size: int = 11) -> LanguageModel:
    torch.manual_seed(0)
    return models.build(name, models.make_config(name, vocab_size=vocab_size, **small(name))).eval()


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tiny models: two threads double the CPU time


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(NAMES * 4) + "\n")
    return load_corpus(str(path))


@pytest.fixture(scope="module", params=registered())
def trained(request, corpus, tmp_path_factory):
    """(name, the training's Result, the run folder): each registered model trained once for this module."""
    name = request.param
    out = tmp_path_factory.mktemp(name)
    cfg = train.TrainConfig(steps=60, batch_size=16, lr=3e-2, eval_interval=30, seed=1)
    return name, train.train(name, small(name), corpus, cfg, out, progress=False), out


def test_trains_to_a_finite_loss_below_a_uniform_guess(trained, corpus):
    name, r, _ = trained
    assert math.isfinite(r.train_loss) and math.isfinite(r.val_loss), (name, r.train_loss, r.val_loss)
    assert r.val_loss < math.log(corpus.vocab.size) - 0.5, (name, r.val_loss)  # it learned in 60 steps


def test_reloaded_model_gives_the_trained_models_logits(trained, corpus):
    name, r, out = trained
    loaded = load_model(out, "last")
    assert type(loaded.model) is type(r.model) and loaded.model.config == r.model.config
    x = torch.randint(0, corpus.vocab.size, (3, r.model.block_size), generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(loaded.model(x), r.model(x), rtol=0, atol=0)
    val = examples_for(loaded.model, corpus.items("val"), corpus.vocab)
    assert train.evaluate(loaded.model, val) == pytest.approx(r.val_loss, abs=1e-6)  # the loss the run recorded


def test_samples_alike_cached_uncached_streamed_and_reloaded(trained, corpus):
    """Same seed, same samples: with the model's state carried between tokens (forward_cached) or not, streamed,
    and from the reloaded checkpoint. The prompt is longer than block_size, so a cached model restarts its window
    on the way."""
    name, r, out = trained
    prompt = "lunaemmaisa"  # stops in the middle of a name: the samples go on
    kw = {"prompt": prompt, "max_len": 12, "temperature": 2.0}

    def sample(model, n, seed=3, use_cache=True):
        return generate(model, corpus.vocab, n, generator=torch.Generator().manual_seed(seed), use_cache=use_cache,
                        **kw)

    cached = sample(r.model, 4)
    assert cached == sample(r.model, 4, use_cache=False) == sample(load_model(out, "last").model, 4)
    assert len(set(cached)) > 1 and all(s.startswith(prompt) for s in cached)  # four draws, not one answer
    seed = next(s for s in range(20) if len(sample(r.model, 1, s)[0]) > len(prompt) + 1)  # one that goes on
    streamed = "".join(stream(r.model, corpus.vocab, generator=torch.Generator().manual_seed(seed), **kw))
    assert streamed == sample(r.model, 1, seed)[0]


@pytest.mark.parametrize("name", registered())
def test_output_shapes(name):
    m = build(name)
    T = m.block_size
    out = m(torch.randint(0, 11, (3, T)))
    assert out.shape == ((3, T, 11) if m.kind == "sequence" else (3, 11))


@pytest.mark.parametrize("name", registered(kind="sequence"))
def test_sequence_models_are_causal(name):
    """Changing a later character never changes an earlier position's logits (and does change later ones)."""
    m, g = build(name), torch.Generator().manual_seed(1)
    with torch.no_grad():  # off any uniform start (a counting model before counting), so that every input shows
        for t in m.state_dict().values():
            if t.is_floating_point():
                t.add_(0.1 * torch.rand(t.shape, generator=g))
    T = m.block_size
    x = torch.randint(0, 11, (2, T), generator=g)
    base = m(x)
    for j in range(T):
        y = x.clone()
        y[:, j] = (y[:, j] + 1) % 11
        changed = m(y)
        torch.testing.assert_close(changed[:, :j], base[:, :j], rtol=0, atol=1e-6)
        assert not torch.allclose(changed[:, j:], base[:, j:])


@pytest.mark.parametrize("name", registered(cached=True))
def test_cached_forward_equals_forward(name):
    m = build(name)
    x = torch.randint(0, 11, (2, m.block_size))
    parts, state = [], None
    for a, b in ((0, 3), (3, 4), (4, m.block_size)):  # a prefill, one token, then several after a filled cache
        logits, state = m.forward_cached(x[:, a:b], state)
        parts.append(logits)
    torch.testing.assert_close(torch.cat(parts, dim=1), m(x), rtol=1e-5, atol=1e-5)


def test_every_entry_of_the_table_is_a_registered_model():
    assert sorted(set(SMALL) - set(models.MODELS)) == []


def test_a_registered_model_without_small_settings_fails_with_what_to_add():
    @register("throwaway", ModelConfig, "a model registered by this test only")
    class Throwaway(LanguageModel):
        pass

    try:
        assert "throwaway" in registered()  # collected like any other model...
        with pytest.raises(pytest.fail.Exception, match="^model throwaway is registered but has no small settings "
                                                        r"in tests/test_contract.py: add one$"):
            small("throwaway")  # ...and its tests stop at once, saying what to add
    finally:
        del models.MODELS["throwaway"]
    assert "throwaway" not in registered()
