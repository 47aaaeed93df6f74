"""Batch normalization: Algorithm 1, both backwards, the inference transform, and the
properties the paper states (Sec. 3, 3.1, 3.3) and EE-559 demonstrates."""

import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minibn import backend, dispatch, nn
from minibn import functional as F
from minibn.gradcheck import check_function, check_module
from minibn.kernels import numba_cpu
from tests.helpers import impls, needs_numba, on_active, skip_unless_runs_here, to_np

AXES = {2: (0,), 3: (0, 2), 4: (0, 2, 3)}
SHAPES = [(6, 4), (2, 3, 5), (4, 3, 2, 3), (1, 2, 3, 3)]  # the last: N = 1 with spatial size > 1


# x ~ 1000 is stored to ~1e-13, i.e. ~1e-11 of a 0.01 std: the rounding noise of a central
# difference is then ~1e-11 / h of the value, so h = 5e-6 (the truncation error, ~(h / std)^2,
# stays ~1e-7) and a check good to a few 1e-6 (worst 3e-6 over 20 seeds). Tighter elsewhere.
TOL = {"offset": 1e-6, "large_mean_small_std": 1e-5}
H = {"offset": 1e-6, "large_mean_small_std": 5e-6}


def inputs(shape, kind, rng):
    C = shape[1]
    x = {"offset": 5 * rng.standard_normal(shape) + 12,
         "large_mean_small_std": 1000 + 0.01 * rng.standard_normal(shape)}[kind]
    return on_active(x), on_active(rng.uniform(0.5, 1.5, C)), on_active(rng.standard_normal(C))


@pytest.mark.parametrize("shape", SHAPES)
def test_paper_and_closed_form_backward_agree(backend_name, rng, shape):
    x, g, b = inputs(shape, "offset", rng)
    _, cache = F.batch_norm_forward(x, g, b, 1e-5, AXES[len(shape)])
    dy = on_active(rng.standard_normal(shape))
    closed = F.batch_norm_backward(dy, cache)
    paper = F.batch_norm_backward_paper(dy, cache)
    for c, p in zip(closed, paper):
        np.testing.assert_allclose(to_np(c), to_np(p), rtol=1e-10, atol=1e-12 * float(abs(to_np(p)).max()))


def test_paper_backward_returns_its_intermediates(rng):
    x, g, b = inputs((6, 4), "offset", rng)
    _, cache = F.batch_norm_forward(x, g, b, 1e-5, (0,))
    dy = rng.standard_normal((6, 4))
    *_, mid = F.batch_norm_backward_paper(dy, cache, return_intermediates=True)
    np.testing.assert_allclose(mid["dx_hat"], dy * to_np(g))
    assert mid["dvar_B"].shape == mid["dmu_B"].shape == (4,)  # per-channel values are (C,)


@pytest.mark.parametrize("formula", ["closed", "paper"])
@pytest.mark.parametrize("kind", ["offset", "large_mean_small_std"])
@pytest.mark.parametrize("shape", SHAPES)
def test_gradcheck_functional(backend_name, rng, shape, kind, formula):
    x, g, b = inputs(shape, kind, rng)
    axis = AXES[len(shape)]
    bwd = F.batch_norm_backward if formula == "closed" else F.batch_norm_backward_paper
    check_function(lambda x, g, b: F.batch_norm_forward(x, g, b, 1e-5, axis), bwd, {"x": x, "gamma": g, "beta": b},
                   tol=TOL[kind], h=H[kind])


@pytest.mark.parametrize("kind", ["offset", "large_mean_small_std"])
@pytest.mark.parametrize("shape", SHAPES)
def test_gradcheck_inference_transform(backend_name, rng, shape, kind):
    x, g, b = inputs(shape, kind, rng)
    mean, var = on_active(rng.standard_normal(shape[1])), on_active(rng.uniform(0.5, 2, shape[1]))
    axis = AXES[len(shape)]
    check_function(lambda x, g, b: F.batch_norm_inference_forward(x, g, b, mean, var, 1e-5, axis),
                   F.batch_norm_inference_backward, {"x": x, "gamma": g, "beta": b}, tol=TOL[kind], h=H[kind])


