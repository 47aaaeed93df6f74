"""The fused GPU kernels (numba-cuda), verified against the reference functions.

Without a CUDA device they run in numba-cuda's simulator (conftest.py sets
NUMBA_ENABLE_CUDASIM=1 before numba is imported), which executes every thread, block,
shared array and syncthreads on the CPU; with one, on the device. Shapes are small (the
simulator runs a Python thread per CUDA thread) but cover uneven tails (N, C and the
positions not multiples of the block), one block per channel and several (a channel of more
than 4 blocks' worth of values is split into chunks), float32 and float64, strided input.
"""

import os

import numpy as np
import pytest

from minibn import backend
from minibn import functional as F
from minibn.gradcheck import check_function
from minibn.kernels import cuda_loops

SIMULATED = os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
pytestmark = pytest.mark.skipif(not cuda_loops.available(),
                                reason="numba-cuda is not installed (or neither a GPU nor its simulator is there)")

if cuda_loops.available():
    from minibn.kernels import cuda_bn
else:  # pragma: no cover
    cuda_bn = None

# (N, C) with a tail, (N, C, L), (N, C, H, W); the last splits each channel into chunks
# (more than 4 blocks' worth of values: 4 * TPB = 32 under the simulator)
SHAPES = [(7, 3), (3, 4, 5), (2, 3, 3, 4), (3, 2, 15)]
XP = np if SIMULATED else backend.cupy


@pytest.fixture(autouse=True, scope="module")
def _fast_thread_switches():
    """The simulator's block manager polls its threads while they wait at syncthreads: with
    Python's default 5 ms switch interval each barrier costs milliseconds (8x slower overall)."""
    import sys
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-4)
    yield
    sys.setswitchinterval(previous)


def dev(a):
    return XP.asarray(a)


def host(a):
    return backend.asnumpy(a)


def data(shape, dtype, seed=0):
    r = np.random.default_rng(seed)
    C = shape[1]
    return ((r.standard_normal(shape) * 4 + 9).astype(dtype), r.uniform(0.5, 2, C).astype(dtype),
            r.standard_normal(C).astype(dtype), r.standard_normal(shape).astype(dtype))


def close(got, want, dtype):
    got, want = host(got).astype(np.float64), np.asarray(want, np.float64)
    if dtype == np.float64:
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    else:  # float32 rounding of the result, against the float64 reference
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5 * max(1.0, float(np.abs(want).max())))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shape", SHAPES)
def test_batchnorm_kernels_match_the_reference(shape, dtype):
    x, g, b, dy = data(shape, dtype)
    y, cache = cuda_bn.batch_norm_forward_cuda(dev(x), dev(g), dev(b), 1e-5)
    y_ref, ref = F.batch_norm_forward(x.astype(np.float64), g.astype(np.float64), b.astype(np.float64), 1e-5)
    close(y, y_ref, dtype)
    close(cache["mu_B"], ref["mu_B"], np.float64 if dtype == np.float64 else dtype)  # the running statistics'
    close(cache["var_B"], ref["var_B"], np.float64 if dtype == np.float64 else dtype)
    dx, dgamma, dbeta = cuda_bn.batch_norm_backward_cuda(dev(dy), cache)
    for got, want in zip((dx, dgamma, dbeta), F.batch_norm_backward(dy.astype(np.float64), ref)):
        close(got, want, dtype)


def test_batchnorm_kernels_take_strided_input_and_no_affine():
    x = np.random.default_rng(1).standard_normal((4, 9)).T * 3 + 1  # (9, 4), not C-contiguous
    y, cache = cuda_bn.batch_norm_forward_cuda(dev(x), None, None, 1e-5)
    close(y, F.batch_norm_forward(np.ascontiguousarray(x), None, None, 1e-5)[0], np.float64)
    dx, dg, db = cuda_bn.batch_norm_backward_cuda(dev(np.ones_like(x)), cache)
    assert dg is None and db is None
    np.testing.assert_allclose(host(dx), 0.0, atol=1e-12)


@pytest.mark.parametrize("shape", [(7, 3), (2, 3, 3, 4)])
def test_renorm_and_memorized_kernels_match_the_reference(shape):
    x, g, b, dy = data(shape, np.float64, 2)
    C = shape[1]
    r = np.random.default_rng(3)
    mean, std = r.standard_normal(C) + 9, r.uniform(2, 6, C)
    y, c = cuda_bn.batch_renorm_forward_cuda(dev(x), dev(g), dev(b), dev(mean), dev(std), 1.5, 0.5, 1e-5)
    y_ref, ref = F.batch_renorm_forward(x, g, b, mean, std, 1.5, 0.5, 1e-5)
    close(y, y_ref, np.float64)
    for key in ("mu_B", "sigma_B", "r", "d"):
        close(c[key], ref[key], np.float64)
    for got, want in zip(cuda_bn.batch_renorm_backward_cuda(dev(dy), c), F.batch_renorm_backward(dy, ref)):
        close(got, want, np.float64)
    means, variances = r.standard_normal((2, C)) + 9, r.uniform(4, 30, (2, C))
    counts, alphas = np.array([10.0, 6.0]), np.array([0.3, 0.7])
    y, c = cuda_bn.memorized_batch_norm_forward_cuda(dev(x), dev(g), dev(b), dev(means), dev(variances), dev(counts),
                                                     dev(alphas), 1e-5)
    y_ref, ref = F.memorized_batch_norm_forward(x, g, b, means, variances, counts, alphas, 1e-5)
    close(y, y_ref, np.float64)
    for got, want in zip(cuda_bn.memorized_batch_norm_backward_cuda(dev(dy), c),
                         F.memorized_batch_norm_backward(dy, ref)):
        close(got, want, np.float64)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("op, args, shape", [("layer_norm", (1,), (5, 7)), ("layer_norm", (2,), (3, 2, 5)),
                                              ("group_norm", (2,), (3, 4, 2, 3)), ("instance_norm", (), (2, 3, 5))])
