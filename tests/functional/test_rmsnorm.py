"""RMSNorm (Zhang & Sennrich 2019): what is particular to it. Scaling a sample does not change
its output, nothing is subtracted (so a shift does), and on a sample of mean zero it is
LayerNorm; its default eps is PyTorch's.

(Its gradient check, bad-input checks and float64 PyTorch comparison come from its
registration: tests/test_registry.py.)"""

import numpy as np
import pytest

from minibn import functional as F
from minibn import nn
from tests.helpers import on_active, to_np


def _rms_norm(shape, **kwargs):
    """An RMSNorm in float64 with a gamma that is not all ones."""
    layer = nn.RMSNorm(shape, **kwargs).astype(np.float64)
    if layer.gamma is not None:
        layer.gamma.data[...] = on_active(np.linspace(0.5, 1.5, layer.gamma.data.size).reshape(layer.gamma.shape))
    return layer


def test_scaling_a_sample_does_not_change_its_output(backend_name, rng):
    """RMS(c x) = |c| RMS(x) (with eps = 0): the output depends on a sample's direction only,
    each sample with its own scale; a negative c flips the sign."""
    layer = _rms_norm((3, 4), eps=0.0)
    x = rng.standard_normal((5, 3, 4)) * 3 + 2
    scales = np.array([0.01, 0.5, 7.0, 1e3, -2.0]).reshape(5, 1, 1)
    y, y_scaled = to_np(layer(on_active(x))), to_np(layer(on_active(scales * x)))
    np.testing.assert_allclose(y_scaled, np.sign(scales) * y, rtol=1e-12, atol=1e-12)


def test_no_mean_is_subtracted_so_a_shift_changes_the_output_where_layernorm_ignores_it(rng):
    x = rng.standard_normal((4, 6))
    rms, ln = _rms_norm(6, eps=1e-5), nn.LayerNorm(6, eps=1e-5).astype(np.float64)
    np.testing.assert_allclose(ln(x + 5.0), ln(x), rtol=1e-9, atol=1e-9)
    assert np.abs(rms(x + 5.0) - rms(x)).max() > 0.1
    y = F.rms_norm_forward(x + 5.0, None, 1, eps=0.0)[0]  # without gamma: x / RMS(x)
    np.testing.assert_allclose((y ** 2).mean(axis=1), 1.0, rtol=1e-12)  # a unit root mean square ...
    assert np.all(y.mean(axis=1) > 0.9)  # ... and the mean kept: every row stays far from centred


def test_on_samples_of_mean_zero_it_is_layernorm_without_beta(backend_name, rng):
    """With each sample's mean 0 its variance is its mean square: the outputs agree (LayerNorm
    with the same gamma and beta = 0), and so does dgamma. dx does not: LayerNorm is RMSNorm
    after centring, x -> x - mean(x), so its dx is RMSNorm's with the sample's mean removed
    (the centring's derivative), the one thing dropping the mean changes here."""
    x = rng.standard_normal((5, 2, 3)) * 4
    x -= x.mean(axis=(1, 2), keepdims=True)
    dy = rng.standard_normal(x.shape)
    rms = _rms_norm((2, 3), eps=1e-5)
    ln = nn.LayerNorm((2, 3), eps=1e-5).astype(np.float64)
    ln.gamma.data[...] = rms.gamma.data
    x, dy = on_active(x), on_active(dy)
    np.testing.assert_allclose(to_np(rms(x)), to_np(ln(x)), rtol=1e-10, atol=1e-12)
    dx_rms, dx_ln = to_np(rms.backward(dy)), to_np(ln.backward(dy))
    np.testing.assert_allclose(dx_ln, dx_rms - dx_rms.mean(axis=(1, 2), keepdims=True), rtol=1e-8, atol=1e-11)
    assert np.abs(dx_rms.mean(axis=(1, 2))).min() > 1e-3  # so the two dx really differ
    np.testing.assert_allclose(to_np(rms.gamma.grad), to_np(ln.gamma.grad), rtol=1e-10, atol=1e-12)
    assert rms.beta is None


@pytest.mark.parametrize("dtype, machine", [("float64", np.float64), ("float32", np.float32),
                                            ("float16", np.float32)])
def test_the_default_eps_is_the_machine_epsilon_of_the_computation(dtype, machine):
    """PyTorch's eps=None: float64's epsilon for float64 inputs, float32's for float32 and float16."""
    assert F.rms_norm_eps(dtype) == np.finfo(machine).eps
    layer = nn.RMSNorm(4)
    assert layer.eps is None
    x = np.zeros((2, 4), dtype)  # RMS(0) = sqrt(eps): eps > 0 keeps a zero sample at zero, not NaN
    assert np.array_equal(layer.astype(dtype)(x), x)
    explicit = nn.RMSNorm(4, eps=float(np.finfo(machine).eps)).astype(dtype)
    x = (np.arange(8).reshape(2, 4) * 1e-4).astype(dtype)
    np.testing.assert_array_equal(layer(x), explicit(x))


@pytest.mark.parametrize("eps", [-1e-5, "1e-5", True, float("nan")])
def test_a_bad_eps_is_refused_naming_it(eps):
    with pytest.raises(ValueError, match=rf"RMSNorm: eps must be a number >= 0, got {eps!r}"):
        nn.RMSNorm(4, eps=eps)


@pytest.mark.parametrize("shape", [0, -2, (3, 0), 2.5])
def test_a_bad_normalized_shape_is_refused_naming_it(shape):
    with pytest.raises(ValueError, match=r"RMSNorm: normalized_shape must be a positive integer"):
        nn.RMSNorm(shape)
