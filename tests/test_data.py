import random

import pytest
import torch

from makemore.batches import ContextExamples as Examples
from makemore.data import Vocab, detect_mode, load_corpus, read_text
from makemore.errors import MakemoreError


def test_lecture_split_and_vocab(names_path):
    words = open(names_path).read().splitlines()
    random.seed(42)
    random.shuffle(words)
    c = load_corpus(names_path)
    assert c.mode == "lines"
    assert c.splits["train"] == words[:25626] and c.splits["val"] == words[25626:28829]
    assert len(c.splits["test"]) == 3204
    assert c.vocab.itos[:3] == [".", "a", "b"] and c.vocab.size == 27


def test_examples_are_the_lectures_contexts():
    vocab = Vocab.build("emma", "lines")
    ex = Examples(["emma"], vocab, 3)
    X, Y = ex.batch(torch.arange(len(ex)))
    contexts = ["".join(vocab.itos[i] for i in row) for row in X.tolist()]
    assert contexts == ["...", "..e", ".em", "emm", "mma"]
    assert vocab.decode(Y.tolist()) == "emma" and Y[-1].item() == 0


def test_examples_never_cross_items():
    vocab = Vocab.build("abcdefg", "lines")
    ex = Examples(["abc", "defg"], vocab, 4)
    X, _ = ex.batch(torch.arange(len(ex)))
    assert X[4].tolist() == [0, 0, 0, 0]  # first example of the second item sees only boundaries
    assert len(ex) == 4 + 5


def test_text_mode_split_and_windows(tmp_path):
    text = "hello world, this is text.\n\nmore text here.\n" * 20
    f = tmp_path / "t.txt"
    f.write_text(text)
    c = load_corpus(str(f))
    assert c.mode == "text"
    n = int(0.9 * len(text))
    assert list(c.splits) == ["train", "val"]
    assert c.vocab.decode(c.splits["train"].tolist()) == text[:n]
    assert c.vocab.decode(c.splits["val"].tolist()) == text[n:]
    assert c.splits["train"].dtype == torch.uint8  # one byte a character: a large text stays small
    ex = Examples(c.items("train"), c.vocab, 8)
    X, Y = ex.batch(torch.tensor([0]))
    assert c.vocab.decode(X[0].tolist()) == text[:8] and c.vocab.decode(Y.tolist()) == text[8]


def test_streamed_batches_equal_materialised(monkeypatch):
    vocab = Vocab.build("abcdef", "lines")
    full = Examples(["abc", "fed", "a"], vocab, 3)
    monkeypatch.setattr(Examples, "MATERIALISE_LIMIT", 0)
    lazy = Examples(["abc", "fed", "a"], vocab, 3)
    assert lazy.X is None
    ix = torch.tensor([5, 0, 7, 3])
    for a, b in zip(full.batch(ix), lazy.batch(ix), strict=True):
        assert torch.equal(a, b)


def test_mode_detection():
    assert detect_mode("emma\nolivia\nava\n") == "lines"
    prose = "First Citizen:\nBefore we proceed any further, hear me speak.\n\nAll:\nSpeak, speak.\n\n" * 5
    assert detect_mode(prose) == "text"
    names = [f"name{i}" for i in range(80)]

    def lines(*parts):
        return "\n".join("\n".join(p) for p in parts) + "\n"

    assert detect_mode(lines(names) + " \n") == "lines"  # a whitespace-only last line
    assert detect_mode(lines(names[:40], [""], names[40:])) == "lines"  # one stray blank line in a short list
    assert detect_mode(lines(names[:30], [""], names[30:60], [""], names[60:])) == "text"  # paragraphs


@pytest.mark.parametrize("content, message", [
    (b"", "is empty"), (b"\n \n", "is empty"), (b"ab\xff\xfe\n", "not UTF-8"),
])
def test_bad_files(tmp_path, content, message):
    f = tmp_path / "bad.txt"
    f.write_bytes(content)
    with pytest.raises(MakemoreError, match=message):
        read_text(str(f))


def test_missing_and_directory(tmp_path):
    with pytest.raises(MakemoreError, match="not found"):
        read_text(str(tmp_path / "nope.txt"))
    with pytest.raises(MakemoreError, match="directory"):
        read_text(str(tmp_path))


def test_unknown_characters_are_named():
    vocab = Vocab.build("abc", "lines")
    with pytest.raises(MakemoreError, match="'XZ'"):
        vocab.encode("aZbX")


def test_bundled_names():
    c = load_corpus("names")
    assert c.mode == "lines" and len(c.items("all")) == 30_000
    assert c.vocab.size == 27
    assert all(item.isalpha() and item.islower() for item in c.items("all"))


@pytest.mark.parametrize("newline", [b"\n", b"\r\n"])  # Unix, Windows
def test_both_line_endings_read_as_the_same_items(tmp_path, newline):
    from makemore.data import _pieces

    names = ["anna", "bob", "carla", "dave", "evelyn"] * 4
    path = tmp_path / "names.txt"
    path.write_bytes(newline.join(n.encode() for n in names) + newline)
    corpus = load_corpus(str(path))
    assert corpus.mode == "lines" and "\r" not in corpus.vocab.chars
    assert sorted(corpus.items("train") + corpus.items("val") + corpus.items("test")) == sorted(names)
    # chunks that cut a line ending in two: "\r" at a chunk's end, its "\n" at the next one's start
    for chunk in (1, 2, 3, 5):
        assert "".join(_pieces(str(path), chunk=chunk)) == "\n".join(names) + "\n"