@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (5, 3)), (nn.BatchNorm1d, (3, 3, 4)),
                                        (nn.BatchNorm2d, (2, 3, 3, 2)), (nn.BatchNorm2d, (1, 2, 3, 3))])
@pytest.mark.parametrize("formula", ["closed", "paper"])
def test_gradcheck_modules_large_mean_small_std(backend_name, rng, cls, shape, formula):
    layer = cls(shape[1], backward=formula)
    layer.running_mean = on_active(np.full(shape[1], 1000.0, np.float32))
    layer.running_var = on_active(np.full(shape[1], 1e-4, np.float32))
    check_module(layer, on_active(1000 + 0.01 * rng.standard_normal(shape)), h=1e-5, tol=1e-5)


# (the PyTorch comparison of every implementation and variant: tests/test_registry.py)


# -- the papers' properties -----------------------------------------------------------------

@settings(max_examples=25, deadline=None)
@given(a=st.floats(1e-3, 1e3), n=st.integers(2, 16), c=st.integers(1, 6), seed=st.integers(0, 2 ** 16))
def test_bn_is_invariant_to_weight_scale(a, n, c, seed):
    """Sec. 3.3: BN(Wu) = BN((aW)u) for a scalar a > 0 (eps = 0: the paper neglects it)."""
    rng = np.random.default_rng(seed)
    u, W = rng.standard_normal((n, 7)), rng.standard_normal((c, 7))
    gamma, beta = rng.uniform(0.5, 2, c), rng.standard_normal(c)
    y1, _ = F.batch_norm_forward(u @ W.T, gamma, beta, 0.0, (0,))
    y2, _ = F.batch_norm_forward(u @ (a * W).T, gamma, beta, 0.0, (0,))
    np.testing.assert_allclose(y2, y1, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("a", [0.01, 3.0, 250.0])
def test_jacobian_relations_of_section_3_3(rng, a):
    """d BN((aW)u) / du = d BN(Wu) / du and d BN((aW)u) / d(aW) = (1/a) d BN(Wu) / dW."""
    def grads(scale):
        lin = nn.Linear(7, 5, bias=False).astype(np.float64)
        lin.weight.data = scale * W
        bn = nn.BatchNorm1d(5, eps=0.0).astype(np.float64)
        model = nn.Sequential(lin, bn)
        model(u)
        du = model.backward(dy)
        return du, lin.weight.grad

    u, W, dy = rng.standard_normal((10, 7)), rng.standard_normal((5, 7)), rng.standard_normal((10, 5))
    du1, dW1 = grads(1.0)
    du_a, dW_a = grads(a)
    np.testing.assert_allclose(du_a, du1, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(dW_a, dW1 / a, rtol=1e-8, atol=1e-10 / a)


@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (200, 3)), (nn.BatchNorm2d, (16, 3, 5, 5))])
def test_ee559_demo_output_mean_is_beta_and_std_is_gamma(backend_name, rng, cls, shape):
    layer = cls(3, eps=0.0).astype(np.float64)
    gamma, beta = np.array([0.5, 2.0, 3.0]), np.array([-1.0, 0.0, 4.0])
    layer.gamma.data, layer.beta.data = on_active(gamma), on_active(beta)
    x = on_active(rng.standard_normal(shape) * np.array([1, 10, 100]).reshape((1, 3) + (1,) * (len(shape) - 2)) + 7)
    y = to_np(layer(x))
    axes = AXES[len(shape)]
    np.testing.assert_allclose(y.mean(axis=axes), beta, atol=1e-12)
    np.testing.assert_allclose(y.std(axis=axes), gamma, rtol=1e-10)


def test_float32_large_mean_normalizes(backend_name, rng):
    """Two-pass variance: a float32 input with mean 1e4 and std 1 still gets std 1 (E[x^2]-E[x]^2 would not)."""
    x = on_active((1e4 + rng.standard_normal((4096, 8))).astype(np.float32))
    y = to_np(nn.BatchNorm1d(8)(x))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=1e-3)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-3)


def test_float16_statistics_in_float32(backend_name, rng):
    x = on_active((100 + rng.standard_normal((512, 4))).astype(np.float16))
    layer = nn.BatchNorm1d(4)
    y = layer(x)
    assert y.dtype == np.float16 and layer.running_mean.dtype == np.float32
    np.testing.assert_allclose(to_np(y).astype(np.float64).std(axis=0), 1.0, atol=2e-2)


