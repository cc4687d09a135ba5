"""Hostile input at the CLI's entry points: random bytes as data files, prompts, --set values and checkpoint JSON
(hypothesis, derandomized so every run tries the same inputs). Never a traceback: exit 0, or exit 2 and one line.
Then crafted checkpoints: a pickle payload, a safetensors header that lies, numbers too large for anything."""

import copy
import hashlib
import itertools
import json
import os
import pickle
import shutil
import struct
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from makemore import checkpoint
from makemore.cli import main

FUZZ = settings(derandomize=True, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
TRIED: dict[str, int] = {}
_dirs = itertools.count()


def cli(capsys, *argv: str) -> int:
    """Run the CLI in-process; assert it ended the way a user may see it end."""
    try:
        code = main(list(argv))
    except SystemExit as e:  # argparse
        code = e.code
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    lines = [ln for ln in err.strip().splitlines() if not ln.startswith(("training ", "resuming "))]  # run starts
    assert code in (0, 2), err
    if code == 2:
        assert len(lines) == 1 and lines[0].startswith("makemore: error:"), err
    else:
        assert lines == [], err
    return code


def count(what: str) -> None:
    TRIED[what] = TRIED.get(what, 0) + 1


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # thousands of tiny ops: two threads cost 10x


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A small trained run and its data, shared by the fuzz tests (each example works on its own copy)."""
    root = tmp_path_factory.mktemp("fuzz")
    data = root / "names.txt"
    data.write_text("\n".join(["emma", "olivia", "ava", "isabella", "sophia", "mia", "amelia", "harper", "evelyn",
                               "abigail", "emily", "ella", "elizabeth", "camila", "luna"] * 4) + "\n")
    run = root / "run"
    assert main(["train", "--data", str(data), "--out", str(run), "--steps", "4", "--eval-interval", "2",
                 "--set", "n_hidden=8", "--set", "n_embd=2", "--quiet", "--samples", "0"]) == 0
    return root, data, run


def fresh(root: Path) -> Path:
    return root / f"case{next(_dirs)}"


@settings(FUZZ, max_examples=150)
@given(raw=st.one_of(st.binary(max_size=400), st.text(max_size=400).map(str.encode)),
       mode=st.sampled_from(["auto", "lines", "text"]))
def test_fuzz_data_files(work, capsys, raw, mode):
    root, _, run = work
    path = fresh(root)
    path.write_bytes(raw)
    count("data files")
    cli(capsys, "train", "--model", "bigram-counts", "--data", str(path), "--mode", mode, "--out", str(fresh(root)),
        "--quiet", "--samples", "2")
    cli(capsys, "eval", "--out", str(run), "--data", str(path))


ARGV_TEXT = st.one_of(st.text(max_size=40), st.binary(max_size=40).map(os.fsdecode)).map(
    lambda s: s.replace("\x00", ""))  # what argv can hold: no NUL, undecodable bytes as surrogates


@settings(FUZZ, max_examples=300)
@given(prompt=ARGV_TEXT, top_k=st.one_of(st.none(), st.integers(-3, 40)))
def test_fuzz_prompts(work, capsys, prompt, top_k):
    _, _, run = work
    count("prompts")
    extra = [] if top_k is None else ["--top-k", str(top_k)]
    cli(capsys, "sample", "--out", str(run), "--prompt", prompt, "-n", "2", "--max-len", "6", *extra)


NUMBERS = st.one_of(st.integers(-3, 40), st.sampled_from([2**31, 2**63, 2**64, -2**63 - 1, 10**30]),
                    st.floats(allow_nan=True, allow_infinity=True))
JSON = st.recursive(st.none() | st.booleans() | NUMBERS | st.text(max_size=10),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
                    max_leaves=6)
MLP_KEYS = ["vocab_size", "block_size", "n_embd", "n_hidden", "init", "init_seed", "batchnorm", "bn_momentum"]


def _dump(value) -> str:
    try:
        return json.dumps(value)
    except ValueError:  # an int beyond Python's digit limit for str()
        return "1" * 5000


@settings(FUZZ, max_examples=200)
@given(key=st.one_of(st.sampled_from(MLP_KEYS), st.text(max_size=10)),
       value=st.one_of(ARGV_TEXT, JSON.map(_dump)))
def test_fuzz_set_values(work, capsys, key, value):
    root, data, _ = work
    count("--set values")
    cli(capsys, "train", "--data", str(data), "--out", str(fresh(root)), "--steps", "1", "--eval-interval", "1",
        "--set", "n_hidden=8", "--set", f"{key}={value}", "--quiet", "--samples", "1")


def _paths(tree, prefix=()):
    yield prefix
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(tree, list):
        for i, v in enumerate(tree):
            yield from _paths(v, (*prefix, i))


@pytest.fixture(scope="module")
def meta(work):
    return json.loads((work[2] / checkpoint.META).read_text())


@st.composite
def mutated_checkpoint(draw, meta):
    if draw(st.integers(0, 9)) == 0:
        return draw(st.binary(max_size=300))
    tree = copy.deepcopy(meta)
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(list(_paths(tree))[1:]))
        parent = tree
        for k in path[:-1]:
            parent = parent[k]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(JSON)
    return _dump(tree).encode()


@settings(FUZZ, max_examples=300)
@given(data=st.data(), command=st.sampled_from(["sample", "eval", "resume"]))
def test_fuzz_checkpoint_json(work, meta, capsys, data, command):
    root, _, run = work
    out = fresh(root)
    shutil.copytree(run, out)
    (out / checkpoint.META).write_bytes(data.draw(mutated_checkpoint(meta)))
    count("checkpoint files")
    if command == "resume":
        cli(capsys, "train", "--out", str(out), "--resume", "--steps", "6", "--quiet", "--samples", "1")
    else:
        cli(capsys, command, "--out", str(out), *(["-n", "2"] if command == "sample" else []))


def test_zz_report_fuzz_counts(capsys):
    total = sum(TRIED.values())
    with capsys.disabled():  # the figure for benchmarks/RESULTS.md (pytest -s shows it)
        print(f"\nfuzzed inputs: {total} ({', '.join(f'{k} {v}' for k, v in TRIED.items())})")


# Crafted checkpoints ----------------------------------------------------------------------------------------------

def _repoint(out: Path, part: str, data: bytes) -> None:
    """Put `data` in as the checkpoint's `part` file with a matching checksum: only the content is hostile."""
    meta = json.loads((out / checkpoint.META).read_text())
    (out / meta["files"][part]["name"]).write_bytes(data)
    meta["files"][part]["sha256"] = hashlib.sha256(data).hexdigest()
    (out / checkpoint.META).write_text(json.dumps(meta))


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(os.environ["MAKEMORE_FUZZ_MARKER"]),))


