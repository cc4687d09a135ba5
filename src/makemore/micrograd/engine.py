"""A scalar-valued autograd engine.

Each :class:`Value` wraps one float and remembers the op that produced it and its operands.
As in the lecture, every op is written in one place: the method that computes ``out`` (the
forward pass) is followed by ``_<op>_backward(out)``, its local derivative times ``out.grad``
(the chain rule), added into the operands' ``grad``.  ``backward()`` calls them in reverse
topological order; ``+=`` makes a node used twice receive the sum of its contributions.

Three differences from the lecture's engine, for speed and for big graphs:

* ``_<op>_backward`` is a plain function that receives ``out``, stored on ``out``, rather than a
  closure made for every node that captures ``out``.  Nothing is allocated per node but the node,
  and no node refers back to itself, so a graph is freed by reference counting as soon as it is
  dropped (the lecture's closures make reference cycles that wait for the garbage collector).
* A number operand (the 2 in ``x * 2``) is kept on the node (``_number``) instead of being wrapped
  in a throw-away ``Value``.
* The topological sort is a loop, not recursion, so a chain of a million nodes works.

``linear`` builds a neuron's ``b + w·x`` nodes inline (most of an MLP's graph), and ``gc_paused``
keeps the garbage collector from walking a big live graph during a training step.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from math import exp as _exp
from math import log as _log
from math import pow as _pow
from math import tanh as _tanh
from numbers import Real

__all__ = ["Value", "gc_paused", "linear"]

_new = object.__new__


class Value:
    """A scalar with a gradient: one node of a computation graph."""

    # _a, _b: the Value operands (None when absent).  _number: the number operand, set only on the
    # nodes of an op with one (x * 2, 2 - x, x ** 2).  _label: set only when given.
    __slots__ = ("data", "grad", "_a", "_b", "_op", "_backward", "_number", "_label")

    data: float
    grad: float

    def __init__(self, data: float, label: str = "") -> None:
        self.data = float(data)
        self.grad = 0.0
        self._a = None
        self._b = None
        self._op = ""
        self._backward = None  # a leaf has nothing to pass its gradient on to
        if label:
            self._label = label

    # ------------------------------------------------------------------ the ops
    # Each returns a new node; the function after it is its local derivative (the chain rule).

    def __add__(self, other: Value | float) -> Value:
        if isinstance(other, Value):
            return _node(self.data + other.data, "+", Value._add_backward, self, other)
        c = _number(other)
        if c is None:
            return NotImplemented
        return _node(self.data + c, "+", Value._add_number_backward, self, number=c)

    def _add_backward(out: Value) -> None:  # d(a + b)/da = d(a + b)/db = 1
        out._a.grad += out.grad
        out._b.grad += out.grad

    def _add_number_backward(out: Value) -> None:  # d(a + c)/da = 1
        out._a.grad += out.grad

    def __radd__(self, other: float) -> Value:
        return self + other  # c + a is a + c, to the last bit

    def __mul__(self, other: Value | float) -> Value:
        if isinstance(other, Value):
            return _node(self.data * other.data, "*", Value._mul_backward, self, other)
        c = _number(other)
        if c is None:
            return NotImplemented
        return _node(self.data * c, "*", Value._mul_number_backward, self, number=c)

    def _mul_backward(out: Value) -> None:  # d(a * b)/da = b, d(a * b)/db = a
        a, b = out._a, out._b
        a.grad += b.data * out.grad
        b.grad += a.data * out.grad

    def _mul_number_backward(out: Value) -> None:  # d(a * c)/da = c
        out._a.grad += out._number * out.grad

    def __rmul__(self, other: float) -> Value:
        return self * other  # c * a is a * c, to the last bit

    def __sub__(self, other: Value | float) -> Value:
        if isinstance(other, Value):
            return _node(self.data - other.data, "-", Value._sub_backward, self, other)
        c = _number(other)
        if c is None:
            return NotImplemented
        return _node(self.data - c, "-", Value._add_number_backward, self, number=c)  # d(a - c)/da = 1

    def _sub_backward(out: Value) -> None:  # d(a - b)/da = 1, d(a - b)/db = -1
        out._a.grad += out.grad
        out._b.grad -= out.grad

    def __rsub__(self, other: float) -> Value:
        c = _number(other)
        if c is None:
            return NotImplemented
        return _node(c - self.data, "-", Value._number_sub_backward, self, number=c)

    def _number_sub_backward(out: Value) -> None:  # d(c - a)/da = -1
        out._a.grad -= out.grad

    def __truediv__(self, other: Value | float) -> Value:
        if isinstance(other, Value):
            return _node(self.data / other.data, "/", Value._div_backward, self, other)
        c = _number(other)
        if c is None:
            return NotImplemented
        return _node(self.data / c, "/", Value._div_number_backward, self, number=c)

    def _div_backward(out: Value) -> None:  # d(a / b)/da = 1 / b, d(a / b)/db = -a / b**2 = -out / b
        a, b = out._a, out._b
        a.grad += out.grad / b.data
        b.grad -= out.grad * out.data / b.data

    def _div_number_backward(out: Value) -> None:  # d(a / c)/da = 1 / c
        out._a.grad += out.grad / out._number

    def __rtruediv__(self, other: float) -> Value:
        c = _number(other)
        if c is None:
            return NotImplemented
        return _node(c / self.data, "/", Value._number_div_backward, self, number=c)

    def _number_div_backward(out: Value) -> None:  # d(c / a)/da = -c / a**2 = -out / a
        a = out._a
        a.grad -= out.grad * out.data / a.data

    def __pow__(self, other: float) -> Value:
        if isinstance(other, Value):
            raise TypeError("only powers by a number are supported: Value ** number")
        c = _number(other)
        if c is None:
            return NotImplemented
        # math.pow gives a float or an error (ValueError for a negative base and a fractional
        # exponent) where ** would give a complex number.
        return _node(_pow(self.data, c), "**", Value._pow_backward, self, number=c)

    def _pow_backward(out: Value) -> None:  # d(a ** k)/da = k * a ** (k - 1)
        a, k = out._a, out._number
        a.grad += (k * _pow(a.data, k - 1)) * out.grad

    def __neg__(self) -> Value:
        return _node(-self.data, "neg", Value._neg_backward, self)

    def _neg_backward(out: Value) -> None:  # d(-a)/da = -1
        out._a.grad -= out.grad

    def __pos__(self) -> Value:
        return self

    def exp(self) -> Value:
        return _node(_exp(self.data), "exp", Value._exp_backward, self)

    def _exp_backward(out: Value) -> None:  # d(e**a)/da = e**a = out
        out._a.grad += out.data * out.grad

    def log(self) -> Value:
        return _node(_log(self.data), "log", Value._log_backward, self)

    def _log_backward(out: Value) -> None:  # d(log a)/da = 1 / a
        out._a.grad += out.grad / out._a.data

    def tanh(self) -> Value:
        return _node(_tanh(self.data), "tanh", Value._tanh_backward, self)

    def _tanh_backward(out: Value) -> None:  # d(tanh a)/da = 1 - tanh(a)**2 = 1 - out**2
        out._a.grad += (1.0 - out.data * out.data) * out.grad

    def relu(self) -> Value:
        x = self.data
        return _node(0.0 if x < 0.0 else x, "ReLU", Value._relu_backward, self)  # NaN, -0.0 pass, as the lecture's

    def _relu_backward(out: Value) -> None:  # d(relu a)/da = 1 where a > 0, else 0
        if out.data > 0.0:
            out._a.grad += out.grad

    def sigmoid(self) -> Value:
        x = self.data
        if x >= 0.0:  # two forms, so that exp() never overflows
            s = 1.0 / (1.0 + _exp(-x))
        else:
            e = _exp(x)
            s = e / (1.0 + e)
        return _node(s, "sigmoid", Value._sigmoid_backward, self)

    def _sigmoid_backward(out: Value) -> None:  # d(sigmoid a)/da = out * (1 - out)
        out._a.grad += out.data * (1.0 - out.data) * out.grad

    # ------------------------------------------------------------------ autograd
    def backward(self) -> None:
        """Backpropagate from this node: add d(self)/d(node) to the ``grad`` of every node.

        Gradients accumulate (``+=``), as in the lecture: zero the parameters' gradients
        (``Module.zero_grad()``) between steps.
        """
        self.grad = 1.0
        # Reverse topological order: a node's grad is complete before it is passed on.
        for v in reversed(_topological_order(self)):
            v._backward(v)

    # ------------------------------------------------------------------ introspection
    @property
    def label(self) -> str:
        """Optional name, shown in drawings ('' if none)."""
        try:
            return self._label
        except AttributeError:
            return ""

    @label.setter
    def label(self, name: str) -> None:
        self._label = name

    @property
    def op(self) -> str:
        """Symbol of the op that produced this node: '+', '*', 'ReLU', ... ('' for a leaf)."""
        return self._op

    @property
    def _prev(self) -> tuple[Value, ...]:
        """The Value operands (named as in the lecture)."""
        if self._a is None:
            return ()
        if self._b is None:
            return (self._a,)
        return (self._a, self._b)

    @property
    def children(self) -> tuple[Value, ...]:
        """The Value operands of the op that produced this node."""
        return self._prev

    @property
    def constant(self) -> float | None:
        """The number operand of this node's op (2.0 in ``x * 2`` or ``x ** 2``), if any."""
        try:
            return self._number
        except AttributeError:
            return None

    @property
    def constant_on_left(self) -> bool:
        """True for ``c - x`` and ``c / x``, where the number is the left operand."""
        return self._backward is Value._number_sub_backward or self._backward is Value._number_div_backward

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"


