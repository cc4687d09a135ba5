import json

import pytest
import torch

from makemore import checkpoint
from makemore import training as train
from makemore.checkpoint import load_model
from makemore.data import load_corpus
from makemore.errors import MakemoreError


@pytest.fixture
def trained(tiny_names, tmp_path):
    corpus = load_corpus(tiny_names)
    cfg = train.TrainConfig(steps=20, batch_size=8, eval_interval=10)
    train.train("mlp", {"n_hidden": 16, "n_embd": 4}, corpus, cfg, tmp_path / "run", progress=False)
    return tmp_path / "run"


def test_round_trip(trained):
    ck = checkpoint.load(trained)
    model = load_model(trained, "last").model
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ck.weights.items())
    meta = json.loads((trained / checkpoint.META).read_text())
    assert meta["model"] == "mlp" and meta["config"]["n_hidden"] == 16 and meta["step"] == 20
    assert meta["vocab"]["boundary"] is True and len(meta["data"]["sha256"]) == 64
    assert any(k.startswith("optim.") for k in ck.state) and "rng.batches" in ck.state
    # only the files the JSON names are left: old steps are cleaned up
    assert sorted(p.name for p in trained.iterdir() if p.suffix == ".safetensors") == sorted(
        f["name"] for f in meta["files"].values())


def test_no_pickle_anywhere(trained):
    for p in trained.iterdir():
        assert not p.read_bytes().startswith(b"\x80"), p  # pickle protocol 2+ magic


@pytest.mark.parametrize("damage, message", [
    ("truncate", "checksum"), ("delete", "missing"), ("json", "corrupt checkpoint"), ("nojson", "no checkpoint"),
])
def test_damaged_checkpoints(trained, damage, message):
    meta = json.loads((trained / checkpoint.META).read_text())
    weights = trained / meta["files"]["weights"]["name"]
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:100])
    elif damage == "delete":
        weights.unlink()
    elif damage == "json":
        (trained / checkpoint.META).write_text('{"format": "makemore-checkpoint/1", "files": ')
    else:
        (trained / checkpoint.META).unlink()
    with pytest.raises(MakemoreError, match=message):
        load_model(trained)


def test_crash_between_files_leaves_previous_checkpoint(trained, monkeypatch):
    before = checkpoint.load(trained)
    calls = []
    real = checkpoint.atomic_write

    def crash_on_json(path, data):
        calls.append(path.name)
        if path.name == checkpoint.META:
            raise OSError("disk full")
        real(path, data)

    monkeypatch.setattr(checkpoint, "atomic_write", crash_on_json)
    with pytest.raises(OSError):
        checkpoint.save(trained, before)
    monkeypatch.undo()
    after = checkpoint.load(trained)
    assert after.step == before.step and len(calls) >= 2


def test_a_reader_that_meets_a_save_midway_reads_the_new_checkpoint(trained, monkeypatch):
    # A save writes its files, then checkpoint.json, then deletes the old files. `makemore sample` during training
    # could read the old checkpoint.json and then find the files it names deleted.
    newer = checkpoint.load(trained)
    newer.step = 21
    read_part, saves = checkpoint._load_part, []

    def save_in_between(*args, **kw):
        if not saves:
            saves.append(checkpoint.save(trained, newer))
        return read_part(*args, **kw)

    monkeypatch.setattr(checkpoint, "_load_part", save_in_between)
    assert checkpoint.load(trained).step == 21 and len(saves) == 1


def test_a_file_gone_without_a_new_checkpoint_is_still_missing(trained):
    meta = json.loads((trained / checkpoint.META).read_text())
    (trained / meta["files"]["state"]["name"]).unlink()
    with pytest.raises(MakemoreError, match="is missing"):
        checkpoint.load(trained)
