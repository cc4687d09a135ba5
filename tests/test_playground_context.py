"""The playground's context panel: what the model reads for its next character, per kind of model."""

import pytest
import torch

from makemore.data import load_corpus
from makemore.serve.engine import Engine  # plain Python: no FastAPI needed
from makemore.training import TrainConfig, train


@pytest.fixture(scope="module")
def engines(tmp_path_factory, tiny_corpus_path):
    corpus = load_corpus(tiny_corpus_path)
    configs = {"mlp": {"block_size": 3, "n_embd": 4, "n_hidden": 16},
               "rnn": {"block_size": 4, "n_embd": 8, "n_hidden": 16},
               "transformer": {"block_size": 6, "n_layer": 1, "n_head": 2, "n_embd": 8}}
    out = tmp_path_factory.mktemp("context")
    for name, config in configs.items():
        train(name, config, corpus, TrainConfig(steps=2, seed=0), out / name, progress=False)
    return {name: Engine(out / name) for name in configs}


@pytest.fixture(scope="module")
def tiny_corpus_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "names.txt"
    path.write_text("\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper"] * 8) + "\n")
    return str(path)


def test_an_mlp_sees_its_window(engines):
    mlp = engines["mlp"]
    assert mlp.context("") == "..."  # padded with the boundary, as in training
    assert mlp.context("em") == ".em"
    assert mlp.context("isabella") == "lla"  # the last block_size characters only


def test_a_recurrent_model_reads_the_whole_prefix(engines):
    rnn = engines["rnn"]
    assert rnn.context("") == "."
    # longer than its training rows (block_size 4): its state has read every character since the start
    assert rnn.context("isabella") == ".isabella"


def test_a_transformer_sees_up_to_its_context_limit(engines):
    gpt = engines["transformer"]
    assert gpt.context("amel") == ".amel"  # 5 of 6 positions: all of it
    assert len(gpt.context("isabella")) <= 6 and gpt.context("isabella").endswith("la")


@pytest.mark.parametrize("name", ["mlp", "rnn", "transformer"])
@pytest.mark.parametrize("prefix", ["", "em", "isabella"])
def test_the_context_is_what_the_probabilities_come_from(engines, name, prefix):
    """The model run on the context alone gives the probabilities the playground shows."""
    engine = engines[name]
    model = engine.loaded.model
    ids = torch.tensor([[engine.itos.index(c) for c in engine.context(prefix)]])  # "." is the boundary, id 0
    with torch.no_grad():
        logits = model(ids)
    probs = torch.softmax((logits if model.kind == "context" else logits[:, -1]).float(), -1)[0]
    assert probs.tolist() == pytest.approx(engine.next_probs(prefix), abs=1e-6)
