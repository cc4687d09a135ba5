"""The engine leaves the garbage collector alone; ``gc_paused`` switches it off for a block only, and the
demo's training step uses it."""

from __future__ import annotations

import gc

import pytest

from makemore.micrograd import demo
from makemore.micrograd.engine import Value, gc_paused
from makemore.micrograd.nn import MLP


@pytest.fixture(params=[True, False], ids=["collector on", "collector off"])
def collector(request):
    """The collector as the caller set it: on or off. Restored after the test."""
    was = gc.isenabled()
    if request.param:
        gc.enable()
    else:
        gc.disable()
    yield request.param
    if was:
        gc.enable()
    else:
        gc.disable()


def test_forward_and_backward_leave_the_collector_as_it_was(collector):
    model = MLP(4, [8, 1])
    out = model([1.0, 2.0, 3.0, 4.0])
    assert gc.isenabled() is collector  # the engine before issue 22 switched it off here
    out.backward()
    assert gc.isenabled() is collector
    model([1.0, 2.0, 3.0, 4.0])  # a forward pass without backward (inference)
    assert gc.isenabled() is collector


def test_gc_paused_restores_the_previous_state(collector):
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()  # an inner block does not switch it on inside an outer one
    assert gc.isenabled() is collector


def test_gc_paused_restores_it_when_backward_fails(collector):
    model = MLP(2, [3, 1])
    x = Value(2.0)
    with pytest.raises(ZeroDivisionError), gc_paused():
        out = model([x, 1.0]) * x.log()
        x.data = 0.0  # d log(x) / dx = 1 / 0
        out.backward()
    assert gc.isenabled() is collector


def test_train_step_pauses_and_restores_it_also_on_error(collector, monkeypatch):
    X, y01 = demo.make_moons(10, seed=3)
    y = [2 * v - 1 for v in y01]
    model = demo.make_model(3)
    seen = []
    real_loss = demo.loss

    def loss(*args):
        seen.append(gc.isenabled())
        return real_loss(*args)

    monkeypatch.setattr(demo, "loss", loss)
    demo.train_step(model, X, y, 0, 10)
    assert seen == [False] and gc.isenabled() is collector
    with pytest.raises(TypeError):
        demo.train_step(model, X, ["a"] * 10, 1, 10)  # fails in the middle of the forward pass
    assert seen == [False, False] and gc.isenabled() is collector


def test_same_losses_with_and_without_the_pause():
    X, y01 = demo.make_moons(30, seed=5)
    y = [2 * v - 1 for v in y01]
    runs = []
    for pause in (True, False):
        model = demo.make_model(5)
        losses = []
        for k in range(5):
            if pause:
                loss, _ = demo.train_step(model, X, y, k, 5)
            else:
                total, _ = demo.loss(model, X, y)
                model.zero_grad()
                total.backward()
                for p in model.parameters():
                    p.data -= (1.0 - 0.9 * k / 5) * p.grad
                loss = total.data
            losses.append(loss)
        runs.append(losses)
    assert runs[0] == runs[1]
    assert runs[0][0] > runs[0][-1] > 0.0  # it learns: the comparison is not between two empty runs