@pytest.mark.parametrize("impl", impls("batch_norm"))
def test_one_value_per_channel_in_training_is_an_error(backend_name, impl):
    skip_unless_runs_here("batch_norm", impl)
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        nn.BatchNorm1d(3, impl=impl)(on_active(np.ones((1, 3), np.float32)))
    with pytest.raises(ValueError, match="expected more than 1 value per channel when training"):
        nn.BatchNorm2d(3, impl=impl)(on_active(np.ones((1, 3, 1, 1), np.float32)))
    layer = nn.BatchNorm2d(3)
    layer(on_active(np.random.default_rng(0).standard_normal((1, 3, 2, 2)).astype(np.float32)))  # m = 4: fine
    layer.eval()
    y = layer(on_active(np.ones((1, 3, 1, 1), np.float32)))  # eval with running stats: a batch of one is fine
    assert np.isfinite(to_np(y)).all()


def test_eval_batch_of_one_is_not_zeroed(backend_name):
    """A known bug elsewhere: train-mode BN on one sample gives zeros. In eval we use the running stats."""
    layer = nn.BatchNorm1d(3)
    for _ in range(20):
        layer(on_active(np.random.default_rng(1).standard_normal((16, 3)).astype(np.float32)))
    layer.eval()
    y = to_np(layer(on_active(np.array([[1.0, 2.0, 3.0]], np.float32))))
    assert np.abs(y).min() > 0.1


def test_non_finite_input_propagates_and_is_not_clipped(backend_name):
    x = np.random.default_rng(0).standard_normal((6, 3))
    x[2, 1] = np.nan
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", nn.NumericalWarning)  # on the host the layer says so (test_reliability)
        y = to_np(nn.BatchNorm1d(3).astype(np.float64)(on_active(x)))
    assert np.isnan(y[:, 1]).all()  # the channel with a NaN is NaN throughout
    assert np.isfinite(y[:, [0, 2]]).all()  # the others are untouched


def test_momentum_is_weight_of_new_statistic(backend_name):
    """PyTorch's convention (the reverse of some textbooks): running = 0.9 * running + 0.1 * batch."""
    layer = nn.BatchNorm1d(1, momentum=0.1).astype(np.float64)
    layer(on_active(np.array([[1.0], [3.0]])))  # mean 2, unbiased var 2
    np.testing.assert_allclose(to_np(layer.running_mean), [0.2])
    np.testing.assert_allclose(to_np(layer.running_var), [0.9 * 1 + 0.1 * 2.0])


def test_eps_is_added_once_in_train_and_eval(backend_name):
    """With the running statistics equal to the batch ones, eval must reproduce train exactly."""
    x = np.random.default_rng(0).standard_normal((8, 3)) * 0.01
    layer = nn.BatchNorm1d(3, eps=1e-3, momentum=1.0).astype(np.float64)
    y_train = to_np(layer(on_active(x)))
    layer.running_var = layer.running_var * (7 / 8)  # undo the unbiasing: now exactly var_B
    y_eval = to_np(layer.eval()(on_active(x)))
    np.testing.assert_allclose(y_eval, y_train, rtol=1e-12, atol=1e-12)


# -- the fast (kernels/numpy_fast.py) and fused (kernels/fused_bn.py) paths against the reference --

IMPLS = impls("batch_norm", reference=False)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("cls, shape", [(nn.BatchNorm1d, (9, 4)), (nn.BatchNorm1d, (3, 4, 5)),
                                        (nn.BatchNorm1d, (11, 5)),  # rows not a multiple of 4
                                        (nn.BatchNorm2d, (3, 4, 3, 2)), (nn.BatchNorm2d, (1, 2, 3, 3))])
