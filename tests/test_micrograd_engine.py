"""makemore.micrograd.engine against torch (float64): values and gradients to 1e-9."""

from __future__ import annotations

import gc
import math

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from makemore.micrograd.engine import Value, _topological_order, linear

TOL = 1e-9


def close(a: float, b: float, tol: float = TOL) -> bool:
    return abs(a - b) <= tol * max(1.0, abs(b))


def t64(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64, requires_grad=True)


# ---------------------------------------------------------------------- the lecture's examples


def test_lecture_first_example():
    # L = (a*b + c) * f, with the gradients worked out by hand in the lecture.
    a, b, c, f = Value(2.0, label="a"), Value(-3.0, label="b"), Value(10.0, label="c"), Value(-2.0, label="f")
    e = a * b
    d = e + c
    L = d * f
    L.backward()
    assert (e.data, d.data, L.data) == (-6.0, 4.0, -8.0)
    assert (L.grad, f.grad, d.grad, c.grad, e.grad, a.grad, b.grad) == (1.0, 4.0, -2.0, -2.0, -2.0, 6.0, -4.0)
    assert a.label == "a" and e.label == "" and e.op == "*" and d.op == "+" and a.op == ""


@pytest.mark.parametrize("form", ["tanh", "exp"])
def test_lecture_neuron(form):
    # The neuron o = tanh(x1*w1 + x2*w2 + b), also written with exp as in the lecture.
    x1, x2, w1, w2 = Value(2.0), Value(0.0), Value(-3.0), Value(1.0)
    b = Value(6.8813735870195432)
    n = x1 * w1 + x2 * w2 + b
    if form == "tanh":
        o = n.tanh()
    else:
        e = (2 * n).exp()
        o = (e - 1) / (e + 1)
    o.backward()
    assert o.data == pytest.approx(math.sqrt(0.5), abs=1e-12)
    got = [x1.grad, w1.grad, x2.grad, w2.grad, b.grad]
    assert got == pytest.approx([-1.5, 1.0, 0.5, 0.0, 0.5], abs=1e-12)

    tx1, tx2, tw1, tw2, tb = (t64(v) for v in (2.0, 0.0, -3.0, 1.0, 6.8813735870195432))
    to = (tx1 * tw1 + tx2 * tw2 + tb).tanh()
    to.backward()
    assert close(o.data, to.item())
    for ours, theirs in zip(got, [tx1, tw1, tx2, tw2, tb], strict=True):
        assert close(ours, theirs.grad.item())


def test_node_used_twice_accumulates():
    # The lecture's bug: b = a + a must give a.grad == 2, not 1.
    a = Value(3.0)
    b = a + a
    b.backward()
    assert a.grad == 2.0

    a, b = Value(-2.0), Value(3.0)
    d = a * b
    e = a + b
    f = d * e
    f.backward()
    # df/da = b*e + d = 3*1 + -6 ; df/db = a*e + d = -2*1 + -6
    assert (a.grad, b.grad) == (-3.0, -8.0)


def test_node_reused_many_times_matches_torch():
    x, y = Value(0.7), Value(-1.3)
    h = x * y + x
    out = (h * h * h + h.tanh() * x - h / (x * x + 1.0) + (h * x).sigmoid() + h.relu() * y).exp() * h
    out.backward()

    tx, ty = t64(0.7), t64(-1.3)
    th = tx * ty + tx
    tout = (th * th * th + th.tanh() * tx - th / (tx * tx + 1.0) + (th * tx).sigmoid() + th.relu() * ty).exp() * th
    tout.backward()
    assert close(out.data, tout.item())
    assert close(x.grad, tx.grad.item()) and close(y.grad, ty.grad.item())


def test_reference_readme_examples_match_torch():
    # The two tests of the reference repository (sanity check and "more ops").
    x = Value(-4.0)
    z = 2 * x + 2 + x
    q = z.relu() + z * x
    h = (z * z).relu()
    y = h + q + q * x
    y.backward()
    tx = t64(-4.0)
    tz = 2 * tx + 2 + tx
    tq = tz.relu() + tz * tx
    th = (tz * tz).relu()
    ty = th + tq + tq * tx
    ty.backward()
    assert close(y.data, ty.item()) and close(x.grad, tx.grad.item())

    def more_ops(a, b, relu):
        c = a + b
        d = a * b + b**3
        c = c + c + 1
        c = c + 1 + c + (-a)
        d = d + d * 2 + relu(b + a)
        d = d + 3 * d + relu(b - a)
        e = c - d
        f = e**2
        g = f / 2.0
        g = g + 10.0 / f
        return g

    a, b = Value(-4.0), Value(2.0)
    g = more_ops(a, b, Value.relu)
    g.backward()
    ta, tb = t64(-4.0), t64(2.0)
    tg = more_ops(ta, tb, torch.relu)
    tg.backward()
    assert f"{g.data:.4f}" == "24.7041" and f"{a.grad:.4f}" == "138.8338" and f"{b.grad:.4f}" == "645.5773"
    assert close(g.data, tg.item()) and close(a.grad, ta.grad.item()) and close(b.grad, tb.grad.item())


