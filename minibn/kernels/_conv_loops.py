"""The CPU loops behind :mod:`minibn.kernels.fused_conv`, compiled by numba: the gather of a
convolution's windows into its matrix, and the adjoint scatter.

Both use the layout of :func:`minibn.functional.conv_columns`: cols (C, kh, kw, N, OH, OW),
row (c, i, j) holding input channel c at kernel offset (i, j) for every output pixel. The
positions outside the input (the padding) are zeros in the gather and are skipped in the
scatter. One pass each, no padded copy of x or dx.
"""

import numba
import numpy as np

_FLAGS = dict(nogil=True, cache=True)


@numba.njit(**_FLAGS)
def gather(x, stride, padding, cols):
    """cols[c, i, j, n, oh, ow] = x[n, c, oh * stride - padding + i, ow * stride - padding + j] (0 outside).

    x (N, C, H, W) and cols (C, kh, kw, N, OH, OW), both C-contiguous. Three loops, by the
    case: a "same" convolution (stride 1, output as large as the input: the usual one here),
    any other at stride 1, and any stride.
    """
    OH, OW = cols.shape[4], cols.shape[5]
    if stride == 1 and OH == x.shape[2] and OW == x.shape[3]:
        _gather_same(x, padding, cols)
    elif stride == 1:
        _gather_unit_stride(x, padding, cols)
    else:
        _gather_strided(x, stride, padding, cols)


@numba.njit(inline="always")
def _zero_wrapped_columns(plane, H, W, dj):
    """Zero the columns of a flat (H * W) plane that a shift by dj columns wraps onto the
    neighbouring row: the last dj columns of each row (dj > 0) or the first -dj (dj < 0)."""
    lo, hi = (W - dj, W) if dj > 0 else (0, min(-dj, W))
    for h in range(H):
        for w in range(max(lo, 0), hi):
            plane[h * W + w] = 0.0


@numba.njit(**_FLAGS)
def _gather_same(x, padding, cols):
    """:func:`gather` when the output plane has the input's shape (stride 1, 2 padding = k - 1).

    Then the row (c, i, j) of each sample is the plane x[n, c] shifted by (i - padding) rows
    and (j - padding) columns: on the flat planes, one copy of H * W values shifted by
    (i - padding) W + (j - padding), zeros where the shift leaves the plane, and zeros on
    the columns that the shift wraps onto the next or previous row (``keep``, one mask per
    column offset, says which stay). Long copies vectorize; the row-by-row loop below
    copies OW values at a time, too few for 16-wide vectors (3x slower at 14 x 14), and a
    copy followed by zeroing the wrapped columns one by one was up to 1.5x slower than the
    masked copy (docs/benchmarks/history.md).
    """
    N, C, H, W = x.shape
    _, kh, kw = cols.shape[:3]
    HW = H * W
    xf = x.reshape(N, C, HW)
    cf = cols.reshape(C, kh, kw, N, HW)
    # keep[j, t]: the source column t % W + j - padding lies in [0, W), so the shift by
    # j - padding columns does not wrap onto the next or the previous row
    keep = np.empty((kw, HW), np.bool_)
    zero = np.zeros(1, x.dtype)[0]  # a zero of x's dtype: a float64 0.0 would make the copy float64
    for j in range(kw):
        for t in range(HW):
            keep[j, t] = 0 <= t % W + j - padding < W
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                shift = (i - padding) * W + j - padding
                t_lo, t_hi = _inside(HW, HW, 1, shift)  # t with t + shift in [0, HW)
                kept = keep[j, t_lo:t_hi]
                for n in range(N):
                    plane = cf[c, i, j, n]
                    for t in range(t_lo):
                        plane[t] = 0.0
                    out, src = plane[t_lo:t_hi], xf[n, c, t_lo + shift:t_hi + shift]
                    for t in range(out.shape[0]):
                        out[t] = src[t] if kept[t] else zero
                    for t in range(t_hi, HW):
                        plane[t] = 0.0


@numba.njit(**_FLAGS)
def _gather_unit_stride(x, padding, cols):
    """:func:`gather` for stride 1, row by row: each row of cols (OW values) is zeros where its
    windows lie in the padding and, between them, a copy of a stretch of one row of x. The
    stretch is copied between two slices, indexed from 0: numba turns an index that may be
    negative (``w`` in :func:`_gather_strided`) into a test and an add per value, which keeps
    a loop from being vectorized (2x slower: docs/benchmarks/history.md)."""
    N, C, H, W = x.shape
    _, kh, kw, _, OH, OW = cols.shape
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                shift = j - padding  # input column = output column + shift
                ow_lo, ow_hi = _inside(OW, W, 1, shift)
                for n in range(N):
                    for oh in range(OH):
                        h = oh - padding + i
                        row = cols[c, i, j, n, oh]
                        if 0 <= h < H:
                            for ow in range(ow_lo):
                                row[ow] = 0.0
                            out, src = row[ow_lo:ow_hi], x[n, c, h, ow_lo + shift:ow_hi + shift]
                            for t in range(out.shape[0]):
                                out[t] = src[t]
                            for ow in range(ow_hi, OW):
                                row[ow] = 0.0
                        else:  # the whole row reads the padding
                            for ow in range(OW):
                                row[ow] = 0.0


