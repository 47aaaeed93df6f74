"""The CPU loops behind :mod:`minibn.kernels.fused_bn`, compiled by numba: ``moments`` (the
per-channel sums), ``affine`` (the forward's output) and ``combine`` (the backward's).

Imported only when the fused path runs (importing numba takes a third of a second, so
``import minibn`` does not pay for it). The loops take arrays viewed as (N, C, S),
per-channel vectors of length C, and a block of rows [lo, hi): the caller runs blocks
on threads for large inputs (the loops release the GIL: ``nogil=True``) and calls them
directly for small ones, so a 60 x 100 batch pays no thread start-up.

The second loop of each direction (``affine`` forward, ``combine`` backward) walks its rows
backwards, from the last to the first: it then starts on the rows that the first loop
(``moments``, which walks forwards) read last and that are still in the cache, and ends
on the first rows, where the next direction's ``moments`` starts: fewer of its reads go
to memory when an array is about the size of the last-level cache. The results are bitwise
the same in either order (what it saved: docs/benchmarks/history.md).

Arithmetic is in float64 whatever the array dtype: a float32 value minus a float64
shift is exact, so the sums below lose nothing to cancellation, and the result is
rounded to the output dtype once, at the store.

``fastmath={"reassoc", "contract"}`` lets LLVM reorder the additions of the inner loop
(so that it can sum 8 lanes at a time) and fuse multiply-adds; it does not assume away
NaN or infinity, so a NaN still propagates to its channel.
"""

import numba
import numpy as np

_FLAGS = dict(nogil=True, cache=True, fastmath={"reassoc", "contract"})


@numba.njit(**_FLAGS)
def moments(a, shift_a, b, shift_b, lo, hi):
    """Per channel c, over rows lo..hi-1: s1 = sum (a - shift_a[c]) and
    s2 = sum (a - shift_a[c]) * (b - shift_b[c]).

    a, b: (N, C, S); shift_a, shift_b: (C,) float64. Returns s1, s2: (C,) float64.
    Forward: a = b = x, shift_a = shift_b = a shift K   ->  sum (x - K), sum (x - K)^2.
    Backward: a = dy, shift_a = 0, b = x, shift_b = mu ->  sum dy, sum dy * (x - mu).
    """
    N, C, S = a.shape
    if S == 1:
        return _moments_rows(a.reshape(N, C), shift_a, b.reshape(N, C), shift_b, lo, hi)
    return _moments_planes(a, shift_a, b, shift_b, lo, hi)


@numba.njit(**_FLAGS)
def _moments_planes(a, shift_a, b, shift_b, lo, hi):
    """(N, C, S) with S > 1: each (n, c) plane of S contiguous values is summed in
    registers (8 lanes at a time), then added to the per-channel sums."""
    N, C, S = a.shape
    s1 = np.zeros(C)
    s2 = np.zeros(C)
    for n in range(lo, hi):
        for c in range(C):
            plane_s1 = 0.0
            plane_s2 = 0.0
            for i in range(S):
                u = np.float64(a[n, c, i]) - shift_a[c]
                plane_s1 += u
                plane_s2 += u * (np.float64(b[n, c, i]) - shift_b[c])
            s1[c] += plane_s1
            s2[c] += plane_s2
    return s1, s2


@numba.njit(**_FLAGS)
def _moments_rows(a, shift_a, b, shift_b, lo, hi):
    """(N, C): vectorized across the channels of a row. Four rows go in per update of the
    per-channel sums, so the sums are loaded and stored once per four values instead of once
    per value."""
    N, C = a.shape
    s1 = np.zeros(C)
    s2 = np.zeros(C)
    n4 = lo + (hi - lo) // 4 * 4
    for n in range(lo, n4, 4):
        for c in range(C):
            shift_a_c, shift_b_c = shift_a[c], shift_b[c]
            u0, u1 = np.float64(a[n, c]) - shift_a_c, np.float64(a[n + 1, c]) - shift_a_c
            u2, u3 = np.float64(a[n + 2, c]) - shift_a_c, np.float64(a[n + 3, c]) - shift_a_c
            s1[c] += (u0 + u1) + (u2 + u3)
            s2[c] += ((u0 * (np.float64(b[n, c]) - shift_b_c) + u1 * (np.float64(b[n + 1, c]) - shift_b_c))
                      + (u2 * (np.float64(b[n + 2, c]) - shift_b_c) + u3 * (np.float64(b[n + 3, c]) - shift_b_c)))
    for n in range(n4, hi):  # the last rows, one at a time
        for c in range(C):
            u = np.float64(a[n, c]) - shift_a[c]
            s1[c] += u
            s2[c] += u * (np.float64(b[n, c]) - shift_b[c])
    return s1, s2


