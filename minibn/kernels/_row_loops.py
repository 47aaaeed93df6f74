"""The CPU loops behind :mod:`minibn.kernels.fused_rows` (LayerNorm, GroupNorm, InstanceNorm), by numba.

Both layers standardize each *row* of a 2-d view x (R, L) on its own (LayerNorm: a row is
a sample; GroupNorm: a row is one group of one sample) and then apply an affine transform
that varies along the row. The affine is given as a table (P, Lc) whose row r % P serves
row r, each of its Lc entries covering S = L / Lc consecutive values: LayerNorm has P = 1,
Lc = L (gamma over the normalized shape); GroupNorm has P = G, Lc = C / G (a group's
channels), S = the positions of a channel. Loops take a block of rows [lo, hi), as
in :mod:`_bn_loops`; sums are in float64, values are rounded once at the store.
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
    """y = (x - mu[r]) * inv_std[r] * gamma + beta on rows lo..hi-1, where the row's L values
    are Lc segments of S (S = L / Lc) sharing gtab[r % P, c], btab[r % P, c]."""
    R, L = x.shape
    P, Lc = gtab.shape
    S = L // Lc
    for r in range(lo, hi):
        p = r % P
        if S == 1:  # LayerNorm: vectorize along the row
            for j in range(L):
                y[r, j] = (np.float64(x[r, j]) - mu[r]) * inv_std[r] * gtab[p, j] + btab[p, j]
        else:  # GroupNorm: one channel's S positions share gamma and beta
            x3, y3 = x.reshape(R, Lc, S), y.reshape(R, Lc, S)  # [r, c, s] indexing: the loop over s vectorizes
            for c in range(Lc):
                scale = inv_std[r] * gtab[p, c]
                for s in range(S):
                    y3[r, c, s] = (np.float64(x3[r, c, s]) - mu[r]) * scale + btab[p, c]


@numba.njit(**_FLAGS)
def row_backward(dy, x, mu, inv_std, gtab, dx, lo, hi):
    """dx on rows lo..hi-1, with g = dy * gamma (dl/dx_hat; segments as in row_affine):

        dx = inv_std * (g - mean(g) - x_hat * mean(g * x_hat))     (means along the row)

    Returns this block's sums of dy * x_hat and of dy per table entry, (P, Lc) each, from
    which the caller folds dgamma and dbeta. A row is read twice; the second read comes
    from cache (a row is a few kB)."""
    R, L = x.shape
    P, Lc = gtab.shape
    S = L // Lc
    dg = np.zeros((P, Lc))
    db = np.zeros((P, Lc))
    x3, dy3, dx3 = x.reshape(R, Lc, S), dy.reshape(R, Lc, S), dx.reshape(R, Lc, S)  # GroupNorm's [r, c, s]
    for r in range(lo, hi):
        p = r % P
        a = 0.0  # sum g
        b = 0.0  # sum g * x_hat
        if S == 1:
            for j in range(L):
                xh = (np.float64(x[r, j]) - mu[r]) * inv_std[r]
                d = np.float64(dy[r, j])
                a += d * gtab[p, j]
                b += d * gtab[p, j] * xh
                dg[p, j] += d * xh
                db[p, j] += d
        else:  # a channel's sums first (8 lanes at a time), then scaled by its gamma
            for c in range(Lc):
                t_dg = 0.0
                t_db = 0.0
                for s in range(S):
                    d = np.float64(dy3[r, c, s])
                    t_dg += d * (np.float64(x3[r, c, s]) - mu[r]) * inv_std[r]
                    t_db += d
                dg[p, c] += t_dg
                db[p, c] += t_db
                a += gtab[p, c] * t_db
                b += gtab[p, c] * t_dg
        a /= L
        b /= L
        if S == 1:
            for j in range(L):
                xh = (np.float64(x[r, j]) - mu[r]) * inv_std[r]
                dx[r, j] = inv_std[r] * (np.float64(dy[r, j]) * gtab[p, j] - a - xh * b)
        else:
            for c in range(Lc):
                gam = gtab[p, c]
                for s in range(S):
                    xh = (np.float64(x3[r, c, s]) - mu[r]) * inv_std[r]
                    dx3[r, c, s] = inv_std[r] * (np.float64(dy3[r, c, s]) * gam - a - xh * b)
    return dg, db
