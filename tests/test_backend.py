import numpy as np
import pytest

import minibn as mb
from minibn import backend, nn


def test_unknown_backend_is_a_value_error():
    with pytest.raises(ValueError, match="backend must be one of"):
        backend.use("jax")


@pytest.mark.skipif("cupy" in backend.available(), reason="CuPy is usable here")
def test_asking_for_missing_cupy_gives_install_hint():
    with pytest.raises(RuntimeError, match="pip install"):
        backend.use("cupy")
    with pytest.raises(RuntimeError, match="pip install"):
        backend.to_device(np.zeros(3), "gpu")
    assert backend.active() == "numpy"


def test_numpy_helpers():
    x = np.arange(3.0)
    assert backend.get_array_module(x) is np
    assert backend.asnumpy(x) is x or np.array_equal(backend.asnumpy(x), x)
    assert backend.to_device(x, "cpu") is x
    assert "numpy" in backend.available()
    with pytest.raises(ValueError, match="device must be"):
        backend.to_device(x, "tpu")


def test_seed_makes_initialization_reproducible():
    mb.seed(3)
    a = nn.Linear(4, 3).weight.data.copy()
    mb.seed(3)
    b = nn.Linear(4, 3).weight.data
    assert np.array_equal(backend.asnumpy(a), backend.asnumpy(b))


@pytest.mark.gpu
def test_module_to_gpu_and_back(backend_name):
    if backend_name != "cupy":
        pytest.skip("GPU round trip needs cupy")
    model = nn.Sequential(nn.Linear(3, 2), nn.BatchNorm1d(2))
    model.to("cpu")
    model.to("gpu")
    assert backend.is_gpu_array(model[0].weight.data)
    assert backend.is_gpu_array(model[1].running_mean)
    model.to("cpu")
    assert isinstance(model[1].running_var, np.ndarray)
