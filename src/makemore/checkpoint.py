"""Checkpoints: tensors in safetensors, everything else in one JSON file; nothing is ever unpickled.

A checkpoint directory holds checkpoint.json and the safetensors files it names, with their sha256 (and a BPE
model's tokenizer.json, checksummed the same way). Every file
is written to a temporary name and renamed into place, and tensor files carry a fresh name each time, so the
JSON file is the single commit point: a crash at any moment leaves the previous checkpoint whole, and a file
changed or cut short afterwards is caught by its checksum.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from makemore.atomic import atomic_write
from makemore.errors import MakemoreError
from makemore.limits import MAX_INT, is_whole

FORMAT = "makemore-checkpoint/1"
META = "checkpoint.json"
TOKENIZER = "tokenizer.json"  # a BPE's merges, Hugging Face's format; its record in `vocab` carries the text


@dataclass
class Checkpoint:
    model: str  # registry name
    config: dict[str, Any]  # the model's config dataclass as a dict
    vocab: dict[str, Any]
    data: dict[str, Any]  # source, mode, split seed, sha256 of the file
    train: dict[str, Any]  # the TrainConfig it was trained with
    step: int = 0
    best: dict[str, Any] = field(default_factory=dict)  # step and val loss of the best weights
    weights: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)
    state: dict[str, torch.Tensor] = field(default_factory=dict, repr=False)  # optimiser + RNG, for resume
    state_meta: dict[str, Any] = field(default_factory=dict)  # the non-tensor part of the optimiser state
    best_weights: dict[str, torch.Tensor] | None = field(default=None, repr=False)


def _tensors_bytes(tensors: dict[str, torch.Tensor]) -> bytes:
    return st_save({k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()})


def save(out: str | Path, ckpt: Checkpoint) -> None:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    old = _referenced_files(out)
    token = f"{ckpt.step:08d}-{secrets.token_hex(3)}"
    files: dict[str, dict[str, str]] = {}
    parts = {"weights": ckpt.weights, "state": ckpt.state}
    if ckpt.best_weights is not None:
        parts["best"] = ckpt.best_weights
    for part, tensors in parts.items():
        data = _tensors_bytes(tensors)
        name = f"{part}-{token}.safetensors"
        atomic_write(out / name, data)
        files[part] = {"name": name, "sha256": hashlib.sha256(data).hexdigest()}
    if ckpt.best_weights is None and ckpt.best and "best" in old:  # this run's best, written by an earlier save
        files["best"] = old["best"]
    vocab = ckpt.vocab
    if "json" in vocab:  # a BPE: its tokenizer.json beside the weights, checksummed like them
        data = vocab["json"].encode()
        atomic_write(out / TOKENIZER, data)
        files["tokenizer"] = {"name": TOKENIZER, "sha256": hashlib.sha256(data).hexdigest()}
        vocab = {k: v for k, v in vocab.items() if k != "json"}
    meta = {
        "format": FORMAT, "model": ckpt.model, "config": ckpt.config, "vocab": vocab, "data": ckpt.data,
        "train": ckpt.train, "step": ckpt.step, "best": ckpt.best, "state_meta": ckpt.state_meta, "files": files,
    }
    atomic_write(out / META, (json.dumps(meta, indent=1) + "\n").encode())
    keep = {f["name"] for f in files.values()}
    for f in old.values():
        if f["name"] not in keep and _own_file(f["name"]):  # never delete what a hand-edited JSON points at
            (out / f["name"]).unlink(missing_ok=True)
    _remove_leftovers(out, keep)


_OWN_FILE = re.compile(r"(weights|state|best)-[0-9]{8}-[0-9a-f]{6}\.safetensors")
# atomic_write's temporary files, for our own files only
_OWN_TMP = re.compile(r"\.(" + _OWN_FILE.pattern + r"|checkpoint\.json|tokenizer\.json)\.[A-Za-z0-9_]+\.tmp")


def _own_file(name: object) -> bool:
    """A tensor file name this module writes: no directories, nothing else in the folder."""
    return isinstance(name, str) and _OWN_FILE.fullmatch(name) is not None


def _remove_leftovers(out: Path, keep: set[str]) -> None:
    """Files of ours that no checkpoint names: a process killed while saving leaves its temporary file or the
    tensor files of a checkpoint it never committed. (Writers into one folder are serialised by runlock.)"""
    for p in out.iterdir():
        if p.name not in keep and (_own_file(p.name) or _OWN_TMP.fullmatch(p.name)):
            p.unlink(missing_ok=True)


def _referenced_files(out: Path) -> dict[str, dict[str, str]]:
    try:
        files = json.loads((out / META).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError):
        return {}
    if not isinstance(files, dict):
        return {}
    return {k: v for k, v in files.items() if isinstance(v, dict) and isinstance(v.get("name"), str)}


def exists(out: str | Path) -> bool:
    return (Path(out) / META).is_file()


MAX_META_BYTES = 64 << 20  # checkpoint.json holds settings, never tensors: anything larger is not ours
MAX_HEADER_BYTES = 100 << 20  # safetensors' own limit


def load(out: str | Path, *, state: bool = True) -> Checkpoint:
    """Read and verify a checkpoint; any problem with it is one MakemoreError naming what is wrong.

    Nothing in the folder is executed or unpickled: checkpoint.json is parsed as JSON and checked field by field,
    each tensor file must match its sha256 and have a safetensors header whose sizes add up, and the model the
    config describes (built without memory) must hold exactly as many numbers as the weights file."""
    out = Path(out)
    if not out.is_dir():
        raise MakemoreError(f"no checkpoint: {out} is not a directory")
    for _ in range(10):
        try:
            return _load(out, state)
        except _Replaced as e:  # a training run saved a newer checkpoint while this one was being read: read that
            replaced = e
    raise MakemoreError(f"cannot read the checkpoint in {out}: it changed each time it was read ({replaced} was "
                        "replaced)")


class _Replaced(Exception):
    """A file that checkpoint.json named is gone, and checkpoint.json has changed since it was read."""


def _meta_bytes(out: Path) -> bytes:
    with open(out / META, "rb") as f:
        raw = f.read(MAX_META_BYTES + 1)
    if len(raw) > MAX_META_BYTES:
        raise ValueError(f"larger than {MAX_META_BYTES >> 20} MB")
    return raw


def _load(out: Path, state: bool) -> Checkpoint:
    try:
        raw = _meta_bytes(out)
        meta = json.loads(raw.decode("utf-8"))
    except FileNotFoundError:
        raise MakemoreError(f"no checkpoint in {out} (missing {META}; train first)") from None
    except (OSError, ValueError, RecursionError) as e:  # UnicodeDecodeError is a ValueError
        raise MakemoreError(f"corrupt checkpoint {out / META}: {_first_line(e)}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise MakemoreError(f"{out / META} is not a makemore checkpoint (format {FORMAT})")
    try:
        _check_meta(meta)
        files = meta["files"]
        ckpt = Checkpoint(meta["model"], meta["config"], meta["vocab"], meta["data"], meta["train"],
                          meta["step"], meta.get("best") or {}, state_meta=meta.get("state_meta") or {})
        expected = _state_values(ckpt.model, ckpt.config)
        ckpt.weights = _load_part(out, files["weights"], expected)
        if state:
            ckpt.state = _load_part(out, files["state"])
        if "best" in files:
            ckpt.best_weights = _load_part(out, files["best"], expected)
        if "tokenizer" in files:
            ckpt.vocab = {**ckpt.vocab, "json": _read_checked(out, files["tokenizer"], TOKENIZER).decode("utf-8")}
    except _Gone as e:
        # A save writes the new files, then checkpoint.json, then deletes the old files: a reader between its
        # read of checkpoint.json and of the files it names finds them gone, and a new checkpoint.json.
        with contextlib.suppress(OSError, ValueError):
            if _meta_bytes(out) != raw:
                raise _Replaced(e) from None
        raise MakemoreError(f"corrupt checkpoint: {e} is missing") from None
    except (KeyError, TypeError, ValueError) as e:
        raise MakemoreError(f"corrupt checkpoint in {out}: bad or missing field {_first_line(e)}") from None
    except _Bad as e:
        raise MakemoreError(f"corrupt checkpoint in {out}: {e}") from None
    return ckpt


class _Gone(Exception):
    """A tensor file that checkpoint.json names is not there."""


class _Bad(Exception):
    """A field of checkpoint.json that is present but wrong."""


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def _check_numbers(x: object, where: str, depth: int = 0) -> None:
    """No integer beyond 64 bits and no non-finite float anywhere in the settings (json reads 1e999 as inf)."""
    if depth > 20:
        raise _Bad(f"{where} is nested too deeply")
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return
    if isinstance(x, int):
        if not -MAX_INT - 1 <= x <= MAX_INT:
            raise _Bad(f"{where} holds a number too large ({str(x)[:20]}...)")
    elif isinstance(x, float):
        if not math.isfinite(x):
            raise _Bad(f"{where} holds {x}")
    elif isinstance(x, dict):
        for k, v in x.items():
            _check_numbers(v, f"{where}.{k}", depth + 1)
    elif isinstance(x, list):
        for i, v in enumerate(x):
            _check_numbers(v, f"{where}[{i}]", depth + 1)


def _check_meta(meta: dict[str, Any]) -> None:
    for key, kind in (("model", str), ("config", dict), ("vocab", dict), ("data", dict), ("train", dict),
                      ("files", dict)):
        if not isinstance(meta[key], kind):
            raise _Bad(f"{key} must be a {kind.__name__}")
    for key in ("best", "state_meta"):
        if not isinstance(meta.get(key) or {}, dict):
            raise _Bad(f"{key} must be an object")
    if not is_whole(meta["step"]):
        raise _Bad(f"step must be a whole number from 0 to 2**63-1, not {str(meta['step'])[:30]}")
    for key in ("config", "train", "best"):
        _check_numbers(meta.get(key), key)
    best = meta.get("best") or {}
    if best and not (is_whole(best.get("step")) and isinstance(best.get("val"), int | float)
                     and not isinstance(best.get("val"), bool)):
        raise _Bad("best must hold a step and a val loss")
    vocab, data = meta["vocab"], meta["data"]
    if vocab.get("tokenizer") == "bpe":
        if not (is_whole(vocab.get("size")) and isinstance(vocab.get("boundary"), bool)
                and "tokenizer" in meta["files"]):
            raise _Bad("a BPE vocab must hold size, boundary and a tokenizer file")
        size = vocab["size"]
    else:
        if not (isinstance(vocab.get("chars"), str) and isinstance(vocab.get("boundary"), bool)):
            raise _Bad("vocab must hold chars (a string) and boundary (true or false)")
        if len(set(vocab["chars"])) != len(vocab["chars"]):
            raise _Bad("vocab repeats a character")
        size = len(vocab["chars"]) + vocab["boundary"]
    if meta["config"].get("vocab_size") != size:
        raise _Bad("config.vocab_size does not match the vocabulary")
    if not (isinstance(data.get("source"), str) and data.get("mode") in ("lines", "text")
            and isinstance(data.get("sha256"), str)):
        raise _Bad("data must hold source, mode (lines or text) and sha256")
    for part, entry in meta["files"].items():
        if not (isinstance(entry, dict) and isinstance(entry.get("name"), str)
                and isinstance(entry.get("sha256"), str)):
            raise _Bad(f"files.{part} must hold a name and a sha256")


def _state_values(model: str, config: dict[str, Any]) -> int:
    """How many numbers the weights of this model hold, from its config alone (nothing is allocated)."""
    from makemore import limits

    try:
        return limits.state_values(limits.meta_model(model, config))
    except MakemoreError as e:
        raise _Bad(str(e)) from None


_DTYPE_BYTES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
                "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


def _check_header(data: bytes) -> int:
    """Check a safetensors file's header against its length before the library reads it; the numbers it holds."""
    if len(data) < 8:
        raise ValueError("shorter than a header")
    n = int.from_bytes(data[:8], "little")
    if n > MAX_HEADER_BYTES or 8 + n > len(data):
        raise ValueError(f"its header claims {n} bytes, the file has {len(data)}")
    try:
        header = json.loads(data[8:8 + n])
    except (ValueError, RecursionError):
        raise ValueError("its header is not JSON") from None
    if not isinstance(header, dict):
        raise ValueError("its header is not a JSON object")
    body = len(data) - 8 - n
    total = 0
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        if not isinstance(entry, dict) or entry.get("dtype") not in _DTYPE_BYTES:
            raise ValueError(f"tensor {name!r}: unknown dtype")
        shape, offsets = entry.get("shape"), entry.get("data_offsets")
        if not (isinstance(shape, list) and all(is_whole(d) for d in shape) and isinstance(offsets, list)
                and len(offsets) == 2 and all(is_whole(o, 0, body) for o in offsets) and offsets[0] <= offsets[1]):
            raise ValueError(f"tensor {name!r}: shape or offsets out of range")
        numel = math.prod(shape)
        if numel * _DTYPE_BYTES[entry["dtype"]] != offsets[1] - offsets[0]:
            raise ValueError(f"tensor {name!r}: its shape does not match its size in the file")
        total += numel
    return total