@pytest.mark.parametrize("affine", [True, False])
def test_fast_and_reference_paths_agree(backend_name, rng, impl, cls, shape, affine):
    skip_unless_runs_here("batch_norm", impl)
    C = shape[1]
    fast = cls(C, impl=impl, affine=affine).astype(np.float64)
    ref = cls(C, impl="reference", affine=affine).astype(np.float64)
    if affine:
        g, b = on_active(rng.uniform(0.5, 2, C)), on_active(rng.standard_normal(C))
        fast.gamma.data, fast.beta.data, ref.gamma.data, ref.beta.data = g, b, g.copy(), b.copy()
    for _ in range(3):
        x = on_active(rng.standard_normal(shape) * 4 + 9)
        dy = on_active(rng.standard_normal(shape))
        np.testing.assert_allclose(to_np(fast(x)), to_np(ref(x)), rtol=1e-10, atol=1e-12)
        assert fast.last_implementation.name == impl
        np.testing.assert_allclose(to_np(fast.backward(dy)), to_np(ref.backward(dy)), rtol=1e-9, atol=1e-12)
    if affine:
        np.testing.assert_allclose(to_np(fast.gamma.grad), to_np(ref.gamma.grad), rtol=1e-10)
        np.testing.assert_allclose(to_np(fast.beta.grad), to_np(ref.beta.grad), rtol=1e-10)
    np.testing.assert_allclose(to_np(fast.running_mean), to_np(ref.running_mean), rtol=1e-12)
    np.testing.assert_allclose(to_np(fast.running_var), to_np(ref.running_var), rtol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_fast_path_float32_large_mean(backend_name, rng, impl):
    """Mean 1e4, std 1 in float32: E[x^2] - E[x]^2 would lose every digit of the variance."""
    skip_unless_runs_here("batch_norm", impl)
    x = on_active((1e4 + rng.standard_normal((4096, 8))).astype(np.float32))
    layer = nn.BatchNorm1d(8, impl=impl)
    y = to_np(layer(x))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y.std(axis=0), 1.0, atol=1e-3)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-3)
    dy = rng.standard_normal((4096, 8)).astype(np.float32)
    ref = nn.BatchNorm1d(8, impl="reference").astype(np.float64)
    ref(backend.asnumpy(x).astype(np.float64) if backend_name == "numpy" else to_np(x).astype(np.float64))
    dx_ref = to_np(ref.backward(dy.astype(np.float64)))
    dx = to_np(layer.backward(on_active(dy)))
    assert dx.dtype == np.float32 and layer.gamma.grad.dtype == np.float32
    np.testing.assert_allclose(dx, dx_ref, atol=1e-3 * np.abs(dx_ref).max())


@pytest.mark.parametrize("impl", IMPLS)
def test_fast_paths_float32_match_float64_reference(backend_name, rng, impl):
    """The float32 paths against the float64 reference on the issue's layouts (N, C) and (N, C, H, W)."""
    skip_unless_runs_here("batch_norm", impl)
    for cls, shape in ((nn.BatchNorm1d, (512, 64)), (nn.BatchNorm2d, (8, 16, 9, 7))):
        x = (3 * rng.standard_normal(shape) + 1).astype(np.float32)
        dy = rng.standard_normal(shape).astype(np.float32)
        layer, ref = cls(shape[1], impl=impl), cls(shape[1], impl="reference").astype(np.float64)
        y, y_ref = to_np(layer(on_active(x))), to_np(ref(on_active(x.astype(np.float64))))
        dx, dx_ref = to_np(layer.backward(on_active(dy))), to_np(ref.backward(on_active(dy.astype(np.float64))))
        np.testing.assert_allclose(y, y_ref, atol=2e-6 * np.abs(y_ref).max())
        np.testing.assert_allclose(dx, dx_ref, atol=2e-6 * np.abs(dx_ref).max())
        np.testing.assert_allclose(to_np(layer.gamma.grad), to_np(ref.gamma.grad), rtol=1e-5, atol=1e-4)


@needs_numba
def test_fused_path_keeps_nan_in_its_channel_and_takes_strided_input(rng):
    x = rng.standard_normal((64, 3)) + 2
    x[5, 1] = np.nan
    with pytest.warns(nn.NumericalWarning, match=r"channel\(s\) \[1\]"):
        y = nn.BatchNorm1d(3, impl="fused").astype(np.float64)(x)
    assert np.isnan(y[:, 1]).all() and np.isfinite(y[:, [0, 2]]).all()
    xt = rng.standard_normal((5, 40)).T  # (40, 5), not C-contiguous
    a, b = nn.BatchNorm1d(5, impl="fused").astype(np.float64), nn.BatchNorm1d(5, impl="reference").astype(np.float64)
    np.testing.assert_allclose(a(xt), b(xt), rtol=1e-10, atol=1e-12)


