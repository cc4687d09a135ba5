"""Recurrent sequence models: a vanilla RNN, a GRU and an LSTM, each cell written out so its equations can be
read. One hidden state carries everything seen so far; in generation it is the model's whole state, so each
new character costs one cell step and the context is unbounded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from makemore.errors import MakemoreError
from makemore.models.registry import LanguageModel, ModelConfig, register


@dataclass(frozen=True)
class RNNConfig(ModelConfig):
    block_size: int = 32  # the length of the training rows
    n_embd: int = 64
    n_hidden: int = 128
    cell: str = "rnn"  # rnn | gru | lstm (each registered under its own name too)
    dropout: float = 0.0  # of the embeddings and of the outputs (not of the recurrence), in training

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cell not in CELLS:
            raise MakemoreError(f"unknown cell {self.cell!r} (choose from: {', '.join(CELLS)})")
        if not 0 <= self.dropout < 1:
            raise MakemoreError(f"dropout must be in [0, 1), not {self.dropout}")


class RNNCell(nn.Module):
    """h' = tanh(W [x, h] + b)."""

    def __init__(self, n_in: int, n_hidden: int):
        super().__init__()
        self.xh_to_h = nn.Linear(n_in + n_hidden, n_hidden)
        self.tanh = nn.Tanh()  # non-linearities are modules, so that diagnostics can hook each of them

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        return self.tanh(self.xh_to_h(torch.cat([x, h], dim=1)))


class GRUCell(nn.Module):
    """r = sigmoid(Wr [x, h]), z = sigmoid(Wz [x, h]), hbar = tanh(Wh [x, r * h]), h' = (1 - z) h + z hbar: the
    gates decide how much of the old state to read (r) and to keep (z), so gradients can pass many steps."""

    def __init__(self, n_in: int, n_hidden: int):
        super().__init__()
        self.xh_to_z = nn.Linear(n_in + n_hidden, n_hidden)
        self.xh_to_r = nn.Linear(n_in + n_hidden, n_hidden)
        self.xh_to_hbar = nn.Linear(n_in + n_hidden, n_hidden)
        self.reset_gate, self.update_gate, self.candidate = nn.Sigmoid(), nn.Sigmoid(), nn.Tanh()

    def forward(self, x: Tensor, h: Tensor) -> Tensor:
        xh = torch.cat([x, h], dim=1)
        r = self.reset_gate(self.xh_to_r(xh))
        z = self.update_gate(self.xh_to_z(xh))
        hbar = self.candidate(self.xh_to_hbar(torch.cat([x, r * h], dim=1)))
        return (1 - z) * h + z * hbar


class LSTMCell(nn.Module):
    """A memory c beside the output h: forget (f), input (i) and output (o) gates and a candidate g;
    c' = f c + i g, h' = o tanh(c'). The state is (h, c) packed side by side in one tensor."""

    def __init__(self, n_in: int, n_hidden: int):
        super().__init__()
        self.n_hidden = n_hidden
        self.xh_to_gates = nn.Linear(n_in + n_hidden, 4 * n_hidden)  # i, f, g, o in one matmul
        self.input_gate, self.forget_gate, self.output_gate = nn.Sigmoid(), nn.Sigmoid(), nn.Sigmoid()
        self.candidate, self.memory_out = nn.Tanh(), nn.Tanh()

    def forward(self, x: Tensor, state: Tensor) -> Tensor:
        h, c = state.chunk(2, dim=1)
        i, f, g, o = self.xh_to_gates(torch.cat([x, h], dim=1)).chunk(4, dim=1)
        c = self.forget_gate(f) * c + self.input_gate(i) * self.candidate(g)
        h = self.output_gate(o) * self.memory_out(c)
        return torch.cat([h, c], dim=1)


CELLS: dict[str, tuple[type[nn.Module], int]] = {"rnn": (RNNCell, 1), "gru": (GRUCell, 1), "lstm": (LSTMCell, 2)}


class RNN(LanguageModel):
    kind = "sequence"
    cached = True
    recurrent = True

    def __init__(self, config: RNNConfig):
        super().__init__()
        self.config = c = config
        cell, state_parts = CELLS[c.cell]
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.start = nn.Parameter(torch.zeros(1, state_parts * c.n_hidden))  # the learned state before token 0
        self.cell = cell(c.n_embd, c.n_hidden)
        self.lm_head = nn.Linear(c.n_hidden, c.vocab_size)
        self.drop = nn.Dropout(c.dropout)  # (p = 0: the identity, no random numbers drawn)

    @property
    def context_limit(self) -> int | None:
        return None

    def forward(self, idx: Tensor) -> Tensor:
        return self.forward_cached(idx, None)[0]

    def forward_cached(self, idx: Tensor, state: Any) -> tuple[Tensor, Tensor]:
        emb = self.drop(self.wte(idx))
        h = self.start.expand(idx.shape[0], -1) if state is None else state
        outs = []
        for t in range(idx.shape[1]):
            h = self.cell(emb[:, t], h)
            outs.append(h)
        hs = torch.stack(outs, dim=1)[..., : self.config.n_hidden]  # an LSTM's c stays inside
        return self.lm_head(self.drop(hs)), h


@dataclass(frozen=True)
class GRUConfig(RNNConfig):
    cell: str = "gru"


@dataclass(frozen=True)
class LSTMConfig(RNNConfig):
    cell: str = "lstm"


# One model, three names: the config's cell picks the recurrence.
register("rnn", RNNConfig, "vanilla recurrent net: h = tanh(W [x, h])")(RNN)
register("gru", GRUConfig, "gated recurrent unit: reset and update gates around the RNN cell")(RNN)
register("lstm", LSTMConfig, "long short-term memory: a gated cell memory beside the hidden state")(RNN)
