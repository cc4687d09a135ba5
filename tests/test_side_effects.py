"""The library leaves the process as it found it: training, sampling and the playground's engine change no
process-wide state (garbage collector, oneDNN, torch's thread count) that outlives the call, also when a call
fails half-way."""

import gc

import pytest
import torch

from makemore import sampling
from makemore.checkpoint import load_model
from makemore.data import load_corpus
from makemore.errors import MakemoreError
from makemore.serve.engine import Engine
from makemore.training import TrainConfig, train

TINY_GPT = {"block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 16}


def process_state() -> tuple:
    return gc.isenabled(), torch.backends.mkldnn.enabled, torch.get_num_threads()


@pytest.fixture
def run(tiny_names, tmp_path):
    """A tiny GPT trained a few steps on one thread (the trainer's thread setting is scoped too)."""
    before = process_state()
    cfg = TrainConfig(steps=4, eval_interval=4, batch_size=8, threads=1, seed=0)
    train("transformer", TINY_GPT, load_corpus(tiny_names), cfg, tmp_path / "run", progress=False)
    assert process_state() == before
    return tmp_path / "run"


def test_training_sampling_and_serving_leave_the_process_as_it_was(run):
    before = process_state()
    trained = load_model(run)
    assert len(sampling.make_more(trained, 5, seed=1)) == 5
    streamed = "".join(sampling.stream(trained.model, trained.vocab, prompt="em", max_len=10,
                                       generator=torch.Generator().manual_seed(1)))
    assert streamed.startswith("em")
    engine = Engine(run, threads=1)  # as `makemore serve` makes it
    items, seed = engine.sample(4, seed=3, prefix="a")
    assert len(items) == 4 and seed == 3 and all(s.startswith("a") for s in items)
    assert len(engine.next_probs("em")) == trained.vocab.size
    assert "".join(engine.stream("em", 5, seed=2))
    assert process_state() == before


def test_a_call_that_fails_half_way_leaves_the_process_as_it_was(run, tiny_names, tmp_path):
    before = process_state()

    def fail(info):
        if info.step == 2:
            raise RuntimeError("stopped by a callback")

    cfg = TrainConfig(steps=4, eval_interval=4, batch_size=8, threads=1, seed=0)
    with pytest.raises(RuntimeError, match="callback"):
        train("transformer", TINY_GPT, load_corpus(tiny_names), cfg, tmp_path / "failed", progress=False,
              callbacks=[fail])
    assert process_state() == before

    engine = Engine(run, threads=1)
    pieces = engine.stream("em", 50, seed=2)
    next(pieces)
    pieces.close()  # a client that goes away mid-stream
    with torch.no_grad():
        engine.loaded.model.lm_head.weight.mul_(1e30)  # logits beyond fp32's range: sampling fails mid-way
    with pytest.raises(MakemoreError, match="not finite"):
        engine.sample(3, seed=1)
    assert process_state() == before
