"""LayerNorm and GroupNorm, the fused CPU path: one read to standardize, one to write.

The same functions as :mod:`minibn.functional.layernorm` and :mod:`~minibn.functional.groupnorm`
(which share the readable :mod:`~minibn.functional.standardize`), computed by the loops of
:mod:`_row_loops` (numba): x is viewed as
rows (R, L) that are standardized one by one, and gamma, beta as a table (P, Lc) whose row
r % P applies to row r, each entry covering L / Lc consecutive values of the row:

- LayerNorm over D = normalized_shape: a row per sample, L = Lc = prod(D), P = 1, the
  table is gamma (and beta) flattened;
- GroupNorm with G groups over (N, C, *): a row per (sample, group), L = (C / G) * S
  (channels of a group are contiguous, S positions each), P = G, Lc = C / G: table row g
  holds gamma of group g's channels.

Forward: per row, mean and variance in one read (float64 sums, shifted by the row's first
value), then y in one read and one write. Backward: per row, the sums of g = dy * gamma
and g * x_hat, then dx, with the row still in cache. Large inputs run as blocks of rows on
threads (see :mod:`numba_cpu`).
"""

from __future__ import annotations

import numpy as np

from . import numba_cpu
from .numba_cpu import run_blocks


def _kernels(x):
    numba_cpu.check(x)
    return numba_cpu.loops("_row_loops")


def _tables(gamma, beta, P, Lc):
    """gamma, beta (P * Lc values, or None) -> (P, Lc) float64 tables."""
    if gamma is None:
        return np.ones((P, Lc)), np.zeros((P, Lc))
    return gamma.astype(np.float64).reshape(P, Lc), beta.astype(np.float64).reshape(P, Lc)


def _forward(x2, gtab, btab, eps):
    k = _kernels(x2)
    R = x2.shape[0]
    mu, inv_std, y = np.empty(R), np.empty(R), np.empty_like(x2)
    run_blocks(k.row_stats, x2, x2, float(eps), mu, inv_std)
    run_blocks(k.row_affine, x2, x2, mu, inv_std, gtab, btab, y)
    return y, {"x2": x2, "mu": mu, "inv_std": inv_std, "gtab": gtab}


def _backward(dy, cache):
    """dx (dy's shape) and the (P, Lc) table sums of dy * x_hat and of dy (dgamma, dbeta)."""
    k = _kernels(dy)
    x2 = cache["x2"]
    dy2 = np.ascontiguousarray(dy).reshape(x2.shape)
    dx = np.empty_like(dy2)
    parts = run_blocks(k.row_backward, dy2, dy2, x2, cache["mu"], cache["inv_std"], cache["gtab"], dx)
    return dx.reshape(dy.shape), sum(p[0] for p in parts), sum(p[1] for p in parts)


def layer_norm_forward_fused(x, gamma, beta, normalized_ndim, eps=1e-5):
    """Same contract as :func:`layer_norm_forward`: x (*, *D), gamma, beta D or None."""
    D = x.shape[x.ndim - normalized_ndim:]
    L = int(np.prod(D))
    x2 = np.ascontiguousarray(x).reshape(-1, L)
    y, cache = _forward(x2, *_tables(gamma, beta, 1, L), eps)
    cache.update(gamma=gamma, D=D)
    return y.reshape(x.shape), cache


def layer_norm_backward_fused(dy, cache):
    """Same contract as :func:`layer_norm_backward`: (dx, dgamma, dbeta), the last two of shape D."""
    dx, dg, db = _backward(dy, cache)
    if cache["gamma"] is None:
        return dx, None, None
    return dx, dg.reshape(cache["D"]).astype(dy.dtype), db.reshape(cache["D"]).astype(dy.dtype)


def group_norm_forward_fused(x, gamma, beta, num_groups, eps=1e-5):
    """Same contract as :func:`group_norm_forward`: x (N, C, *), gamma, beta (C,) or None."""
    N, C = x.shape[:2]
    x2 = np.ascontiguousarray(x).reshape(N * num_groups, -1)
    y, cache = _forward(x2, *_tables(gamma, beta, num_groups, C // num_groups), eps)
    cache.update(gamma=gamma)
    return y.reshape(x.shape), cache


def group_norm_backward_fused(dy, cache):
    """Same contract as :func:`group_norm_backward`: (dx, dgamma, dbeta), the last two (C,)."""
    dx, dg, db = _backward(dy, cache)
    if cache["gamma"] is None:
        return dx, None, None
    return dx, dg.reshape(-1).astype(dy.dtype), db.reshape(-1).astype(dy.dtype)  # (G, C/G) -> (C,)


def instance_norm_forward_fused(x, gamma, beta, eps=1e-5):
    """Same contract as :func:`instance_norm_forward`: GroupNorm with one channel per group."""
    return group_norm_forward_fused(x, gamma, beta, x.shape[1], eps)


def instance_norm_backward_fused(dy, cache):
    return group_norm_backward_fused(dy, cache)
