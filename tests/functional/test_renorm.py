"""Batch Renormalization: BN when r_max = 1 and d_max = 0; r, d as constants in the backward."""

import numpy as np
import pytest

from minibn import dispatch, nn, optim
from minibn.gradcheck import check_function
from tests.helpers import impls, needs_numba, on_active, skip_unless_runs_here, to_np

IMPLS = impls("batch_renorm")


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("cls, shape", [(nn.BatchRenorm1d, (8, 3)), (nn.BatchRenorm1d, (4, 3, 5)),
                                        (nn.BatchRenorm2d, (3, 3, 4, 4))])
def test_r_max_1_d_max_0_is_batchnorm(backend_name, rng, cls, shape, impl):
    skip_unless_runs_here("batch_renorm", impl)
    C = shape[1]
    brn = cls(C, r_max=1.0, d_max=0.0, impl=impl).astype(np.float64)
    bn = (nn.BatchNorm1d if cls is nn.BatchRenorm1d else nn.BatchNorm2d)(C, impl="reference").astype(np.float64)
    g, b = on_active(rng.uniform(0.5, 2, C)), on_active(rng.standard_normal(C))
    brn.gamma.data, brn.beta.data, bn.gamma.data, bn.beta.data = g, b, g.copy(), b.copy()
    brn.running_mean, brn.running_std = on_active(rng.standard_normal(C) * 3), on_active(rng.uniform(0.1, 9, C))
    x = on_active(rng.standard_normal(shape) * 4 + 2)
    dy = on_active(rng.standard_normal(shape))
    np.testing.assert_allclose(to_np(brn(x)), to_np(bn(x)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_np(brn.backward(dy)), to_np(bn.backward(dy)), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(to_np(brn.gamma.grad), to_np(bn.gamma.grad), rtol=1e-10)
    np.testing.assert_allclose(to_np(brn.beta.grad), to_np(bn.beta.grad), rtol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_forward_matches_the_formula_and_uses_statistics_before_the_update(rng, impl):
    x = rng.standard_normal((16, 4)) * 3 + 1
    mu, sigma = rng.standard_normal(4), rng.uniform(1, 5, 4)
    layer = nn.BatchRenorm1d(4, r_max=2.0, d_max=0.3, momentum=0.5, impl=impl).astype(np.float64)
    layer.running_mean, layer.running_std = mu.copy(), sigma.copy()
    y = layer(x)
    mu_B, sigma_B = x.mean(0), np.sqrt(x.var(0) + 1e-5)
    r = np.clip(sigma_B / sigma, 0.5, 2.0)
    d = np.clip((mu_B - mu) / sigma, -0.3, 0.3)
    np.testing.assert_allclose(y, (x - mu_B) / sigma_B * r + d, rtol=1e-12)
    np.testing.assert_allclose(layer.last_r, r)
    np.testing.assert_allclose(layer.running_mean, 0.5 * mu + 0.5 * mu_B)  # updated after r, d
    np.testing.assert_allclose(layer.running_std, 0.5 * sigma + 0.5 * sigma_B)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("shape, axis", [((7, 3), (0,)), ((2, 3, 4), (0, 2)), ((2, 3, 3, 2), (0, 2, 3))])
def test_gradcheck_with_r_and_d_frozen(backend_name, rng, shape, axis, impl):
    """Unclipped r and d depend on x; the backward treats them as constants, so the
    finite difference must hold them fixed at their values to check that function."""
    skip_unless_runs_here("batch_renorm", impl)
    implementation = dispatch.get("batch_renorm", impl)
    forward, backward = implementation.forward, implementation.backward
    C = shape[1]
    x = on_active(rng.standard_normal(shape) * 3 + 5)
    g, b = on_active(rng.uniform(0.5, 2, C)), on_active(rng.standard_normal(C))
    mu, sigma = on_active(5 + rng.standard_normal(C) * 0.5), on_active(rng.uniform(2, 4, C))
    _, cache = forward(x, g, b, mu, sigma, 3.0, 5.0, 1e-5, axis)
    r, d = cache["r"], cache["d"]
    assert np.all((to_np(r) > 1 / 3) & (to_np(r) < 3))  # really unclipped
    assert np.all(np.abs(to_np(d)) < 5) and np.any(to_np(d) != 0)
    check_function(lambda x, g, b: forward(x, g, b, mu, sigma, 3.0, 5.0, 1e-5, axis, r=r, d=d),
                   backward, {"x": x, "gamma": g, "beta": b})


@needs_numba
@pytest.mark.parametrize("cls, shape", [(nn.BatchRenorm1d, (9, 3)), (nn.BatchRenorm2d, (3, 3, 4, 4))])
@pytest.mark.parametrize("affine", [True, False])
def test_fused_and_reference_agree_over_steps(rng, cls, shape, affine):
    """Unclipped and clipped r and d, running statistics over three steps, all gradients."""
    C = shape[1]
    a = cls(C, r_max=1.5, d_max=0.5, momentum=0.3, affine=affine, impl="fused").astype(np.float64)
    b = cls(C, r_max=1.5, d_max=0.5, momentum=0.3, affine=affine, impl="reference").astype(np.float64)
    if affine:
        g, beta = rng.uniform(0.5, 2, C), rng.standard_normal(C)
        a.gamma.data, a.beta.data, b.gamma.data, b.beta.data = g, beta, g.copy(), beta.copy()
    for _ in range(3):
        x, dy = rng.standard_normal(shape) * 3 + 2, rng.standard_normal(shape)
        np.testing.assert_allclose(a(x), b(x), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a.backward(dy), b.backward(dy), rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(a.last_r, b.last_r, rtol=1e-12)
        np.testing.assert_allclose(a.last_d, b.last_d, rtol=1e-12, atol=1e-14)
    if affine:
        np.testing.assert_allclose(a.gamma.grad, b.gamma.grad, rtol=1e-10)
        np.testing.assert_allclose(a.beta.grad, b.beta.grad, rtol=1e-10)
    np.testing.assert_allclose(a.running_mean, b.running_mean, rtol=1e-12)
    np.testing.assert_allclose(a.running_std, b.running_std, rtol=1e-12)
    with pytest.raises(ValueError, match="impl must be one of"):
        cls(C, impl="fast")


def test_inference_uses_moving_statistics_with_eps_once(rng):
    layer = nn.BatchRenorm1d(3, eps=0.5).astype(np.float64).eval()
    layer.running_mean, layer.running_std = np.array([1.0, 2, 3]), np.array([2.0, 4, 8])
    x = rng.standard_normal((1, 3))  # a batch of one is fine in eval
    np.testing.assert_allclose(layer(x), (x - layer.running_mean) / layer.running_std)


@pytest.mark.parametrize("kw, match", [(dict(r_max=0.5), "r_max must be >= 1"), (dict(d_max=-1), "d_max must be >= 0")])
def test_bad_r_max_d_max(kw, match):
    with pytest.raises(ValueError, match=match):
        nn.BatchRenorm1d(3, **kw)
    layer = nn.BatchRenorm1d(3)
    with pytest.raises(ValueError, match=match):
        optim.Scheduler([layer], next(iter(kw)), optim.Constant(next(iter(kw.values()))), 10).step()


def test_renorm_schedule_is_bn_first_then_relaxed_to_3_and_5():
    layer = nn.BatchRenorm1d(3)
    r_sched, d_sched = nn.renorm_schedulers([layer], total_steps=1000)
    seen = []
    for _ in range(1000):
        seen.append((r_sched.step(), d_sched.step()))
    assert seen[0] == (1.0, 0.0) and seen[39] == (1.0, 0.0)  # plain BN for the first 4%
    assert 1 < seen[200][0] < 3 and 0 < seen[150][1] < 5
    assert seen[999] == (3.0, 5.0) and layer.r_max == 3.0 and layer.d_max == 5.0
