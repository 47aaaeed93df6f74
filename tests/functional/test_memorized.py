"""Memorized BN: Eq. 5-8, BN as a special case, inference from the memory, double-forward."""

import copy
import warnings

import numpy as np
import pytest

from minibn import functional as F
from minibn import nn, optim
from minibn.train import second_forward
from tests.helpers import impls, needs_numba, on_active, skip_unless_runs_here, to_np

IMPLS = impls("memorized_batch_norm")


def fill(layer, batches):
    layer.train()
    for b in batches:
        layer(on_active(b))


@pytest.mark.parametrize("kw", [dict(lam=0.0, memory_size=3), dict(memory_size=0, lam=0.9)])
@pytest.mark.parametrize("cls, bn_cls, shape", [(nn.MemorizedBatchNorm1d, nn.BatchNorm1d, (8, 3)),
                                                (nn.MemorizedBatchNorm2d, nn.BatchNorm2d, (3, 3, 2, 2))])
@pytest.mark.parametrize("impl", IMPLS)
def test_lam_0_or_no_memory_is_batchnorm(backend_name, rng, kw, cls, bn_cls, shape, impl):
    skip_unless_runs_here("memorized_batch_norm", impl)
    mbn = cls(3, impl=impl, **kw).astype(np.float64)
    bn = bn_cls(3, impl="reference").astype(np.float64)
    fill(mbn, [rng.standard_normal(shape) * 2 + 7 for _ in range(4)])  # memory is used only via lam
    x, dy = on_active(rng.standard_normal(shape) * 3 + 1), on_active(rng.standard_normal(shape))
    np.testing.assert_allclose(to_np(mbn(x)), to_np(bn(x)), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(to_np(mbn.backward(dy)), to_np(bn.backward(dy)), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(to_np(mbn.gamma.grad), to_np(bn.gamma.grad), rtol=1e-10)


@pytest.mark.parametrize("impl", IMPLS)
def test_statistics_equal_eq5_over_the_concatenated_batches(rng, impl):
    """mu_hat, var_hat of Eq. 6 (from stored statistics) = Eq. 5 computed from the raw
    values of all batches, weighted alpha_i = lam * eta^(k-i) and 1 for the current one."""
    lam, eta = 0.7, 0.8
    layer = nn.MemorizedBatchNorm1d(2, memory_size=3, lam=lam, eta=eta, impl=impl).astype(np.float64)
    old = [rng.standard_normal((n, 2)) * s + o for n, s, o in [(5, 1, 0), (9, 2, 3), (4, 0.5, -2), (6, 3, 1)]]
    fill(layer, old)  # four batches through a memory of three: the first is dropped
    assert layer.memory_len == 3
    x = rng.standard_normal((7, 2)) * 2 + 4
    layer(x)
    cache = layer._cache
    kept = old[1:]
    weights = [lam * eta ** (2 - i) for i in range(3)] + [1.0]
    vals = np.concatenate(kept + [x])
    w = np.concatenate([np.full(len(b), a) for b, a in zip(kept + [x], weights)])[:, None]
    mu = (w * vals).sum(0) / w.sum()
    var = (w * (vals - mu) ** 2).sum(0) / w.sum()
    np.testing.assert_allclose(cache["mu_hat"], mu, rtol=1e-12)
    np.testing.assert_allclose(cache["var_hat"], var, rtol=1e-12)
    np.testing.assert_allclose(layer.memory()[0][-1], x.mean(0))  # pushed after use (no double-forward)


def test_inference_pools_the_memory_with_eta_weights(rng):
    layer = nn.MemorizedBatchNorm1d(2, memory_size=4, lam=0.3, eta=0.5, eps=0.0).astype(np.float64)
    batches = [rng.standard_normal((6, 2)) * (i + 1) for i in range(3)]
    fill(layer, batches)
    layer.eval()
    x = rng.standard_normal((1, 2))
    vals = np.concatenate(batches)
    w = np.concatenate([np.full(6, 0.5 ** (2 - i)) for i in range(3)])[:, None]  # lam cancels
    mu = (w * vals).sum(0) / w.sum()
    var = (w * (vals - mu) ** 2).sum(0) / w.sum()
    np.testing.assert_allclose(layer(x), (x - mu) / np.sqrt(var), rtol=1e-10)


def test_empty_memory_in_eval_is_a_clear_error():
    with pytest.raises(RuntimeError, match="the memory is empty"):
        nn.MemorizedBatchNorm1d(3).eval()(np.ones((2, 3), np.float32))


def test_double_forward_trained_without_the_second_pass_is_named_at_fit_and_in_eval(rng):
    """A layer built with double_forward=True and trained by a fit without it kept an empty
    memory, silently; eval mode then said "train before using eval mode" to a user who had."""
    from minibn.train import fit

    model = nn.Sequential(nn.Linear(4, 3), nn.MemorizedBatchNorm1d(3, double_forward=True))
    x, y = on_active(rng.standard_normal((8, 4)).astype(np.float32)), on_active(np.arange(8) % 3)
    with pytest.warns(UserWarning, match=r"MemorizedBatchNorm1d built with double_forward=True .* pass "
                                         r"fit\(\.\.\., double_forward=True\)"):
        fit(model, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1), iter([(x, y)] * 2), 2,
            progress=False)
    assert model[1].memory_len == 0
    model.eval()
    with pytest.raises(RuntimeError, match=r"records only in the second forward .* double_forward=True\), or call "
                                           r"minibn.train.second_forward"):
        model(x)
    model.train()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # with the second pass, nothing to warn about
        fit(model, nn.SoftmaxCrossEntropy(), optim.SGD(model.parameters(), lr=0.1), iter([(x, y)] * 2), 2,
            progress=False, double_forward=True)
    assert model[1].memory_len == 2


@pytest.mark.parametrize("impl", IMPLS)
def test_a_batch_of_one_is_fine_once_the_memory_holds_statistics(rng, impl):
    layer = nn.MemorizedBatchNorm1d(3, lam=0.5, impl=impl)
    with pytest.raises(ValueError, match="more than 1 value per channel"):
        layer(np.ones((1, 3), np.float32))
    fill(layer, [rng.standard_normal((4, 3)).astype(np.float32)])
    assert np.isfinite(layer(np.ones((1, 3), np.float32))).all()


@needs_numba
@pytest.mark.parametrize("cls, shape", [(nn.MemorizedBatchNorm1d, (9, 3)), (nn.MemorizedBatchNorm2d, (3, 3, 4, 4))])
@pytest.mark.parametrize("affine", [True, False])
def test_fused_and_reference_agree_as_the_memory_fills(rng, cls, shape, affine):
    a = cls(3, memory_size=2, lam=0.6, eta=0.7, affine=affine, impl="fused").astype(np.float64)
    b = cls(3, memory_size=2, lam=0.6, eta=0.7, affine=affine, impl="reference").astype(np.float64)
    if affine:
        g, beta = rng.uniform(0.5, 2, 3), rng.standard_normal(3)
        a.gamma.data, a.beta.data, b.gamma.data, b.beta.data = g, beta, g.copy(), beta.copy()
    for step in range(4):  # memory empty, 1 entry, full, full with the oldest dropped
        x, dy = rng.standard_normal(shape) * (step + 1) + 3 * step, rng.standard_normal(shape)
        np.testing.assert_allclose(a(x), b(x), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(a.backward(dy), b.backward(dy), rtol=1e-9, atol=1e-12)
        for buf in ("memory_mean", "memory_var", "memory_count"):
            np.testing.assert_allclose(getattr(a, buf), getattr(b, buf), rtol=1e-12, atol=1e-14)
    if affine:
        np.testing.assert_allclose(a.gamma.grad, b.gamma.grad, rtol=1e-10)
        np.testing.assert_allclose(a.beta.grad, b.beta.grad, rtol=1e-10)
    with pytest.raises(ValueError, match="impl must be one of"):
        cls(3, impl="fast")


def test_double_forward_records_post_update_statistics(backend_name, rng):
    """With double_forward the training forward does not push; second_forward (after the
    optimizer step) pushes the statistics of the layer input under the updated weights,
    and leaves the other BN layers' running statistics alone."""
    model = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3), nn.Sigmoid(), nn.Linear(3, 3, bias=False),
                          nn.MemorizedBatchNorm1d(3, memory_size=2, lam=0.5, double_forward=True)).astype(np.float64)
    x = on_active(rng.standard_normal((10, 4)))
    mbn = model[4]
    opt = optim.SGD(model.parameters(), lr=0.5)
    y = model(x)
    assert mbn.memory_len == 0  # nothing pushed by the training forward
    bn_stats = (to_np(model[1].running_mean).copy(), to_np(model[1].running_var).copy())
    model.backward(on_active(rng.standard_normal(y.shape)))
    opt.step()
    second_forward(model, x)
    assert mbn.memory_len == 1
    probe = copy.deepcopy(model)  # the MBN input under the updated weights, BN in training mode
    h = to_np(probe[3](probe[2](probe[1](probe[0](x)))))
    assert np.abs(h.mean(0)).min() > 1e-3  # a real test: the statistics are far from zero
    np.testing.assert_allclose(to_np(mbn.memory()[0][-1]), h.mean(0), rtol=1e-10)
    np.testing.assert_allclose(to_np(mbn.memory()[1][-1]), h.var(0), rtol=1e-10)
    np.testing.assert_array_equal(to_np(model[1].running_mean), bn_stats[0])  # untouched by the 2nd pass
    np.testing.assert_array_equal(to_np(model[1].running_var), bn_stats[1])


