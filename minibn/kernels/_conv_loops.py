"""The CPU loops behind :mod:`minibn.kernels.fused_conv`, compiled by numba: the gather of a
convolution's windows into its matrix, and the adjoint scatter.

Both use the layout of :func:`minibn.functional.conv_columns`: cols (C, kh, kw, N, OH, OW),
row (c, i, j) holding input channel c at kernel offset (i, j) for every output pixel. The
positions outside the input (the padding) are zeros in the gather and are skipped in the
scatter. One pass each, no padded copy of x or dx.
"""

import numba

_FLAGS = dict(nogil=True, cache=True)


@numba.njit(**_FLAGS)
def gather(x, stride, padding, cols):
    """cols[c, i, j, n, oh, ow] = x[n, c, oh * stride - padding + i, ow * stride - padding + j] (0 outside)."""
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


@numba.njit(**_FLAGS)
def scatter(dcols, stride, padding, dx):
    """dx (zeroed by the caller) += the adjoint of :func:`gather`: each column value goes back to
    the input position it was read from (overlapping windows add)."""
    N, C, H, W = dx.shape
    _, kh, kw, _, OH, OW = dcols.shape
    for n in range(N):
        for c in range(C):
            for i in range(kh):
                for j in range(kw):
                    for oh in range(OH):
                        h = oh * stride - padding + i
                        if h < 0 or h >= H:
                            continue
                        for ow in range(OW):
                            w = ow * stride - padding + j
                            if 0 <= w < W:
                                dx[n, c, h, w] += dcols[c, i, j, n, oh, ow]
