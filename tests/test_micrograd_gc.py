"""The engine pauses the cyclic garbage collector while a graph is built and backpropagated, and always
switches it back on."""

from __future__ import annotations

import gc

import pytest

from makemore.micrograd import engine
from makemore.micrograd.demo import loss, make_model, make_moons
from makemore.micrograd.engine import Value
from makemore.micrograd.nn import MLP


@pytest.fixture(autouse=True)
def collector_on():
    was = gc.isenabled()
    gc.enable()
    engine._collector.resume()
    engine._collector.armed = True
    yield
    engine._collector.resume()
    engine._collector.armed = True
    if not was:
        gc.disable()


def test_paused_from_the_forward_pass_to_the_end_of_backward():
    X, y01 = make_moons(20, seed=3)
    model = make_model(3)
    for _ in range(3):
        total, _ = loss(model, X, [2 * v - 1 for v in y01])
        assert not gc.isenabled()  # the forward pass paused it
        model.zero_grad()
        total.backward()
        assert gc.isenabled()


def test_same_losses_with_and_without_the_pause():
    X, y01 = make_moons(30, seed=5)
    y = [2 * v - 1 for v in y01]
    runs = []
    for pause in (True, False):
        model = make_model(5)
        losses = []
        for k in range(5):
            if not pause:
                gc.disable()  # the caller's choice: the engine leaves it alone
            total, _ = loss(model, X, y)
            model.zero_grad()
            total.backward()
            assert gc.isenabled() == pause
            gc.enable()
            for p in model.parameters():
                p.data -= (1.0 - 0.9 * k / 5) * p.grad
            losses.append(total.data)
        runs.append(losses)
    assert runs[0] == runs[1]


def test_a_collector_switched_off_by_the_caller_stays_off():
    gc.disable()
    out = MLP(2, [3, 1])([1.0, 2.0])
    out.backward()
    assert not gc.isenabled()


def test_restored_when_backward_fails():
    model = MLP(2, [3, 1])
    x = Value(2.0)
    out = model([x, 1.0]) * x.log()
    assert not gc.isenabled()
    x.data = 0.0  # d log(x) / dx = 1 / 0
    with pytest.raises(ZeroDivisionError):
        out.backward()
    assert gc.isenabled()


def test_forward_passes_without_backward_give_the_pause_up(monkeypatch):
    monkeypatch.setattr(engine._CollectorPause, "budget", 100)
    model = MLP(4, [8, 1])
    model([1.0, 2.0, 3.0, 4.0])
    assert not gc.isenabled()
    for _ in range(5):  # inference only: 36 weights per pass
        model([1.0, 2.0, 3.0, 4.0])
    assert gc.isenabled()
    model([1.0, 2.0, 3.0, 4.0])
    assert gc.isenabled()  # not paused again before the next backward()
    model([1.0, 2.0, 3.0, 4.0]).backward()
    model([1.0, 2.0, 3.0, 4.0])
    assert not gc.isenabled()  # re-armed
