"""Linear, Conv2d, pooling, activations and the loss against PyTorch in float64."""

import numpy as np
import pytest

from minibn import nn
from tests.helpers import on_active, to_np


def run_both(torch, layer, tlayer, x, dy):
    xt = torch.tensor(x, requires_grad=True)
    yt = tlayer(xt)
    yt.backward(torch.tensor(dy))
    y = layer(on_active(x))
    dx = layer.backward(on_active(dy))
    np.testing.assert_allclose(to_np(y), yt.detach().numpy(), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_np(dx), xt.grad.numpy(), rtol=1e-12, atol=1e-12)


def copy_weights(torch, layer, tlayer):
    with torch.no_grad():
        tlayer.weight.copy_(torch.tensor(to_np(layer.weight.data)))
        if layer.bias is not None:
            tlayer.bias.copy_(torch.tensor(to_np(layer.bias.data)))


@pytest.mark.parametrize("bias", [True, False])
def test_linear(torch, backend_name, rng, bias):
    layer = nn.Linear(7, 5, bias=bias).astype(np.float64)
    t = torch.nn.Linear(7, 5, bias=bias).double()
    copy_weights(torch, layer, t)
    x, dy = rng.standard_normal((4, 7)), rng.standard_normal((4, 5))
    run_both(torch, layer, t, x, dy)
    np.testing.assert_allclose(to_np(layer.weight.grad), t.weight.grad.numpy(), rtol=1e-12)
    if bias:
        np.testing.assert_allclose(to_np(layer.bias.grad), t.bias.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("k, stride, padding", [(3, 1, 0), (3, 1, 1), (3, 2, 1), (2, 2, 0), ((3, 2), 1, 1)])
def test_conv2d(torch, backend_name, rng, k, stride, padding):
    layer = nn.Conv2d(3, 4, k, stride=stride, padding=padding).astype(np.float64)
    t = torch.nn.Conv2d(3, 4, k, stride=stride, padding=padding).double()
    copy_weights(torch, layer, t)
    x = rng.standard_normal((2, 3, 7, 6))
    dy = rng.standard_normal(tuple(t(torch.tensor(x)).shape))
    run_both(torch, layer, t, x, dy)
    np.testing.assert_allclose(to_np(layer.weight.grad), t.weight.grad.numpy(), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(to_np(layer.bias.grad), t.bias.grad.numpy(), rtol=1e-11, atol=1e-12)


@pytest.mark.parametrize("kind", ["max", "avg"])
@pytest.mark.parametrize("k, stride, padding", [(2, None, 0), (3, 2, 1), (3, 1, 0)])
def test_pooling(torch, backend_name, rng, kind, k, stride, padding):
    ours = (nn.MaxPool2d if kind == "max" else nn.AvgPool2d)(k, stride=stride, padding=padding)
    theirs = (torch.nn.MaxPool2d if kind == "max" else torch.nn.AvgPool2d)(k, stride=stride, padding=padding)
    x = rng.standard_normal((2, 3, 7, 8))
    dy = rng.standard_normal(tuple(theirs(torch.tensor(x)).shape))
    run_both(torch, ours, theirs, x, dy)


@pytest.mark.parametrize("name", ["ReLU", "Sigmoid", "Tanh"])
def test_activations(torch, backend_name, rng, name):
    x = 4 * rng.standard_normal((5, 6))
    run_both(torch, getattr(nn, name)(), getattr(torch.nn, name)(), x, rng.standard_normal((5, 6)))


def test_sigmoid_is_stable_in_both_tails(backend_name):
    x = on_active(np.array([-800.0, -40.0, 0.0, 40.0, 800.0]))
    y = to_np(nn.Sigmoid()(x))  # RuntimeWarnings are errors in this suite: no overflow allowed
    assert y[0] == 0.0 and y[-1] == 1.0 and y[2] == 0.5
    assert y[1] == pytest.approx(4.248354255291589e-18, rel=1e-12)


def test_softmax_cross_entropy(torch, backend_name, rng):
    logits = 10 * rng.standard_normal((6, 5))
    logits[0, 2] = 1000.0  # very confident: must not overflow
    labels = rng.integers(0, 5, 6)
    lt = torch.tensor(logits, requires_grad=True)
    loss_t = torch.nn.functional.cross_entropy(lt, torch.tensor(labels))
    loss_t.backward()
    fn = nn.SoftmaxCrossEntropy()
    loss = fn(on_active(logits), on_active(labels))
    np.testing.assert_allclose(float(loss), loss_t.item(), rtol=1e-12)
    np.testing.assert_allclose(to_np(fn.backward()), lt.grad.numpy(), rtol=1e-10, atol=1e-15)
