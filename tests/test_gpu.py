"""CPU (NumPy) and GPU (CuPy) paths checked against each other, layer by layer.

Skipped cleanly where CuPy or a CUDA device is absent.
"""

import copy

import numpy as np
import pytest

from minibn import backend
from minibn.gradcheck import layer_cases

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif("cupy" not in backend.available(), reason="CuPy with a CUDA device is not available")]


@pytest.mark.parametrize("case", layer_cases(), ids=[c[0] for c in layer_cases()])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_cpu_and_gpu_agree(case, mode):  # pragma: no cover - GPU only
    name, factory, make_x, *_ = case
    backend.seed(0)
    layer = factory().astype(np.float64).to("cpu")
    gpu = copy.deepcopy(layer).to("gpu")
    if getattr(gpu, "impl", None) == "fused":  # CPU-only loops: compare them with a GPU path
        gpu.impl = "fast" if name.startswith("BatchNorm") else "reference"  # the others have no fast path
    layer.train(mode == "train")
    gpu.train(mode == "train")
    x = make_x(np.random.default_rng(0))
    dy = np.random.default_rng(1).standard_normal(layer(x).shape)
    backend.seed(0)
    y_cpu, dx_cpu = layer(x), layer.backward(dy)
    backend.seed(0)
    y_gpu = gpu(backend.to_device(x, "gpu"))
    dx_gpu = gpu.backward(backend.to_device(dy, "gpu"))
    if name.startswith("Dropout") and mode == "train":
        pytest.skip("different random generators on the two devices")
    np.testing.assert_allclose(backend.asnumpy(y_gpu), y_cpu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(backend.asnumpy(dx_gpu), dx_cpu, rtol=1e-9, atol=1e-12)
    for (n, p), (_, q) in zip(layer.named_parameters(), gpu.named_parameters()):
        np.testing.assert_allclose(backend.asnumpy(q.grad), p.grad, rtol=1e-9, atol=1e-12, err_msg=n)
