"""The compiled paths of a training step against the teaching path: the fused sigmoid, softmax
cross-entropy and SGD update (minibn/kernels/fused_elementwise.py), the sigmoid and the update
bit for bit, the loss to rounding (float64 sums where the reference sums in the logits'
dtype); and BN's running-statistics update in one compiled call
(minibn/kernels/fused_bn.py). The gradients are checked with the other layers'
(minibn.testing's table, tests/test_registry.py)."""

import numpy as np
import pytest

from minibn import dispatch, nn, optim
from minibn import functional as F
from minibn.kernels import fused_bn
from minibn.kernels import fused_elementwise as fe
from tests.helpers import needs_numba

pytestmark = needs_numba


def _awkward(dtype, shape=(7, 13)):
    """Values of every kind the sigmoid meets: both signs, zeros, the far tails, inf and NaN."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal(shape) * 8).astype(dtype)
    x.flat[:8] = [0.0, -0.0, 40.0, -40.0, 100.0, -100.0, np.inf, -np.inf]
    x.flat[8] = np.nan
    return x


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fused_sigmoid_gives_the_references_values_bit_for_bit(dtype):
    x = _awkward(dtype)
    bits = np.uint32 if dtype == np.float32 else np.uint64  # NaN's sign bit included
    for arg in (x, x.T, x.reshape(7, 13, 1)):  # contiguous, transposed (a copy is taken), 3-d
        with np.errstate(over="ignore"):
            y_ref, _ = F.sigmoid_forward(arg)
        y, cache = fe.sigmoid_forward_fused(arg)
        assert y.shape == arg.shape and y.dtype == dtype
        np.testing.assert_array_equal(y.view(bits), y_ref.view(bits))
        assert cache is y
    assert fe.sigmoid_forward_fused(np.array([-40.0], dtype))[0][0] > 0  # the tail keeps its relative precision


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fused_relu_gives_the_references_values_bit_for_bit(dtype):
    x = _awkward(dtype)
    bits = np.uint32 if dtype == np.float32 else np.uint64  # -0 and +0 differ in their bits
    dy = np.random.default_rng(8).standard_normal(x.shape).astype(dtype)
    dy.flat[:3] = [np.inf, -2.0, np.nan]
    for arg in (x, x.T):
        with np.errstate(invalid="ignore"):  # -inf * 0 is NaN in both
            y_ref, mask = F.relu_forward(arg)
        y, cache = fe.relu_forward_fused(arg)
        np.testing.assert_array_equal(y.view(bits), y_ref.view(bits))
        d = np.ascontiguousarray(dy if arg is x else dy.T)
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(fe.relu_backward_fused(d, cache).view(bits),
                                          F.relu_backward(d, mask).view(bits))


def test_the_fused_relu_backward_promotes_a_dy_of_another_dtype_as_the_reference_does():
    x = np.random.default_rng(9).standard_normal((4, 5)).astype(np.float32)
    y, cache = fe.relu_forward_fused(x)
    dy = np.random.default_rng(10).standard_normal((4, 5))  # float64
    dx = fe.relu_backward_fused(dy, cache)
    expected = F.relu_backward(dy, F.relu_forward(x)[1])
    assert dx.dtype == expected.dtype == np.float64
    np.testing.assert_array_equal(dx, expected)


@pytest.mark.parametrize("y_dtype, dy_dtype", [(np.float32, np.float32), (np.float64, np.float64),
                                               (np.float32, np.float64)])
def test_the_fused_sigmoid_backward_gives_the_references_values(y_dtype, dy_dtype):
    rng = np.random.default_rng(1)
    y, _ = F.sigmoid_forward(rng.standard_normal((5, 6)).astype(y_dtype))
    dy = rng.standard_normal((5, 6)).astype(dy_dtype)
    dy.flat[0], y.flat[1] = np.nan, np.nan
    dx = fe.sigmoid_backward_fused(dy, y)
    expected = F.sigmoid_backward(dy, y)
    assert dx.dtype == expected.dtype
    bits = np.uint32 if dx.dtype == np.float32 else np.uint64
    np.testing.assert_array_equal(dx.view(bits), expected.view(bits))


@pytest.mark.parametrize("dtype, rtol", [(np.float32, 2e-6), (np.float64, 1e-13)])
def test_the_fused_loss_agrees_with_the_reference(dtype, rtol):
    rng = np.random.default_rng(2)
    for scale in (1.0, 30.0, 1e4):  # a scale of 1e4: the max must be subtracted
        logits = (rng.standard_normal((9, 5)) * scale).astype(dtype)
        labels = rng.integers(0, 5, 9)
        loss_ref, cache_ref = F.softmax_cross_entropy_forward(logits, labels)
        loss, cache = fe.softmax_cross_entropy_forward_fused(logits, labels)
        assert type(loss) is dtype and np.isfinite(loss)
        np.testing.assert_allclose(loss, loss_ref, rtol=rtol, atol=rtol)
        dloss = 0.7
        np.testing.assert_allclose(fe.softmax_cross_entropy_backward_fused(cache, dloss),
                                   F.softmax_cross_entropy_backward(cache_ref, dloss), rtol=rtol, atol=rtol / 9)


def test_the_fused_loss_matches_pytorch_in_float64(torch):
    rng = np.random.default_rng(3)
    logits, labels = rng.standard_normal((8, 4)) * 3, rng.integers(0, 4, 8)
    loss, cache = fe.softmax_cross_entropy_forward_fused(logits, labels)
    t = torch.tensor(logits, requires_grad=True)
    expected = torch.nn.functional.cross_entropy(t, torch.tensor(labels))
    dloss = rng.standard_normal()
    (expected * dloss).backward()
    np.testing.assert_allclose(loss, expected.item(), rtol=1e-13)
    np.testing.assert_allclose(fe.softmax_cross_entropy_backward_fused(cache, dloss), t.grad.numpy(), rtol=1e-12)


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_a_label_out_of_range_makes_the_loss_and_its_row_nan(impl):
    implementation = dispatch.get("softmax_cross_entropy", impl)
    logits = np.random.default_rng(4).standard_normal((4, 3)).astype(np.float32)
    loss, cache = implementation.forward(logits, np.array([0, 3, 1, -1]))
    assert np.isnan(loss)
    dlogits = implementation.backward_function(cache, 1.0)
    assert np.isnan(dlogits[[1, 3]]).any(axis=1).all() and np.isfinite(dlogits[[0, 2]]).all()


@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_the_layer_names_the_bad_labels_whatever_the_implementation(impl):
    loss_fn = nn.SoftmaxCrossEntropy(impl=impl)
    logits = np.zeros((4, 3), np.float32)
    with pytest.raises(ValueError, match=r"labels must be class ids in \[0, 3\), got \[-1, 3\] at rows \[1, 3\]"):
        loss_fn(logits, np.array([0, 3, 1, -1]))
    assert np.isnan(loss_fn(np.full((2, 3), np.nan, np.float32), np.array([0, 1])))  # NaN logits: no label error


def test_an_unknown_impl_is_refused_naming_the_choices():
    with pytest.raises(ValueError, match=r"ReLU: impl must be one of \('auto', 'fused', 'reference'\), got 'x'"):
        nn.ReLU(impl="x")
    with pytest.raises(ValueError, match=r"Sigmoid: impl must be one of \('auto', 'fused', 'reference'\), got 'x'"):
        nn.Sigmoid(impl="x")
    with pytest.raises(ValueError, match=r"SoftmaxCrossEntropy: impl must be one of .*got 'x'"):
        nn.SoftmaxCrossEntropy(impl="x")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_fused_sgd_step_gives_numpys_values(dtype):
    rng = np.random.default_rng(5)
    model = nn.Sequential(nn.Linear(7, 5, dtype=dtype), nn.BatchNorm1d(5, dtype=dtype), nn.Linear(5, 3, dtype=dtype))
    opt = optim.SGD(model.parameters(), lr=0.3)
    for p in opt.params:
        p.grad = rng.standard_normal(p.shape).astype(dtype)
    expected = [p.data - np.asarray(0.3, dtype) * p.grad for p in opt.params]
    assert fe.sgd_step_applies(opt._values.array, opt._grads.array)
    opt.step()
    for p, e in zip(opt.params, expected):
        np.testing.assert_array_equal(p.data, e)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_the_compiled_running_update_agrees_with_the_reference(dtype):
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((7, 5)) * 3 + 2).astype(dtype)
    _, cache = fused_bn.batch_norm_forward_fused(x, np.ones(5, dtype), np.zeros(5, dtype))
    mean, var = rng.standard_normal(5).astype(dtype), rng.uniform(0.5, 2, 5).astype(dtype)
    expected_mean, expected_var = mean.copy(), var.copy()
    F.update_running_stats(expected_mean, expected_var, cache["mu_B"], cache["var_B"], 7, 0.3)
    assert fused_bn.update_running_stats_fused(mean, var, cache, 0.3, np.inf, False)
    rtol = 1e-6 if dtype == np.float32 else 1e-14
    np.testing.assert_allclose(mean, expected_mean, rtol=rtol)
    np.testing.assert_allclose(var, expected_var, rtol=rtol)


@pytest.mark.parametrize("var_B, limit, eps_is_zero", [([1.0, np.nan, 2.0], np.inf, False),
                                                       ([1.0, np.inf, 2.0], np.inf, False),
                                                       ([1.0, 5.0, 2.0], 4.0, False),
                                                       ([1.0, 0.0, 2.0], np.inf, True)])
def test_the_compiled_running_update_leaves_an_unusable_batch_to_the_layer(var_B, limit, eps_is_zero):
    """NaN, inf, a variance the buffer cannot hold, a constant channel with eps = 0: nothing
    changes and it says so (the layer then warns, naming the channels)."""
    cache = {"mu_B": np.zeros(3), "var_B": np.array(var_B), "m": 4}
    mean, var = np.ones(3, np.float32), np.ones(3, np.float32)
    assert not fused_bn.update_running_stats_fused(mean, var, cache, 0.1, limit, eps_is_zero)
    np.testing.assert_array_equal(mean, 1)
    np.testing.assert_array_equal(var, 1)


def test_the_layer_still_warns_and_keeps_the_channels_the_compiled_update_refuses():
    bn = nn.BatchNorm1d(3, impl="fused")
    x = np.random.default_rng(7).standard_normal((6, 3)).astype(np.float32)
    x[2, 1] = np.nan
    with pytest.warns(nn.NumericalWarning, match=r"NaN or inf values in channel\(s\) \[1\]"):
        bn(x)
    assert np.isfinite(bn.running_mean).all() and bn.running_mean[1] == 0 and bn.running_var[1] == 1
    assert bn.running_mean[0] != 0 and bn.num_batches_tracked == 1