def test_row_kernels_match_the_reference(op, args, shape, dtype):
    x, _, _, dy = data(shape, dtype, 4)
    D = shape[-args[0]:] if op == "layer_norm" else (shape[1],)
    r = np.random.default_rng(5)
    g, b = r.uniform(0.5, 2, D).astype(dtype), r.standard_normal(D).astype(dtype)
    forward, backward = getattr(cuda_bn, f"{op}_forward_cuda"), getattr(cuda_bn, f"{op}_backward_cuda")
    ref_fwd, ref_bwd = getattr(F, f"{op}_forward"), getattr(F, f"{op}_backward")
    y, cache = forward(dev(x), dev(g), dev(b), *args, 1e-5)
    y_ref, ref = ref_fwd(*(a.astype(np.float64) for a in (x, g, b)), *args, 1e-5)
    close(y, y_ref, dtype)
    for got, want in zip(backward(dev(dy), cache), ref_bwd(dy.astype(np.float64), ref)):
        close(got, want, dtype)


@pytest.mark.parametrize("op, args, shape", [("batch_norm", (), (5, 3)), ("group_norm", (2,), (2, 4, 3))])
def test_gradient_check_through_the_kernels(op, args, shape):
    """(LayerNorm runs on GroupNorm's row kernels: checked there.)"""
    x, g, b, _ = data(shape, np.float64, 6)
    forward, backward = getattr(cuda_bn, f"{op}_forward_cuda"), getattr(cuda_bn, f"{op}_backward_cuda")
    rows = check_function(lambda x, g, b: forward(x, g, b, *args, 1e-5), backward,
                          {"x": dev(x), "g": dev(g), "b": dev(b)}, mode="directional")  # 3 directions: 6 forwards
    assert all(r["passed"] for r in rows)


@pytest.mark.gpu
@pytest.mark.skipif("cupy" not in backend.available(), reason="needs a CUDA device and CuPy")
def test_the_cupy_layers_run_the_registered_kernels():  # pragma: no cover - GPU only
    from minibn import nn
    backend.use("cupy")
    try:
        for make, shape in ((lambda impl: nn.BatchNorm2d(3, impl=impl), (4, 3, 5, 5)),
                            (lambda impl: nn.LayerNorm(6, impl=impl), (5, 6)),
                            (lambda impl: nn.GroupNorm(2, 4, impl=impl), (3, 4, 6))):
            x = backend.to_device(np.random.default_rng(0).standard_normal(shape).astype(np.float32) * 3 + 1, "gpu")
            layer = make("auto")
            y = layer(x)
            assert "cuda_bn" in layer.last_implementation.forward_path
            np.testing.assert_allclose(backend.asnumpy(y), backend.asnumpy(make("reference")(x)), rtol=1e-5, atol=1e-5)
    finally:
        backend.use("numpy")


@pytest.mark.skipif(not SIMULATED, reason="the simulator's shared arrays (a GPU has real ones)")
def test_the_threads_of_a_block_share_one_shared_array():
    """The simulator's shared-array lookup raced (two threads reaching a declaration together
    could each allocate one, and a block's sum then missed a thread: a wrong row in CI now and
    then); cuda_loops replaces it with a locked one. 16 threads released together, many times:
    before the fix about 6% of the rounds handed out more than one array."""
    import sys
    import threading

    from numba.cuda.simulator.kernelapi import FakeCUDAShared

    cuda_loops.kernels()  # installs the locked lookup
    previous = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: the race's best chance
    try:
        split = 0
        for _ in range(200):
            shared, got = FakeCUDAShared(0), [None] * 16
            start = threading.Barrier(16)

            def declare(i, shared=shared, got=got, start=start):
                start.wait()
                got[i] = shared.array(8, np.float64)

            threads = [threading.Thread(target=declare, args=(i,)) for i in range(16)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            split += len({id(a) for a in got}) > 1
    finally:
        sys.setswitchinterval(previous)
    assert split == 0, f"{split} of 200 rounds gave the threads of one block different shared arrays"