# ---------------------------------------------------------------------- every op, both sides


def test_numbers_on_either_side():
    x = Value(1.5)
    cases = {
        "x + 2": (x + 2, 3.5, 1.0),
        "2 + x": (2 + x, 3.5, 1.0),
        "x - 2": (x - 2, -0.5, 1.0),
        "2 - x": (2 - x, 0.5, -1.0),
        "x * 2": (x * 2, 3.0, 2.0),
        "2 * x": (2 * x, 3.0, 2.0),
        "x / 2": (x / 2, 0.75, 0.5),
        "3 / x": (3 / x, 2.0, -3 / 1.5**2),
        "x ** 2": (x**2, 2.25, 3.0),
        "x ** -1": (x**-1, 1 / 1.5, -1 / 1.5**2),
        "-x": (-x, -1.5, -1.0),
        "+x": (+x, 1.5, 1.0),
    }
    for name, (node, value, grad) in cases.items():
        x.grad = 0.0
        node.backward()
        assert node.data == pytest.approx(value, abs=1e-15), name
        assert x.grad == pytest.approx(grad, abs=1e-15), name
    assert (x * 2).constant == 2.0 and not (x * 2).constant_on_left and (2 - x).constant_on_left
    assert (x * x).constant is None and (x * x).children == (x, x) and x.children == ()


def test_unary_ops_values_and_grads():
    for name, f, df in [
        ("exp", math.exp, math.exp),
        ("log", math.log, lambda v: 1 / v),
        ("tanh", math.tanh, lambda v: 1 - math.tanh(v) ** 2),
        ("sigmoid", lambda v: 1 / (1 + math.exp(-v)), lambda v: math.exp(-v) / (1 + math.exp(-v)) ** 2),
    ]:
        x = Value(0.8)
        y = getattr(x, name)()
        y.backward()
        assert y.data == pytest.approx(f(0.8), rel=1e-15) and x.grad == pytest.approx(df(0.8), rel=1e-14), name
        assert y.op == name
    for v, out, grad in [(2.0, 2.0, 1.0), (-2.0, 0.0, 0.0), (0.0, 0.0, 0.0)]:
        x = Value(v)
        y = x.relu()
        y.backward()
        assert (y.data, x.grad, y.op) == (out, grad, "ReLU")


def test_sigmoid_does_not_overflow():
    for v in (-1000.0, 1000.0):
        x = Value(v)
        y = x.sigmoid()
        y.backward()
        assert y.data == (0.0 if v < 0 else 1.0) and x.grad == 0.0


def test_type_errors():
    x = Value(1.0)
    with pytest.raises(TypeError):
        x + "a"
    with pytest.raises(TypeError):
        "a" * x
    with pytest.raises(TypeError):
        x ** Value(2.0)
    with pytest.raises(ValueError):
        Value(-8.0) ** (1 / 3)  # a real result only: no complex numbers
    assert repr(Value(2)) == "Value(data=2.0, grad=0.0)" and isinstance(Value(2).data, float)


def test_backward_accumulates_across_calls():
    x = Value(3.0)
    y = x * x
    y.backward()
    y.backward()
    assert x.grad == 12.0  # 2 * dy/dx: gradients add up until zeroed


def test_linear_builds_the_nodes_of_the_lectures_sum():
    # linear() is a faster copy of the lecture's neuron: it must build the very same graph.
    def graph(x0):
        w, b = [Value(0.3), Value(-1.2), Value(0.7)], Value(0.1)
        return w, b, [x0, 1.5, Value(-0.4)]  # Value and number inputs

    w, b, x = graph(Value(2.0))
    fast = linear(b, w, x)
    w2, b2, x2 = graph(Value(2.0))
    slow = sum((wi * xi for wi, xi in zip(w2, x2, strict=True)), b2)
    nodes = [(v.op, v.data, v.constant, v._backward) for v in _topological_order(fast)]
    assert nodes == [(v.op, v.data, v.constant, v._backward) for v in _topological_order(slow)]
    assert [v.op for v in _topological_order(fast)] == ["*", "*", "*", "+", "+", "+"]
    fast.backward()
    slow.backward()
    assert [v.grad for v in w + [b, x[0], x[2]]] == [v.grad for v in w2 + [b2, x2[0], x2[2]]]
    assert [v.grad for v in w] == [2.0, 1.5, -0.4]
    with pytest.raises(TypeError, match="unsupported input type 'str'"):
        linear(b, w, ["a"])


# ---------------------------------------------------------------------- random expressions vs torch

UNARY = ["neg", "exp", "log", "tanh", "relu", "sigmoid"]
BINARY = ["add", "sub", "mul", "div"]
EXPONENTS = [2, 3, -1, 0.5, -1.5, 1.7]

