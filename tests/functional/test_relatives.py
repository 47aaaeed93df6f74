"""LayerNorm, GroupNorm and InstanceNorm2d: what each averages over, and the fused loops.

(Their gradient checks, bad-input checks and PyTorch comparisons come from their
registration: tests/test_registry.py.)"""

import numpy as np
import pytest

from minibn import nn
from tests.helpers import impls, needs_numba, on_active, skip_unless_runs_here, to_np


@pytest.mark.parametrize("impl", impls("group_norm"))
def test_groupnorm_with_one_group_per_channel_is_instancenorm(backend_name, rng, impl):
    skip_unless_runs_here("group_norm", impl)
    x, dy = on_active(rng.standard_normal((3, 4, 5, 2)) * 3 + 2), on_active(rng.standard_normal((3, 4, 5, 2)))
    gn = nn.GroupNorm(4, 4, impl=impl).astype(np.float64)
    inorm = nn.InstanceNorm2d(4, affine=True, impl=impl).astype(np.float64)
    np.testing.assert_allclose(to_np(gn(x)), to_np(inorm(x)), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(to_np(gn.backward(dy)), to_np(inorm.backward(dy)), rtol=1e-12, atol=1e-12)
    y = to_np(inorm(x))
    np.testing.assert_allclose(y.mean(axis=(2, 3)), 0.0, atol=1e-12)  # each (sample, channel) on its own
    np.testing.assert_allclose(y.std(axis=(2, 3)), 1.0, atol=1e-5)


@pytest.mark.parametrize("impl", impls("layer_norm"))
def test_groupnorm_with_one_group_is_layernorm_over_c_h_w(backend_name, rng, impl):
    skip_unless_runs_here("layer_norm", impl)
    x = on_active(rng.standard_normal((3, 4, 2, 2)) * 3 + 2)
    gn = nn.GroupNorm(1, 4, impl=impl).astype(np.float64)
    ln = nn.LayerNorm((4, 2, 2), impl=impl).astype(np.float64)
    np.testing.assert_allclose(to_np(gn(x)), to_np(ln(x)), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("cls, args", [(nn.LayerNorm, (6,)), (nn.GroupNorm, (3, 6)), (nn.InstanceNorm2d, (6,))])
def test_the_output_of_a_sample_does_not_depend_on_the_batch_or_the_mode(rng, cls, args):
    shape = (5, 6, 2, 2) if cls is not nn.LayerNorm else (5, 6)
    layer = cls(*args).astype(np.float64)
    x = rng.standard_normal(shape) * 3 + 1
    alone = layer(x[:1])
    np.testing.assert_allclose(layer(x)[:1], alone, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(layer.eval()(x)[:1], alone, rtol=1e-12, atol=1e-12)


@needs_numba
@pytest.mark.parametrize("cls, args, no_affine, shape", [(nn.LayerNorm, (64,), "elementwise_affine", (4096, 64)),
                                                         (nn.GroupNorm, (4, 16), "affine", (64, 16, 16, 17))])
def test_fused_in_float32_row_blocks_and_affine_false(rng, monkeypatch, cls, args, no_affine, shape):
    """Inputs past PARALLEL_MIN_SIZE (blocks of rows on threads), float32 with mean 1e4
    against the float64 reference, and affine=False on both paths."""
    from minibn.kernels import numba_cpu
    monkeypatch.setattr(numba_cpu, "PARALLEL_MIN_SIZE", 2 ** 16)
    monkeypatch.setattr(numba_cpu, "threads", lambda: 3)
    x = (1e4 + rng.standard_normal(shape)).astype(np.float32)
    dy = rng.standard_normal(shape).astype(np.float32)
    ours, ref = cls(*args, impl="fused"), cls(*args, impl="reference").astype(np.float64)
    y, y_ref = ours(x), ref(x.astype(np.float64))
    assert y.dtype == np.float32
    np.testing.assert_allclose(y, y_ref, atol=1e-3)
    dx, dx_ref = ours.backward(dy), ref.backward(dy.astype(np.float64))
    np.testing.assert_allclose(dx, dx_ref, atol=1e-3 * np.abs(dx_ref).max())
    np.testing.assert_allclose(ours.gamma.grad, ref.gamma.grad, rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(ours.beta.grad, ref.beta.grad, rtol=1e-4, atol=1e-2)
    plain = cls(*args, impl="fused", **{no_affine: False}).astype(np.float64)
    plain_ref = cls(*args, impl="reference", **{no_affine: False}).astype(np.float64)
    x64, dy64 = x.astype(np.float64) - 1e4, dy.astype(np.float64)
    np.testing.assert_allclose(plain(x64), plain_ref(x64), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(plain.backward(dy64), plain_ref.backward(dy64), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="impl must be one of"):
        cls(*args, impl="fast")


@pytest.mark.parametrize("num_groups", [2, 0, 1.5, "2"])
def test_group_norm_forward_refuses_groups_that_do_not_divide_c(num_groups):
    """With C = 3 and G = 2 the reshape alone would build groups that cross channels."""
    from minibn import functional as F

    x = np.random.default_rng(0).standard_normal((2, 3, 4))
    with pytest.raises(ValueError, match=rf"group_norm_forward: num_groups must be a positive divisor of C = 3, "
                                         rf"got {num_groups!r}"):
        F.group_norm_forward(x, None, None, num_groups)
    with pytest.raises(TypeError, match="instance_norm_forward"):
        F.instance_norm_forward([[1.0, 2.0]], None, None)
