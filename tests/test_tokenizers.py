import csv
import json
import math
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from makemore import sampling, tokenizers
from makemore import training as train
from makemore.batches import chars_per_target, examples_for
from makemore.checkpoint import load_model
from makemore.data import load_corpus
from makemore.errors import MakemoreError
from makemore.tokenizers import BPE, StreamDecoder, Vocab
from makemore.training.loss import Loss
from makemore.training.metrics import MetricsLog

TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n"
        "First Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 20
GPT = {"block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 16}


@pytest.fixture(scope="module")
def bpe() -> BPE:
    return BPE.train([TEXT], vocab_size=300, boundary=False)


@pytest.fixture(scope="module")
def bpe_lines() -> BPE:
    return BPE.train(["emma", "olivia", "ava", "isabella"] * 10, vocab_size=270, boundary=True)


def test_bpe_learns_merges(bpe):
    assert bpe.size == 300
    ids = bpe.encode("First Citizen:\n")
    assert len(ids) < 5  # merged well below one token a byte (15)
    assert bpe.decode(ids) == "First Citizen:\n"


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_bpe_round_trips_any_text(text):
    bpe = _bpe()
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text
    assert int(bpe.token_chars[ids].sum()) == len(text)  # bits per character count the text's characters


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_bpe_with_boundary_round_trips_and_never_makes_the_boundary(text):
    bpe = _bpe(boundary=True)
    ids = bpe.encode(text)
    assert 0 not in ids and bpe.decode(ids) == text
    assert bpe.decode([0, *ids, 0]) == text


# ASCII text as a text file has it: words, digits, contractions, spaces, every control character and symbol.
ASCII = st.lists(st.sampled_from([*map(chr, range(128)), "'s", "'ll", "'re", " 's", "  ", "\r\n", "\n\n", "ab", "12"]))
ASCII = ASCII.map("".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(ASCII | st.text() | st.lists(ASCII | st.text()).map("\n".join), min_size=1, max_size=4),
       st.booleans())
def test_encoding_word_by_word_gives_the_librarys_tokens(texts, boundary):
    bpe = _bpe(boundary)
    got = bpe.encode_many(texts)
    for text, ids in zip(texts, got, strict=True):
        assert ids.tolist() == bpe.encode(text)  # (encode is the library's own, on the whole text)
    assert [a.tolist() for a in bpe.encode_many(texts)] == [a.tolist() for a in got]  # from the word cache


def test_encoding_mixed_texts_keeps_their_order(bpe):
    # (a run of newlines before an ASCII line, then a line with a non-ASCII character: the cut between lines
    # must not change how the run splits)
    paragraphs = BPE.train(["close()\n\nif \n\n\n"] * 50, vocab_size=270, boundary=False)
    assert len(paragraphs.encode("\n\n")) == 1  # (else the test could not tell "\n\n" from "\n", "\n")
    for text in ("x.close()\n\nif \u00e9t\u00e9\n", "a\n\n\n \u00e9\n\n\nb", "\u00e9\n\n\nb\n\n\u00e9"):
        for tok in (bpe, paragraphs):
            assert tok.encode_many([text])[0].tolist() == tok.encode(text)
    texts = ["plain words", "caf\u00e9 cr\u00e8me", "more words", "\u4e2d\u6587"]
    assert [a.tolist() for a in bpe.encode_many(texts)] == [bpe.encode(t) for t in texts]


_CACHE: dict[bool, BPE] = {}


def _bpe(boundary: bool = False) -> BPE:  # (hypothesis runs outside fixtures)
    if boundary not in _CACHE:
        _CACHE[boundary] = BPE.train([TEXT], vocab_size=300, boundary=boundary)
    return _CACHE[boundary]


@settings(max_examples=200, deadline=None)
@given(st.text(min_size=1))
def test_streaming_never_yields_part_of_a_character(text):
    bpe = _bpe()
    decoder = StreamDecoder(bpe)
    pieces = [decoder(i) for i in bpe.encode(text)] + [decoder.flush()]
    assert "".join(pieces) == text
    if "\ufffd" not in text:
        assert not any("\ufffd" in p for p in pieces)


def test_streaming_holds_a_character_split_between_tokens(bpe):
    ids = bpe.encode("a日")  # 日 is three bytes, each its own token in a vocabulary learned from English
    assert len(ids) == 4
    decoder = StreamDecoder(bpe)
    assert [decoder(i) for i in ids] == ["a", "", "", "日"]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 299), max_size=40))
