"""Lecture makemore 4: the gradients of the BatchNorm MLP derived by hand, tensor by tensor, and checked.

The network: embeddings C of a 3-character context, Linear (W1, b1), BatchNorm with the Bessel-corrected batch
variance (bngain, bnbias), tanh, Linear (W2, b2), cross-entropy. b1 is redundant before BatchNorm and kept on
purpose: its gradient is one more thing to get right.

- forward() computes the loss through named intermediates, one simple op each (exercise 1's forward).
- backward() walks them in reverse and returns the gradient of every intermediate and parameter (exercise 1).
- cross_entropy_backward() and batchnorm_backward() are the fused forms (exercises 2 and 3).
- forward_backward() is what training uses (exercise 4): loss and parameter gradients, no autograd graph.
- check() compares every manual gradient with autograd's, as the lecture's comparison table.

Where several formulas are equal in exact arithmetic, the one autograd evaluates is chosen (dividing by probs
rather than multiplying by its reciprocal, for instance), so the piecewise gradients match autograd bit for bit
wherever the same kernels run.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import Tensor

from makemore.models.registry import lecture_generator
from makemore.nn import TANH_GAIN

BN_EPS = 1e-5
PARAMS = ("C", "W1", "b1", "W2", "b2", "bngain", "bnbias")
# The lecture's table order: from the loss back to the embedding table.
ROWS = ("logprobs", "probs", "counts_sum_inv", "counts_sum", "counts", "norm_logits", "logit_maxes", "logits", "h",
        "W2", "b2", "hpreact", "bngain", "bnbias", "bnraw", "bnvar_inv", "bnvar", "bndiff2", "bndiff", "bnmeani",
        "hprebn", "embcat", "W1", "b1", "emb", "C")
FUSED_CE, FUSED_BN = "logits (fused cross-entropy)", "hprebn (fused BatchNorm)"


@dataclass
class Params:
    C: Tensor
    W1: Tensor
    b1: Tensor
    W2: Tensor
    b2: Tensor
    bngain: Tensor
    bnbias: Tensor

    def tensors(self) -> dict[str, Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


def init_params(vocab_size: int = 27, block_size: int = 3, n_embd: int = 10, n_hidden: int = 64,
                seed: int = 2147483647, generator: torch.Generator | None = None) -> Params:
    """The lecture's initialisation: small random biases and BatchNorm parameters near (1, 0) rather than exact
    zeros and ones, which could hide a wrong gradient. All drawn from one seeded generator in the lecture's
    order; the notebook draws bngain and bnbias from torch's unseeded global generator, here they come next
    from the same one so that a run is reproducible."""
    g = generator if generator is not None else lecture_generator(seed)
    fan_in = block_size * n_embd
    C = torch.randn(vocab_size, n_embd, generator=g)
    W1 = torch.randn(fan_in, n_hidden, generator=g) * TANH_GAIN / fan_in**0.5
    b1 = torch.randn(n_hidden, generator=g) * 0.1
    W2 = torch.randn(n_hidden, vocab_size, generator=g) * 0.1
    b2 = torch.randn(vocab_size, generator=g) * 0.1
    bngain = torch.randn(n_hidden, generator=g) * 0.1 + 1.0
    bnbias = torch.randn(n_hidden, generator=g) * 0.1
    return Params(C, W1, b1, W2, b2, bngain, bnbias)


def forward(p: Params, X: Tensor, Y: Tensor) -> dict[str, Tensor]:
    """Exercise 1's forward pass: every intermediate by name, "loss" last. Works with or without autograd."""
    n = X.shape[0]
    t: dict[str, Tensor] = {}
    t["emb"] = p.C[X]
    t["embcat"] = t["emb"].view(n, -1)
    t["hprebn"] = t["embcat"] @ p.W1 + p.b1
    t["bnmeani"] = 1 / n * t["hprebn"].sum(0, keepdim=True)
    t["bndiff"] = t["hprebn"] - t["bnmeani"]
    t["bndiff2"] = t["bndiff"] ** 2
    t["bnvar"] = 1 / (n - 1) * t["bndiff2"].sum(0, keepdim=True)  # Bessel's correction: n - 1
    t["bnvar_inv"] = (t["bnvar"] + BN_EPS) ** -0.5
    t["bnraw"] = t["bndiff"] * t["bnvar_inv"]
    t["hpreact"] = p.bngain * t["bnraw"] + p.bnbias
    t["h"] = torch.tanh(t["hpreact"])
    t["logits"] = t["h"] @ p.W2 + p.b2
    t["logit_maxes"] = t["logits"].max(1, keepdim=True).values  # for stability only: the gradient through it is 0
    t["norm_logits"] = t["logits"] - t["logit_maxes"]
    t["counts"] = t["norm_logits"].exp()
    t["counts_sum"] = t["counts"].sum(1, keepdim=True)
    t["counts_sum_inv"] = t["counts_sum"] ** -1  # a power, not 1 / x: its backward is the one autograd runs
    t["probs"] = t["counts"] * t["counts_sum_inv"]
    t["logprobs"] = t["probs"].log()
    t["loss"] = -t["logprobs"][torch.arange(n), Y].mean()
    return t


