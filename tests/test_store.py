import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from makemore import store
from makemore import training as train
from makemore.batches import examples_for
from makemore.data import load_corpus
from makemore.errors import MakemoreError
from makemore.tokenizers import Vocab

VERSE = "".join(f"Line {i}: to be, or not to be, that is the question;\nWhether 'tis nobler {i % 7}\n\n"
                for i in range(400))
GPT = {"block_size": 16, "n_layer": 1, "n_head": 2, "n_embd": 16}


@pytest.fixture
def text(tmp_path) -> str:
    path = tmp_path / "verse.txt"
    path.write_text(VERSE)
    return str(path)


def one_line(*args: str) -> str:
    p = subprocess.run([sys.executable, "-m", "makemore", *args], capture_output=True, text=True)
    assert p.returncode == 2 and p.stderr.count("\n") == 1, p.stderr
    return p.stderr


def test_a_store_run_and_an_in_memory_run_give_the_same_losses(text, tmp_path):
    store.prepare(text, tmp_path / "store", progress=False)
    on_disk, in_memory = load_corpus(str(tmp_path / "store")), load_corpus(text)
    assert isinstance(on_disk.items("train"), store.Tokens) and on_disk.fingerprint == in_memory.fingerprint
    assert json.loads((tmp_path / "store" / store.META).read_text())["dtype"] == "uint8"  # 1 byte a character
    assert on_disk.vocab == in_memory.vocab
    cfg = train.TrainConfig(steps=30, batch_size=8, eval_interval=10, seed=5)
    runs = {}
    for name, corpus in (("disk", on_disk), ("memory", in_memory)):
        r = train.train("gpt", GPT, corpus, cfg, tmp_path / name, progress=False)
        runs[name] = (train.read_metrics(tmp_path / name / train.METRICS), r.val_loss)
    assert runs["disk"] == runs["memory"] and len(runs["disk"][0][0]) == 30
    for model in ("mlp", "gpt"):  # both kinds of batch read the same tokens from either
        m = train.build_model(model, {"block_size": 8}, in_memory.vocab.size, seed=0)
        a, b = (examples_for(m, c.items("val"), c.vocab) for c in (on_disk, in_memory))
        ix = torch.arange(len(b))
        assert torch.equal(a.batch(ix)[0], b.batch(ix)[0]) and torch.equal(a.batch(ix)[1], b.batch(ix)[1])


def test_bpe_store_holds_the_in_memory_tokens(tmp_path, shakespeare_path):
    path = shakespeare_path  # > 1 MB: BPE's blocks are cut
    corpus = load_corpus(path, mode="text", tokenizer="bpe", vocab_size=512)
    store.prepare(path, tmp_path, vocab=corpus.vocab, progress=False)
    on_disk = load_corpus(str(tmp_path), vocab=corpus.vocab)
    meta = json.loads((tmp_path / store.META).read_text())
    assert meta["dtype"] == "uint16" and meta["data"]["sha256"] == corpus.fingerprint
    for s in ("train", "val"):
        ids = corpus.items(s)
        assert torch.equal(on_disk.items(s)[torch.arange(len(ids))], ids.long())
    assert corpus.vocab.decode(corpus.stream.tolist()) == open(path, encoding="utf-8").read()


def test_a_large_vocabulary_is_stored_in_uint32(tmp_path):
    path = tmp_path / "wide.txt"
    path.write_text("".join(chr(0x20000 + i) for i in range(70_000)) + "\n", encoding="utf-8")  # 70,001 characters
    store.prepare(str(path), tmp_path / "s", progress=False)
    corpus = load_corpus(str(tmp_path / "s"))
    assert json.loads((tmp_path / "s" / store.META).read_text())["dtype"] == "uint32"
    assert corpus.vocab.size > 65536 and int(corpus.items("val")[torch.tensor([0])]) >= 0


def test_a_truncated_or_foreign_token_file_is_one_line(text, tmp_path):
    out = tmp_path / "store"
    store.prepare(text, out, progress=False)
    train_bin = next(out.glob("train-*.bin"))
    good = train_bin.read_bytes()
    train_bin.write_bytes(good[:-2])
    assert "truncated or replaced" in one_line("train", "--data", str(out), "--out", str(tmp_path / "r"))
    train_bin.write_bytes(good[::-1])  # the right size, other tokens
    assert "not the file this store wrote" in one_line("train", "--data", str(out), "--out", str(tmp_path / "r"))
    (out / store.META).unlink()
    assert "or a prepared store (no store.json" in one_line("train", "--data", str(out), "--out", str(tmp_path / "r"))


def test_a_store_of_another_tokenizer_is_refused(text, tmp_path):
    store.prepare(text, tmp_path / "store", progress=False)
    other = Vocab.build(VERSE + "#", "text")
    with pytest.raises(MakemoreError, match="prepared with another tokenizer than the model's"):
        load_corpus(str(tmp_path / "store"), vocab=other)


