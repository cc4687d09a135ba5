import pytest
import torch

from makemore import nn as mnn


@pytest.mark.parametrize("shape", [(32, 6), (8, 5, 6)])
@pytest.mark.parametrize("momentum", [0.1, 0.001, None])
def test_batchnorm_matches_torch(shape, momentum):
    torch.manual_seed(0)
    ours = mnn.BatchNorm1d(6, momentum=momentum).double()
    ref = torch.nn.BatchNorm1d(6, momentum=momentum).double()
    with torch.no_grad():
        for bn in (ours, ref):
            bn.running_mean.normal_()  # start from non-trivial statistics
            bn.running_var.uniform_(0.5, 2.0)
        ours.gamma.copy_(torch.randn(6))
        ours.beta.copy_(torch.randn(6))
        ref.weight.copy_(ours.gamma)
        ref.bias.copy_(ours.beta)
        ref.running_mean.copy_(ours.running_mean)
        ref.running_var.copy_(ours.running_var)

    def torch_forward(x):  # torch wants (N, C, L) for 3-D input; ours takes features last, as the lectures do
        return ref(x.transpose(1, 2)).transpose(1, 2) if x.ndim == 3 else ref(x)

    for step in range(3):
        x = (torch.randn(*shape, dtype=torch.float64) * 3 + step).requires_grad_()
        x2 = x.detach().clone().requires_grad_()
        w = torch.randn(*shape, dtype=torch.float64)
        a, b = ours(x), torch_forward(x2)
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)
        (a * w).sum().backward()
        (b * w).sum().backward()
        torch.testing.assert_close(x.grad, x2.grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ours.gamma.grad, ref.weight.grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ours.beta.grad, ref.bias.grad, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(ours.running_mean, ref.running_mean, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(ours.running_var, ref.running_var, rtol=1e-12, atol=1e-12)
    ours.eval()
    ref.eval()
    x = torch.randn(*shape, dtype=torch.float64)
    torch.testing.assert_close(ours(x), torch_forward(x), rtol=1e-12, atol=1e-12)
    before = ours.running_mean.clone()
    ours(x * 10)
    assert torch.equal(ours.running_mean, before)  # eval mode leaves the statistics alone


def test_train_eval_switch_changes_behaviour():
    bn = mnn.BatchNorm1d(4)
    x = torch.randn(16, 4) * 5 + 3
    y_train = bn(x)
    torch.testing.assert_close(y_train.mean(0), torch.zeros(4), atol=1e-5, rtol=0)
    model = mnn.Sequential(mnn.Linear(4, 4), bn, mnn.Tanh())
    model.eval()
    assert not bn.training
    y_eval = bn(x)
    assert not torch.allclose(y_eval, y_train)


def test_linear_kaiming_init_and_shapes():
    g = torch.Generator().manual_seed(0)
    layer = mnn.Linear(400, 300, gain=mnn.TANH_GAIN, generator=g)
    assert layer.weight.shape == (400, 300) and torch.equal(layer.bias, torch.zeros(300))
    assert layer.weight.std().item() == pytest.approx(mnn.TANH_GAIN / 400**0.5, rel=0.02)
    x = torch.randn(1000, 400)
    assert layer(x).std().item() == pytest.approx(mnn.TANH_GAIN, rel=0.05)
    assert mnn.Linear(3, 2, bias=False).bias is None


def test_embedding_flatten_and_consecutive():
    emb = mnn.Embedding(27, 10)
    idx = torch.randint(0, 27, (4, 8))
    e = emb(idx)
    assert e.shape == (4, 8, 10) and torch.equal(e[1, 2], emb.weight[idx[1, 2]])
    assert mnn.Flatten()(e).shape == (4, 80)
    fc = mnn.FlattenConsecutive(2)
    assert fc(e).shape == (4, 4, 20) and torch.equal(fc(e)[0, 0], torch.cat([e[0, 0], e[0, 1]]))
    assert fc(fc(fc(e))).shape == (4, 80)


def test_sequential_state_dict_names():
    net = mnn.Sequential(mnn.Embedding(5, 2), mnn.Flatten(), mnn.Linear(6, 4, bias=False), mnn.BatchNorm1d(4))
    assert len(net) == 4 and isinstance(net[3], mnn.BatchNorm1d)
    assert set(net.state_dict()) == {"layers.0.weight", "layers.2.weight", "layers.3.gamma", "layers.3.beta",
                                     "layers.3.running_mean", "layers.3.running_var", "layers.3.num_batches_tracked"}


def test_batchnorm_under_bf16_autocast_keeps_float32_statistics():
    torch.manual_seed(0)
    bn = mnn.BatchNorm1d(8)
    lin = mnn.Linear(4, 8, bias=False)  # as before a BatchNorm
    x = torch.randn(16, 4)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        h = lin(x)
        assert h.dtype == torch.bfloat16
        out = bn(h)
    assert out.dtype == torch.float32 and bn.running_mean.dtype == torch.float32
    ref = torch.nn.BatchNorm1d(8)
    ref(h.float())
    torch.testing.assert_close(bn.running_mean, ref.running_mean)
    torch.testing.assert_close(bn.running_var, ref.running_var)
