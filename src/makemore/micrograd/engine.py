"""A scalar-valued autograd engine.

Each :class:`Value` wraps one float and remembers the operation that produced it and
its operands.  ``backward()`` walks the graph in reverse topological order and applies
the chain rule, accumulating gradients with ``+=`` so that a node used several times
receives the sum of all its contributions.

What makes it fast in pure Python (tens of times faster than the reference micrograd
on the lecture's demo, see benchmarks/micrograd_vs_reference.py):

* ``__slots__`` and operands in two slots (``_a``, ``_b``) rather than a tuple or set:
  one garbage-collected object per node instead of several.
* An integer op code per node; ``backward()`` dispatches on it in a single loop.  No
  per-node closures, hence no reference cycles: a graph is freed by reference counting
  as soon as it is dropped, and the cyclic garbage collector never finds garbage in it.
* A number operand is stored on the node (``_aux``) instead of being wrapped in a
  throw-away leaf ``Value``.
* The topological sort and the backward pass are loops, not recursion, so a graph that
  is one chain of millions of nodes works.
* The cyclic garbage collector is paused while a graph is built and backpropagated (see
  ``_CollectorPause``): the graph has no cycles, yet the collector would walk its tens of
  thousands of live nodes, and every other object of the process, many times per step.
"""

from __future__ import annotations

import gc
from collections.abc import Iterable, Sequence
from math import exp as _exp
from math import log as _log
from math import pow as _pow
from math import tanh as _tanh
from numbers import Real

__all__ = ["Value", "linear"]

# Op codes.  A node holds one of these very objects, so `is` identifies it (the cheapest
# test); backward() tests them in order of frequency in an MLP graph.
_LEAF = 0
_MUL = 1  # a * b
_ADD = 2  # a + b
_RELU = 3
_ADDC = 4  # a + c   (c, a number, is kept in _aux)
_MULC = 5  # a * c
_SUB = 6  # a - b
_SUBC = 7  # a - c
_RSUBC = 8  # c - a
_DIV = 9  # a / b
_DIVC = 10  # a / c
_RDIVC = 11  # c / a
_POW = 12  # a ** c
_NEG = 13
_EXP = 14
_LOG = 15
_TANH = 16
_SIGMOID = 17

_OP_SYMBOLS = {
    _LEAF: "",
    _MUL: "*",
    _ADD: "+",
    _RELU: "ReLU",
    _ADDC: "+",
    _MULC: "*",
    _SUB: "-",
    _SUBC: "-",
    _RSUBC: "-",
    _DIV: "/",
    _DIVC: "/",
    _RDIVC: "/",
    _POW: "**",
    _NEG: "neg",
    _EXP: "exp",
    _LOG: "log",
    _TANH: "tanh",
    _SIGMOID: "sigmoid",
}
_CONST_OPS = frozenset({_ADDC, _MULC, _SUBC, _RSUBC, _DIVC, _RDIVC, _POW})
_CONST_ON_LEFT = frozenset({_RSUBC, _RDIVC})

_new = object.__new__


class _CollectorPause:
    """Keeps the cyclic garbage collector off from the first neuron of a forward pass to the end of the next
    backward(), and restores it there.

    A training step builds a graph of ~75,000 nodes that stays alive until the step ends. With the collector
    on, those allocations set off collection after collection, and as the nodes age into the oldest generation
    the full collections walk them and every object of the process (numpy's, scikit-learn's...): the lecture's
    loop ran 2.6x slower than with gc.disable(). The engine makes no cycles, so nothing is lost by waiting.

    The collector is only ever paused if it was on, and is switched back on at the end of backward(), even
    when backward() fails. A forward pass with no backward (inference) pauses it for at most ``budget``
    neurons' weights, then it is back on until the next backward(). Code that switches the collector off
    itself while a pause is under way finds it on again after the next backward().
    """

    __slots__ = ("armed", "paused", "left")
    budget = 2_000_000  # weights multiplied while paused without a backward() before giving up the pause

    def __init__(self) -> None:
        self.armed = True  # pause at the next neuron; re-armed by every backward()
        self.paused = False
        self.left = 0

    def pause(self) -> None:
        self.armed = False
        if gc.isenabled():
            gc.disable()
            self.paused = True
            self.left = self.budget

    def resume(self) -> None:
        if self.paused:
            self.paused = False
            gc.enable()


_collector = _CollectorPause()


def _number(other: object) -> float | None:
    """``other`` as a float if it is a real number (int, float, bool, numpy scalar...), else None."""
    if type(other) is float:
        return other
    if type(other) is int or isinstance(other, Real):
        return float(other)
    return None


