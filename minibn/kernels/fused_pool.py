"""Max pooling, the fused CPU path: one compiled loop each way instead of im2col's copies.

The reference (:func:`minibn.functional.max_pool2d_forward`) gathers every window into a
(N, C, kh * kw, OH, OW) array and takes its argmax, then scatters the gradient back with
col2im: several passes over a kh * kw times larger array. The loops of :mod:`_pool_loops`
read each input once and write each output once. Same contract as the reference.
"""

from __future__ import annotations

import numpy as np

from ..functional.conv import out_size
from . import numba_cpu


def max_pool2d_forward_fused(x, kh, kw, stride, padding=0):
    numba_cpu.check(x)
    k = numba_cpu.loops("_pool_loops")
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, stride, padding), out_size(W, kw, stride, padding)
    y = np.empty((N, C, OH, OW), x.dtype)
    # where each maximum is: a flat index within its plane (H * W < 2**31); int32, since an
    # int64 index next to float32 values makes the compiler mix 32- and 64-bit lanes
    arg = np.empty((N, C, OH, OW), np.int32)
    k.max_pool_forward(np.ascontiguousarray(x), kh, kw, stride, padding, y, arg)
    return y, (x.shape, arg)


def max_pool2d_backward_fused(dy, cache):
    x_shape, arg = cache
    dx = np.zeros(x_shape, dy.dtype)
    numba_cpu.loops("_pool_loops").max_pool_backward(np.ascontiguousarray(dy), arg, dx)
    return dx
