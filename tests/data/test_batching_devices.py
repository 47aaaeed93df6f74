"""BatchIterator keeps data on the device it is given: device arrays stay on the GPU whatever the
active backend (model.to("gpu") does not change it), and each epoch's permutation goes to the
data's device; host data goes to the active backend's device (tests/strict_device.py)."""

import numpy as np
import pytest

from minibn import backend, nn
from minibn.data import BatchIterator
from tests import strict_device as sd


@pytest.fixture
def device():
    with sd.installed() as counter:
        yield counter


def _data(n=32):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, 4)), rng.integers(0, 3, n)


def _batches(it, k):
    return [tuple(sd.host(a) if isinstance(a, sd.DeviceArray) else a for a in next(it)) for _ in range(k)]


def test_device_data_stays_on_the_device_with_the_numpy_backend_active(device):
    x, y = _data()
    on_host = _batches(BatchIterator(x, y, 8, seed=3), 6)  # an epoch and a half: the same batches
    it = BatchIterator(sd.on_device(x), sd.on_device(y), 8, seed=3)
    with device.watch() as seen:
        xb, yb = next(it)
    assert isinstance(xb, sd.DeviceArray) and isinstance(yb, sd.DeviceArray)
    assert seen.counts() == {"h2d": 1, "d2h": 0, "sync": 0, "implicit": 0}  # the epoch's permutation
    on_device = [(sd.host(xb), sd.host(yb))] + _batches(it, 5)
    for (a, b), (c, d) in zip(on_device, on_host):
        np.testing.assert_array_equal(a, c)
        np.testing.assert_array_equal(b, d)


def test_a_device_model_trains_on_device_data_with_the_numpy_backend_active(device):
    x, y = _data()
    model = nn.Sequential(nn.Linear(4, 5), nn.BatchNorm1d(5), nn.ReLU(), nn.Linear(5, 3)).to("gpu")
    loss_fn = nn.SoftmaxCrossEntropy()
    xb, yb = next(BatchIterator(sd.on_device(x.astype(np.float32)), sd.on_device(y), 8))
    loss = loss_fn(model(xb), yb)  # a TypeError (host batch into a device model) before
    model.backward(loss_fn.backward())
    assert isinstance(loss, sd.DeviceArray) and np.isfinite(sd.host(loss))


def test_host_labels_go_along_with_device_inputs(device):
    x, y = _data()
    it = BatchIterator(sd.on_device(x), y, 8)
    assert all(isinstance(a, sd.DeviceArray) for a in next(it))


def test_host_data_goes_to_the_active_device(device):
    x, y = _data()
    assert all(isinstance(a, np.ndarray) for a in next(BatchIterator(x, y, 8)))
    backend.use("cupy")
    with device.watch() as seen:
        it = BatchIterator(x, y, 8)
        next(it)
    assert all(isinstance(a, sd.DeviceArray) for a in next(it))
    assert seen.counts()["h2d"] == 3  # x, y once, and the permutation
    device_data = BatchIterator(sd.on_device(x), sd.on_device(y), 8)
    backend.use("numpy")
    with device.watch() as seen:
        assert all(isinstance(a, sd.DeviceArray) for a in next(device_data))
    assert seen.counts() == {"h2d": 1, "d2h": 0, "sync": 0, "implicit": 0}  # the permutation follows the data
