"""Hand-written layers of lectures 3 and 5, with torch.nn's names and calling conventions.

They are torch.nn.Modules, so optimisers, state_dict, train()/eval() and safetensors work on them, but the math
of each forward pass is written out here (no torch.nn.functional) so it can be read, diagnosed and, later,
differentiated by hand. Weights are stored (fan_in, fan_out) and applied as x @ W, as in the lectures.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

TANH_GAIN = 5 / 3  # keeps the std of tanh activations near 1 (the lecture's Kaiming gain for tanh)


class Linear(nn.Module):
    def __init__(self, fan_in: int, fan_out: int, bias: bool = True, gain: float = 1.0,
                 generator: torch.Generator | None = None):
        super().__init__()
        w = torch.randn(fan_in, fan_out, generator=generator) * (gain / fan_in**0.5)
        self.weight = nn.Parameter(w)
        self.bias = nn.Parameter(torch.zeros(fan_out)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        out = x @ self.weight
        return out + self.bias if self.bias is not None else out

    def extra_repr(self) -> str:
        return f"{self.weight.shape[0]}, {self.weight.shape[1]}, bias={self.bias is not None}"


class BatchNorm1d(nn.Module):
    """Normalises each feature over the batch (and the time axis of 3-D input), like torch.nn.BatchNorm1d:
    the biased variance normalises, the unbiased one feeds the running estimate; momentum=None keeps a
    cumulative average, which is how the statistics are calibrated over a whole training set.
    unbiased=True normalises with the Bessel-corrected variance too (lecture 4): training and inference then
    use the same estimator."""

    def __init__(self, dim: int, eps: float = 1e-5, momentum: float | None = 0.1, unbiased: bool = False):
        super().__init__()
        self.eps = eps
        self.momentum = momentum
        self.unbiased = unbiased
        self.gamma = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))
        self.register_buffer("running_mean", torch.zeros(dim))
        self.register_buffer("running_var", torch.ones(dim))
        self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long))

    def forward(self, x: Tensor) -> Tensor:
        dims = tuple(range(x.ndim - 1))  # all but the feature axis: (B, C) or (B, T, C), features last
        if x.dtype in (torch.float16, torch.bfloat16):
            x = x.float()  # batch statistics in half precision are too coarse (torch's BatchNorm does the same)
        if self.training:
            mean = x.mean(dims)
            var = x.var(dims, unbiased=self.unbiased)
            with torch.no_grad():
                n = x.numel() // x.shape[-1]
                self.track(mean, var if self.unbiased else var * n / max(n - 1, 1))
        else:
            mean, var = self.running_mean, self.running_var
        xhat = (x - mean) / torch.sqrt(var + self.eps)
        return self.gamma * xhat + self.beta

    @torch.no_grad()
    def track(self, mean: Tensor, var_unbiased: Tensor) -> None:
        """Fold one batch's statistics into the running estimates (also for models that normalise by hand)."""
        self.num_batches_tracked += 1
        m = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        dtype = self.running_mean.dtype  # the statistics stay in full precision under autocast
        self.running_mean.lerp_(mean.to(dtype), m)
        self.running_var.lerp_(var_unbiased.to(dtype), m)

    def reset_running_stats(self) -> None:
        self.running_mean.zero_()
        self.running_var.fill_(1.0)
        self.num_batches_tracked.zero_()

    def extra_repr(self) -> str:
        extra = ", unbiased=True" if self.unbiased else ""
        return f"{self.gamma.shape[0]}, eps={self.eps}, momentum={self.momentum}{extra}"


class Tanh(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(x)


class Embedding(nn.Module):
    def __init__(self, num_embeddings: int, embedding_dim: int, generator: torch.Generator | None = None):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(num_embeddings, embedding_dim, generator=generator))

    def forward(self, idx: Tensor) -> Tensor:
        return self.weight[idx]


class Flatten(nn.Module):
    """(B, T, C) -> (B, T*C): concatenates the embeddings of the whole context."""

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(x.shape[0], -1)


class FlattenConsecutive(nn.Module):
    """(B, T, C) -> (B, T/n, C*n): fuses n neighbouring positions (WaveNet's dilated pairs); drops a
    time axis of length 1."""

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def forward(self, x: Tensor) -> Tensor:
        b, t, c = x.shape
        x = x.reshape(b, t // self.n, c * self.n)
        return x.squeeze(1) if x.shape[1] == 1 else x


class Sequential(nn.Module):
    def __init__(self, *layers: nn.Module):
        super().__init__()
        self.layers = nn.ModuleList(layers)

    def forward(self, x: Tensor) -> Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def __getitem__(self, i: int) -> nn.Module:
        return self.layers[i]

    def __len__(self) -> int:
        return len(self.layers)
