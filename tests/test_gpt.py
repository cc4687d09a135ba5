"""The GPT on continuous text (lecture 7): the `gpt` name, causality, the KV cache, learning a short text, the
presets, and the command line streaming text."""

import pytest
import torch

from makemore import models, presets
from makemore import training as train
from makemore.cli import main
from makemore.data import Vocab, load_corpus
from makemore.models.transformer import Transformer
from makemore.sampling import generate, stream

TINY = {"block_size": 16, "n_layer": 2, "n_head": 2, "n_embd": 16, "dropout": 0.0}


def tiny_gpt(vocab_size=13, **over):
    torch.manual_seed(0)
    return models.build("gpt", models.make_config("gpt", vocab_size=vocab_size, **{**TINY, **over})).eval()


def test_gpt_is_the_transformer_with_gpt_sized_defaults():
    c = models.make_config("gpt", vocab_size=65)
    assert models.get("gpt").model is Transformer
    assert (c.n_layer, c.n_head, c.n_embd, c.block_size, c.dropout) == (6, 6, 384, 256, 0.2)
    m = models.build("gpt", c)
    assert 10.6e6 < models.registry.count_parameters(m) < 10.8e6  # the lecture's 10.7 M model
    assert m.lm_head.weight is m.wte.weight  # tied


def test_causal_attention():
    """A change at position j leaves every logit before j as it was, with dropout off."""
    m = tiny_gpt()
    x = torch.randint(0, 13, (2, 16), generator=torch.Generator().manual_seed(1))
    base = m(x)
    for j in (0, 5, 15):
        y = x.clone()
        y[:, j] = (y[:, j] + 1) % 13
        out = m(y)
        torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=1e-6)
        assert not torch.allclose(out[:, j:], base[:, j:])


@pytest.mark.parametrize("mask", ["causal", "after a cache", "none"])
def test_bf16_attention_on_cpu_matches_sdpa_in_fp32(mask):
    """The written-out bf16 attention (CPU autocast's path) against torch's SDPA in fp32 on the same bf16 inputs:
    outputs and gradients within bf16's rounding."""
    from makemore.models.transformer import attention

    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(3, 2, 9 if i == 0 and mask == "after a cache" else 12, 8, generator=g).bfloat16()
               for i in range(3))
    T, S = q.shape[2], k.shape[2]
    kw = {"causal": {"is_causal": True}, "after a cache": {"attn_mask": torch.ones(T, S).tril(S - T).bool()},
          "none": {}}[mask]
    grad = torch.randn(3, 2, T, 8, generator=g)
    outs = []
    for path in ("ours", "sdpa"):
        leaves = [t.detach().clone().requires_grad_() for t in (q, k, v)]
        out = (attention(*leaves, **kw) if path == "ours" else
               torch.nn.functional.scaled_dot_product_attention(*(t.float() for t in leaves), **kw))
        out.float().backward(grad)
        outs.append([out.float(), *(t.grad.float() for t in leaves)])
    for ours, ref in zip(*outs, strict=True):
        torch.testing.assert_close(ours, ref, rtol=0.03, atol=0.03)
    assert attention(q, k, v, **kw).dtype == torch.bfloat16 and not torch.equal(outs[0][0], outs[1][0])


def test_kv_cache_equals_the_full_forward_and_generation_is_identical():
    m = tiny_gpt()
    x = torch.randint(0, 13, (3, 16))
    state, parts = None, []
    for a, b in ((0, 5), (5, 6), (6, 11), (11, 16)):
        out, state = m.forward_cached(x[:, a:b], state)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, dim=1), m(x), rtol=1e-5, atol=1e-5)
    vocab = Vocab.build("abcdefghijklm", "text")
    # past the block size of 16 many times, and past the history buffer's growths (it doubles from 67 columns)
    kw = {"prompt": "abc", "max_len": 600, "temperature": 1.3, "top_k": 8}
    cached = generate(m, vocab, 3, generator=torch.Generator().manual_seed(5), use_cache=True, **kw)
    plain = generate(m, vocab, 3, generator=torch.Generator().manual_seed(5), use_cache=False, **kw)
    assert cached == plain and all(len(s) == 603 for s in cached)
    streamed = "".join(stream(m, vocab, generator=torch.Generator().manual_seed(5), **kw))
    assert streamed == generate(m, vocab, 1, generator=torch.Generator().manual_seed(5), **kw)[0]


def test_a_tiny_gpt_overfits_a_short_text(tmp_path):
    text = tmp_path / "verse.txt"
    verse = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n\n"
    text.write_text(verse * 40)
    corpus = load_corpus(str(text), "text")
    cfg = train.TrainConfig(steps=150, batch_size=16, lr=1e-2, schedule="cosine", warmup=10, min_lr=1e-3,
                            weight_decay=0.1, grad_clip=1.0, eval_interval=150, seed=0, device="cpu")
    r = train.train("gpt", {**TINY, "n_embd": 32}, corpus, cfg, tmp_path / "run", progress=False)
    assert r.train_loss < 0.3 and r.val_loss < 0.3, (r.train_loss, r.val_loss)  # a memorised verse
    out = generate(r.model, corpus.vocab, 1, prompt="To be, or", top_k=1, max_len=30)[0]
    assert out == (verse * 2)[:39]