def backward(p: Params, X: Tensor, Y: Tensor, t: dict[str, Tensor]) -> dict[str, Tensor]:
    """Exercise 1: the gradient of the loss with respect to every intermediate of forward() and every parameter,
    one line per op, in reverse. A tensor used twice gets the sum of both paths' contributions."""
    n = X.shape[0]
    d: dict[str, Tensor] = {}
    d["logprobs"] = torch.zeros_like(t["logprobs"])
    d["logprobs"][torch.arange(n), Y] = -1.0 / n  # the mean of the picked entries, negated
    d["probs"] = d["logprobs"] / t["probs"]  # d log x = 1/x
    # probs = counts * counts_sum_inv, the second factor broadcast over each row: its gradient sums that row.
    d["counts_sum_inv"] = (d["probs"] * t["counts"]).sum(1, keepdim=True)
    d["counts_sum"] = d["counts_sum_inv"] * (-1.0 * t["counts_sum"] ** -2)
    # counts feeds both probs and counts_sum (whose gradient reaches every entry of the row).
    d["counts"] = d["probs"] * t["counts_sum_inv"] + d["counts_sum"].expand_as(t["counts"])
    d["norm_logits"] = d["counts"] * t["counts"]  # d exp x = exp x
    d["logit_maxes"] = (-d["norm_logits"]).sum(1, keepdim=True)
    # logits reaches the loss directly and through the row max (only at the argmax).
    at_max = torch.zeros_like(t["logits"]).scatter_(1, t["logits"].argmax(1, keepdim=True), d["logit_maxes"])
    d["logits"] = d["norm_logits"] + at_max
    d["h"] = d["logits"] @ p.W2.T
    d["W2"] = t["h"].T @ d["logits"]
    d["b2"] = d["logits"].sum(0)
    d["hpreact"] = d["h"] * one_minus_square(t["h"])  # d tanh x = 1 - tanh(x)^2
    d["bngain"] = (d["hpreact"] * t["bnraw"]).sum(0)
    d["bnbias"] = d["hpreact"].sum(0)
    d["bnraw"] = d["hpreact"] * p.bngain
    d["bnvar_inv"] = (d["bnraw"] * t["bndiff"]).sum(0, keepdim=True)
    d["bnvar"] = d["bnvar_inv"] * (-0.5 * (t["bnvar"] + BN_EPS) ** -1.5)
    d["bndiff2"] = (d["bnvar"] * (1 / (n - 1))).expand_as(t["bndiff2"])
    # bndiff feeds bnraw and, squared, the variance.
    d["bndiff"] = d["bnraw"] * t["bnvar_inv"] + d["bndiff2"] * (2.0 * t["bndiff"])
    d["bnmeani"] = (-d["bndiff"]).sum(0, keepdim=True)
    d["hprebn"] = d["bndiff"] + (d["bnmeani"] * (1 / n)).expand_as(t["hprebn"])
    d["embcat"] = d["hprebn"] @ p.W1.T
    d["W1"] = t["embcat"].T @ d["hprebn"]
    d["b1"] = d["hprebn"].sum(0)
    d["emb"] = d["embcat"].view(t["emb"].shape)
    d["C"] = embedding_backward(d["emb"], X, p.C.shape[0])
    return d


def one_minus_square(h: Tensor) -> Tensor:
    """1 - h^2 with one rounding (a fused multiply-add), as torch's own tanh backward evaluates it: bit-equal."""
    return torch.ones_like(h).addcmul_(h, h, value=-1)


def embedding_backward(demb: Tensor, X: Tensor, vocab_size: int) -> Tensor:
    """Each row of C gets the sum of the gradients at every position where its token was looked up."""
    dC = torch.zeros(vocab_size, demb.shape[-1], dtype=demb.dtype, device=demb.device)
    return dC.index_add_(0, X.reshape(-1), demb.reshape(-1, demb.shape[-1]))


def cross_entropy_backward(logits: Tensor, Y: Tensor) -> Tensor:
    """Exercise 2: d mean(-log softmax(logits)[Y]) / d logits = (softmax(logits) - one_hot(Y)) / n."""
    n = logits.shape[0]
    dlogits = torch.softmax(logits, 1)
    dlogits[torch.arange(n), Y] -= 1
    return dlogits.div_(n)