def _read_checked(out: Path, entry: dict[str, str], name: str | None = None) -> bytes:
    """A file that checkpoint.json names (`name`, or one of our tensor files), checked against its sha256."""
    if not (entry["name"] == name if name else _own_file(entry["name"])):
        raise MakemoreError(f"corrupt checkpoint in {out}: unexpected file name {entry['name']!r}")
    path = out / entry["name"]
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise _Gone(path) from None
    except OSError as e:  # (a directory in its place, no permission to read it)
        raise MakemoreError(f"cannot read {path}: {e.strerror or e}") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise MakemoreError(f"corrupt checkpoint: {path} does not match its checksum (truncated or changed)")
    return data


def _load_part(out: Path, entry: dict[str, str], expected: int | None = None) -> dict[str, torch.Tensor]:
    data = _read_checked(out, entry)
    path = out / entry["name"]
    try:
        numel = _check_header(data)
        tensors = st_load(data)
    except Exception as e:  # safetensors raises its own error types for malformed headers
        raise MakemoreError(f"corrupt checkpoint: {path} is not a valid safetensors file ({_first_line(e)})") from None
    if expected is not None and numel != expected:
        raise MakemoreError(f"corrupt checkpoint in {out}: its config describes a model of {expected:,} numbers, "
                            f"{path.name} holds {numel:,}")
    return tensors