class Value:
    """A scalar with a gradient: one node of a computation graph."""

    # _a, _b: operands (None when absent).  _aux: the number operand of the constant ops
    # and the exponent of **, set only on those nodes.  _label: set only when given.
    __slots__ = ("data", "grad", "_a", "_b", "_op", "_aux", "_label")

    data: float
    grad: float

    def __init__(self, data: float, label: str = "") -> None:
        self.data = float(data)
        self.grad = 0.0
        self._a = None
        self._b = None
        self._op = _LEAF
        if label:
            self._label = label

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
        return _OP_SYMBOLS[self._op]

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
        return self._aux if self._op in _CONST_OPS else None

    @property
    def constant_on_left(self) -> bool:
        """True for ``c - x`` and ``c / x``, where the number is the left operand."""
        return self._op in _CONST_ON_LEFT

    def __repr__(self) -> str:
        return f"Value(data={self.data}, grad={self.grad})"

    # ------------------------------------------------------------------ binary ops
    # Results are built with object.__new__ and direct slot stores, a third cheaper
    # than calling __init__.  `type(x) is Value` first: the common case, and cheaper
    # than isinstance(), which then covers subclasses.
    def __add__(self, other: Value | float) -> Value:
        out = _new(Value)
        if type(other) is Value or isinstance(other, Value):
            out.data = self.data + other.data
            out._b = other
            out._op = _ADD
        else:
            c = _number(other)
            if c is None:
                return NotImplemented
            out.data = self.data + c
            out._b = None
            out._op = _ADDC
            out._aux = c
        out.grad = 0.0
        out._a = self
        return out

    def __radd__(self, other: float) -> Value:
        c = _number(other)
        if c is None:
            return NotImplemented
        return _const_node(self, self.data + c, _ADDC, c)

    def __mul__(self, other: Value | float) -> Value:
        out = _new(Value)
        if type(other) is Value or isinstance(other, Value):
            out.data = self.data * other.data
            out._b = other
            out._op = _MUL
        else:
            c = _number(other)
            if c is None:
                return NotImplemented
            out.data = self.data * c
            out._b = None
            out._op = _MULC
            out._aux = c
        out.grad = 0.0
        out._a = self
        return out

    def __rmul__(self, other: float) -> Value:
        c = _number(other)
        if c is None:
            return NotImplemented
        return _const_node(self, self.data * c, _MULC, c)

    def __sub__(self, other: Value | float) -> Value:
        if isinstance(other, Value):
            return _binary_node(self, other, self.data - other.data, _SUB)
        c = _number(other)
        if c is None:
            return NotImplemented
        return _const_node(self, self.data - c, _SUBC, c)

    def __rsub__(self, other: float) -> Value:
        c = _number(other)
        if c is None:
            return NotImplemented
        return _const_node(self, c - self.data, _RSUBC, c)

    def __truediv__(self, other: Value | float) -> Value:
        if isinstance(other, Value):
            return _binary_node(self, other, self.data / other.data, _DIV)
        c = _number(other)
        if c is None:
            return NotImplemented
        return _const_node(self, self.data / c, _DIVC, c)

    def __rtruediv__(self, other: float) -> Value:
        c = _number(other)
        if c is None:
            return NotImplemented
        return _const_node(self, c / self.data, _RDIVC, c)

    def __pow__(self, other: float) -> Value:
        if isinstance(other, Value):
            raise TypeError("only powers by a number are supported: Value ** number")
        # math.pow: a float or an error (ValueError for a negative base and a fractional
        # exponent) where ** would return a complex number.
        c = _number(other)
        if c is None:
            return NotImplemented
        return _const_node(self, _pow(self.data, c), _POW, c)

    # ------------------------------------------------------------------ unary ops
    def __neg__(self) -> Value:
        return _unary_node(self, -self.data, _NEG)

    def __pos__(self) -> Value:
        return self

    def exp(self) -> Value:
        return _unary_node(self, _exp(self.data), _EXP)

    def log(self) -> Value:
        return _unary_node(self, _log(self.data), _LOG)

    def tanh(self) -> Value:
        return _unary_node(self, _tanh(self.data), _TANH)

    def relu(self) -> Value:
        x = self.data
        out = _new(Value)
        out.data = 0.0 if x < 0.0 else x  # as the reference: NaN and -0.0 pass through
        out.grad = 0.0
        out._a = self
        out._b = None
        out._op = _RELU
        return out

    def sigmoid(self) -> Value:
        x = self.data
        # Two forms so that exp() never overflows.
        if x >= 0.0:
            s = 1.0 / (1.0 + _exp(-x))
        else:
            e = _exp(x)
            s = e / (1.0 + e)
        return _unary_node(self, s, _SIGMOID)

    # ------------------------------------------------------------------ autograd
    def backward(self) -> None:
        """Backpropagate from this node: add d(self)/d(node) to the ``grad`` of every node.

        Gradients accumulate (``+=``), as in the lecture: zero the parameters' gradients
        (``Module.zero_grad()``) between steps.
        """
        try:
            self._backpropagate()
        finally:
            _collector.resume()
            _collector.armed = True

    def _backpropagate(self) -> None:
        self.grad = 1.0
        # Reverse topological order: a node's grad is complete before it is passed on
        # to its operands.  The chain rule of each op is inlined: no call per node.
        for v in reversed(_topological_order(self)):
            op = v._op
            if op is _MUL:
                a = v._a
                b = v._b
                g = v.grad
                a.grad += b.data * g
                b.grad += a.data * g
            elif op is _ADD:
                g = v.grad
                v._a.grad += g
                v._b.grad += g
            elif op is _RELU:
                if v.data > 0.0:
                    v._a.grad += v.grad
            elif op is _ADDC or op is _SUBC:
                v._a.grad += v.grad
            elif op is _MULC:
                v._a.grad += v._aux * v.grad
            elif op is _SUB:
                g = v.grad
                v._a.grad += g
                v._b.grad -= g
            elif op is _RSUBC or op is _NEG:
                v._a.grad -= v.grad
            elif op is _DIV:
                b = v._b
                g = v.grad
                v._a.grad += g / b.data
                b.grad -= g * v.data / b.data
            elif op is _DIVC:
                v._a.grad += v.grad / v._aux
            elif op is _RDIVC:
                a = v._a
                a.grad -= v.grad * v.data / a.data
            elif op is _POW:
                a = v._a
                k = v._aux
                a.grad += (k * _pow(a.data, k - 1)) * v.grad
            elif op is _EXP:
                v._a.grad += v.data * v.grad
            elif op is _LOG:
                a = v._a
                a.grad += v.grad / a.data
            elif op is _TANH:
                t = v.data
                v._a.grad += (1.0 - t * t) * v.grad
            elif op is _SIGMOID:
                s = v.data
                v._a.grad += s * (1.0 - s) * v.grad
            else:  # pragma: no cover - leaves are never in the order
                raise AssertionError(f"unknown op code {op}")