def batchnorm_backward(dhpreact: Tensor, bnraw: Tensor, bnvar_inv: Tensor, bngain: Tensor) -> Tensor:
    """Exercise 3: the gradient at the BatchNorm input, every path through the batch mean and the Bessel-corrected
    variance folded into one expression:
    dx = gain * var_inv / n * (n * dy - sum(dy) - n / (n - 1) * xhat * sum(dy * xhat))."""
    n = dhpreact.shape[0]
    return bngain * bnvar_inv / n * (n * dhpreact - dhpreact.sum(0) - n / (n - 1) * bnraw * (dhpreact * bnraw).sum(0))


@dataclass
class Step:
    loss: Tensor
    grads: dict[str, Tensor]  # by parameter name (PARAMS)
    bnmean: Tensor  # the batch statistics, for a model's running estimates
    bnvar: Tensor


def forward_backward(p: Params, X: Tensor, Y: Tensor) -> Step:
    """Exercise 4: the loss and every parameter's gradient for one batch, with the fused backward passes.
    Call it under torch.no_grad(): it needs no graph."""
    n = X.shape[0]
    emb = p.C[X]
    embcat = emb.view(n, -1)
    hprebn = torch.addmm(p.b1, embcat, p.W1)
    bnvar, bnmean = torch.var_mean(hprebn, 0, correction=1)
    bnvar_inv = (bnvar + BN_EPS).rsqrt()
    bnraw = (hprebn - bnmean) * bnvar_inv
    h = torch.tanh(p.bngain * bnraw + p.bnbias)
    logits = torch.addmm(p.b2, h, p.W2)
    logprobs = torch.log_softmax(logits, 1)
    rows = torch.arange(n)
    loss = -logprobs[rows, Y].mean()
    # Fused cross-entropy: softmax - one_hot, over n (the softmax is exp of the log-softmax already at hand).
    dlogits = logprobs.exp_()
    dlogits[rows, Y] -= 1
    dlogits.div_(n)
    dhpreact = (dlogits @ p.W2.T).mul_(one_minus_square(h))
    dhprebn = batchnorm_backward(dhpreact, bnraw, bnvar_inv, p.bngain)
    demb = (dhprebn @ p.W1.T).view(emb.shape)
    grads = {"C": embedding_backward(demb, X, p.C.shape[0]), "W1": embcat.T @ dhprebn, "b1": dhprebn.sum(0),
             "W2": h.T @ dlogits, "b2": dlogits.sum(0), "bngain": (dhpreact * bnraw).sum(0),
             "bnbias": dhpreact.sum(0)}
    return Step(loss, grads, bnmean, bnvar)


@dataclass(frozen=True)
class Row:
    name: str
    exact: bool
    approximate: bool
    maxdiff: float


def compare(name: str, manual: Tensor, reference: Tensor) -> Row:
    """The lecture's comparison: bit-equal, torch.allclose, and the largest absolute difference."""
    if manual.shape != reference.shape:
        raise ValueError(f"{name}: manual gradient of shape {tuple(manual.shape)}, autograd's {tuple(reference.shape)}")
    return Row(name, bool(torch.equal(manual, reference)), torch.allclose(manual, reference),
               (manual - reference).abs().max().item())


def check(p: Params, X: Tensor, Y: Tensor) -> list[Row]:
    """Every manual gradient of one batch against autograd's: the piecewise rows of exercise 1, then the fused
    cross-entropy and BatchNorm gradients. Works in the parameters' dtype."""
    ref = Params(**{k: v.detach().clone().requires_grad_() for k, v in p.tensors().items()})
    with torch.enable_grad():
        t = forward(ref, X, Y)
        for name, v in t.items():
            if name != "loss":
                v.retain_grad()
        t["loss"].backward()
    grad = {**{k: v.grad for k, v in t.items() if k != "loss"}, **{k: v.grad for k, v in ref.tensors().items()}}
    t = {k: v.detach() for k, v in t.items()}
    with torch.no_grad():
        d = backward(p, X, Y, t)
        rows = [compare(name, d[name], grad[name]) for name in ROWS]
        rows.append(compare(FUSED_CE, cross_entropy_backward(t["logits"], Y), grad["logits"]))
        dhprebn = batchnorm_backward(d["hpreact"], t["bnraw"], t["bnvar_inv"], p.bngain)
        rows.append(compare(FUSED_BN, dhprebn, grad["hprebn"]))
    return rows


def format_table(rows: list[Row]) -> str:
    width = max(len(r.name) for r in rows)
    return "\n".join(f"{r.name:{width}s} | exact: {r.exact!s:5s} | approximate: {r.approximate!s:5s} | "
                     f"maxdiff: {r.maxdiff:.3g}" for r in rows)
