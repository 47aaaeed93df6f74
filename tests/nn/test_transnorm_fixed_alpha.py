"""TransNorm's fixed_alpha (a number or a (C,) array) costs no host-to-device copy per step on
the GPU: a number is made on the device, an array is moved there once and kept there
(tests/strict_device.py counts the transfers)."""

import copy
import numbers

import numpy as np
import pytest

from minibn import backend, nn
from tests import strict_device as sd


@pytest.fixture
def device():
    with sd.installed() as counter:
        yield counter


def _step(layer, x):
    y = layer(x)
    return y, layer.backward(backend.get_array_module(y).ones_like(y))


@pytest.mark.parametrize("fixed", [1.0, 2, np.float32(0.5), np.array([0.5, 1.0, 1.5, 2.0]), [0.5, 1.0, 1.5, 2.0]],
                         ids=["float", "int", "numpy scalar", "host array", "list"])
def test_fixed_alpha_on_the_device_agrees_with_the_host_and_copies_at_most_once(device, fixed):
    x = np.random.default_rng(0).standard_normal((8, 4))
    cpu = nn.TransNorm1d(4).astype(np.float64)
    cpu.fixed_alpha = fixed
    gpu = copy.deepcopy(cpu).to("gpu")
    x_d = sd.on_device(x)
    for mode in (True, False):
        cpu.train(mode), gpu.train(mode)
        with device.watch() as first:
            _step(gpu, x_d)
        with device.watch() as second:
            y_d, dx_d = _step(gpu, x_d)
        _step(cpu, x)
        y, dx = _step(cpu, x)  # as many steps as on the device: training updates the running statistics
        np.testing.assert_allclose(sd.host(y_d), y, rtol=1e-12)
        np.testing.assert_allclose(sd.host(dx_d), dx, rtol=1e-12)
        np.testing.assert_allclose(sd.host(gpu.last_alpha), np.broadcast_to(np.asarray(fixed, float), (4,)))
        copies = 1 if mode and not isinstance(fixed, numbers.Real) else 0  # an array: once, at the first step
        assert first.counts() == {"h2d": copies, "d2h": 0, "sync": 0, "implicit": 0}, first.places()
        assert second.total() == 0, second.places()


def test_a_fixed_alpha_moved_to_the_device_comes_back_when_the_layer_does(device):
    layer = nn.TransNorm1d(3).astype(np.float64)
    layer.fixed_alpha = np.array([1.0, 2.0, 3.0])
    x = np.random.default_rng(0).standard_normal((6, 3))
    expected = layer(x)
    layer.to("gpu")
    layer(sd.on_device(x))
    assert isinstance(layer.fixed_alpha, sd.DeviceArray)  # kept on the device: no copy at the next step
    layer.to("cpu")
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12)
    assert isinstance(layer.fixed_alpha, np.ndarray)