@numba.njit(**_FLAGS)
def affine(a, shift, scale, offset, out, lo, hi):
    """out = scale[c] * (a - shift[c]) + offset[c] on rows hi-1 down to lo; returns nothing.

    a, out: (N, C, S); shift, scale, offset: (C,) float64.
    Forward: y = scale * (x - mu) + beta, scale = gamma * inv_std     (Alg. 1, lines 3-4).
    (:func:`combine` with scale_b = 0 computes the same, but reads x a second time to
    multiply it by zero: this loop reads x once.)
    """
    N, C, S = a.shape
    if S > 1:
        for n in range(hi - 1, lo - 1, -1):
            for c in range(C):
                shift_c, scale_c, offset_c = shift[c], scale[c], offset[c]
                for i in range(S):
                    out[n, c, i] = scale_c * (np.float64(a[n, c, i]) - shift_c) + offset_c
        return
    # (N, C): vectorized across the channels of a row, four rows per load of the
    # per-channel numbers (as in _moments_rows); the last rows, one at a time, first
    a2, o = a.reshape(N, C), out.reshape(N, C)
    n4 = lo + (hi - lo) // 4 * 4
    for n in range(hi - 1, n4 - 1, -1):
        for c in range(C):
            o[n, c] = scale[c] * (np.float64(a2[n, c]) - shift[c]) + offset[c]
    for n in range(n4 - 4, lo - 1, -4):
        for c in range(C):
            shift_c, scale_c, offset_c = shift[c], scale[c], offset[c]
            o[n, c] = scale_c * (np.float64(a2[n, c]) - shift_c) + offset_c
            o[n + 1, c] = scale_c * (np.float64(a2[n + 1, c]) - shift_c) + offset_c
            o[n + 2, c] = scale_c * (np.float64(a2[n + 2, c]) - shift_c) + offset_c
            o[n + 3, c] = scale_c * (np.float64(a2[n + 3, c]) - shift_c) + offset_c


@numba.njit(**_FLAGS)
def combine(a, shift_a, scale_a, b, scale_b, offset, out, lo, hi):
    """out = scale_a[c] * (a - shift_a[c]) + scale_b[c] * b + offset[c] on rows hi-1 down to
    lo; returns nothing.

    a, b, out: (N, C, S); shift_a, scale_a, scale_b, offset: (C,) float64.
    Backward: dx = B * (x - mu) + A * dy + K      (a = x, b = dy).
    """
    N, C, S = a.shape
    if S > 1:
        for n in range(hi - 1, lo - 1, -1):
            for c in range(C):
                shift_c, scale_a_c, scale_b_c, offset_c = shift_a[c], scale_a[c], scale_b[c], offset[c]
                for i in range(S):
                    out[n, c, i] = (scale_a_c * (np.float64(a[n, c, i]) - shift_c)
                                    + scale_b_c * np.float64(b[n, c, i]) + offset_c)
        return
    a2, b2, o = a.reshape(N, C), b.reshape(N, C), out.reshape(N, C)
    n4 = lo + (hi - lo) // 4 * 4
    for n in range(hi - 1, n4 - 1, -1):
        for c in range(C):
            o[n, c] = scale_a[c] * (np.float64(a2[n, c]) - shift_a[c]) + scale_b[c] * np.float64(b2[n, c]) + offset[c]
    for n in range(n4 - 4, lo - 1, -4):  # four rows per load of the per-channel numbers
        for c in range(C):
            shift_c, scale_a_c, scale_b_c, offset_c = shift_a[c], scale_a[c], scale_b[c], offset[c]
            o[n, c] = (scale_a_c * (np.float64(a2[n, c]) - shift_c)
                       + scale_b_c * np.float64(b2[n, c]) + offset_c)
            o[n + 1, c] = (scale_a_c * (np.float64(a2[n + 1, c]) - shift_c)
                           + scale_b_c * np.float64(b2[n + 1, c]) + offset_c)
            o[n + 2, c] = (scale_a_c * (np.float64(a2[n + 2, c]) - shift_c)
                           + scale_b_c * np.float64(b2[n + 2, c]) + offset_c)
            o[n + 3, c] = (scale_a_c * (np.float64(a2[n + 3, c]) - shift_c)
                           + scale_b_c * np.float64(b2[n + 3, c]) + offset_c)


