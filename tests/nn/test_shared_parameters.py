"""A layer used twice. In a Sequential it is refused: a layer keeps one forward's cache, so
the backward of its first use would read the second use's input (the weight's gradient
silently wrong, as the torch comparison below shows). A module that merely holds one layer
under two names lists its parameters once, under the first name, as torch's
``named_parameters()`` does, so an optimizer steps each once and the state dict has one entry."""

import copy

import numpy as np
import pytest

from minibn import nn, optim


class _TwoNames(nn.Module):
    """One Linear under two attribute names (e.g. an encoder and a decoder sharing weights)."""

    def __init__(self):
        super().__init__()
        self.first = nn.Linear(4, 4, dtype="float64")
        self.norm = nn.BatchNorm1d(4, dtype="float64")
        self.second = self.first


def test_a_layer_used_twice_in_a_sequential_is_refused_with_the_remedy():
    lin = nn.Linear(4, 4)
    with pytest.raises(ValueError, match=r"layer 2 is layer 0 again \(Linear\).*copy.deepcopy"):
        nn.Sequential(lin, nn.ReLU(), lin)
    nn.Sequential(lin, nn.ReLU(), copy.deepcopy(lin))  # two layers with the same initial values are fine


def test_a_shared_layer_lists_its_parameters_once_under_the_first_name():
    model = _TwoNames()
    assert [n for n, _ in model.named_parameters()] == ["first.weight", "first.bias", "norm.gamma", "norm.beta"]
    assert [id(p) for p in model.parameters()] == [id(p) for _, p in model.named_parameters()]
    assert [n for n, _ in model.named_parameters("net.")][:2] == ["net.first.weight", "net.first.bias"]


@pytest.mark.parametrize("make", [lambda ps: optim.SGD(ps, lr=0.1), lambda ps: optim.SGD(ps, lr=0.1, momentum=0.9),
                                  lambda ps: optim.Adam(ps, lr=0.1)], ids=["sgd", "momentum", "adam"])
def test_an_optimizer_steps_each_shared_parameter_once(make):
    model = _TwoNames()
    opt = make(model.parameters())
    before = {n: p.data.copy() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = np.ones_like(p.data)
    opt.step()
    for n, p in model.named_parameters():  # one step of each rule: lr * 1 (Adam's first step too)
        np.testing.assert_allclose(before[n] - p.data, 0.1, rtol=1e-6, err_msg=n)


def test_the_state_dict_has_one_entry_per_parameter_and_loads_back():
    a, b = _TwoNames(), _TwoNames()
    state = a.state_dict()
    assert not any(k.startswith("second.") for k in state)
    b.load_state_dict(copy.deepcopy(state))  # strict: no "missing second.weight"
    np.testing.assert_array_equal(b.second.weight.data, a.first.weight.data)
    assert b.first.weight is b.second.weight


def test_why_a_layer_cannot_be_used_twice(torch):
    """Bypassing the check shows the wrong gradient it prevents."""
    lin = nn.Linear(4, 4, dtype="float64")
    model = nn.Sequential(lin, nn.ReLU(), nn.ReLU())
    model.layers[2] = lin  # what Sequential refuses
    x = np.random.default_rng(0).standard_normal((5, 4))
    dy = np.random.default_rng(1).standard_normal((5, 4))
    model(x)
    model.backward(dy)
    W = torch.tensor(lin.weight.data.copy(), requires_grad=True)
    b = torch.tensor(lin.bias.data.copy(), requires_grad=True)
    (torch.relu(torch.tensor(x) @ W.T + b) @ W.T + b).backward(torch.tensor(dy))
    np.testing.assert_allclose(lin.bias.grad, b.grad.numpy(), rtol=1e-12)  # needs no input: right
    assert not np.allclose(lin.weight.grad, W.grad.numpy(), rtol=1e-6)  # the first use's input is lost
