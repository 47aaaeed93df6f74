"""TransNorm (official-code semantics) and GradientReversal."""

import numpy as np
import pytest

from minibn import nn
from tests.helpers import on_active, to_np


def reference(x, gamma, beta, eps):
    """The official formulas, written out independently in float64 for (N, C) input."""
    n_s = x.shape[0] // 2
    xs, xt = x[:n_s], x[n_s:]
    zs = gamma * (xs - xs.mean(0)) / np.sqrt(xs.var(0) + eps) + beta
    zt = gamma * (xt - xt.mean(0)) / np.sqrt(xt.var(0) + eps) + beta
    d = np.abs(xs.mean(0) / np.sqrt(xs.var(0, ddof=1) + eps) - xt.mean(0) / np.sqrt(xt.var(0, ddof=1) + eps))
    alpha = x.shape[1] * (1 / (1 + d)) / np.sum(1 / (1 + d))
    return np.concatenate([zs, zt]) * (1 + alpha), alpha


@pytest.mark.parametrize("N", [8, 9])
def test_forward_matches_an_independent_reference(backend_name, rng, N):
    C = 5
    x = rng.standard_normal((N, C)) * rng.uniform(0.5, 3, C) + rng.standard_normal(C) * 2
    x[N // 2:] += rng.standard_normal(C)  # the target half is shifted
    layer = nn.TransNorm1d(C).astype(np.float64)
    g, b = rng.uniform(0.5, 1.5, C), rng.standard_normal(C)
    layer.gamma.data, layer.beta.data = on_active(g), on_active(b)
    y = to_np(layer(on_active(x)))
    y_ref, alpha_ref = reference(x, g, b, 1e-5)
    np.testing.assert_allclose(y, y_ref, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_np(layer.last_alpha), alpha_ref, rtol=1e-12)
    assert to_np(layer.last_alpha).sum() == pytest.approx(C)  # alpha averages to 1 over channels
    n_s = N // 2  # the odd row goes to the target half, as in the official code
    np.testing.assert_allclose(to_np(layer.running_mean_source), 0.1 * x[:n_s].mean(0), rtol=1e-12)
    np.testing.assert_allclose(to_np(layer.running_mean_target), 0.1 * x[n_s:].mean(0), rtol=1e-12)
    np.testing.assert_allclose(to_np(layer.running_var_target), 0.9 + 0.1 * x[n_s:].var(0, ddof=1), rtol=1e-12)


def test_identical_halves_give_batchnorm_times_two(backend_name, rng):
    """d = 0 in every channel, so alpha = 1 and y = (1 + 1) * BN(x)."""
    half = rng.standard_normal((6, 4)) * 3 + 1
    x = np.concatenate([half, half])
    tn = nn.TransNorm1d(4).astype(np.float64)
    bn = nn.BatchNorm1d(4).astype(np.float64)
    np.testing.assert_allclose(to_np(tn(on_active(x))), np.concatenate([2 * to_np(bn(on_active(half)))] * 2),
                               rtol=1e-12)
    np.testing.assert_allclose(to_np(tn.last_alpha), np.ones(4))
    dy = rng.standard_normal((6, 4))
    dx = to_np(tn.backward(on_active(np.concatenate([dy, dy]))))
    dx_bn = to_np(bn.backward(on_active(2 * dy)))
    np.testing.assert_allclose(dx, np.concatenate([dx_bn, dx_bn]), rtol=1e-10, atol=1e-12)


def test_eval_uses_target_statistics_and_alpha_from_both_domains(rng):
    layer = nn.TransNorm2d(3, eps=0.0).astype(np.float64).eval()
    ms, vs, mt, vt = rng.standard_normal(3), rng.uniform(1, 2, 3), rng.standard_normal(3), rng.uniform(1, 2, 3)
    layer.running_mean_source, layer.running_var_source = ms, vs
    layer.running_mean_target, layer.running_var_target = mt, vt
    x = rng.standard_normal((1, 3, 2, 2))  # a batch of one is fine in eval
    d = np.abs(ms / np.sqrt(vs) - mt / np.sqrt(vt))
    alpha = 3 / (1 + d) / np.sum(1 / (1 + d))
    expected = (x - mt.reshape(1, 3, 1, 1)) / np.sqrt(vt).reshape(1, 3, 1, 1) * (1 + alpha).reshape(1, 3, 1, 1)
    np.testing.assert_allclose(layer(x), expected, rtol=1e-12)


def test_fixed_alpha_one_is_the_papers_ablation(rng):
    layer = nn.TransNorm1d(3).astype(np.float64)
    layer.fixed_alpha = 1.0
    x = rng.standard_normal((8, 3))
    y_ref = np.concatenate([(h - h.mean(0)) / np.sqrt(h.var(0) + 1e-5) for h in (x[:4], x[4:])]) * 2
    np.testing.assert_allclose(layer(x), y_ref, rtol=1e-12)


@pytest.mark.parametrize("shape", [(3, 4), (1, 4), (2, 4)])
def test_too_few_samples_per_half_is_an_error(shape):
    with pytest.raises(ValueError, match="at least 2 values per channel in each half"):
        nn.TransNorm1d(4)(np.ones(shape, np.float32))


def test_transnorm2d_accepts_one_image_per_half(rng):
    y = nn.TransNorm2d(2)(rng.standard_normal((2, 2, 3, 3)).astype(np.float32))  # 9 values per channel per half
    assert np.isfinite(y).all()


def test_gradient_reversal(backend_name, rng):
    grl = nn.GradientReversal(0.3)
    x = on_active(rng.standard_normal((4, 5)))
    assert grl(x) is x
    dy = rng.standard_normal((4, 5))
    np.testing.assert_allclose(to_np(grl.backward(on_active(dy))), -0.3 * dy)
    with pytest.raises(ValueError, match="scale must be >= 0"):
        nn.GradientReversal(-1)