def _binary_node(a: Value, b: Value, data: float, op: int) -> Value:
    out = _new(Value)
    out.data = data
    out.grad = 0.0
    out._a = a
    out._b = b
    out._op = op
    return out


def _const_node(a: Value, data: float, op: int, c: float) -> Value:
    out = _new(Value)
    out.data = data
    out.grad = 0.0
    out._a = a
    out._b = None
    out._op = op
    out._aux = c
    return out


def _unary_node(a: Value, data: float, op: int) -> Value:
    out = _new(Value)
    out.data = data
    out.grad = 0.0
    out._a = a
    out._b = None
    out._op = op
    return out


def _topological_order(root: Value) -> list[Value]:
    """The non-leaf nodes reachable from ``root``, each after all of its operands.

    Iterative depth-first post-order.  An expanded node is pushed back under a ``None``
    marker and is emitted when the marker comes off the stack, i.e. once everything
    pushed above it (its operands' subgraphs) is done.  Leaves are left out: they
    have nothing to pass a gradient on to.
    """
    topo: list[Value] = []
    emit = topo.append
    seen: set[Value] = set()
    see = seen.add
    stack: list[Value | None] = [root]
    push = stack.append
    pop = stack.pop
    while stack:
        v = pop()
        if v is None:
            emit(pop())
            continue
        if v in seen:  # a stale second copy, pushed before the node was expanded
            continue
        see(v)
        a = v._a
        if a is None:
            continue
        push(v)
        push(None)
        if a not in seen:
            push(a)
        b = v._b
        if b is not None and b not in seen:
            push(b)
    return topo


def linear(bias: Value, weights: Sequence[Value], inputs: Iterable[Value | float]) -> Value:
    """``bias + w[0]*x[0] + w[1]*x[1] + ...``, accumulated left to right.

    Builds exactly the nodes ``sum((wi*xi for wi, xi in zip(weights, inputs)), bias)``
    would, with the same floating-point results, but creates them inline: a neuron's
    forward pass is most of the graph, and this halves its cost.
    """
    if _collector.armed:
        _collector.pause()
    elif _collector.paused:
        _collector.left -= len(weights)
        if _collector.left < 0:
            _collector.resume()
    act = bias
    data = bias.data
    for wi, xi in zip(weights, inputs, strict=False):  # truncating, as the lecture's zip
        m = _new(Value)
        if type(xi) is Value or isinstance(xi, Value):
            md = wi.data * xi.data
            m._b = xi
            m._op = _MUL
        else:
            c = _number(xi)
            if c is None:
                raise TypeError(f"unsupported input type {type(xi).__name__!r}: expected Value or number")
            md = wi.data * c
            m._b = None
            m._op = _MULC
            m._aux = c
        m.data = md
        m.grad = 0.0
        m._a = wi
        s = _new(Value)
        data = data + md
        s.data = data
        s.grad = 0.0
        s._a = act
        s._b = m
        s._op = _ADD
        act = s
    return act