@numba.njit(**_FLAGS)
def _gather_strided(x, stride, padding, cols):
    """:func:`gather` for any stride, value by value (a stride > 1 is rare here, and this loop
    was faster for it than :func:`_gather_unit_stride`'s over strided slices)."""
    N, C, H, W = x.shape
    _, kh, kw, _, OH, OW = cols.shape
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                for n in range(N):
                    for oh in range(OH):
                        h = oh * stride - padding + i
                        inside = 0 <= h < H
                        for ow in range(OW):
                            w = ow * stride - padding + j
                            cols[c, i, j, n, oh, ow] = x[n, c, h, w] if inside and 0 <= w < W else 0.0


@numba.njit(inline="always")
def _inside(n_out, size, stride, offset):
    """The range [lo, hi) of the output positions o whose input position o * stride + offset
    lies in [0, size), clipped to [0, n_out) (lo = hi when there is none)."""
    lo = 0 if offset >= 0 else (stride - 1 - offset) // stride  # the first o with o * stride >= -offset
    # past the input, no position (the formula would give hi <= 0 too: the test keeps every
    # numerator of a floor division >= 0, where // and truncation agree)
    hi = 0 if offset > size - 1 else (size - 1 - offset) // stride + 1
    lo = min(lo, n_out)
    return lo, max(lo, min(hi, n_out))


@numba.njit(**_FLAGS)
def scatter(dcols, stride, padding, dx):
    """dx (zeroed by the caller) += the adjoint of :func:`gather`: each column value goes back to
    the input position it was read from (overlapping windows add).

    dcols (C, kh, kw, N, OH, OW) and dx (N, C, H, W), both C-contiguous. dcols is scratch:
    in a "same" convolution its values at windows' positions in the padding are zeroed.
    Each value of dx receives its additions in the order of (i, j) in both loops, as in a
    loop over all positions that skips those in the padding, so the result is bitwise that
    of such a loop whichever runs.
    """
    OH, OW = dcols.shape[4], dcols.shape[5]
    if stride == 1 and OH == dx.shape[2] and OW == dx.shape[3]:
        _scatter_same(dcols, padding, dx)
    else:
        _scatter_rectangles(dcols, stride, padding, dx)


@numba.njit(**_FLAGS)
def _scatter_same(dcols, padding, dx):
    """:func:`scatter` in a "same" convolution, as :func:`_gather_same` gathers: per row (c, i, j)
    and sample, the columns that wrap are zeroed in dcols, then one shifted add of the flat
    plane into dx[n, c]. The zeros land on other positions of dx, whose values they leave as
    they are (x + 0 is x for every float x but -0, and a sum that starts at +0 is never -0).
    """
    N, C, H, W = dx.shape
    _, kh, kw = dcols.shape[:3]
    HW = H * W
    xf = dx.reshape(N, C, HW)
    cf = dcols.reshape(C, kh, kw, N, HW)
    for c in range(C):
        for i in range(kh):
            for j in range(kw):
                dj = j - padding
                shift = (i - padding) * W + dj
                t_lo, t_hi = _inside(HW, HW, 1, shift)  # t with t + shift in [0, HW)
                for n in range(N):
                    plane = cf[c, i, j, n]
                    _zero_wrapped_columns(plane, H, W, dj)
                    out, src = xf[n, c, t_lo + shift:t_hi + shift], plane[t_lo:t_hi]
                    for t in range(out.shape[0]):
                        out[t] += src[t]


@numba.njit(**_FLAGS)
def _scatter_rectangles(dcols, stride, padding, dx):
    """:func:`scatter` for any stride and padding.

    Block by block: for each row (c, i, j) of the matrix and each sample n, the output
    positions whose input position is inside x (:func:`_inside`) form a rectangle of the
    (OH, OW) plane, which adds to a rectangle of dx[n, c] (every stride-th row and column).
    The two rectangles are slices indexed from 0, so the innermost loop has neither a test
    per value (for the padding) nor numba's test of a negative index (2x faster than a loop
    over rows with computed indices: docs/benchmarks/history.md).
    """
    N, C, H, W = dx.shape
    _, kh, kw, _, OH, OW = dcols.shape
    for c in range(C):
        for i in range(kh):
            oh_lo, oh_hi = _inside(OH, H, stride, i - padding)
            h_lo = oh_lo * stride - padding + i  # the input row of output row oh_lo
            for j in range(kw):
                ow_lo, ow_hi = _inside(OW, W, stride, j - padding)
                w_lo = ow_lo * stride - padding + j
                for n in range(N):
                    src = dcols[c, i, j, n, oh_lo:oh_hi, ow_lo:ow_hi]
                    if stride == 1:
                        out = dx[n, c, h_lo:h_lo + src.shape[0], w_lo:w_lo + src.shape[1]]
                    else:
                        out = dx[n, c, h_lo::stride, w_lo::stride]
                    for r in range(src.shape[0]):
                        for t in range(src.shape[1]):
                            out[r, t] += src[r, t]
