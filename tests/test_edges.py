"""The functions under the layers, at their edges: each registered implementation called
directly (the contract of minibn/dispatch.py), and the functional teaching path's
boundary checks. (The layers' contract is tests/test_contract.py.)"""

import warnings

import numpy as np
import pytest

from minibn import dispatch
from minibn import functional as F
from minibn.kernels import numpy_fast
from tests.helpers import needs_numba

# (op, extra arguments after gamma and beta, x's shape, the affine shape)
OPS = [("batch_norm", (1e-5,), (6, 4, 3), (4,)), ("layer_norm", (2, 1e-5), (3, 4, 5), (4, 5)),
       ("group_norm", (2, 1e-5), (3, 4, 5), (4,)), ("instance_norm", (1e-5,), (3, 4, 2, 3), (4,)),
       ("batch_renorm", None, (6, 4), (4,)), ("memorized_batch_norm", None, (6, 4), (4,))]


def _args(op, extra, C):
    if extra is not None:
        return extra
    if op == "batch_renorm":
        return (np.zeros(C), np.ones(C), 1.0, 0.0, 1e-5)
    return (np.zeros((0, C)), np.zeros((0, C)), np.zeros(0), np.zeros(0), 1e-5)  # an empty memory


def _impl(op, name):
    implementation = dispatch.get(op, name)
    return implementation.forward, implementation.backward


def _params(op, *values):
    """pytest parameters (*values, name) for each implementation of op (fused: needs numba)."""
    return [pytest.param(*values, name, marks=needs_numba if name == "fused" else (), id=f"{op}-{name}")
            for name in dispatch.implementations(op)]


CASES = [p for op, extra, shape, affine in OPS for p in _params(op, op, extra, shape, affine)]


@pytest.mark.parametrize("op, extra, shape, affine, impl", CASES)
def test_every_implementation_keeps_xs_dtype_and_the_parameters_dtype(op, extra, shape, affine, impl):
    forward, backward = _impl(op, impl)
    rng = np.random.default_rng(0)
    for x_dtype, p_dtype in ((np.float32, np.float64), (np.float64, np.float32)):
        x = (rng.standard_normal(shape) * 3 + 5).astype(x_dtype)
        gamma, beta = rng.uniform(0.5, 1.5, affine).astype(p_dtype), np.full(affine, 0.3, p_dtype)
        y, cache = forward(x, gamma, beta, *_args(op, extra, shape[1]))
        dx, dgamma, dbeta = backward(rng.standard_normal(shape).astype(x_dtype), cache)
        assert (y.dtype, dx.dtype, dgamma.dtype, dbeta.dtype) == (x_dtype, x_dtype, p_dtype, p_dtype), \
            (op, impl, x_dtype, p_dtype)


@pytest.mark.parametrize("op, extra, shape, affine, impl", CASES)
def test_every_implementation_names_a_gamma_of_the_wrong_shape(op, extra, shape, affine, impl):
    forward, _ = _impl(op, impl)
    x = np.ones(shape, np.float32)
    bad = np.ones((3,) + affine, np.float32)
    expected = str(affine).replace("(", r"\(").replace(")", r"\)")
    actual = str((3,) + affine).replace("(", r"\(").replace(")", r"\)")
    with pytest.raises(ValueError, match=rf"expected gamma of shape {expected} .*got shape {actual}"):
        forward(x, bad, np.zeros(affine, np.float32), *_args(op, extra, shape[1]))
    with pytest.raises(ValueError, match="gamma and beta must both be None .* or both arrays, got beta=None"):
        forward(x, np.ones(affine, np.float32), None, *_args(op, extra, shape[1]))


RELATIVES = [p for op in ("layer_norm", "group_norm", "instance_norm") for p in _params(op, op)]