def _node(
    data: float, op: str, backward: Callable[[Value], None], a: Value, b: Value | None = None,
    number: float | None = None,
) -> Value:
    """The node ``out`` of an op.  Built with object.__new__ and slot stores: a third cheaper than
    calling __init__, and an op's forward is most of the engine's time."""
    out = _new(Value)
    out.data = data
    out.grad = 0.0
    out._a = a
    out._b = b
    out._op = op
    out._backward = backward
    if number is not None:
        out._number = number
    return out


def _number(other: object) -> float | None:
    """``other`` as a float if it is a real number (int, float, bool, numpy scalar...), else None."""
    if type(other) is float:
        return other
    if type(other) is int or isinstance(other, Real):
        return float(other)
    return None


def _topological_order(root: Value) -> list[Value]:
    """The non-leaf nodes reachable from ``root``, each after all of its operands.

    Iterative depth-first post-order.  An expanded node is pushed back under a ``None``
    marker and is emitted when the marker comes off the stack, i.e. once everything
    pushed above it (its operands' subgraphs) is done.  Leaves are left out: they
    have nothing to pass a gradient on to.
    """
    topo: list[Value] = []
    seen: set[Value] = set()
    stack: list[Value | None] = [root]
    while stack:
        v = stack.pop()
        if v is None:
            topo.append(stack.pop())
            continue
        if v in seen:  # a stale second copy, pushed before the node was expanded
            continue
        seen.add(v)
        a = v._a
        if a is None:
            continue
        stack.append(v)
        stack.append(None)
        if a not in seen:
            stack.append(a)
        b = v._b
        if b is not None and b not in seen:
            stack.append(b)
    return topo


