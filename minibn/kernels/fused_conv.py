"""Conv2d, the fused CPU path: the windows gathered and scattered by compiled loops.

The reference (:func:`minibn.functional.conv2d_forward`) builds the (C * kh * kw, N * OH * OW)
matrix with one strided NumPy copy per kernel offset, from a padded copy of x, and scatters
the gradient back with one strided NumPy add per offset, rows of OW values each (short rows
make NumPy's per-row overhead count). The loops of :mod:`_conv_loops` do each in one pass.
The matrix products are the same BLAS calls. Same contract (and cache) as the reference.
"""

from __future__ import annotations

import numpy as np

from ..functional.conv import out_size
from . import numba_cpu


def conv2d_forward_fused(x, W, b=None, stride=1, padding=0):
    numba_cpu.check(x)
    N, C, H, Wd = x.shape
    F, _, kh, kw = W.shape
    OH, OW = out_size(H, kh, stride, padding), out_size(Wd, kw, stride, padding)
    cols = np.empty((C, kh, kw, N, OH, OW), x.dtype)
    numba_cpu.loops("_conv_loops").gather(np.ascontiguousarray(x), stride, padding, cols)
    cols = cols.reshape(C * kh * kw, N * OH * OW)
    y = W.reshape(F, -1) @ cols
    if b is not None:
        y += b[:, None]
    y = np.ascontiguousarray(y.reshape(F, N, OH, OW).transpose(1, 0, 2, 3))
    return y, (x.shape, cols, W, b is not None, stride, padding, OH, OW)


def conv2d_backward_fused(dy, cache, need_dx=True):
    x_shape, cols, W, has_b, stride, padding, OH, OW = cache
    F, C, kh, kw = W.shape
    dY = dy.transpose(1, 0, 2, 3).reshape(F, -1)
    dW = (dY @ cols.T).reshape(W.shape)
    db = dY.sum(axis=1) if has_b else None
    dx = None
    if need_dx:
        dcols = (W.reshape(F, -1).T @ dY).reshape(C, kh, kw, x_shape[0], OH, OW)
        dx = np.zeros(x_shape, dcols.dtype)
        numba_cpu.loops("_conv_loops").scatter(dcols, stride, padding, dx)
    return dx, dW, db
