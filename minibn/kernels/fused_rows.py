"""LayerNorm and GroupNorm, the fused CPU path: one read to standardize, one to write.

The same functions as :mod:`minibn.functional.layernorm` and :mod:`~minibn.functional.groupnorm`
(which share the readable :mod:`~minibn.functional.standardize`), computed by the loops of
:mod:`_row_loops` (numba): x is viewed as
rows (R, L) that are standardized one by one, and gamma, beta as a table (P, Lc) whose row
r % P applies to row r, each entry covering L / Lc consecutive values of the row:

- LayerNorm over D = normalized_shape: a row per sample, L = Lc = prod(D), P = 1, the
  table is gamma (and beta) flattened;
- GroupNorm with G groups over (N, C, ...): a row per (sample, group), L = (C / G) * S
  (channels of a group are contiguous, S positions each), P = G, Lc = C / G: table row g
  holds gamma of group g's channels.

Forward: per row, mean and variance in one read (float64 sums, shifted by the row's first
value), then y in one read and one write. Backward: per row, the sums of g = dy * gamma
and g * x_hat, then dx, with the row still in cache. Large inputs run as blocks of rows on
threads (see :mod:`numba_cpu`). As for BN (:mod:`fused_bn`), the algorithm is written once,
in :class:`FusedRows`, over loops with one interface: the numba CPU loops here, the
numba-cuda kernels of :mod:`cuda_loops` for arrays on the GPU (:mod:`cuda_bn`).
"""

from __future__ import annotations

import functools
import math

from .._checks import check_inputs
from ..backend import get_array_module
from . import numba_cpu


class FusedRows:
    """LayerNorm, GroupNorm and InstanceNorm on the row loops, given ``kernels(x) -> loops``
    and ``blocks(kernel, a, *args)`` (see :class:`minibn.kernels.fused_bn.FusedBN`)."""

    def __init__(self, kernels, blocks):
        self.kernels, self.blocks = kernels, blocks

    @staticmethod
    def _tables(gamma, beta, P, Lc, xp):
        """gamma, beta (P * Lc values, or None) -> (P, Lc) float64 tables."""
        if gamma is None:
            return xp.ones((P, Lc)), xp.zeros((P, Lc))
        return gamma.astype("float64").reshape(P, Lc), beta.astype("float64").reshape(P, Lc)

    def _forward(self, x2, gamma, beta, P, Lc, eps):
        k = self.kernels(x2)
        xp = k.xp
        gtab, btab = self._tables(gamma, beta, P, Lc, xp)
        R = x2.shape[0]
        mu, inv_std, y = xp.empty(R), xp.empty(R), xp.empty_like(x2)
        self.blocks(k.row_stats, x2, x2, float(eps), mu, inv_std)
        self.blocks(k.row_affine, x2, x2, mu, inv_std, gtab, btab, y)
        return y, {"x2": x2, "mu": mu, "inv_std": inv_std, "gtab": gtab}

    def _backward(self, dy, cache):
        """dx (dy's shape) and the (P, Lc) table sums of dy * x_hat and of dy (dgamma, dbeta)."""
        k = self.kernels(dy)
        x2 = cache["x2"]
        dy2 = k.xp.ascontiguousarray(dy, dtype=x2.dtype).reshape(x2.shape)  # dx in x's dtype
        dx = k.xp.empty_like(dy2)
        parts = self.blocks(k.row_backward, dy2, dy2, x2, cache["mu"], cache["inv_std"], cache["gtab"], dx)
        return dx.reshape(dy.shape), sum(p[0] for p in parts), sum(p[1] for p in parts)

    def layer_norm_forward(self, x, gamma, beta, normalized_ndim, eps=1e-5):
        """Same contract as :func:`layer_norm_forward`: x (..., D_1, ..., D_k), gamma, beta (D_1, ..., D_k) or None."""
        x = check_inputs("layer_norm_forward_fused", x, gamma, beta, normalized_ndim)
        D = tuple(x.shape[x.ndim - normalized_ndim:])
        L = math.prod(D)
        x2 = get_array_module(x).ascontiguousarray(x).reshape(-1, L)
        y, cache = self._forward(x2, gamma, beta, 1, L, eps)
        cache.update(gamma=gamma, D=D)
        return y.reshape(x.shape), cache

    def layer_norm_backward(self, dy, cache):
        """Same contract as :func:`layer_norm_backward`: (dx, dgamma, dbeta), the last two of shape D."""
        dx, dg, db = self._backward(dy, cache)
        if cache["gamma"] is None:
            return dx, None, None
        gamma = cache["gamma"]
        return dx, dg.reshape(cache["D"]).astype(gamma.dtype), db.reshape(cache["D"]).astype(gamma.dtype)

    def group_norm_forward(self, x, gamma, beta, num_groups, eps=1e-5):
        """Same contract as :func:`group_norm_forward`: x (N, C, ...), gamma, beta (C,) or None."""
        x = check_inputs("group_norm_forward_fused", x, gamma, beta)
        N, C = x.shape[:2]
        x2 = get_array_module(x).ascontiguousarray(x).reshape(N * num_groups, math.prod(x.shape[1:]) // num_groups)
        y, cache = self._forward(x2, gamma, beta, num_groups, C // num_groups, eps)
        cache.update(gamma=gamma)
        return y.reshape(x.shape), cache

    def group_norm_backward(self, dy, cache):
        """Same contract as :func:`group_norm_backward`: (dx, dgamma, dbeta), the last two (C,)."""
        dx, dg, db = self._backward(dy, cache)
        if cache["gamma"] is None:
            return dx, None, None
        gamma = cache["gamma"]
        return dx, dg.reshape(-1).astype(gamma.dtype), db.reshape(-1).astype(gamma.dtype)  # (G, C/G) -> (C,)

    def instance_norm_forward(self, x, gamma, beta, eps=1e-5):
        """Same contract as :func:`instance_norm_forward`: GroupNorm with one channel per group."""
        return self.group_norm_forward(x, gamma, beta, x.shape[1], eps)

    def instance_norm_backward(self, dy, cache):
        return self.group_norm_backward(dy, cache)


class _CpuRowLoops:
    def __init__(self, module):
        import numpy
        self.xp = numpy
        self.row_stats, self.row_affine, self.row_backward = module.row_stats, module.row_affine, module.row_backward


def _cpu_kernels(x):
    numba_cpu.check(x)
    return _cpu_loops()


@functools.cache
def _cpu_loops():
    return _CpuRowLoops(numba_cpu.loops("_row_loops"))


cpu = FusedRows(_cpu_kernels, numba_cpu.run_blocks)
layer_norm_forward_fused, layer_norm_backward_fused = cpu.layer_norm_forward, cpu.layer_norm_backward
group_norm_forward_fused, group_norm_backward_fused = cpu.group_norm_forward, cpu.group_norm_backward
instance_norm_forward_fused, instance_norm_backward_fused = cpu.instance_norm_forward, cpu.instance_norm_backward