# linear()'s names for them: a global is found faster than a class attribute.
_add_backward = Value._add_backward
_mul_backward = Value._mul_backward
_mul_number_backward = Value._mul_number_backward


def linear(bias: Value, weights: Sequence[Value], inputs: Iterable[Value | float]) -> Value:
    """``bias + w[0]*x[0] + w[1]*x[1] + ...``, accumulated left to right.

    The same nodes and floats as the lecture's ``sum((wi*xi for wi, xi in zip(w, x)), b)``,
    built inline: a neuron's forward pass is most of the graph, and this halves its cost.
    """
    act = bias
    for wi, xi in zip(weights, inputs, strict=False):  # truncating, as the lecture's zip
        m = _new(Value)
        if isinstance(xi, Value):
            m.data = wi.data * xi.data
            m._b = xi
            m._backward = _mul_backward
        else:
            c = _number(xi)
            if c is None:
                raise TypeError(f"unsupported input type {type(xi).__name__!r}: expected Value or number")
            m.data = wi.data * c
            m._b = None
            m._backward = _mul_number_backward
            m._number = c
        m.grad = 0.0
        m._a = wi
        m._op = "*"
        s = _new(Value)
        s.data = act.data + m.data
        s.grad = 0.0
        s._a = act
        s._b = m
        s._op = "+"
        s._backward = _add_backward
        act = s
    return act


@contextmanager
def gc_paused() -> Iterator[None]:
    """Switch the cyclic garbage collector off inside the block, and back to how it was after it.

    A training step builds a graph of tens of thousands of nodes that lives until the step ends.
    With the collector on, their allocations set off collection after collection, each walking
    the live graph (and, in the oldest generation, every object of the process) to find no
    garbage: the engine makes no reference cycles.  Wrap a whole step (forward and backward):

        with gc_paused():
            loss = ...; model.zero_grad(); loss.backward()
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