def test_without_double_forward_the_memory_holds_pre_update_statistics(rng):
    lin = nn.Linear(4, 3, bias=False).astype(np.float64)
    mbn = nn.MemorizedBatchNorm1d(3, memory_size=2, lam=0.5).astype(np.float64)
    model = nn.Sequential(lin, mbn)
    x = rng.standard_normal((10, 4))
    before = x @ lin.weight.data.T
    y = model(x)
    model.backward(rng.standard_normal(y.shape))
    optim.SGD(model.parameters(), lr=0.5).step()
    np.testing.assert_allclose(mbn.memory()[0][-1], before.mean(0), rtol=1e-12)


@pytest.mark.parametrize("kw, match", [(dict(memory_size=-1), "memory_size must be an integer >= 0"),
                                       (dict(eta=0.0), r"eta must be in \(0.0, 1.0\]"),
                                       (dict(eta=1.5), r"eta must be in \(0.0, 1.0\]"),
                                       (dict(lam=-0.1), r"lam must be in \[0.0, 1.0\]"),
                                       (dict(lam=1.1), r"lam must be in \[0.0, 1.0\]")])
def test_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        nn.MemorizedBatchNorm1d(3, **kw)


def test_lambda_schedule_and_bad_scheduled_value():
    layers = [nn.MemorizedBatchNorm1d(3), nn.MemorizedBatchNorm2d(3)]
    sch = nn.lambda_scheduler(layers, 10)
    assert [sch.step() for _ in range(10)] == [0.1] * 4 + [0.5] * 2 + [0.9] * 4
    assert all(m.lam == 0.9 for m in layers)
    with pytest.raises(ValueError, match="lam must be in"):
        optim.Scheduler(layers, "lam", optim.Constant(2.0), 10).step()


def test_pooled_statistics_with_one_entry_is_that_entry():
    m, v = np.array([[1.0, 2.0]]), np.array([[3.0, 4.0]])
    mu, var = F.pooled_statistics(m, v, np.array([5.0]), np.array([0.3]))
    np.testing.assert_allclose(mu, [1, 2])
    np.testing.assert_allclose(var, [3, 4])


def test_state_dict_round_trip_keeps_the_memory(rng, tmp_path):
    import minibn as mb
    a = nn.Sequential(nn.MemorizedBatchNorm1d(3, memory_size=3))
    fill(a[0], [rng.standard_normal((4, 3)).astype(np.float32) for _ in range(2)])
    b = nn.Sequential(nn.MemorizedBatchNorm1d(3, memory_size=3))
    mb.save(a, tmp_path / "m.npz")
    mb.load(b, tmp_path / "m.npz")
    assert b[0].memory_len == 2
    x = rng.standard_normal((2, 3)).astype(np.float32)
    np.testing.assert_array_equal(a.eval()(x), b.eval()(x))
