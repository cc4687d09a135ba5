"""Checkpoints: tensors in safetensors, everything else in one JSON file; nothing is ever unpickled.

A checkpoint directory holds checkpoint.json and the safetensors files it names, with their sha256. Every file
is written to a temporary name and renamed into place, and tensor files carry a fresh name each time, so the
JSON file is the single commit point: a crash at any moment leaves the previous checkpoint whole, and a file
changed or cut short afterwards is caught by its checksum.
"""

from __future__ import annotations

import hashlib
import json
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

FORMAT = "makemore-checkpoint/1"
META = "checkpoint.json"


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
    meta = {
        "format": FORMAT, "model": ckpt.model, "config": ckpt.config, "vocab": ckpt.vocab, "data": ckpt.data,
        "train": ckpt.train, "step": ckpt.step, "best": ckpt.best, "state_meta": ckpt.state_meta, "files": files,
    }
    atomic_write(out / META, (json.dumps(meta, indent=1) + "\n").encode())
    keep = {f["name"] for f in files.values()}
    for f in old.values():
        if f["name"] not in keep and _own_file(f["name"]):  # never delete what a hand-edited JSON points at
            (out / f["name"]).unlink(missing_ok=True)


_OWN_FILE = re.compile(r"(weights|state|best)-[0-9]{8}-[0-9a-f]{6}\.safetensors")


def _own_file(name: object) -> bool:
    """A tensor file name this module writes: no directories, nothing else in the folder."""
    return isinstance(name, str) and _OWN_FILE.fullmatch(name) is not None


def _referenced_files(out: Path) -> dict[str, dict[str, str]]:
    try:
        return json.loads((out / META).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return {}


def exists(out: str | Path) -> bool:
    return (Path(out) / META).is_file()


def load(out: str | Path, *, state: bool = True) -> Checkpoint:
    """Read and verify a checkpoint; any problem with it is one MakemoreError naming what is wrong."""
    out = Path(out)
    if not out.is_dir():
        raise MakemoreError(f"no checkpoint: {out} is not a directory")
    try:
        meta = json.loads((out / META).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MakemoreError(f"no checkpoint in {out} (missing {META}; train first)") from None
    except (OSError, ValueError) as e:
        raise MakemoreError(f"corrupt checkpoint {out / META}: {e}") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise MakemoreError(f"{out / META} is not a makemore checkpoint (format {FORMAT})")
    try:
        files = meta["files"]
        ckpt = Checkpoint(meta["model"], meta["config"], meta["vocab"], meta["data"], meta["train"],
                          int(meta["step"]), meta.get("best") or {}, state_meta=meta.get("state_meta") or {})
        ckpt.weights = _load_part(out, files["weights"])
        if state:
            ckpt.state = _load_part(out, files["state"])
        if "best" in files:
            ckpt.best_weights = _load_part(out, files["best"])
    except (KeyError, TypeError, ValueError) as e:
        raise MakemoreError(f"corrupt checkpoint in {out}: bad or missing field {e}") from None
    return ckpt


def _load_part(out: Path, entry: dict[str, str]) -> dict[str, torch.Tensor]:
    if not _own_file(entry["name"]):
        raise MakemoreError(f"corrupt checkpoint in {out}: unexpected file name {entry['name']!r}")
    path = out / entry["name"]
    try:
        data = path.read_bytes()
    except OSError:
        raise MakemoreError(f"corrupt checkpoint: {path} is missing") from None
    if hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise MakemoreError(f"corrupt checkpoint: {path} does not match its checksum (truncated or changed)")
    try:
        return st_load(data)
    except Exception as e:  # safetensors raises its own error types for malformed headers
        raise MakemoreError(f"corrupt checkpoint: {path} is not a valid safetensors file ({e})") from None


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


def optimizer_from_flat(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> None:
    state: dict[int, dict[str, Any]] = {int(pid): dict(v) for pid, v in meta.get("plain_state", {}).items()}
    for key, v in tensors.items():
        if key.startswith("optim."):
            _, pid, k = key.split(".", 2)
            state.setdefault(int(pid), {})[k] = v
    opt.load_state_dict({"state": state, "param_groups": meta["param_groups"]})


@dataclass
class Trained:
    """A trained model with what it needs to be used: its vocabulary and its checkpoint's record."""

    model: Any  # models.LanguageModel
    vocab: Any  # data.Vocab
    ckpt: Checkpoint

    def corpus(self):
        """The file it was trained on, split as it was (refused if the file changed since)."""
        from makemore.data import training_corpus

        return training_corpus(self.ckpt.data, self.vocab)


def load_model(out: str | Path, which: str = "best", device: str | torch.device = "cpu") -> Trained:
    """The model in a checkpoint directory, in eval mode; `which` is "best" (lowest val loss) or "last"."""
    from makemore import models
    from makemore.data import Vocab

    ckpt = load(out, state=False)
    try:
        model = models.build(ckpt.model, models.make_config(ckpt.model, **ckpt.config))
        vocab = Vocab.from_json(ckpt.vocab)
    except (TypeError, KeyError, AttributeError) as e:
        raise MakemoreError(f"corrupt checkpoint in {out}: {e}") from None
    weights = ckpt.best_weights if which == "best" and ckpt.best_weights is not None else ckpt.weights
    try:
        model.load_state_dict(weights)
    except RuntimeError:
        raise MakemoreError(f"corrupt checkpoint in {out}: the weights do not fit a {ckpt.model} model") from None
    model.to(device).eval()
    return Trained(model, vocab, ckpt)
