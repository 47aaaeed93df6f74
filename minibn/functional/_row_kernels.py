"""The CPU loops behind :mod:`minibn.functional.standardize_fused` (LayerNorm, GroupNorm), by numba.

Both layers standardize each *row* of a 2-d view x (R, L) on its own (LayerNorm: a row is
a sample; GroupNorm: a row is one group of one sample) and then apply an affine transform
that varies along the row. The affine is given as a table (P, L) whose row r % P serves
row r: P = 1 for LayerNorm (gamma over the normalized shape), P = G for GroupNorm (each
group's channels, repeated over the positions). Loops take a block of rows [lo, hi), as
in :mod:`_bn_kernels`; sums are in float64, values are rounded once at the store.
"""

import numba
import numpy as np

_FLAGS = dict(nogil=True, cache=True, fastmath={"reassoc", "contract"})


@numba.njit(**_FLAGS)
def row_stats(x, eps, mu, inv_std, lo, hi):
    """Rows lo..hi-1 of x (R, L): mu[r] = mean and inv_std[r] = 1 / sqrt(var + eps) of the
    row (biased variance, shifted by the row's first value, float64 sums: one read)."""
    R, L = x.shape
    for r in range(lo, hi):
        k = np.float64(x[r, 0])
        s1 = 0.0
        s2 = 0.0
        for j in range(L):
            u = np.float64(x[r, j]) - k
            s1 += u
            s2 += u * u
        c = s1 / L
        mu[r] = k + c
        inv_std[r] = 1.0 / np.sqrt(max(s2 / L - c * c, 0.0) + eps)


@numba.njit(**_FLAGS)
def row_affine(x, mu, inv_std, gtab, btab, y, lo, hi):
    """y = (x - mu[r]) * inv_std[r] * gtab[r % P] + btab[r % P] on rows lo..hi-1."""
    R, L = x.shape
    P = gtab.shape[0]
    for r in range(lo, hi):
        p = r % P
        for j in range(L):
            y[r, j] = (np.float64(x[r, j]) - mu[r]) * inv_std[r] * gtab[p, j] + btab[p, j]


@numba.njit(**_FLAGS)
def row_backward(dy, x, mu, inv_std, gtab, dx, lo, hi):
    """dx on rows lo..hi-1, with g = dy * gtab[r % P] (dl/dx_hat):

        dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat))     (means along the row)

    Returns this block's sums of dy * x_hat and of dy per table entry, (P, L) each, from
    which the caller folds dgamma and dbeta. A row is read twice; the second read comes
    from cache (a row is a few kB)."""
    R, L = x.shape
    P = gtab.shape[0]
    dg = np.zeros((P, L))
    db = np.zeros((P, L))
    for r in range(lo, hi):
        p = r % P
        a = 0.0
        b = 0.0
        for j in range(L):
            xh = (np.float64(x[r, j]) - mu[r]) * inv_std[r]
            g = np.float64(dy[r, j]) * gtab[p, j]
            a += g
            b += g * xh
            dg[p, j] += np.float64(dy[r, j]) * xh
            db[p, j] += np.float64(dy[r, j])
        a /= L
        b /= L
        for j in range(L):
            xh = (np.float64(x[r, j]) - mu[r]) * inv_std[r]
            dx[r, j] = inv_std[r] * (np.float64(dy[r, j]) * gtab[p, j] - a - xh * b)
    return dg, db
