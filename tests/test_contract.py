"""One contract for every normalization layer and every implementation installed here.

Generated from the registrations (minibn/testing.py), like the gradient-check table of
tests/test_registry.py: for each normalization layer and each implementation of its
operation ("reference", "fast", "fused", where installed), in each mode it has:

* dtypes: y and dx in x's dtype, dgamma and dbeta in the parameters' dtype, buffers
  keeping theirs, whatever the mix (float32 x with float64 parameters and back, float16 x);
* an empty batch: an empty y, an empty dx and zero parameter gradients, the running
  statistics unchanged (PyTorch's answer, compared with PyTorch where the layer has a
  counterpart);
* extreme magnitudes (hypothesis): a float32 input of scale 1e18..1e32, a float16 input
  near 6e4: the float64 reference's answer, no NaN, running statistics that stay finite
  (a NumericalWarning naming the overflowing buffer, no bare NumPy warning);
* layouts: Fortran-ordered, strided and transposed x and dy give the contiguous answer;
* array subclasses: MaskedArray and matrix are refused with a TypeError naming the layer,
  the type and the fix; a memmap is read as the plain array it holds;
* x changed in place between forward and backward: RuntimeError naming the layer.

And for every registered layer: a dy of an integer dtype is refused naming the layer and
the fix, a dy of another floating dtype is converted to the output's.
"""

import copy
import warnings

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minibn import nn
from minibn.testing import SPECS

NORM = [s for s in SPECS if issubclass(s.cls, nn.Normalization) and s.impls()]
CASES = [(s, impl) for s in NORM for impl in s.impls()]
IDS = [f"{s.name}-{impl}" for s, impl in CASES]
MODES = [(s, impl, mode) for s, impl in CASES for mode in s.modes]
MODE_IDS = [f"{s.name}-{impl}-{mode}" for s, impl, mode in MODES]


def make(s, impl, shape=None, dtype=None):
    layer = s.make(shape or s.shapes[0], **({} if impl is None else {"impl": impl}))
    return layer if dtype is None else layer.astype(dtype)


def state(layer):
    """A copy of the layer's buffers (num_batches_tracked aside)."""
    return {k: np.array(v, copy=True) for k, v in layer.state_dict().items()
            if not k.endswith("num_batches_tracked")}


def data(shape, dtype=np.float32, seed=0, scale=1.0):
    x = np.random.default_rng(seed).standard_normal(shape) * 5 + 12
    return (x * scale).astype(dtype)


def grads(layer):
    return [p.grad for p in (layer.gamma, layer.beta) if p is not None]


# -- dtypes ------------------------------------------------------------------------------------

DTYPES = [(np.float32, np.float64), (np.float64, np.float32), (np.float32, np.float32), (np.float16, np.float32)]


@pytest.mark.parametrize("s, impl, mode", MODES, ids=MODE_IDS)
def test_outputs_in_xs_dtype_gradients_in_the_parameters_dtype(s, impl, mode):
    for x_dtype, p_dtype in DTYPES:
        layer = make(s, impl, dtype=p_dtype).train(mode == "train")
        buffers = {k: v.dtype for k, v in layer.state_dict().items()}
        x = data(s.shapes[0], x_dtype)
        try:
            y = layer(x)
        except TypeError as e:  # an implementation that does not take this dtype says so
            assert x_dtype is np.float16 and str(e).startswith(f"{s.name}: "), e
            continue
        dy = np.random.default_rng(1).standard_normal(y.shape)  # float64: converted to y's dtype
        dx = layer.backward(dy)
        what = f"x {np.dtype(x_dtype)}, parameters {np.dtype(p_dtype)}"
        assert (y.dtype, dx.dtype) == (x.dtype, x.dtype), what
        assert all(g.dtype == p_dtype for g in grads(layer)), (what, [g.dtype for g in grads(layer)])
        assert {k: v.dtype for k, v in layer.state_dict().items()} == buffers, what


# -- empty batches ---------------------------------------------------------------------------------

@pytest.mark.parametrize("s, impl, mode", MODES, ids=MODE_IDS)
def test_an_empty_batch_gives_an_empty_output_and_zero_gradients(torch, s, impl, mode):
    layer = make(s, impl, dtype=np.float64).train(mode == "train")
    x = np.zeros((0,) + tuple(s.shapes[0][1:]))
    if s.cls is nn.SyncBatchNorm and mode == "train":  # a collective: documented, on every rank alike
        with pytest.raises(ValueError, match="SyncBatchNorm: .*no samples"):
            layer(x)
        return
    before, tracked = state(layer), getattr(layer, "num_batches_tracked", None)
    y = layer(x)
    dx = layer.backward(np.zeros_like(y))
    assert y.shape == dx.shape == x.shape and y.dtype == dx.dtype == x.dtype
    for g in grads(layer):
        np.testing.assert_array_equal(g, 0)
        assert g.dtype == np.float64
    after = state(layer)
    for k in before:
        np.testing.assert_array_equal(after[k], before[k], err_msg=k)
    if s.torch is None or s.cls is nn.InstanceNorm2d:  # PyTorch 2.13's InstanceNorm2d raises IndexError here
        return
    theirs = s.torch.make(torch, layer).double().train(mode == "train")
    with torch.no_grad():
        for mine, name in s.torch.buffers.items():
            getattr(theirs, name).copy_(torch.tensor(before[mine]))
    xt = torch.zeros(x.shape, dtype=torch.float64, requires_grad=True)
    yt = theirs(xt)
    yt.backward(torch.zeros_like(yt))
    assert tuple(yt.shape) == y.shape and tuple(xt.grad.shape) == dx.shape
    for mine, name in s.torch.buffers.items():
        np.testing.assert_array_equal(after[mine], getattr(theirs, name).numpy(), err_msg=mine)
    if tracked is not None and hasattr(theirs, "num_batches_tracked"):
        assert layer.num_batches_tracked - tracked == int(theirs.num_batches_tracked)