@pytest.mark.parametrize("preset", ["lecture7", "cpu", "gpt"])
def test_gpt_presets_load_and_train_a_step(preset):
    name, config, settings = presets.resolve("gpt", preset)
    assert name == "gpt"
    cfg = train.TrainConfig.from_dict({**settings, "device": "cpu"})
    model = train.build_model(name, config, 65, cfg.seed).train()
    stepper = train.Stepper(model, cfg, torch.device("cpu"))
    X = torch.randint(0, 65, (2, model.block_size + 1))
    before = model.wte.weight.detach().clone()
    stepper.set_lr(train.lr_at(0, cfg))
    loss = float(stepper(X[:, :-1], X[:, 1:]))
    assert abs(loss - torch.log(torch.tensor(65.0)).item()) < 0.5  # GPT-2 init: about uniform at first
    assert not torch.equal(before, model.wte.weight)
    assert presets.resolve("gpt", None) == presets.resolve(None, "cpu")


def test_train_and_stream_shakespeare_through_the_cli(shakespeare_path, tmp_path, capsys):
    out = str(tmp_path / "run")
    assert main(["train", "--model", "gpt", "--data", shakespeare_path, "--preset", "cpu", "--out", out,
                 "--steps", "3", "--eval-max", "2000", "--quiet", "--samples", "0"]) == 0
    assert "step 3:" in capsys.readouterr().out
    assert main(["sample", "--out", out, "--prompt", "ROMEO:", "--max-tokens", "80"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ROMEO:") and len(text.rstrip("\n")) == 86


def test_the_step_takes_a_compiled_forward():
    """torch.compile's module refuses bool() (it has no len()); the Stepper must not ask."""

    class Compiled:  # stands in for torch.compile(model): callable, no truth value
        def __init__(self, m):
            self.m = m

        def __call__(self, x):
            return self.m(x)

        def __len__(self):
            raise TypeError("no len()")

    model = tiny_gpt().train()
    cfg = train.TrainConfig(steps=1, batch_size=2, lr=1e-3, device="cpu")
    stepper = train.Stepper(model, cfg, torch.device("cpu"), Compiled(model))
    X = torch.randint(0, 13, (2, 17))
    assert torch.isfinite(stepper(X[:, :-1], X[:, 1:]))


def test_bigram_baseline_on_text_is_the_lectures(shakespeare_path, tmp_path):
    """Lecture 7 reports val about 2.49 for its bigram after 3000 steps (batch 32, block 8, lr 1e-2)."""
    from makemore import presets
    from makemore import training as train_
    from makemore.data import load_corpus

    name, config, settings = presets.resolve(None, "lecture7-bigram")
    r = train_.train(name, config, load_corpus(shakespeare_path), train_.TrainConfig(**settings), tmp_path,
                     progress=False)
    assert r.step == 3000 and abs(r.val_loss - 2.49) < 0.03


@pytest.mark.parametrize("name", ["gpt", "transformer"])  # without biases, and with them
def test_the_cached_forward_equals_the_full_one_with_every_parameter_random(name):
    """Biases and LayerNorm gains start at 0 and 1: filled at random, a dropped or doubled one would show."""
    torch.manual_seed(0)
    m = models.build(name, models.make_config(name, vocab_size=13, **TINY)).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.normal_(0, 0.3)
    x = torch.randint(0, 13, (2, 16))
    state, parts = None, []
    for a, b in ((0, 7), (7, 8), (8, 16)):  # a prompt, a step, then several positions after a filled cache
        out, state = m.forward_cached(x[:, a:b], state)
        parts.append(out)
    torch.testing.assert_close(torch.cat(parts, dim=1), m(x), rtol=1e-4, atol=1e-4)


def test_cached_forward_under_cpu_autocast():
    m = tiny_gpt()
    x = torch.randint(0, 13, (2, 10))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, state = m.forward_cached(x[:, :6], None)
        out2, _ = m.forward_cached(x[:, 6:], state)
    torch.testing.assert_close(torch.cat([out, out2], 1).float(), m(x), rtol=0.05, atol=0.05)


def test_logits_that_overflow_stop_sampling_with_a_clear_error():
    from makemore import sampling
    from makemore.errors import MakemoreError

    with pytest.raises(MakemoreError, match="NaN"):
        sampling._pick(torch.tensor([[1.0, float("nan"), 0.0]]), 1.0, None, None)
    m = tiny_gpt()
    with torch.no_grad():
        m.lm_head.weight.mul_(1e30)  # finite weights, logits beyond fp32's range
    with pytest.raises(MakemoreError, match="logits are not finite"):
        generate(m, Vocab.build("abcdefghijklm", "text"), 2, max_len=5)


def test_a_long_text_restarts_one_cache_instead_of_building_new_ones(monkeypatch):
    from makemore.models import transformer

    made, real = [], transformer.Transformer.new_cache
    monkeypatch.setattr(transformer.Transformer, "new_cache", lambda self, *a: made.append(1) or real(self, *a))
    m, vocab = tiny_gpt(), Vocab.build("abcdefghijklm", "text")
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    cached = generate(m, vocab, 2, max_len=100, generator=g1)  # block 16: windows restart every 8 tokens
    assert len(made) == 1
    assert cached == generate(m, vocab, 2, max_len=100, generator=g2, use_cache=False)


def test_gradients_flow_through_the_cached_forward_in_eval_mode():
    m = tiny_gpt()
    x = torch.randint(0, 13, (2, 9))
    out, _ = m.forward_cached(x, None)
    out.square().sum().backward()
    grads = {n: p.grad for n, p in m.named_parameters()}
    m.zero_grad()
    m(x).square().sum().backward()
    for n, p in m.named_parameters():
        torch.testing.assert_close(grads[n], p.grad, rtol=1e-4, atol=1e-5)
