import math
import os
import signal

import pytest
import torch

from makemore import checkpoint
from makemore import training as train
from makemore.batches import ContextExamples as Examples
from makemore.checkpoint import load_model
from makemore.data import load_corpus
from makemore.errors import MakemoreError

SMALL = {"block_size": 3, "n_embd": 8, "n_hidden": 32}


def cfg(**kw):
    base = {"steps": 40, "batch_size": 16, "optimizer": "adamw", "lr": 1e-2, "eval_interval": 20, "seed": 3}
    return train.TrainConfig(**{**base, **kw})


@pytest.fixture
def corpus(tiny_names):
    return load_corpus(tiny_names)


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_resume_equals_uninterrupted(corpus, tmp_path, optimizer):
    extra = {"optimizer": optimizer, "momentum": 0.9 if optimizer == "sgd" else 0.0, "schedule": "cosine",
             "warmup": 5}
    train.train("mlp", SMALL, corpus, cfg(**extra), tmp_path / "full", progress=False)

    def stop(info):
        if info.step == 19:  # a real Ctrl-C: the trainer finishes the step, saves, then stops
            os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(train.Interrupted):
        train.train("mlp", SMALL, corpus, cfg(**extra), tmp_path / "half", progress=False, callbacks=[stop])
    r = train.train("mlp", SMALL, corpus, cfg(**extra), tmp_path / "half", resume=True, progress=False)
    assert r.step == 40
    a = load_model(tmp_path / "full", "last").model.state_dict()
    b = load_model(tmp_path / "half", "last").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    losses = [train.read_metrics(tmp_path / run / train.METRICS)[0] for run in ("full", "half")]
    assert losses[0] == losses[1] and len(losses[0]) == 40


