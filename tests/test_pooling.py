"""Max pooling's compiled loops (the 2 x 2 / stride 2 loop written out, and the general ones)
against the reference (im2col and argmax): outputs, where the gradient goes, ties (the first
maximum wins) and NaN (the first NaN wins)."""

import numpy as np
import pytest

from minibn import functional as F
from tests.helpers import needs_numba

pytestmark = needs_numba


@pytest.mark.parametrize("shape, k, stride, padding", [
    ((3, 2, 8, 6), 2, 2, 0),   # the written-out 2 x 2 loop
    ((3, 2, 9, 7), 2, 2, 0),   # odd sizes: the last row and column are dropped
    ((2, 3, 7, 7), 3, 2, 0),   # the general unpadded loop
    ((2, 3, 6, 6), 2, 1, 1),   # padding
])
def test_the_loops_match_the_reference(shape, k, stride, padding):
    from minibn.kernels.fused_pool import max_pool2d_backward_fused, max_pool2d_forward_fused
    r = np.random.default_rng(0)
    x = r.integers(-3, 4, shape).astype(np.float32)  # few values: many ties
    x[0, 0, 0, 0] = x[1, 1, 2, 3] = np.nan
    y_ref, cache_ref = F.max_pool2d_forward(x, k, k, stride, padding)
    y, cache = max_pool2d_forward_fused(x, k, k, stride, padding)
    np.testing.assert_array_equal(y, y_ref)  # NaN where the reference has NaN
    dy = r.standard_normal(y.shape).astype(np.float32)
    # where windows overlap, the two add a cell's gradients in different orders (float32)
    np.testing.assert_allclose(max_pool2d_backward_fused(dy, cache), F.max_pool2d_backward(dy, cache_ref),
                               rtol=1e-6, atol=1e-6)
