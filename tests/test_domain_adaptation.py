"""AdaBN, IIT, freezing and the KL mismatch (Suzuki et al. 2020; Li et al. 2016), and the shifts."""

import copy

import numpy as np
import pytest

from minibn import adapt, nn, optim
from minibn.data import SHIFTS, apply_shift
from tests.helpers import on_active, to_np


def trained_net(rng, conv=False):
    if conv:
        model = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, bias=False), nn.BatchNorm2d(3), nn.ReLU(),
                              nn.Flatten(), nn.Linear(3 * 5 * 5, 6, bias=False), nn.BatchNorm1d(6), nn.Sigmoid(),
                              nn.Linear(6, 4))
        shape = (12, 1, 5, 5)
    else:
        model = nn.Sequential(nn.Linear(6, 8, bias=False), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 5, bias=False),
                              nn.BatchNorm1d(5), nn.Sigmoid(), nn.Linear(5, 3))
        shape = (12, 6)
    model = model.astype(np.float64)
    opt = optim.SGD(model.parameters(), lr=0.1)
    for _ in range(30):  # a little training on the "source" domain: non-trivial gamma, beta, statistics
        x = on_active(rng.standard_normal(shape))
        y = model(x)
        model.zero_grad()
        model.backward(on_active(rng.standard_normal(y.shape)))
        opt.step()
    target = [on_active(3 * rng.standard_normal(shape) + 2) for _ in range(4)]  # a shifted domain
    return model.eval(), target


@pytest.mark.parametrize("conv", [False, True])
def test_iit_leaves_inference_unchanged_and_moves_statistics(backend_name, rng, conv):
    model, target = trained_net(rng, conv)
    probe = on_active(3 * rng.standard_normal(target[0].shape) + 2)
    before = to_np(model(probe))
    ref = copy.deepcopy(model)
    adapt.iit(model, target)
    np.testing.assert_allclose(to_np(model(probe)), before, rtol=1e-10, atol=1e-12)
    # the running statistics are now the target statistics of each layer's input (inference mode)
    for bn, ref_bn in zip(adapt.bn_layers(model), adapt.bn_layers(ref)):
        inputs = np.concatenate([to_np(h) for h in adapt._layer_inputs(ref, ref_bn, target)])
        axes = (0,) + tuple(range(2, inputs.ndim))
        np.testing.assert_allclose(to_np(bn.running_mean), inputs.mean(axes), rtol=1e-10, atol=1e-12)
        np.testing.assert_allclose(to_np(bn.running_var), inputs.var(axes, ddof=1), rtol=1e-10)


def test_iit_reduces_the_train_inference_mismatch(rng):
    model, target = trained_net(rng)
    before = [r["kl"] for r in adapt.bn_mismatch(model, target)]
    adapt.iit(model, target)
    after = [r["kl"] for r in adapt.bn_mismatch(model, target)]
    assert all(a < 0.2 * b for a, b in zip(after, before)), (before, after)


def test_adabn_statistics_equal_a_direct_layer_by_layer_computation(backend_name, rng):
    model, target = trained_net(rng)
    adapt.adabn(model, target)
    # direct: push the target data through the adapted network in eval mode and look at each BN input
    x = np.concatenate([to_np(t) for t in target])
    h = on_active(x)
    for layer in model:
        if isinstance(layer, nn.BatchNorm1d):
            hn = to_np(h)
            np.testing.assert_allclose(to_np(layer.running_mean), hn.mean(0), rtol=1e-10, atol=1e-12)
            np.testing.assert_allclose(to_np(layer.running_var), hn.var(0, ddof=1), rtol=1e-10)
        h = layer(h)


def test_freeze_uses_the_inference_transform_in_training_and_fixes_gamma_beta(rng):
    model, target = trained_net(rng)
    eval_out = model(target[0])
    adapt.freeze(model).train()
    stats = [to_np(bn.running_mean).copy() for bn in adapt.bn_layers(model)]
    np.testing.assert_allclose(model(target[0]), eval_out, rtol=1e-12)
    model.zero_grad()
    model.backward(rng.standard_normal(eval_out.shape))
    assert all(bn.gamma.grad is None and bn.beta.grad is None for bn in adapt.bn_layers(model))
    assert all(np.array_equal(to_np(bn.running_mean), s) for bn, s in zip(adapt.bn_layers(model), stats))
    folded = adapt.fold(model)
    np.testing.assert_allclose(folded(target[0]), eval_out, rtol=1e-10)  # fold is freezing, folded
    adapt.unfreeze(model)
    assert not any(bn.frozen for bn in adapt.bn_layers(model))