def test_invalid_utf8_names_the_offset_and_keeps_the_previous_store(text, tmp_path):
    out = tmp_path / "store"
    store.prepare(text, out, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"x" * 3000 + b"\xff" + b"y" * 10)
    with pytest.raises(MakemoreError, match="bad byte at offset 3000"):
        store.prepare(str(bad), out, progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # the old store whole, nothing left over
    assert len(load_corpus(str(out)).items("train")) == int(0.9 * len(VERSE))


def test_a_full_disk_leaves_no_store(text, tmp_path):
    """A file size limit makes writes fail as a full disk does (EFBIG instead of ENOSPC)."""
    big = tmp_path / "big.txt"
    big.write_text(VERSE * 40)
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            "resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000)); "
            "from makemore import store; from makemore.errors import MakemoreError\n"
            f"try:\n store.prepare({str(big)!r}, {str(tmp_path / 'store')!r}, progress=False)\n"
            "except MakemoreError as e:\n print(e); sys.exit(2)")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert p.returncode == 2 and "cannot write the store" in p.stdout, (p.stdout, p.stderr)
    assert not store.is_store(tmp_path / "store") and list((tmp_path / "store").iterdir()) == []


def test_kill_9_during_prepare_never_leaves_a_store_looking_complete(tmp_path):
    big = tmp_path / "big.txt"
    with open(big, "w") as f:
        for _ in range(150):
            f.write(VERSE)
    out = tmp_path / "store"
    code = f"from makemore import store; store.prepare({str(big)!r}, {str(out)!r}, progress=False)"
    p = subprocess.Popen([sys.executable, "-c", code])
    deadline = time.monotonic() + 60
    while not list(out.glob(".tokens-*.tmp")) and time.monotonic() < deadline and p.poll() is None:
        time.sleep(0.005)
    os.kill(p.pid, signal.SIGKILL)
    assert p.wait() == -signal.SIGKILL  # killed while writing its tokens
    assert not store.is_store(out)
    with pytest.raises(MakemoreError, match="or a prepared store"):
        load_corpus(str(out))
    store.prepare(str(big), out, progress=False)  # redone, the leftovers of the killed one removed
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 3 and names[0] == store.META
    corpus = load_corpus(str(out))
    whole = VERSE * 150
    cut = int(0.9 * len(whole))
    assert len(corpus.items("train")) == cut and len(corpus.items("val")) == len(whole) - cut
    assert corpus.vocab.decode(corpus.items("val")[torch.arange(50)].tolist()) == whole[cut:cut + 50]


def test_a_large_text_trains_from_a_store_prepared_once_in_the_run_folder(text, tmp_path, monkeypatch):
    import makemore as mm

    monkeypatch.setattr(store, "AUTO_BYTES", 1000)  # (VERSE is ~30 KB)
    kw = {"model": "gpt", "config": GPT, "steps": 20, "batch_size": 8, "eval_interval": 10, "progress": False}
    run = mm.train(text, out=tmp_path / "a", **kw)
    folder = tmp_path / "a" / "store"
    made = json.loads((folder / store.META).read_text())
    assert made["data"]["source"] == str(tmp_path / "verse.txt") and made["tokenizer"]["chars"] == "".join(
        sorted(set(VERSE)))
    assert run.trained("last").ckpt.data["source"] == str(folder.resolve())
    # The same losses as a run from memory over the same tokens (below the size that makes a store).
    monkeypatch.setattr(store, "AUTO_BYTES", 1 << 40)
    memory = mm.train(text, out=tmp_path / "b", **kw)
    assert train.read_metrics(tmp_path / "a" / train.METRICS) == train.read_metrics(tmp_path / "b" / train.METRICS)
    assert memory.evaluate() == run.evaluate()
    monkeypatch.setattr(store, "AUTO_BYTES", 1000)
    # A second run into the folder reuses the store (same token files), resuming reads it, and the file
    # changed (or another tokenizer) prepares it again.
    mm.train(text, out=tmp_path / "a", force=True, **kw)
    assert json.loads((folder / store.META).read_text()) == made
    assert mm.load(tmp_path / "a").resume(steps=30).evaluate()["val"] > 0
    mm.train(text, out=tmp_path / "a", force=True, tokenizer="bpe", vocab_size=300, **kw)
    assert json.loads((folder / store.META).read_text())["tokenizer"]["size"] == 300
    with open(text, "a") as f:
        f.write("More!\n")
    mm.train(text, out=tmp_path / "a", force=True, **kw)
    assert "!" in json.loads((folder / store.META).read_text())["tokenizer"]["chars"]
    assert len(list(folder.glob("*.bin"))) == 2  # the replaced store's token files are gone
    with pytest.raises(MakemoreError, match="--vocab-size must be"):
        mm.train(text, out=tmp_path / "c", tokenizer="bpe", vocab_size=10, **kw)
    names = tmp_path / "names.txt"  # a list of items is read into memory whatever its size
    names.write_text("\n".join(f"name{i}" for i in range(2000)) + "\n")
    mm.train(str(names), out=tmp_path / "d", **{**kw, "model": "mlp", "config": {}})
    assert not (tmp_path / "d" / "store").exists()
