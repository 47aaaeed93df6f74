"""Conv2d, the fused CPU path: the windows gathered and scattered by compiled loops.

The reference (:func:`minibn.functional.conv2d_forward`) builds the (C * kh * kw, N * OH * OW)
matrix with one strided NumPy copy per kernel offset, from a padded copy of x, and scatters
the gradient back with one strided NumPy add per offset, rows of OW values each (short rows
make NumPy's per-row overhead count). The loops of :mod:`_conv_loops` do each in one pass.
Everything else is the reference's own code (the same cache, the same matrix products
except dW's): these functions hand it the compiled gather and scatter, and the product
that gives dW, which adds a small dW (a first conv's) up over pieces of its long inner
dimension (:func:`_weight_product`).
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


#: the most multiply-adds of one piece (measured: OpenBLAS ran 0.94 M multiply-adds at full speed
#: and 1.35 M at a fifth of it, most likely the end of its small-matrix path, which does not pack)
SMALL_PRODUCT = 10 ** 6
#: the most values of an output that is split: a first conv's dW, (C kh kw) x F, is 25 x 6
#: in LeNet and 9 x 8 in the bench's net
SMALL_OUTPUT = 256


def _weight_product(a, b):
    """``a @ b`` for a (m, k) and b (k, n): dW of :func:`conv2d_backward`.

    What: when the output is small (m n <= SMALL_OUTPUT) and the product is not (m n k >
    SMALL_PRODUCT), the sum of the products over consecutive pieces of the inner dimension,
    each piece at most SMALL_PRODUCT multiply-adds; otherwise the one product.

    Why: a first conv's dW has a tiny output and a long inner dimension, N * OH * OW
    (25,088 at batch 32 on 28 x 28). OpenBLAS most likely packs both matrices for such a
    product and gets no reuse out of it; in pieces below SMALL_PRODUCT it ran 3-4x faster
    (docs/benchmarks/history.md). The same sum up to rounding: the pieces are added in the
    product's dtype.
    """
    m, k = a.shape
    n = b.shape[1]
    if b.shape[0] != k:
        raise ValueError(f"_weight_product: a is {a.shape} and b {b.shape}: the inner sizes differ")
    if m * n > SMALL_OUTPUT or m * n * k <= SMALL_PRODUCT:
        return a @ b
    step = SMALL_PRODUCT // (m * n)
    out = a[:, :step] @ b[:step]
    for lo in range(step, k, step):
        out += a[:, lo:lo + step] @ b[lo:lo + step]
    return out


def conv2d_backward_fused(dy, cache, need_dx=True):
    return conv2d_backward(dy, cache, need_dx, columns_backward=_columns_backward, product=_weight_product)
