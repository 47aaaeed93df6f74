"""The CPU loops behind :mod:`minibn.kernels.fused_pool` (max pooling), compiled by numba.

One pass over the input forward: each window's maximum and the flat index of where it is
(the first maximum on ties, as the reference's argmax); one pass over dy backward, adding
each gradient at its index. Padding counts as -inf (it never wins). A NaN in a window wins
(as in the reference, whose argmax returns the first NaN).
"""

import numba
import numpy as np

_FLAGS = dict(nogil=True, cache=True)


@numba.njit(**_FLAGS)
def max_pool_forward(x, kh, kw, stride, padding, y, arg):
    """x (N, C, H, W) -> y (N, C, OH, OW) and arg (the flat h * W + w index of each maximum)."""
    if padding == 0 and kh == 2 and kw == 2 and stride == 2:
        return _max_pool_2x2(x, y, arg)
    if padding == 0:
        return _max_pool_unpadded(x, kh, kw, stride, y, arg)
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    best = -np.inf
                    where = -1
                    for i in range(kh):
                        h = oh * stride - padding + i
                        if h < 0 or h >= H:
                            continue
                        for j in range(kw):
                            w = ow * stride - padding + j
                            if w < 0 or w >= W:
                                continue
                            v = x[n, c, h, w]
                            if where < 0 or v > best or (np.isnan(v) and not np.isnan(best)):
                                best = v
                                where = h * W + w
                    y[n, c, oh, ow] = best
                    arg[n, c, oh, ow] = where


@numba.njit(**_FLAGS)
def _max_pool_unpadded(x, kh, kw, stride, y, arg):
    """No padding (the usual case): every window lies inside x, so no bounds to test."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                h0 = oh * stride
                for ow in range(OW):
                    w0 = ow * stride
                    best = x[n, c, h0, w0]
                    where = h0 * W + w0
                    for i in range(kh):
                        for j in range(kw):
                            v = x[n, c, h0 + i, w0 + j]
                            # v wins if larger, or if it is the window's first NaN; selects, not
                            # branches: random data would mispredict a branch half the time
                            take = (v > best) | ((v != v) & (best == best))
                            best = v if take else best
                            where = (h0 + i) * W + w0 + j if take else where
                    y[n, c, oh, ow] = best
                    arg[n, c, oh, ow] = where


@numba.njit(**_FLAGS)
def _max_pool_2x2(x, y, arg):
    """The most common pooling (2 x 2 windows, stride 2, no padding), written out for data
    without NaN, and the general loop if a window holds one.

    The window a b / c d (top row a b, bottom row c d) is compared as two pairs: the larger of
    a and b (a on a tie), the larger of c and d (c on a tie), then the larger of the two (the
    top one on a tie): the first maximum in row order, as the reference's argmax. Every choice
    is a plain compare and select, which the compiler turns into straight-line code; the NaN
    rule (the window's first NaN wins) needs a second condition in each, which made the
    loop several times slower on random data (docs/benchmarks/history.md). So this loop only
    notes whether a NaN went by (an OR that costs little), and if one did, the whole pooling
    is done again by :func:`_max_pool_unpadded`, which follows the rule."""
    N, C, H, W = x.shape
    OH, OW = y.shape[2], y.shape[3]
    W32 = np.int32(W)
    nan_seen = False
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                top, bottom = x[n, c, 2 * oh], x[n, c, 2 * oh + 1]
                y_row, arg_row = y[n, c, oh], arg[n, c, oh]
                row_at = np.int32(2 * oh * W)  # the flat index of the top row's start
                for ow in range(OW):
                    a, b = top[2 * ow], top[2 * ow + 1]
                    c_, d = bottom[2 * ow], bottom[2 * ow + 1]
                    right_top = b > a
                    top_best = b if right_top else a
                    right_bottom = d > c_
                    bottom_best = d if right_bottom else c_
                    below = bottom_best > top_best
                    y_row[ow] = bottom_best if below else top_best
                    # offset in the window: 0 (a), 1 (b), W (c) or W + 1 (d)
                    at = W32 + np.int32(right_bottom) if below else np.int32(right_top)
                    arg_row[ow] = row_at + np.int32(2 * ow) + at
                    nan_seen |= (a != a) | (b != b) | (c_ != c_) | (d != d)
    if nan_seen:
        _max_pool_unpadded(x, 2, 2, 2, y, arg)


@numba.njit(**_FLAGS)
def max_pool_backward(dy, arg, dx):
    """dx (N, C, H, W), C-contiguous and zeroed by the caller: dx[n, c] at arg += dy[n, c] (windows may
    overlap)."""
    N, C, OH, OW = dy.shape
    flat = dx.reshape(N, C, dx.shape[2] * dx.shape[3])  # a view (dx is C-contiguous): no a // W, a % W
    for n in range(N):
        for c in range(C):
            for oh in range(OH):
                for ow in range(OW):
                    flat[n, c, arg[n, c, oh, ow]] += dy[n, c, oh, ow]