# -- extreme magnitudes ----------------------------------------------------------------------------

def _run_against_the_float64_reference(s, impl, mode, x, layer_dtype, tol):
    layer = make(s, impl, dtype=layer_dtype).train(mode == "train")
    reference = copy.deepcopy(layer).astype(np.float64)
    if impl is not None:
        reference.impl = "reference"
    with warnings.catch_warnings(record=True) as caught, np.errstate(over="warn", invalid="warn", divide="warn"):
        warnings.simplefilter("always")
        try:
            y = layer(x)
        except TypeError as e:  # float16 into an implementation that does not take it: refused, by name
            assert x.dtype == np.float16 and str(e).startswith(f"{s.name}: "), e
            return
        dy = np.random.default_rng(1).standard_normal(y.shape).astype(x.dtype)
        dx = layer.backward(dy)
    others = [str(w.message) for w in caught if not (issubclass(w.category, nn.NumericalWarning)
                                                     and "overflows" in str(w.message))]
    assert not others, others  # no NaN or inf blamed on the batch, no bare NumPy overflow
    for k, v in layer.state_dict().items():
        assert np.all(np.isfinite(v)), f"{k} is not finite: {v}"
    with np.errstate(all="ignore"):
        y_ref = reference(x.astype(np.float64))
        dx_ref = reference.backward(dy.astype(np.float64))
    for name, a, b in (("y", y, y_ref), ("dx", dx, dx_ref)):
        assert np.all(np.isfinite(a)), f"{name} has non-finite values"
        np.testing.assert_allclose(a.astype(np.float64), b, rtol=tol, atol=tol * np.abs(b).max(), err_msg=name)


@pytest.mark.parametrize("s, impl, mode", MODES, ids=MODE_IDS)
@settings(max_examples=4, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(exponent=st.integers(18, 32), sign=st.sampled_from([1.0, -1.0]), seed=st.integers(0, 2 ** 16))
def test_float32_inputs_near_the_limits_of_float32(s, impl, mode, exponent, sign, seed):
    x = data(s.shapes[0], np.float32, seed, sign * 10.0 ** exponent)
    _run_against_the_float64_reference(s, impl, mode, x, np.float32, 2e-3)


@pytest.mark.parametrize("s, impl, mode", MODES, ids=MODE_IDS)
def test_float16_inputs_near_the_limits_of_float16(s, impl, mode):
    # up to 60000 in training (y ~ 1); in eval a quarter of that, so that y (x times up to
    # 4.2 here) fits float16 too. Either way the variance (1e7) does not fit a float16 buffer.
    scale = 2e3 if mode == "train" else 5e2
    x = np.clip(data(s.shapes[0], np.float64, 3, scale), -6e4, 6e4).astype(np.float16)
    _run_against_the_float64_reference(s, impl, mode, x, np.float16, 3e-2)


def test_float32_bn_at_scale_1e30_keeps_finite_running_statistics_and_says_why(rng):
    """The default (fused, where installed) BN: the variance 1e60 does not fit running_var's
    float32; the running statistics are left as they were, with a warning naming the channels."""
    layer = nn.BatchNorm1d(4)
    x = (rng.standard_normal((8, 4)) * 1e30).astype(np.float32)
    with pytest.warns(nn.NumericalWarning, match=r"BatchNorm1d: the batch variance of channel\(s\) \[0, 1, 2, 3\] "
                                                 r"\(up to .*e\+\d\d\) overflows running_var's dtype float32"):
        layer(x)
    np.testing.assert_array_equal(layer.running_var, 1)
    np.testing.assert_array_equal(layer.running_mean, 0)
    layer.eval()
    y = layer(x)
    assert np.all(np.isfinite(y)) and not np.allclose(y, layer.beta.data)  # not "all beta"


# -- memory layouts -------------------------------------------------------------------------------

def _layouts(a):
    """The same values as ``a`` in other memory layouts: Fortran order, a strided view, a
    transposed view."""
    strided = np.repeat(a, 2, axis=-1)[..., ::2]
    moved = np.ascontiguousarray(np.moveaxis(a, 0, -1))
    transposed = np.moveaxis(moved, -1, 0)
    return {"fortran": np.asfortranarray(a), "strided": strided, "transposed": transposed}


@pytest.mark.parametrize("s, impl, mode", MODES, ids=MODE_IDS)
def test_non_contiguous_inputs_give_the_contiguous_answer(s, impl, mode):
    shape = next((shape for shape in s.shapes if len(shape) > 2 and shape[0] > 1), s.shapes[0])
    layer = make(s, impl, shape, np.float64).train(mode == "train")
    x, dy = data(shape, np.float64), np.random.default_rng(1).standard_normal(shape)
    ref = copy.deepcopy(layer)
    y_ref, dx_ref = ref(x), ref.backward(dy)
    for (label, xl), dyl in zip(_layouts(x).items(), _layouts(dy).values()):
        assert not xl.flags.c_contiguous and np.array_equal(xl, x)
        other = copy.deepcopy(layer)
        y, dx = other(xl), other.backward(dyl)
        np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12, err_msg=label)
        np.testing.assert_allclose(dx, dx_ref, rtol=1e-10, atol=1e-12, err_msg=label)
        for g, g_ref in zip(grads(other), grads(ref)):
            np.testing.assert_allclose(g, g_ref, rtol=1e-10, atol=1e-12, err_msg=label)
        for k, v in state(other).items():
            np.testing.assert_allclose(v, state(ref)[k], rtol=1e-12, err_msg=f"{label} {k}")