def test_resume_with_dropout_equals_uninterrupted(corpus, tmp_path):
    """Dropout draws from torch's own generator: the checkpoint carries its state, so the masks after a resume
    are the ones the uninterrupted run drew."""
    shape = {"block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 16, "dropout": 0.3}
    train.train("transformer", shape, corpus, cfg(steps=20, eval_interval=10), tmp_path / "full", progress=False)
    train.train("transformer", shape, corpus, cfg(steps=10, eval_interval=10), tmp_path / "half", progress=False)
    torch.manual_seed(12345)  # whatever the process drew in between must not matter
    torch.rand(100)
    train.train("transformer", shape, corpus, cfg(steps=20, eval_interval=10), tmp_path / "half", resume=True,
                progress=False)
    a = load_model(tmp_path / "full", "last").model.state_dict()
    b = load_model(tmp_path / "half", "last").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_extending_a_finished_run(corpus, tmp_path):
    train.train("mlp", SMALL, corpus, cfg(), tmp_path / "full", progress=False)
    train.train("mlp", SMALL, corpus, cfg(steps=20), tmp_path / "half", progress=False)
    train.train("mlp", SMALL, corpus, cfg(), tmp_path / "half", resume=True, progress=False)
    a = load_model(tmp_path / "full", "last").model.state_dict()
    b = load_model(tmp_path / "half", "last").model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ctrl_c_saves_then_stops(corpus, tmp_path):
    def interrupt(info):
        if info.step == 24:
            raise KeyboardInterrupt

    with pytest.raises(train.Interrupted, match="step 25"):
        train.train("mlp", SMALL, corpus, cfg(steps=100), tmp_path, progress=False, callbacks=[interrupt])
    assert checkpoint.load(tmp_path).step == 25
    r = train.train("mlp", SMALL, corpus, cfg(steps=100), tmp_path, resume=True, progress=False)
    assert r.step == 100


def test_nan_loss_stops_and_keeps_last_good_checkpoint(corpus, tmp_path):
    def poison(info):
        if info.step == 30:
            with torch.no_grad():
                info.model.W2.fill_(math.nan)

    with pytest.raises(MakemoreError, match="loss became nan at step 31"):
        train.train("mlp", SMALL, corpus, cfg(steps=60), tmp_path, progress=False, callbacks=[poison])
    ck = checkpoint.load(tmp_path)
    assert ck.step == 20 and all(torch.isfinite(v).all() for v in ck.weights.values())


def test_best_checkpoint_is_kept(corpus, tmp_path):
    r = train.train("mlp", SMALL, corpus, cfg(steps=60, eval_interval=10), tmp_path, progress=False)
    ck = checkpoint.load(tmp_path)
    assert ck.best["val"] == pytest.approx(min(v for _, v in train.read_metrics(tmp_path / train.METRICS)[1]), abs=1e-6)
    best = load_model(tmp_path, "best").model
    val = Examples(corpus.items("val"), corpus.vocab, 3)
    assert train.evaluate(best, val) == pytest.approx(ck.best["val"], abs=1e-6)
    assert r.step == 60


@pytest.mark.parametrize("schedule, expected", [
    ("constant", [0.1, 0.1, 0.1, 0.1]),
    ("step", [0.1, 0.1, 0.01, 0.01]),
])
def test_schedules(schedule, expected):
    c = train.TrainConfig(lr=0.1, schedule=schedule, milestones=(100,), steps=200)
    assert [train.lr_at(s, c) for s in (0, 99, 100, 199)] == pytest.approx(expected)


def test_cosine_with_warmup():
    c = train.TrainConfig(lr=1.0, schedule="cosine", warmup=10, min_lr=0.1, steps=110)
    assert train.lr_at(0, c) == pytest.approx(0.1) and train.lr_at(9, c) == pytest.approx(1.0)
    assert train.lr_at(60, c) == pytest.approx(0.55)
    assert train.lr_at(110, c) == pytest.approx(0.1)


def test_grad_clip_and_weight_decay_groups(corpus, tmp_path):
    seen = []
    model_cfg = {**SMALL}

    def grads(info):
        norm = torch.sqrt(sum((p.grad**2).sum() for p in info.model.parameters()))
        seen.append(norm.item())

    train.train("mlp", model_cfg, corpus, cfg(steps=5, grad_clip=0.05, lr=1e-9, weight_decay=0.1), tmp_path,
                progress=False, callbacks=[grads])
    assert max(seen) <= 0.05 + 1e-6
    model = load_model(tmp_path).model
    groups = train.optim._decay_groups(model, 0.1)
    assert {p.dim() for p in groups[0]["params"]} == {2} and groups[1]["weight_decay"] == 0.0


def test_bad_settings():
    with pytest.raises(MakemoreError, match="unknown optimizer"):
        train.TrainConfig(optimizer="rmsprop")
    with pytest.raises(MakemoreError, match="unknown schedule"):
        train.TrainConfig(schedule="linear")


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_fast_sgd_step_is_bit_identical_to_torch(weight_decay):
    torch.manual_seed(0)
    a = torch.nn.Linear(5, 3)
    b = torch.nn.Linear(5, 3)
    b.load_state_dict(a.state_dict())
    cfg = train.TrainConfig(optimizer="sgd", lr=0.3, weight_decay=weight_decay)
    opt_a, opt_b = train.OPTIMIZERS["sgd"](a, cfg), train.OPTIMIZERS["sgd"](b, cfg)
    for _ in range(20):
        x = torch.randn(8, 5)
        for m in (a, b):
            m.zero_grad()
            m(x).pow(2).mean().backward()
        opt_a.step()
        train.optim._plain_sgd_step(opt_b)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    assert opt_b.state_dict()["state"] == {}  # nothing a checkpoint would miss


def test_eval_max_limits_examples(corpus):
    from makemore import models

    model = models.build("mlp", models.make_config("mlp", vocab_size=corpus.vocab.size, **SMALL))
    ex = Examples(corpus.items("train"), corpus.vocab, 3)
    first10 = train.loss_fn(model(ex.X[:10]), ex.Y[:10]).item()
    assert train.evaluate(model, ex, max_targets=10) == pytest.approx(first10, rel=1e-6)


def test_threads_are_restored(corpus, tmp_path):
    before = torch.get_num_threads()
    train.train("mlp", SMALL, corpus, cfg(steps=2, threads=1), tmp_path, progress=False)
    assert torch.get_num_threads() == before


@pytest.mark.parametrize("name, config, targets, one", [
    ("mlp", {"block_size": 3, "n_embd": 10, "n_hidden": 200}, 32, True),  # lecture 3: 12k parameters x 32
    ("lstm", {"block_size": 16, "n_embd": 64, "n_hidden": 128}, 64 * 16, True),  # recurrent: small ops
    ("gpt", {"block_size": 64, "n_layer": 4, "n_head": 4, "n_embd": 128}, 12 * 64, False),  # 3.7 GFLOP a step
])
def test_thread_choice_follows_the_work_of_a_step(name, config, targets, one):
    from makemore import models
    from makemore.training.loop import one_thread_pays

    model = models.build(name, models.make_config(name, vocab_size=27, **config))
    assert one_thread_pays(model, targets) is one


def test_interrupt_inside_a_step_keeps_the_last_whole_checkpoint(corpus, tmp_path, monkeypatch):
    from makemore import models

    calls = []
    real_build = models.build

    def hook(module, inputs, output):  # a hard interrupt in the middle of a forward pass after step 20
        calls.append(1)
        if len(calls) == 31:
            raise KeyboardInterrupt

    def build(name, config):
        model = real_build(name, config)
        model.act.register_forward_hook(hook)
        return model

    monkeypatch.setattr(models, "build", build)
    with pytest.raises(train.Interrupted, match="last checkpoint .* was kept") as e:
        train.train("mlp", SMALL, corpus, cfg(steps=100), tmp_path, progress=False)
    assert not e.value.saved and checkpoint.load(tmp_path).step == 20


def test_bf16_autocast_and_compile_run_on_cpu(corpus, tmp_path):
    """The flags a GPU run uses also run here: bf16 autocast (the loss still float32) and torch.compile."""
    plain = train.train("transformer", {"block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 16}, corpus,
                        cfg(steps=30, eval_interval=30), tmp_path / "plain", progress=False)
    bf16 = train.train("transformer", {"block_size": 8, "n_layer": 1, "n_head": 2, "n_embd": 16}, corpus,
                       cfg(steps=30, eval_interval=30, autocast="bf16"), tmp_path / "bf16", progress=False)
    assert bf16.val_loss == pytest.approx(plain.val_loss, abs=0.05) and bf16.val_loss != plain.val_loss
    compiled = train.train("mlp", SMALL, corpus, cfg(steps=20, compile=True), tmp_path / "compiled", progress=False)
    eager = train.train("mlp", SMALL, corpus, cfg(steps=20), tmp_path / "eager", progress=False)
    assert compiled.val_loss == pytest.approx(eager.val_loss, abs=1e-4)


@pytest.mark.parametrize("capability, on", [((7, 5), False), ((7, 0), False), ((8, 0), True), ((9, 0), True)])
def test_auto_autocast_only_on_gpus_with_native_bf16(monkeypatch, capability, on):
    # T4 (7.5) and V100 (7.0) report bf16 as supported but emulate it, slower than fp32
    import contextlib
    import warnings

    from makemore.training import optim

    optim._native_bf16.cache_clear()
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda index=None: capability)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (no CUDA here: torch warns that it would disable the autocast)
        ctx = optim.autocast_for(cfg(autocast="auto"), torch.device("cuda"))
    assert isinstance(ctx, torch.autocast) == on and isinstance(ctx, contextlib.nullcontext) != on
    optim._native_bf16.cache_clear()


def test_ranks_after_the_first_draw_their_own_dropout_masks():
    from types import SimpleNamespace

    from makemore.training.distributed import Group
    from makemore.training.loop import Loop

    def draws(rank, step=0):
        torch.manual_seed(3)  # what every rank's model initialisation left behind
        Loop._seed_rank(SimpleNamespace(group=Group(rank, 2), cfg=cfg()), step)
        return torch.rand(8)

    torch.manual_seed(3)
    single = torch.rand(8)
    assert torch.equal(draws(0), single)  # rank 0 is the single-process run
    assert not torch.equal(draws(1), single) and torch.equal(draws(1), draws(1))  # its own, reproducibly
    assert not torch.equal(draws(1, step=10), draws(1))  # resumed at step 10: not step 0's masks again