def test_bn_mismatch_is_zero_when_running_statistics_are_the_batch_statistics(rng):
    bn = nn.BatchNorm1d(4).astype(np.float64)
    model = nn.Sequential(bn)
    x = 2 * rng.standard_normal((50, 4)) + 1
    bn.running_mean, bn.running_var = x.mean(0), x.var(0)  # biased, as the batch normalization uses
    assert adapt.bn_mismatch(model, [x])[0]["kl"] < 1e-12
    bn.running_mean = bn.running_mean + 1.0  # the inference output moves by 1/sigma per channel
    kl = adapt.bn_mismatch(model, [x])[0]["kl"]
    # both output variances are var/(var+eps): KL = (1/sigma)^2 / (var/(var+eps)) / 2 = 1 / (2 var),
    # times (n-1)/n because the Gaussian fits use the unbiased sample variance (n = 50)
    assert kl == pytest.approx(np.mean(0.5 / x.var(0)) * 49 / 50, rel=1e-6)


@pytest.mark.parametrize("fn", [adapt.adabn, adapt.iit, adapt.bn_mismatch, adapt.population_statistics])
def test_adaptation_errors_leave_the_model_unchanged(rng, fn):
    model, target = trained_net(rng)
    before = {k: to_np(v).copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="got no batches"):
        fn(model, [])
    with pytest.raises(ValueError, match="the model has no BatchNorm layer"):
        fn(nn.Sequential(nn.Linear(6, 3)), target)
    with pytest.raises(ValueError, match="Linear: expected x"):
        fn(model, target[:2] + [on_active(rng.standard_normal((4, 7)))])
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(to_np(v), before[k], err_msg=k)


def test_freeze_without_bn_is_an_error():
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        adapt.freeze(nn.Sequential(nn.Linear(2, 2)))


@pytest.mark.parametrize("name", sorted(SHIFTS))
def test_shifts_are_deterministic_and_change_the_statistics(rng, name):
    x = rng.uniform(0, 1, (20, 784)).astype(np.float32) * (rng.uniform(0, 1, (20, 784)) > 0.8)
    a, b = apply_shift(name, x, seed=3), apply_shift(name, x, seed=3)
    assert a.shape == x.shape and a.dtype == np.float32 and np.array_equal(a, b)
    assert abs(a.mean() - x.mean()) > 0.01 or abs(a.std() - x.std()) > 0.01 or name == "rotate"
    assert not np.array_equal(a, x)


def test_rotation_by_zero_is_the_identity_and_bad_names_fail(rng):
    from minibn.data.shifts import rotate
    x = rng.uniform(0, 1, (3, 784)).astype(np.float32)
    np.testing.assert_allclose(rotate(x, degrees=0.0), x, atol=1e-6)
    img = np.zeros((1, 28, 28), np.float32)
    img[0, 4, 14] = 1.0  # a pixel above the centre moves left under a counter-clockwise turn
    r = rotate(img.reshape(1, 784), degrees=90.0).reshape(28, 28)
    assert np.unravel_index(r.argmax(), r.shape)[1] < 14
    with pytest.raises(ValueError, match="unknown shift 'blur'"):
        apply_shift("blur", x)
    with pytest.raises(ValueError, match=r"expected x of shape \(N, 784\)"):
        apply_shift("invert", x.reshape(3, 28, 28))


def test_bn_mismatch_of_a_ghost_bn_layer_uses_its_virtual_batches(rng):
    """With running statistics equal to the whole batch's, plain BN's training output is its
    inference output (KL 0), but ghost BN's is not: each virtual batch is normalized by its own
    variance (eps = 1 makes the two outputs' variances differ: var / (var + eps) per virtual batch)."""
    x = np.concatenate([rng.standard_normal((50, 3)), 3 * rng.standard_normal((50, 3))])
    kls = []
    for bn in (nn.BatchNorm1d(3, eps=1.0), nn.GhostBatchNorm1d(3, virtual_batch_size=50, eps=1.0)):
        bn = bn.astype(np.float64)
        bn.running_mean, bn.running_var = x.mean(0), x.var(0)
        kls.append(adapt.bn_mismatch(nn.Sequential(bn), [x])[0]["kl"])
    assert kls[0] < 1e-12 and kls[1] > 1e-3, kls