@pytest.mark.parametrize("op, impl", RELATIVES)
def test_the_relatives_take_an_empty_batch_as_pytorch_does(op, impl):
    """PyTorch's LayerNorm and GroupNorm return an empty output and zero gradients for N = 0
    (its InstanceNorm2d raises IndexError: ours is GroupNorm with one channel per group)."""
    forward, backward = _impl(op, impl)
    extra = {"layer_norm": (1, 1e-5), "group_norm": (2, 1e-5), "instance_norm": (1e-5,)}[op]
    x = np.zeros((0, 4, 3, 3) if op == "instance_norm" else (0, 4))
    gamma, beta = np.ones(4), np.zeros(4)
    y, cache = forward(x, gamma, beta, *extra)
    dx, dgamma, dbeta = backward(np.zeros_like(y), cache)
    assert y.shape == dx.shape == x.shape
    np.testing.assert_array_equal(dgamma, 0)
    np.testing.assert_array_equal(dbeta, 0)


def test_the_functional_bn_takes_an_int_axis_and_names_a_bad_one():
    x = np.random.default_rng(0).standard_normal((8, 4))
    g, b = np.ones(4), np.zeros(4)
    np.testing.assert_array_equal(F.batch_norm_forward(x, g, b, 1e-5, 0)[0], F.batch_norm_forward(x, g, b)[0])
    with pytest.raises(TypeError, match="axis must be None, an int or a tuple of ints, got 'a'"):
        F.batch_norm_forward(x, g, b, 1e-5, "a")
    with pytest.raises(ValueError, match=r"reduces over axes \(0, 2, 3\) of an input of shape \(2, 4, 1, 4\).*"
                                         r"got axis=0"):
        F.batch_norm_forward(x.reshape(2, 4, 1, 4), g, b, 1e-5, 0)


def test_the_functional_bn_refuses_masked_arrays_and_names_gamma():
    x = np.random.default_rng(0).standard_normal((8, 4))
    with pytest.raises(TypeError, match=r"batch_norm_forward: x must be a plain numpy.ndarray, got "
                                        r"numpy.ma.MaskedArray"):
        F.batch_norm_forward(np.ma.masked_array(x, mask=x > 1), np.ones(4), np.zeros(4))
    with pytest.raises(ValueError, match=r"batch_norm_forward: expected gamma of shape \(4,\) \(one value per "
                                         r"channel of x, shape \(8, 4\)\), got shape \(3, 4\)"):
        F.batch_norm_forward(x, np.ones((3, 4)), np.zeros(4))
    with pytest.raises(TypeError, match="batch_norm_forward: gamma must be an array, got list"):
        F.batch_norm_forward(x, [1.0] * 4, np.zeros(4))


@pytest.mark.parametrize("scale", [1e17, 1e19, 1e28, 1e30, 1e34])
@pytest.mark.parametrize("shape", [(16, 3), (4, 3, 5)])
def test_fast_bn_keeps_float32_inputs_of_any_magnitude_finite(scale, shape):
    """Its squares overflow float32 from about 1e19 (q is recomputed with float64 sums), and
    its backward's B ~ 1/var underflows float32 (B * d is computed as (d / sigma) * (B * sigma))."""
    rng = np.random.default_rng(0)
    x = ((rng.standard_normal(shape) * 5 + 12) * scale).astype(np.float32)
    gamma, beta = rng.uniform(0.5, 1.5, 3).astype(np.float32), np.full(3, 0.3, np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even a NumPy overflow warning
        y, cache = numpy_fast.batch_norm_forward_fast(x, gamma, beta)
        dx, dgamma, dbeta = numpy_fast.batch_norm_backward_fast(dy, cache)
    y_ref, cache_ref = F.batch_norm_forward(x.astype(np.float64), gamma, beta)
    dx_ref, dgamma_ref, _ = F.batch_norm_backward(dy.astype(np.float64), cache_ref)
    np.testing.assert_allclose(y, y_ref, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(dx, dx_ref, rtol=1e-3, atol=1e-4 * np.abs(dx_ref).max())
    np.testing.assert_allclose(dgamma, dgamma_ref, rtol=1e-3, atol=1e-4)
    assert np.isfinite(cache["var_B"]).all() and np.isfinite(cache["mu_B"]).all()
