"""Ghost batch normalization (Hoffer et al. 2017): what is particular to it. Each virtual batch
is normalized on its own, the running statistics are updated once per virtual batch in order,
a last virtual batch may be smaller, and with a virtual batch as large as the batch it is BN.

(Its gradient check, bad-input checks and the float64 comparison with PyTorch's BatchNorm
applied to each virtual batch in turn come from its registration: tests/test_registry.py.)"""

import numpy as np
import pytest

from minibn import nn
from tests.helpers import on_active, to_np


def _pair(C, virtual_batch_size, **kwargs):
    """A GhostBatchNorm1d and a BatchNorm1d with the same non-trivial gamma and beta, in float64."""
    ghost = nn.GhostBatchNorm1d(C, virtual_batch_size, **kwargs).astype(np.float64)
    bn = nn.BatchNorm1d(C, **kwargs).astype(np.float64)
    for layer in (ghost, bn):
        layer.gamma.data[...] = on_active(np.linspace(0.5, 1.5, C))
        layer.beta.data[...] = on_active(np.linspace(-1.0, 1.0, C))
    return ghost, bn


def _state(layer):
    return [to_np(a) for a in (layer.gamma.grad, layer.beta.grad, layer.running_mean, layer.running_var)]


@pytest.mark.parametrize("virtual_batch_size", [8, 9, 1000])
def test_a_virtual_batch_as_large_as_the_batch_is_batchnorm(backend_name, rng, virtual_batch_size):
    ghost, bn = _pair(3, virtual_batch_size)
    for _ in range(2):
        x, dy = on_active(rng.standard_normal((8, 3)) * 5 + 12), on_active(rng.standard_normal((8, 3)))
        for layer in (ghost, bn):
            layer.zero_grad()
        np.testing.assert_allclose(to_np(ghost(x)), to_np(bn(x)), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(to_np(ghost.backward(dy)), to_np(bn.backward(dy)), rtol=1e-12, atol=1e-12)
        for a, b in zip(_state(ghost), _state(bn)):
            np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert ghost.num_batches_tracked == bn.num_batches_tracked == 2
    ghost.eval(), bn.eval()
    np.testing.assert_allclose(to_np(ghost(x)), to_np(bn(x)), rtol=1e-12, atol=1e-12)


def test_each_virtual_batch_is_normalized_on_its_own_and_updates_the_running_statistics_in_turn(backend_name, rng):
    """N = 10, virtual batches of 4: rows 0-3, 4-7 and 8-9 (the last one smaller). Each is
    BatchNorm of its rows alone; a BatchNorm fed them in turn ends with the same running
    statistics, counting three batches; dgamma and dbeta are the sums over them."""
    ghost, bn = _pair(3, 4, momentum=0.3)
    x, dy = rng.standard_normal((10, 3)) * 5 + 12, rng.standard_normal((10, 3))
    y, dx = to_np(ghost(on_active(x))), to_np(ghost.backward(on_active(dy)))
    for rows in (slice(0, 4), slice(4, 8), slice(8, 10)):
        np.testing.assert_allclose(y[rows], to_np(bn(on_active(x[rows]))), rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(dx[rows], to_np(bn.backward(on_active(dy[rows]))), rtol=1e-12, atol=1e-12)
    for a, b in zip(_state(ghost), _state(bn)):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)
    assert ghost.num_batches_tracked == 3
    assert tuple(ghost._cache["mu_B"].shape) == (3, 3)  # one row of statistics per virtual batch
    changed = x.copy()
    changed[4:] = changed[4:] * 10 - 3  # other rows do not move the first virtual batch's output
    np.testing.assert_allclose(to_np(ghost(on_active(changed)))[:4], y[:4], rtol=1e-12, atol=1e-12)


def test_eval_mode_is_the_running_statistics_transform(rng):
    ghost, bn = _pair(3, 2)
    ghost(rng.standard_normal((6, 3)) * 2 + 1)
    bn.running_mean[...], bn.running_var[...] = ghost.running_mean, ghost.running_var
    x = rng.standard_normal((5, 3))  # any batch size in eval: 5 is no multiple of 2, 1 sample works
    np.testing.assert_allclose(ghost.eval()(x), bn.eval()(x), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ghost(x[:1]), bn(x[:1]), rtol=1e-12, atol=1e-12)


def test_a_last_virtual_batch_of_one_value_per_channel_is_refused_naming_it(rng):
    ghost = nn.GhostBatchNorm1d(3, virtual_batch_size=4)
    with pytest.raises(ValueError, match=r"GhostBatchNorm1d: ghost_batch_norm_forward: virtual batch 2 "
                                         r"\(rows 8:9 of 9, virtual_batch_size=4\): expected more than 1 value"):
        ghost(rng.standard_normal((9, 3)))
    assert ghost.num_batches_tracked == 0 and np.all(ghost.running_mean == 0)  # nothing updated
    nn.GhostBatchNorm1d(3, virtual_batch_size=4)(rng.standard_normal((9, 3, 2)))  # (1, 3, 2): 2 values, fine


@pytest.mark.parametrize("size", [0, -4, 2.5, True, None])
def test_a_bad_virtual_batch_size_is_refused_naming_it(size):
    with pytest.raises(ValueError, match=rf"GhostBatchNorm2d: virtual_batch_size must be a positive integer, "
                                         rf"got {size!r}"):
        nn.GhostBatchNorm2d(3, virtual_batch_size=size)