def test_streaming_any_ids_gives_decode(ids):
    """Whatever a model draws (bytes that make no character included), the stream is decode() of it."""
    bpe = _bpe()
    decoder = StreamDecoder(bpe)
    assert "".join([decoder(i) for i in ids] + [decoder.flush()]) == bpe.decode(ids)


def test_char_vocab_unchanged():
    v = Vocab.build("hello", "lines")
    assert v.itos == [".", "e", "h", "l", "o"] and v.encode("hole") == [2, 4, 3, 1]
    assert v.to_json() == {"chars": "ehlo", "boundary": True}
    assert v.token_bytes[0] == b"" and v.token_chars.tolist() == [1] * 5


@settings(max_examples=200, deadline=None)
@given(st.text(), st.booleans())
def test_char_encode_array_is_encode(text, lines):
    """The array encoder (bytes.translate for ASCII, a numpy table otherwise) gives encode's ids."""
    v = Vocab.build(text + "a", "lines" if lines else "text")
    assert v.encode_array(text).tolist() == v.encode(text)
    with pytest.raises(MakemoreError, match="not in the model's vocabulary"):
        v.encode_array(text + next(c for c in "\x00" + "".join(map(chr, range(0x100, 0x200))) if c not in text))


@pytest.mark.parametrize("size", [255, 0, 10**9])
def test_vocab_size_out_of_range(tmp_path, size):
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    with pytest.raises(MakemoreError, match="--vocab-size must be between 256"):
        load_corpus(str(path), tokenizer="bpe", vocab_size=size)


def test_foreign_tokenizer_json_is_refused():
    with pytest.raises(MakemoreError, match="not a usable tokenizer.json"):
        tokenizers.from_json({"tokenizer": "bpe", "boundary": False, "json": '{"model": {"type": "WordPiece"}}'})


@pytest.fixture(scope="module")
def bpe_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bpe")
    path = folder / "shakespeare.txt"
    path.write_text(TEXT + "Ένα δύο τρία 日本語\n")
    corpus = load_corpus(str(path), tokenizer="bpe", vocab_size=290)
    cfg = train.TrainConfig(steps=30, batch_size=8, lr=1e-2, eval_interval=15, seed=1)
    train.train("gpt", GPT, corpus, cfg, folder / "run", progress=False)
    return folder / "run", corpus


def test_bpe_run_saves_its_tokenizer_and_samples(bpe_run):
    out, corpus = bpe_run
    meta = json.loads((out / "checkpoint.json").read_text())
    assert meta["files"]["tokenizer"]["name"] == "tokenizer.json" and "json" not in meta["vocab"]
    assert meta["data"]["tokenizer"] == tokenizers.digest(corpus.vocab)
    trained = load_model(out)
    assert isinstance(trained.vocab, BPE) and tokenizers.digest(trained.vocab) == tokenizers.digest(corpus.vocab)
    gen = torch.Generator().manual_seed(0)
    text = sampling.generate(trained.model, trained.vocab, 1, prompt="First 日", max_len=40, generator=gen)[0]
    assert text.startswith("First 日") and len(text) > len("First 日")
    streamed = sampling.stream(trained.model, trained.vocab, prompt="First 日", max_len=40,
                               generator=torch.Generator().manual_seed(0))
    assert "".join(streamed) == text  # the same draws, the same text


