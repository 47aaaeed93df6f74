"""Shared fixtures.

* ``backend_name``: every backend present ("numpy", and "cupy" where CuPy and a CUDA
  device are available); the GPU case skips cleanly elsewhere.
* ``torch``: PyTorch as an independent float64 reference. Missing torch skips the
  reference tests on a user's machine, but is an error when CI is set: CI must never
  pass by silently skipping them.
"""

import os

import numpy as np
import pytest

import minibn as mb
from minibn import backend

BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu)]


@pytest.fixture(params=BACKENDS)
def backend_name(request):
    name = request.param
    if name not in backend.available():
        pytest.skip("CuPy with a CUDA device is not available")
    previous = backend.active()
    backend.use(name)
    yield name
    backend.use(previous)


@pytest.fixture(autouse=True)
def _seed():
    mb.seed(0)
    yield


@pytest.fixture(scope="session")
def torch():
    try:
        import torch as _torch
    except ImportError:
        if os.environ.get("CI"):
            pytest.fail("PyTorch is required for the reference tests when CI is set (pip install torch==2.13.0)")
        pytest.skip("PyTorch not installed: reference comparison skipped")
    return _torch


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def mnist_dir():
    """The MNIST data directory ($MINIBN_DATA); skips without it, except in CI where it must be set."""
    root = os.environ.get("MINIBN_DATA")
    if not root or not os.path.exists(os.path.join(root, "mnist")):
        if os.environ.get("CI"):
            pytest.fail("CI must set MINIBN_DATA to a directory holding mnist/")
        pytest.skip("MNIST not available (set MINIBN_DATA)")
    return root
