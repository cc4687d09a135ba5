"""makemore.micrograd.nn: same networks as the lecture's (reference micrograd) for the same seed."""

from __future__ import annotations

import random

import pytest
import torch

from makemore.micrograd.engine import Value
from makemore.micrograd.nn import MLP, Layer, Module, Neuron


def test_shapes_parameters_and_repr():
    model = MLP(2, [16, 16, 1], rng=random.Random(0))
    assert len(model.parameters()) == (2 + 1) * 16 + (16 + 1) * 16 + (16 + 1) * 1 == 337
    assert [len(layer.neurons) for layer in model.layers] == [16, 16, 1]
    assert [n.nonlin for n in (model.layers[0].neurons[0], model.layers[2].neurons[0])] == [True, False]
    assert repr(Neuron(3, nonlin=False, rng=random.Random(0))) == "LinearNeuron(3)"
    assert repr(Layer(2, 2, rng=random.Random(0))) == "Layer of [ReLUNeuron(2), ReLUNeuron(2)]"
    assert repr(MLP(1, [1], rng=random.Random(0))) == "MLP of [Layer of [LinearNeuron(1)]]"
    assert Module().parameters() == []
    neuron = Neuron(4, rng=random.Random(0))
    assert neuron.b.data == 0.0 and all(-1 <= w.data <= 1 for w in neuron.w)


def test_same_seed_same_network_as_global_random():
    random.seed(42)
    a = MLP(3, [4, 4, 1])
    b = MLP(3, [4, 4, 1], rng=random.Random(42))
    assert [p.data for p in a.parameters()] == [p.data for p in b.parameters()]


def test_neuron_matches_torch():
    neuron = Neuron(3, rng=random.Random(1))
    x = [Value(0.5), Value(-1.5), Value(2.0)]
    out = neuron(x)
    out.backward()
    w = torch.tensor([p.data for p in neuron.w], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.0, dtype=torch.float64, requires_grad=True)
    tx = torch.tensor([0.5, -1.5, 2.0], dtype=torch.float64, requires_grad=True)
    tout = torch.relu(b + (w * tx).sum())
    tout.backward()
    assert out.data == pytest.approx(tout.item(), abs=1e-12)
    assert [p.grad for p in neuron.w] == pytest.approx(w.grad.tolist(), abs=1e-12)
    assert neuron.b.grad == pytest.approx(b.grad.item(), abs=1e-12)
    assert [v.grad for v in x] == pytest.approx(tx.grad.tolist(), abs=1e-12)


def test_plain_number_inputs_and_zero_grad():
    # The lecture feeds lists of floats straight into the network.
    model = MLP(3, [4, 4, 1], rng=random.Random(3))
    xs = [[2.0, 3.0, -1.0], [3.0, -1.0, 0.5], [0.5, 1.0, 1.0], [1.0, 1.0, -1.0]]
    ys = [1.0, -1.0, -1.0, 1.0]
    as_values = [model([Value(v) for v in x]).data for x in xs]
    preds = [model(x) for x in xs]
    assert [p.data for p in preds] == as_values
    loss = sum((yout - ygt) ** 2 for ygt, yout in zip(ys, preds, strict=True))
    loss.backward()
    assert any(p.grad != 0.0 for p in model.parameters())
    model.zero_grad()
    assert all(p.grad == 0.0 for p in model.parameters())
    with pytest.raises(TypeError):
        model(["a", "b", "c"])


def test_same_seed_same_network_and_outputs_as_reference():
    reference = pytest.importorskip("micrograd.nn")
    random.seed(1337)
    ref = reference.MLP(2, [16, 16, 1])
    ours = MLP(2, [16, 16, 1], rng=random.Random(1337))
    assert [p.data for p in ours.parameters()] == [p.data for p in ref.parameters()]
    assert [p.data for p in ours.parameters()][:3] == [0.23550571390294128, 0.06653114721000164, 0.0]

    x = [0.3, -0.7]
    ref_out = ref([reference.Value(v) for v in x])
    out = ours([Value(v) for v in x])
    assert out.data == ref_out.data  # the same floating-point operations, bit for bit
    ref_out.backward()
    out.backward()
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        assert p.grad == pytest.approx(q.grad, abs=1e-15)