@needs_numba
@pytest.mark.parametrize("shape", [(11, 5), (5, 3, 4), (3, 2, 3, 3)])
def test_fused_path_split_into_row_blocks_on_threads_agrees(rng, monkeypatch, shape):
    """Large inputs run as blocks of rows on threads: force that on small ones (3 blocks)."""
    from minibn.kernels import numba_cpu
    monkeypatch.setattr(numba_cpu, "PARALLEL_MIN_SIZE", 0)
    monkeypatch.setattr(numba_cpu, "threads", lambda: 3)
    cls = nn.BatchNorm1d if len(shape) < 4 else nn.BatchNorm2d
    fused, ref = cls(shape[1], impl="fused").astype(np.float64), cls(shape[1], impl="reference").astype(np.float64)
    x, dy = rng.standard_normal(shape) * 4 + 9, rng.standard_normal(shape)
    np.testing.assert_allclose(fused(x), ref(x), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(fused.backward(dy), ref.backward(dy), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(fused.gamma.grad, ref.gamma.grad, rtol=1e-10)
    assert numba_cpu._pool is not None and numba_cpu._pool_size >= 2


def _fused_large_bn_sum(_=None):
    x = np.random.default_rng(0).standard_normal((1024, 600)).astype(np.float32)  # > PARALLEL_MIN_SIZE
    layer = nn.BatchNorm1d(600, impl="fused")
    return float(layer(x).sum() + layer.backward(x).sum())


@needs_numba
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded")  # Python >= 3.12 warns on fork
def test_fused_path_works_in_a_forked_child_after_the_parent_used_its_threads():
    import multiprocessing
    expected = _fused_large_bn_sum()  # the parent's thread pool now exists
    with multiprocessing.get_context("fork").Pool(1) as pool:
        assert pool.apply_async(_fused_large_bn_sum).get(timeout=60) == pytest.approx(expected)


@pytest.mark.parametrize("impl", impls("batch_norm"))
def test_every_implementation_refuses_an_axis_it_does_not_reduce_over(impl):
    forward = dispatch.get("batch_norm", impl).forward
    with pytest.raises(ValueError, match=r"reduces over axes \(0, 2\).*got axis=\(0,\)"):
        forward(np.ones((4, 3, 5)), None, None, 1e-5, (0,))


def test_fused_path_refuses_float16_with_a_clear_error():
    with pytest.raises(TypeError, match="float32 or float64.*float16"):
        nn.BatchNorm1d(3, impl="fused")(np.arange(12, dtype=np.float16).reshape(4, 3))


def test_fused_path_without_numba_says_how_to_get_it(monkeypatch):
    from minibn.kernels import numba_cpu
    monkeypatch.setattr(numba_cpu, "available", lambda: False)
    with pytest.raises(ImportError, match=r"BatchNorm1d: the fused path needs numba.*pip install numba"):
        nn.BatchNorm1d(3, impl="fused")(np.ones((4, 3), np.float32) * np.arange(4, dtype=np.float32)[:, None])
    layer = nn.BatchNorm1d(256)  # auto falls back to the NumPy paths
    layer(np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32))
    assert layer.last_implementation.name == "fast"
    layer(np.random.default_rng(0).standard_normal((8, 256)).astype(np.float32))
    assert layer.last_implementation.name == "reference"


def test_auto_picks_fused_or_fast_for_large_inputs_and_reference_otherwise():
    layer = nn.BatchNorm1d(256)
    layer(np.ones((8, 256), np.float32) + np.arange(8, dtype=np.float32)[:, None])
    assert layer.last_implementation.name == ("fused" if numba_cpu.available() else "reference")
    layer(np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32))  # 65,536 values
    assert layer.last_implementation.name == ("fused" if numba_cpu.available() else "fast")
    layer(np.ones((8, 256), np.float16) + np.arange(8, dtype=np.float16)[:, None])
    assert layer.last_implementation.name == "reference"
    paper = nn.BatchNorm1d(256, backward="paper")
    paper(np.random.default_rng(0).standard_normal((256, 256)).astype(np.float32))
    assert paper.last_implementation.name == "reference"
    with pytest.raises(ValueError, match="impl must be one of"):
        nn.BatchNorm1d(3, impl="turbo")