# -- per-channel arithmetic between the two loops, and whole directions for small inputs --

@numba.njit(**_FLAGS)
def forward_coefficients(s1, s2, shift, m, gamma, eps):
    """From the forward sums: mu, the biased var (Alg. 1, lines 1-2), inv_std and the scale
    gamma * inv_std of y = scale * (x - mu) + beta. All (C,) float64."""
    c = s1 / m
    var = np.maximum(s2 / m - c * c, 0.0)  # >= 0 up to rounding; clip the rounding
    inv_std = 1.0 / np.sqrt(var + eps)
    return shift + c, var, inv_std, gamma * inv_std


@numba.njit(**_FLAGS)
def backward_coefficients(dbeta, dy_xc, inv_std, gamma, m):
    """From the backward sums (dbeta = sum dy, dy_xc = sum dy * (x - mu)): dgamma and the
    A, B, K of dx = A dy + B (x - mu) + K (the closed form). All (C,) float64."""
    dgamma = inv_std * dy_xc  # sum dy * x_hat
    A = gamma * inv_std
    B = -A * inv_std * dgamma / m
    return dgamma, A, B, -A * dbeta / m


@numba.njit(**_FLAGS)
def forward(x, gamma, beta, eps, y):
    """The whole forward on the calling thread, in one call from Python: for a small input
    the dispatch of each numba call costs about as much as the loops. Returns mu, var, inv_std."""
    N, C, S = x.shape
    shift = np.empty(C)
    for c in range(C):
        shift[c] = x[0, c, 0]
    s1, s2 = moments(x, shift, x, shift, 0, N)
    mu, var, inv_std, scale = forward_coefficients(s1, s2, shift, N * S, gamma, eps)
    affine(x, mu, scale, beta.astype(np.float64), y, 0, N)
    return mu, var, inv_std


@numba.njit(**_FLAGS)
def backward(dy, x, mu, inv_std, gamma, m, dx):
    """The whole backward on the calling thread (m: the count the mean is over, N * S for
    BN; MBN's pooled count W). Returns dgamma, dbeta."""
    N, C, S = dy.shape
    dbeta, dy_xc = moments(dy, np.zeros(C), x, mu, 0, N)
    dgamma, A, B, K = backward_coefficients(dbeta, dy_xc, inv_std, gamma, m)
    combine(x, mu, B, dy, A, K, dx, 0, N)
    return dgamma, dbeta


@numba.njit(**_FLAGS)
def update_running_stats(running_mean, running_var, mu, var, factor, unbias, limit, eps_is_zero):
    """running = (1 - factor) * running + factor * batch for both buffers, the variance's batch
    term unbiased (``unbias`` = m / (m - 1)), when every channel's var (C,) is finite, at most
    ``limit`` and, with ``eps_is_zero``, > 0; then returns True. Otherwise changes nothing and
    returns False: the layer's checks then name the channels (nn.BatchNorm)."""
    total = 0.0
    smallest = np.inf
    for c in range(var.shape[0]):
        total += var[c]
        smallest = min(smallest, var[c])
    if not (np.isfinite(total) and total <= limit) or (eps_is_zero and not smallest > 0):
        return False
    keep = 1.0 - factor
    for c in range(var.shape[0]):
        running_mean[c] = keep * running_mean[c] + factor * mu[c]
        running_var[c] = keep * running_var[c] + factor * unbias * var[c]
    return True