def test_bpe_run_resumes(bpe_run, tmp_path):
    """Resumed from step 30 with the checkpoint's tokenizer, a run ends where an uninterrupted one does."""
    out, corpus = bpe_run
    trained = load_model(out, "last")
    again = load_corpus(corpus.source, vocab=trained.vocab)  # the checkpoint's tokenizer, not a new one
    assert torch.equal(again.items("train"), corpus.items("train"))
    cfg = train.TrainConfig(steps=40, batch_size=8, lr=1e-2, eval_interval=15, seed=1)
    shutil.copytree(out, tmp_path / "half")
    resumed = train.train("gpt", GPT, again, cfg, tmp_path / "half", resume=True, progress=False)
    whole = train.train("gpt", GPT, corpus, cfg, tmp_path / "whole", progress=False)
    assert resumed.step == 40 and resumed.val_loss == whole.val_loss
    a, b = (load_model(tmp_path / run, "last").model.state_dict() for run in ("half", "whole"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_tampered_tokenizer_is_one_line(bpe_run, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(bpe_run[0], out)
    spec = json.loads((out / "tokenizer.json").read_text())
    first = next(iter(spec["model"]["vocab"]))
    spec["model"]["vocab"][first + "x"] = spec["model"]["vocab"].pop(first)
    (out / "tokenizer.json").write_text(json.dumps(spec))
    with pytest.raises(MakemoreError, match="tokenizer.json does not match its checksum"):
        load_model(out)
    p = subprocess.run([sys.executable, "-m", "makemore", "sample", "--out", str(out)], capture_output=True,
                       text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1 and "tokenizer.json" in p.stderr


# Bits per character: total nats / ln 2 / the characters of the text the targets stand for.

def test_bpc_of_a_char_model_is_its_loss_over_ln2(tiny_names, tmp_path):
    corpus = load_corpus(tiny_names)
    cfg = train.TrainConfig(steps=20, batch_size=16, eval_interval=10, seed=3)
    r = train.train("mlp", {"block_size": 3, "n_embd": 8, "n_hidden": 32}, corpus, cfg, tmp_path, progress=False)
    val = train.evaluate(r.model, examples_for(r.model, corpus.items("val"), corpus.vocab))
    assert val == r.val_loss and val.bpc == pytest.approx(val / math.log(2), rel=1e-12)
    rows = list(csv.DictReader(open(tmp_path / train.METRICS)))
    assert float(rows[-1]["val_bpc"]) == pytest.approx(val.bpc, abs=1e-6)


def test_metrics_rows_in_bits_per_character(tmp_path):
    log = MetricsLog(tmp_path / "m.csv", 0, chars_per_token=2.5)
    log.row(0, 0.1, 2.0)
    log.val(1, Loss(1.5, 0.75))
    log.close()
    rows = list(csv.DictReader(open(tmp_path / "m.csv")))
    assert float(rows[0]["bpc"]) == pytest.approx(2.0 / math.log(2) / 2.5, abs=1e-6) and rows[0]["val_bpc"] == ""
    assert float(rows[1]["val_loss"]) == 1.5 and float(rows[1]["val_bpc"]) == 0.75
    assert train.read_metrics(tmp_path / "m.csv") == ([(0, 2.0)], [(1, 1.5)])


def test_bpc_of_a_bpe_model_counts_the_characters_of_the_text(bpe_run):
    out, corpus = bpe_run
    trained = load_model(out)
    val = corpus.items("val")
    loss = train.evaluate(trained.model, examples_for(trained.model, val, trained.vocab))
    chars = len(trained.vocab.decode(val[1:].tolist()))  # the targets: every token after the first
    assert chars > 1.5 * (len(val) - 1)  # several characters a token
    assert loss.bpc == pytest.approx(loss * (len(val) - 1) / math.log(2) / chars, rel=1e-9)


def test_bpc_of_bpe_lines_counts_each_items_end_as_one_character(tiny_names):
    corpus = load_corpus(tiny_names, tokenizer="bpe", vocab_size=280)
    model = train.build_model("bigram", {}, corpus.vocab.size, seed=0)
    for kind_model in (model, train.build_model("mlp", {"block_size": 3}, corpus.vocab.size, seed=0)):
        ex = examples_for(kind_model, corpus.items("val"), corpus.vocab)
        loss = train.evaluate(kind_model, ex)
        chars = sum(len(item) + 1 for item in corpus.items("val"))
        assert loss.bpc == pytest.approx(loss * ex.n_targets / math.log(2) / chars, rel=1e-9)
        assert chars_per_target(ex) == pytest.approx(chars / ex.n_targets, rel=1e-12)


def test_encoding_in_processes_gives_the_same_tokens_in_order(bpe):
    from makemore.tokenizers import encode_blocks

    pieces = [TEXT * 40, "caf\u00e9 " * 1000, TEXT[::-1] * 40] * 3  # ASCII blocks and others, in many blocks
    one = np.concatenate(list(encode_blocks(bpe, pieces)))
    assert len(one) > 3 * len(TEXT)
    assert np.array_equal(np.concatenate(list(encode_blocks(bpe, pieces, processes=2))), one)


def test_a_full_word_cache_starts_again_with_the_same_tokens(monkeypatch):
    bpe = BPE.train([TEXT], vocab_size=300, boundary=False)
    monkeypatch.setattr(tokenizers, "WORD_CACHE", 20)  # TEXT has more distinct words: it fills at every text
    texts = [TEXT, TEXT[::-1], TEXT.upper()]
    assert [a.tolist() for a in bpe.encode_many(texts)] == [bpe.encode(t) for t in texts]
    last = set(tokenizers._ASCII_WORDS.findall(texts[-1]))
    assert len(last) > 20 and set(bpe._words.number) == last  # emptied, then the last text's words