# -- array subclasses -----------------------------------------------------------------------------

@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
@pytest.mark.parametrize("s, impl", CASES, ids=IDS)
def test_masked_arrays_and_matrices_are_refused_with_the_fix(s, impl):
    layer = make(s, impl)
    x = data(s.shapes[0])
    masked = np.ma.masked_array(x, mask=np.random.default_rng(0).random(x.shape) < 0.3)
    with pytest.raises(TypeError, match=rf"^{s.name}: x must be a plain numpy.ndarray, got numpy.ma.MaskedArray "
                                        r"\(.*x.filled\(value\).*numpy.asarray\(x\)"):
        layer(masked)
    y = layer(x)
    with pytest.raises(TypeError, match=rf"^{s.name}: dy must be a plain numpy.ndarray, got numpy.ma.MaskedArray"):
        layer.backward(np.ma.masked_array(np.ones_like(y)))
    two_d = next((shape for shape in s.shapes if len(shape) == 2), None)
    if two_d is not None:  # a matrix has two dimensions
        with pytest.raises(TypeError, match=rf"^{s.name}: x must be a plain numpy.ndarray, got numpy.matrix "
                                            r"\(.*numpy.asarray\(x\)"):
            make(s, impl, two_d)(np.asmatrix(data(two_d)))


@pytest.mark.parametrize("s, impl", CASES, ids=IDS)
def test_a_memmap_is_read_as_the_array_it_holds(tmp_path, s, impl):
    x = data(s.shapes[0])
    mapped = np.memmap(tmp_path / "x.bin", dtype=x.dtype, mode="w+", shape=x.shape)
    mapped[...] = x
    a, b = make(s, impl), make(s, impl)
    ya, yb = a(x), b(mapped)
    assert type(yb) is np.ndarray and a.last_implementation is b.last_implementation
    np.testing.assert_array_equal(ya, yb)
    np.testing.assert_array_equal(a.backward(np.ones_like(ya)), b.backward(np.ones_like(yb)))


# -- x changed in place ---------------------------------------------------------------------------

@pytest.mark.parametrize("s, impl, mode", MODES, ids=MODE_IDS)
def test_x_changed_in_place_before_the_backward_is_refused(s, impl, mode):
    layer = make(s, impl).train(mode == "train")
    x = data(s.shapes[0])
    y = layer(x)
    x[...] = data(s.shapes[0], seed=7)  # the buffer refilled with the next batch
    with pytest.raises(RuntimeError, match=rf"^{s.name}: x was changed in place after the forward"):
        layer.backward(np.ones_like(y))
    y = layer(x)  # a new forward on the new values: fine
    layer.backward(np.ones_like(y))


# -- dy, for every registered layer ---------------------------------------------------------------

ALL = [s for s in SPECS if s.impls()]


@pytest.mark.parametrize("s", ALL, ids=[s.name for s in ALL])
def test_dy_of_an_integer_dtype_is_refused_and_another_float_dtype_converted(s):
    layer = s.make(s.shapes[0])
    y = layer(data(s.shapes[0]))
    with pytest.raises(TypeError, match=rf"^{s.name}: dy must be a floating-point array \(.*of dtype float32\), "
                                        r"got dtype int64: pass dy.astype\(numpy.float32\)"):
        layer.backward(np.ones(y.shape, np.int64))
    dy = np.random.default_rng(1).standard_normal(y.shape)
    state = copy.deepcopy(layer)
    dx = layer.backward(dy)
    dx_32 = state.backward(dy.astype(np.float32))
    assert dx.dtype == dx_32.dtype
    np.testing.assert_array_equal(dx, dx_32)
