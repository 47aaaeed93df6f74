"""Algorithm 2's population statistics and BN folding, verified numerically."""

import numpy as np
import pytest

from minibn import adapt, nn
from tests.helpers import on_active, to_np


def net(conv=False):
    if conv:
        return nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(),
                             nn.Conv2d(4, 3, 3, bias=False), nn.BatchNorm2d(3), nn.Flatten(),
                             nn.Linear(3 * 4 * 4, 5), nn.BatchNorm1d(5)).astype(np.float64)
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Sigmoid(), nn.Linear(8, 5, bias=False),
                         nn.BatchNorm1d(5), nn.Dropout(0.5), nn.Linear(5, 3)).astype(np.float64)


def randomize_bn(model, rng):
    for bn in adapt.bn_layers(model):
        C = bn.num_features
        bn.gamma.data = on_active(rng.uniform(0.5, 2, C))
        bn.beta.data = on_active(rng.standard_normal(C))
        bn.running_mean = on_active(rng.standard_normal(C))
        bn.running_var = on_active(rng.uniform(0.2, 3, C))


@pytest.mark.parametrize("conv", [False, True])
def test_fold_keeps_eval_outputs(backend_name, rng, conv):
    model = net(conv)
    randomize_bn(model, rng)
    model.eval()
    x = on_active(rng.standard_normal((5, 2, 6, 6) if conv else (5, 6)))
    folded = adapt.fold(model)
    n_bn = len(adapt.bn_layers(model))
    assert len(adapt.bn_layers(folded)) == 0 and len(folded) == len(model) - n_bn
    np.testing.assert_allclose(to_np(folded(x)), to_np(model(x)), rtol=1e-10, atol=1e-12)
    assert len(adapt.bn_layers(model)) == n_bn  # the original is untouched


def test_fold_leaves_bn_after_a_nonlinearity(rng):
    model = nn.Sequential(nn.Linear(4, 4), nn.ReLU(), nn.BatchNorm1d(4)).astype(np.float64)
    with pytest.raises(ValueError, match="no BatchNorm layer directly follows a Linear or Conv2d"):
        adapt.fold(model)
    with pytest.raises(ValueError, match="the model has no BatchNorm layer"):
        adapt.fold(nn.Sequential(nn.Linear(3, 3)))


def test_population_statistics_is_algorithm_2(backend_name, rng):
    """E[x] = mean of the batch means, Var[x] = m/(m-1) * mean of the batch variances, per layer,
    with each layer seeing the training-mode (batch-normalized) network below it."""
    model = net()
    randomize_bn(model, rng)
    batches = [on_active(rng.standard_normal((10, 6)) * 2 + 1) for _ in range(7)]
    # the direct computation: push each batch through in train mode and record each BN input
    reference = nn.Sequential(*[layer for layer in model])  # same layer objects
    seen = {id(bn): [] for bn in adapt.bn_layers(model)}
    expected = {}
    import copy
    ref = copy.deepcopy(model)
    for x in batches:
        h = x
        for layer in ref:
            if isinstance(layer, nn.Dropout):
                continue  # everything but BN is fixed (eval): dropout is the identity
            if isinstance(layer, nn.BatchNorm1d):
                seen.setdefault(len(expected), None)
                hn = to_np(h)
                expected.setdefault(id(layer), []).append((hn.mean(0), hn.var(0)))
            layer.train(isinstance(layer, nn.BatchNorm1d))
            h = layer(h)
    adapt.population_statistics(model, batches)
    assert not any(m.training for m in model.modules())  # returned in eval mode
    for bn, ref_bn in zip(adapt.bn_layers(model), adapt.bn_layers(ref)):
        stats = expected[id(ref_bn)]
        m = 10
        np.testing.assert_allclose(to_np(bn.running_mean), np.mean([s[0] for s in stats], 0), rtol=1e-10)
        np.testing.assert_allclose(to_np(bn.running_var), m / (m - 1) * np.mean([s[1] for s in stats], 0),
                                   rtol=1e-10)
        assert bn.momentum == 0.1  # restored
    del reference


def test_population_statistics_errors_leave_model_unchanged(rng):
    model = net()
    before = {k: to_np(v).copy() for k, v in model.state_dict().items()}
    with pytest.raises(ValueError, match="got no batches"):
        adapt.population_statistics(model, [])
    with pytest.raises(ValueError, match="no BatchNorm layer"):
        adapt.population_statistics(nn.Sequential(nn.Linear(2, 2)), [np.ones((3, 2))])
    with pytest.raises(ValueError, match="Linear: expected x"):
        adapt.population_statistics(model, [rng.standard_normal((4, 6)), rng.standard_normal((4, 7))])
    adapt.freeze(model)  # a frozen BN keeps its inference transform: nothing would be learned
    with pytest.raises(ValueError, match=r"BatchNorm layer 0 .* is frozen .* adapt.unfreeze\(model\)"):
        adapt.population_statistics(model, [rng.standard_normal((4, 6))])
    adapt.unfreeze(model)
    model.train()
    for k, v in model.state_dict().items():
        np.testing.assert_array_equal(to_np(v), before[k], err_msg=k)
    assert all(m.training for m in model.modules())
