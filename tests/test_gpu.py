"""CPU (NumPy) and GPU (CuPy) paths checked against each other, layer by layer.

Every case of the gradient-check table (minibn/testing.py) runs on both devices in float64
and the outputs and gradients must agree. A case whose implementation cannot run on the
GPU (the fused CPU loops) is compared against the implementation that "auto" picks there.
Skipped cleanly where CuPy or a CUDA device is absent.
"""

import copy

import numpy as np
import pytest

from minibn import backend, dispatch
from minibn.testing import layer_cases

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif("cupy" not in backend.available(), reason="CuPy with a CUDA device is not available")]

CASES = layer_cases()


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_cpu_and_gpu_agree(case, mode):  # pragma: no cover - GPU only
    if case.spec.family == "activation" and case.layer == "Dropout" and mode == "train":
        pytest.skip("different random generators on the two devices")
    backend.seed(0)
    layer = case.make_layer().astype(np.float64).to("cpu")
    gpu = copy.deepcopy(layer).to("gpu")
    x = case.make_input(np.random.default_rng(0))
    if case.impl is not None and case.impl not in dispatch.available(case.spec.op, backend.to_device(x, "gpu")):
        gpu.impl = "auto"
    layer.train(mode == "train")
    gpu.train(mode == "train")
    # the shape from a copy: a training forward changes running statistics and Memorized BN's memory
    dy = np.random.default_rng(1).standard_normal(copy.deepcopy(layer)(x).shape)
    backend.seed(0)
    y_cpu, dx_cpu = layer(x), layer.backward(dy)
    backend.seed(0)
    y_gpu = gpu(backend.to_device(x, "gpu"))
    dx_gpu = gpu.backward(backend.to_device(dy, "gpu"))
    np.testing.assert_allclose(backend.asnumpy(y_gpu), y_cpu, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(backend.asnumpy(dx_gpu), dx_cpu, rtol=1e-9, atol=1e-12)
    for (n, p), (_, q) in zip(layer.named_parameters(), gpu.named_parameters()):
        np.testing.assert_allclose(backend.asnumpy(q.grad), p.grad, rtol=1e-9, atol=1e-12, err_msg=n)
