"""Conv2d, the fused CPU path: the windows gathered and scattered by compiled loops.

The reference (:func:`minibn.functional.conv2d_forward`) builds the (C * kh * kw, N * OH * OW)
matrix with one strided NumPy copy per kernel offset, from a padded copy of x, and scatters
the gradient back with one strided NumPy add per offset, rows of OW values each (short rows
make NumPy's per-row overhead count). The loops of :mod:`_conv_loops` do each in one pass.
Everything else is the reference's own code (the same matrix products, the same cache):
these functions hand it the compiled gather and scatter.
"""

from __future__ import annotations

import numpy as np

from ..functional.conv import conv2d_backward, conv2d_forward, out_size
from . import numba_cpu


def _columns(x, kh, kw, stride, padding):
    """:func:`minibn.functional.conv_columns` by the compiled gather."""
    N, C, H, W = x.shape
    OH, OW = out_size(H, kh, stride, padding), out_size(W, kw, stride, padding)
    cols = np.empty((C, kh, kw, N, OH, OW), x.dtype)
    numba_cpu.loops("_conv_loops").gather(np.ascontiguousarray(x), stride, padding, cols)
    return cols.reshape(C * kh * kw, N * OH * OW), OH, OW


def _columns_backward(dcols, x_shape, kh, kw, stride, padding, OH, OW):
    """:func:`minibn.functional.conv_columns_backward` by the compiled scatter."""
    N, C = x_shape[:2]
    dx = np.zeros(x_shape, dcols.dtype)
    numba_cpu.loops("_conv_loops").scatter(dcols.reshape(C, kh, kw, N, OH, OW), stride, padding, dx)
    return dx


def conv2d_forward_fused(x, W, b=None, stride=1, padding=0):
    numba_cpu.check(x)
    return conv2d_forward(x, W, b, stride, padding, columns=_columns)


def conv2d_backward_fused(dy, cache, need_dx=True):
    return conv2d_backward(dy, cache, need_dx, columns_backward=_columns_backward)
