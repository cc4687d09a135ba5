"""A tiny neural-network library on top of :class:`~makemore.micrograd.engine.Value`.

Same classes, names and semantics as the lecture: ``Neuron(nin, nonlin=True)``,
``Layer(nin, nout)``, ``MLP(nin, nouts)``, ``parameters()`` and ``zero_grad()``.
Weights are drawn with ``random.uniform(-1, 1)`` in the same order as the reference
and biases start at 0, so that the same seed gives the same network.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from makemore.micrograd.engine import Value, linear

__all__ = ["MLP", "Layer", "Module", "Neuron"]

Input = Sequence["Value | float"]


class Module:
    """Base class: something with parameters."""

    def zero_grad(self) -> None:
        """Reset the gradient of every parameter to 0 (gradients accumulate otherwise)."""
        for p in self.parameters():
            p.grad = 0.0

    def parameters(self) -> list[Value]:
        return []


class Neuron(Module):
    """``act = b + sum_i w_i * x_i``, followed by ReLU if ``nonlin``.

    ``rng`` defaults to the global :mod:`random` module (as in the lecture); pass a
    ``random.Random`` to build a network without touching the global state.
    """

    def __init__(self, nin: int, nonlin: bool = True, rng: random.Random | None = None) -> None:
        uniform = (rng or random).uniform
        self.w = [Value(uniform(-1, 1)) for _ in range(nin)]
        self.b = Value(0)
        self.nonlin = nonlin

    def __call__(self, x: Input) -> Value:
        # Same nodes and floats as the lecture's sum((wi*xi for ...), self.b), built by
        # the engine's inlined fast path.
        act = linear(self.b, self.w, x)
        return act.relu() if self.nonlin else act

    def parameters(self) -> list[Value]:
        return self.w + [self.b]

    def __repr__(self) -> str:
        return f"{'ReLU' if self.nonlin else 'Linear'}Neuron({len(self.w)})"


class Layer(Module):
    """``nout`` independent neurons reading the same ``nin`` inputs."""

    def __init__(self, nin: int, nout: int, nonlin: bool = True, rng: random.Random | None = None) -> None:
        self.neurons = [Neuron(nin, nonlin=nonlin, rng=rng) for _ in range(nout)]

    def __call__(self, x: Input) -> Value | list[Value]:
        out = [n(x) for n in self.neurons]
        return out[0] if len(out) == 1 else out

    def parameters(self) -> list[Value]:
        return [p for n in self.neurons for p in n.parameters()]

    def __repr__(self) -> str:
        return f"Layer of [{', '.join(str(n) for n in self.neurons)}]"


class MLP(Module):
    """A multi-layer perceptron: ReLU hidden layers and a linear last layer."""

    def __init__(self, nin: int, nouts: Sequence[int], rng: random.Random | None = None) -> None:
        sizes = [nin, *nouts]
        last = len(nouts) - 1
        self.layers = [Layer(sizes[i], sizes[i + 1], nonlin=i != last, rng=rng) for i in range(len(nouts))]

    def __call__(self, x: Input) -> Value | list[Value]:
        for layer in self.layers:
            x = layer(x)
        return x

    def parameters(self) -> list[Value]:
        return [p for layer in self.layers for p in layer.parameters()]

    def __repr__(self) -> str:
        return f"MLP of [{', '.join(str(layer) for layer in self.layers)}]"
