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
    the input position it was read from (overlapping windows add). The loops run over the
    output positions whose input position is inside x (:func:`_inside`), so the innermost
    loop has no test (a test per value made it markedly slower: docs/benchmarks/history.md);
    the values are added in the same order as a loop over all positions that skips the others."""
    N, C, H, W = dx.shape
    _, kh, kw, _, OH, OW = dcols.shape
    for n in range(N):
        for c in range(C):
            for i in range(kh):
                oh_lo, oh_hi = _inside(OH, H, stride, i - padding)
                for j in range(kw):
                    ow_lo, ow_hi = _inside(OW, W, stride, j - padding)
                    for oh in range(oh_lo, oh_hi):
                        h = oh * stride - padding + i
                        for ow in range(ow_lo, ow_hi):
                            dx[n, c, h, ow * stride - padding + j] += dcols[c, i, j, n, oh, ow]