leaf = st.one_of(
    st.tuples(st.just("var"), st.integers(0, 2)),
    st.tuples(st.just("num"), st.floats(-2.0, 2.0, allow_nan=False).filter(lambda c: c != 0.0)),
)
expressions = st.recursive(
    leaf,
    lambda kids: st.one_of(
        st.tuples(st.sampled_from(UNARY), kids),
        st.tuples(st.just("pow"), kids, st.sampled_from(EXPONENTS)),
        st.tuples(st.sampled_from(BINARY), kids, kids),
    ),
    max_leaves=14,
)


class Evaluator:
    """Evaluates an expression tree with Values or with torch tensors.

    Domains are kept safe (log of a positive, division away from 0, real powers,
    moderate magnitudes) by rewriting an operand when needed.  The decisions are made
    on our engine's values and replayed for torch, so both build the same expression.
    """

    def __init__(self, leaves, lift, value, decisions=None):
        self.leaves, self.lift, self.value = leaves, lift, value
        self.record = decisions is None
        self.decisions = [] if decisions is None else decisions
        self.i = 0

    def decide(self, compute):
        if self.record:
            self.decisions.append(compute())
        d = self.decisions[self.i]
        self.i += 1
        return d

    def val(self, x):
        return float(x) if isinstance(x, float) else self.value(x)

    def obj(self, x):
        return self.lift(x) if isinstance(x, float) else x

    def __call__(self, node):
        kind = node[0]
        if kind == "var":
            return self.leaves[node[1]]
        if kind == "num":
            return float(node[1])
        if kind in UNARY:
            a = self.obj(self(node[1]))
            if kind == "neg":
                return -a
            if kind == "log":
                side = self.decide(lambda: 1 if self.val(a) > 0.1 else (-1 if self.val(a) < -0.1 else 0))
                return (a if side == 1 else -a if side == -1 else a + 1.0).log()
            if kind == "exp":
                small = self.decide(lambda: abs(self.val(a)) <= 3.0)
                return (a if small else a.tanh()).exp()
            return getattr(a, kind)()
        if kind == "pow":
            a, k = self(node[1]), node[2]

            def base_kind():
                v = self.val(a)
                if 0.1 < abs(v) < 10.0 and (v > 0 or float(k).is_integer()):
                    return "as is"
                return "negated" if -10.0 < v < -0.1 else "squashed"

            how = self.decide(base_kind)
            a = self.obj(a)
            base = a if how == "as is" else -a if how == "negated" else a.tanh() + 1.5
            return base**k
        a, b = self(node[1]), self(node[2])
        if kind == "add":
            return a + b
        if kind == "sub":
            return a - b
        if kind == "mul":
            return a * b
        ok = self.decide(lambda: abs(self.val(b)) > 0.1)
        return a / (b if ok else b + 1.0)


@settings(max_examples=400, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(expressions, st.lists(st.floats(-2.0, 2.0, allow_nan=False), min_size=3, max_size=3))
def test_random_expressions_match_torch(tree, xs):
    ours = [Value(x) for x in xs]
    ev = Evaluator(ours, Value, lambda v: v.data)
    out = ev(tree)
    if not isinstance(out, Value):
        out = Value(out)
    out.backward()

    theirs = [t64(x) for x in xs]
    tev = Evaluator(theirs, lambda c: torch.tensor(c, dtype=torch.float64), lambda t: t.item(), ev.decisions)
    tout = tev(tree)
    if not isinstance(tout, torch.Tensor):
        tout = torch.tensor(tout, dtype=torch.float64)
    if tout.requires_grad:
        tout.backward()

    assert close(out.data, tout.item()), (out.data, tout.item())
    for v, t in zip(ours, theirs, strict=True):
        expected = 0.0 if t.grad is None else t.grad.item()
        assert close(v.grad, expected), (v.grad, expected)


# ---------------------------------------------------------------------- scale and memory


def test_million_node_chain():
    # The reference recurses in backward() and dies at a depth of about 1000.
    n = 1_000_000
    x = Value(0.5)
    y = x
    for _ in range(n - 1):
        y = y + x
    assert len(_topological_order(y)) == n - 1  # every node but the leaf x
    y.backward()
    assert y.data == n * 0.5
    assert x.grad == float(n)
    del y  # freeing a deep chain must not overflow the C stack either


def test_reference_engine_recursion_limit():
    reference = pytest.importorskip("micrograd.engine")
    y = x = reference.Value(1.0)
    for _ in range(5000):
        y = y + x
    with pytest.raises(RecursionError):
        y.backward()


def test_graph_holds_no_reference_cycles():
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        xs = [Value(0.1 * i) for i in range(10)]
        y = Value(0.0)
        for i, x in enumerate(xs):
            y = y + (x * xs[i - 1] - x / 3 + 2.0**x.data).tanh().exp().sigmoid().relu() ** 2 + (1 - x).log()
        y.backward()
        del y, xs, x
        assert gc.collect() == 0  # everything was already freed by reference counting
    finally:
        if was_enabled:
            gc.enable()