@pytest.mark.parametrize("where", ["weights", "state", "json"])
def test_pickle_payload_is_never_run(work, tmp_path, capsys, monkeypatch, where):
    _, _, run = work
    marker = tmp_path / "pwned"
    monkeypatch.setenv("MAKEMORE_FUZZ_MARKER", str(marker))
    payload = pickle.dumps(_Payload())
    out = tmp_path / "run"
    shutil.copytree(run, out)
    if where == "json":
        (out / checkpoint.META).write_bytes(payload)
    else:
        _repoint(out, where, payload)
    (out / "model.pt").write_bytes(payload)  # a pickle beside it is ignored, not loaded
    refused = 2 if where != "state" else 0  # sampling and evaluating never read the optimiser state
    assert cli(capsys, "sample", "--out", str(out)) == refused
    assert cli(capsys, "eval", "--out", str(out)) == refused
    assert cli(capsys, "train", "--out", str(out), "--resume", "--steps", "6", "--quiet", "--samples", "0") == 2
    assert not marker.exists()


def _safetensors(header: dict, body: bytes, length: int | None = None) -> bytes:
    h = json.dumps(header).encode()
    return struct.pack("<Q", len(h) if length is None else length) + h + body


@pytest.mark.parametrize("lie", ["header length", "offsets past the end", "shape vs size", "huge shape", "not json"])
def test_lying_safetensors_header_is_refused(work, tmp_path, capsys, lie):
    _, _, run = work
    out = tmp_path / "run"
    shutil.copytree(run, out)
    body = bytes(16)
    files = {
        "header length": _safetensors({"C": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, body, 2**60),
        "offsets past the end": _safetensors({"C": {"dtype": "F32", "shape": [2**30], "data_offsets": [0, 2**32]}},
                                             body),
        "shape vs size": _safetensors({"C": {"dtype": "F32", "shape": [1000, 1000], "data_offsets": [0, 16]}}, body),
        "huge shape": _safetensors({"C": {"dtype": "F32", "shape": [2**62, 2**62], "data_offsets": [0, 16]}}, body),
        "not json": struct.pack("<Q", 5) + b"{{{{{" + body,
    }
    _repoint(out, "weights", files[lie])
    msg = None
    for argv in (["sample", "--out", str(out), "--last"], ["eval", "--out", str(out), "--last"]):
        assert cli(capsys, *argv) == 2
    msg = main(["sample", "--out", str(out), "--last"]), capsys.readouterr().err
    assert "not a valid safetensors file" in msg[1]


@pytest.mark.parametrize("field, value, message", [
    (("config", "n_hidden"), 10**12, "holds"),  # the model it describes is not the model in the weights
    (("config", "n_hidden"), 10**30, "too large"),
    (("config", "init_seed"), 2**64, "too large"),
    (("config", "bn_momentum"), "1e999", "inf"),
    (("step",), 10**40, "step must be"),
    (("step",), "1e999", "step must be"),
    (("best", "val"), "-1e999", "-inf"),
    (("config", "n_embd"), "1" * 5000, "corrupt checkpoint"),  # beyond Python's int parsing limit
])
def test_huge_numbers_in_checkpoint_json_are_refused(work, tmp_path, capsys, field, value, message):
    _, _, run = work
    out = tmp_path / "run"
    shutil.copytree(run, out)
    text = (out / checkpoint.META).read_text()
    meta = json.loads(text)
    target = meta
    for k in field[:-1]:
        target = target[k]
    target[field[-1]] = "__X__"
    raw = json.dumps(meta).replace('"__X__"', value if isinstance(value, str) else str(value))
    (out / checkpoint.META).write_text(raw)
    for argv in (["sample", "--out", str(out)], ["eval", "--out", str(out)],
                 ["train", "--out", str(out), "--resume", "--steps", "6", "--quiet", "--samples", "0"]):
        assert cli(capsys, *argv) == 2
    main(["sample", "--out", str(out)])
    err = capsys.readouterr().err
    assert message in err and "corrupt checkpoint" in err, err