# The optimiser's state_dict mixes tensors (moments, step counts) with plain values (hyperparameters);
# tensors go to safetensors under flat names, the rest to JSON.
def optimizer_to_flat(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    sd = opt.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    plain: dict[str, dict[str, Any]] = {}
    for pid, st in sd["state"].items():
        for k, v in st.items():
            if isinstance(v, torch.Tensor):
                tensors[f"optim.{pid}.{k}"] = v
            else:
                plain.setdefault(str(pid), {})[k] = v
    return tensors, {"param_groups": sd["param_groups"], "plain_state": plain}


def _kind(x: Any) -> Any:
    """The shape of a JSON value: numbers are one kind (0 and 0.9 are both a momentum), lists keep their length."""
    if isinstance(x, bool) or x is None or isinstance(x, str):
        return type(x)
    if isinstance(x, int | float):
        return float
    if isinstance(x, list | tuple):
        return tuple(_kind(v) for v in x)
    return type(x)


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    """Restore an optimiser; a saved state that does not fit it (hand-edited JSON) is a ValueError, before torch
    takes it in and fails later, mid-step."""
    groups, plain = meta["param_groups"], meta.get("plain_state", {})
    current = opt.state_dict()["param_groups"]
    if not (isinstance(groups, list) and len(groups) == len(current) and all(isinstance(g, dict) for g in groups)):
        raise ValueError("optimizer param_groups do not match")
    params = [p for g in opt.param_groups for p in g["params"]]
    for saved, now in zip(groups, current, strict=True):
        if saved.get("params") != now["params"]:
            raise ValueError("optimizer param_groups name other parameters")
        for k in saved.keys() & now.keys():
            if _kind(saved[k]) != _kind(now[k]):
                raise ValueError(f"optimizer setting {k} has the wrong type")
    groups = [{**now, **saved} for saved, now in zip(groups, current, strict=True)]  # missing: this run's value
    if not (isinstance(plain, dict) and all(isinstance(v, dict) for v in plain.values())):
        raise ValueError("optimizer plain_state is not an object of objects")
    state: dict[int, dict[str, Any]] = {}
    for pid, values in plain.items():
        if not all(v is None or isinstance(v, bool | int | float) for v in values.values()):
            raise ValueError("optimizer plain_state holds something other than numbers")
        state[int(pid)] = dict(values)
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    for pid, st in state.items():
        if not 0 <= pid < len(params):
            raise ValueError(f"optimizer state for parameter {pid}, which does not exist")
        if any(isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape != params[pid].shape for v in st.values()):
            raise ValueError(f"optimizer state for parameter {pid} has the wrong shape")
    if len({frozenset(st) for st in state.values()}) > 1:
        raise ValueError("optimizer state differs between parameters")
    opt.load_state_dict({"state": state, "param_groups": groups})


@dataclass
class Trained:
    """A trained model with what it needs to be used: its vocabulary and its checkpoint's record."""

    model: Any  # models.LanguageModel
    vocab: Any  # tokenizers.Vocab or tokenizers.BPE
    ckpt: Checkpoint

    def corpus(self):
        """The file it was trained on, split as it was (refused if the file changed since)."""
        from makemore.data import training_corpus

        return training_corpus(self.ckpt.data, self.vocab)


def load_model(out: str | Path, which: str = "best", device: str | torch.device = "cpu") -> Trained:
    """The model in a checkpoint directory, in eval mode; `which` is "best" (lowest val loss) or "last"."""
    from makemore import models, tokenizers

    ckpt = load(out, state=False)
    try:
        model = models.build(ckpt.model, models.make_config(ckpt.model, **ckpt.config))
        vocab = tokenizers.from_json(ckpt.vocab)
    except (TypeError, KeyError, AttributeError) as e:
        raise MakemoreError(f"corrupt checkpoint in {out}: {e}") from None
    except MakemoreError as e:
        raise MakemoreError(f"corrupt checkpoint in {out}: {e}") from None
    if vocab.size != ckpt.config.get("vocab_size"):
        raise MakemoreError(f"corrupt checkpoint in {out}: its tokenizer has {vocab.size} tokens, the model "
                            f"{ckpt.config.get('vocab_size')}")
    weights = ckpt.best_weights if which == "best" and ckpt.best_weights is not None else ckpt.weights
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise MakemoreError(f"corrupt checkpoint in {out}: the weights do not fit a {ckpt.model} model") from None
    model.to(device).eval()
    return Trained(model, vocab, ckpt)
