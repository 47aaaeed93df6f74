"""Batch normalization (and BatchRenorm, Memorized BN), the fused CPU path: two loops forward,
two backward.

NumPy cannot fuse: every ufunc is one pass over memory, with its own output, on one
core. :mod:`numpy_fast` brings BN down to four passes forward and three backward
that way; this file writes the loops out by hand (compiled by numba; a large input is
split into blocks of rows, one per core) so that each pass does all the work it can on
the value it has loaded::

    forward   1. per channel, sum (x - K) and sum (x - K)^2 in one read of x, K = x[0] (a
                 *shifted* one-pass variance: with float64 sums and a shift taken from the
                 data, var = E[(x - K)^2] - E[x - K]^2 does not cancel the way
                 E[x^2] - E[x]^2 does, even for a float32 input with mean 1e4);
              2. y = gamma * inv_std * (x - mu) + beta                    (Alg. 1, lines 3-4)
    backward  1. dbeta = sum dy and sum dy * (x - mu) in one read of dy and x;
              2. dx = A dy + B (x - mu) + K per channel, the closed form of
                 batch_norm_backward with A = gamma * inv_std,
                 B = -A * inv_std * dgamma / m and K = -A * dbeta / m.

That is 2 reads and 1 write of x-sized data forward, 4 reads and 1 write backward: the
statistics must be complete before the first output is written, so no two-phase BN
does less without keeping x_hat. Per-channel arithmetic is in float64; arrays
keep their dtype (float32 or float64). The loops are in :mod:`_bn_loops`; numba, the
thread pool and the input checks are in :mod:`numba_cpu`.

BatchRenorm (Ioffe 2017) and Memorized BN (Guo et al. 2018) differ from BN only in the
per-channel numbers between the loops (r and d; the statistics pooled with the memory),
so they run on the same two loops: see the last two sections.

Each function has the contract of the reference function it replaces (same arguments,
same cache keys that callers read: mu_B, var_B, m, ...). The algorithm is written once, in
:class:`FusedBN`, over a set of loops with one interface (``moments``, ``affine``, ``combine``, the
per-channel ``forward_coefficients`` / ``backward_coefficients``, and ``forward`` /
``backward`` for a whole direction): the numba CPU loops of :mod:`_bn_loops` here, the
numba-cuda kernels of :mod:`cuda_loops` for arrays on the GPU (:mod:`cuda_bn`).
"""

from __future__ import annotations

import functools

import numpy

from .._checks import check_inputs
from ..backend import get_array_module
from ..functional.batchnorm import batch_count, check_axis
from ..functional.memorized import pool_with_batch
from . import numba_cpu


def _contiguous_ncs(a, xp):
    """a as a C-contiguous (N, C, S) array (a view when it already is one): the loops' layout."""
    return xp.ascontiguousarray(a).reshape(a.shape[0], a.shape[1], -1)


class FusedBN:
    """BN, BatchRenorm and Memorized BN on two loops per direction, given ``kernels(x) ->
    loops`` (the CPU loops, or the CUDA kernels) and ``blocks(kernel, a, *args)`` (how a
    loop runs over the rows of a: in row blocks on threads on the CPU, once on the GPU)."""

    def __init__(self, kernels, blocks):
        self.kernels, self.blocks = kernels, blocks

    def _moments(self, k, a3, shift_a, b3, shift_b):
        parts = self.blocks(k.moments, a3, a3, shift_a, b3, shift_b)
        return sum(p[0] for p in parts), sum(p[1] for p in parts)

    def _affine(self, k, a3, *args):
        self.blocks(k.affine, a3, a3, *args)

    def _combine(self, k, a3, *args):
        self.blocks(k.combine, a3, a3, *args)

    def _batch_statistics(self, k, x3, m, eps):
        """mu, biased var and inv_std (C,) float64 of x3 (N, C, S) by the moments loop,
        shifted by the first sample."""
        shift = x3[0, :, 0].astype("float64")
        s1, s2 = self._moments(k, x3, shift, x3, shift)
        C = x3.shape[1]
        mu, var, inv_std, _ = k.forward_coefficients(s1, s2, shift, m, k.xp.ones(C), eps)
        return mu, var, inv_std

    def batch_norm_forward(self, x, gamma, beta, eps=1e-5, axis=None):
        """Same contract as :func:`batch_norm_forward` (training mode) for x (N, C, ...): (y, cache)."""
        x = check_inputs("batch_norm_forward_fused", x, gamma, beta)
        k = self.kernels(x)
        xp = k.xp
        _, m = batch_count(x, axis)
        C = x.shape[1]
        x3 = _contiguous_ncs(x, xp)
        # gamma and beta in x's dtype: one compiled signature per dtype of x, not per pair
        g = xp.ones(C, x.dtype) if gamma is None else gamma if gamma.dtype == x.dtype else gamma.astype(x.dtype)
        b = xp.zeros(C, x.dtype) if beta is None else beta if beta.dtype == x.dtype else beta.astype(x.dtype)
        y = xp.empty_like(x3)
        if not k.parallel(x3):
            mu, var, inv_std = k.forward(x3, g, b, eps, y)
        else:
            mu, var, inv_std = self._batch_statistics(k, x3, m, eps)
            self._affine(k, x3, mu, g * inv_std, b.astype("float64"), y)
        cache = {"x3": x3, "mu": mu, "inv_std": inv_std, "gamma": gamma, "m": m, "mu_B": mu, "var_B": var}
        return y.reshape(x.shape), cache

    def _backward(self, dy, x3, mu, inv_std, g, m):
        """The backward loops of y = g * (x - mu) * inv_std + ...: (dx, sum dy * x_hat, sum dy),
        with the means of the closed form taken over m values (float64 per-channel sums)."""
        k = self.kernels(dy)
        xp = k.xp
        dy3 = _contiguous_ncs(dy, xp)
        C = dy3.shape[1]
        dx = xp.empty_like(dy3)
        if not k.parallel(dy3):
            dgamma, dbeta = k.backward(dy3, x3, mu, inv_std, g, m, dx)
        else:
            dbeta, dy_xc = self._moments(k, dy3, xp.zeros(C), x3, mu)
            dgamma, A, B, K = k.backward_coefficients(dbeta, dy_xc, inv_std, g, m)
            self._combine(k, x3, mu, B, dy3, A, K, dx)
        return dx.reshape(dy.shape), dgamma, dbeta

    def batch_norm_backward(self, dy, cache, m=None):
        """Same contract as :func:`batch_norm_backward`: (dx, dgamma, dbeta). ``m``: the count the
        closed form's means are over (default the batch's, cache["m"])."""
        gamma = cache["gamma"]
        xp = get_array_module(dy)
        dt = cache["x3"].dtype
        if dy.dtype != dt:
            dy = dy.astype(dt)  # dx in x's dtype
        g = xp.ones(dy.shape[1], dt) if gamma is None else gamma if gamma.dtype == dt else gamma.astype(dt)
        dx, dgamma, dbeta = self._backward(dy, cache["x3"], cache["mu"], cache["inv_std"], g,
                                           cache["m"] if m is None else m)
        if gamma is None:
            return dx, None, None
        return dx, dgamma.astype(gamma.dtype), dbeta.astype(gamma.dtype)

    # -- Batch Renormalization (Ioffe 2017) on the same two loops ----------------------------

    def batch_renorm_forward(self, x, gamma, beta, running_mean, running_std, r_max, d_max, eps=1e-5, axis=None,
                             r=None, d=None):
        """Same contract as :func:`minibn.functional.batch_renorm_forward`.

        BRN's y = gamma * (r (x - mu_B) / sigma_B + d) + beta is the BN affine loop with scale
        gamma * r / sigma_B and shift gamma * d + beta, so it runs on the same two loops; only
        the per-channel r and d (computed from the moving statistics, or passed frozen) differ.
        """
        x = check_inputs("batch_renorm_forward_fused", x, gamma, beta)
        k = self.kernels(x)
        xp = k.xp
        _, m = batch_count(x, axis)
        C = x.shape[1]
        x3 = _contiguous_ncs(x, xp)
        mu, var, inv_std = self._batch_statistics(k, x3, m, eps)
        sigma_B = xp.sqrt(var + eps)
        sigma = running_std.astype("float64")
        r = xp.clip(sigma_B / sigma, 1.0 / r_max, r_max) if r is None else xp.asarray(r, "float64").reshape(C)
        d = xp.clip((mu - running_mean) / sigma, -d_max, d_max) if d is None else xp.asarray(d, "float64").reshape(C)
        g = xp.ones(C) if gamma is None else gamma.astype("float64")
        b = xp.zeros(C) if beta is None else beta.astype("float64")
        y = xp.empty_like(x3)
        self._affine(k, x3, mu, g * r * inv_std, g * d + b, y)
        cache = {"x3": x3, "mu": mu, "inv_std": inv_std, "gamma": gamma, "m": m, "r": r, "d": d,
                 "mu_B": mu, "sigma_B": sigma_B}
        return y.reshape(x.shape), cache

    def batch_renorm_backward(self, dy, cache):
        """Same contract as :func:`minibn.functional.batch_renorm_backward` (r and d constants):
        BN's backward with gamma * r in place of gamma; dgamma = sum dy (r x_hat_BN + d)."""
        gamma, r, d = cache["gamma"], cache["r"], cache["d"]
        g_r = r if gamma is None else gamma.astype("float64") * r
        if dy.dtype != cache["x3"].dtype:
            dy = dy.astype(cache["x3"].dtype)  # dx in x's dtype
        dx, dgamma_bn, dbeta = self._backward(dy, cache["x3"], cache["mu"], cache["inv_std"], g_r, cache["m"])
        if gamma is None:
            return dx, None, None
        return dx, (r * dgamma_bn + d * dbeta).astype(gamma.dtype), dbeta.astype(gamma.dtype)

    # -- Memorized BN (Guo et al. 2018) on the same two loops ---------------------------------

    def memorized_batch_norm_forward(self, x, gamma, beta, mem_means, mem_vars, mem_counts, alphas, eps=1e-5,
                                     axis=None):
        """Same contract as :func:`minibn.functional.memorized_batch_norm_forward`.

        The batch's own mean and variance come from the moments loop, Eq. 6 pools them with
        the memory (:func:`pool_with_batch`, a few (C,) vectors), and Eq. 7 is BN's affine loop
        with mu_hat and var_hat in place of the batch statistics.
        """
        x = check_inputs("memorized_batch_norm_forward_fused", x, gamma, beta)
        k = self.kernels(x)
        xp = k.xp
        check_axis(x, axis)
        C = x.shape[1]
        n = x.size // C
        if n < 2 and len(alphas) == 0:
            raise ValueError(f"expected more than 1 value per channel when training, got input of shape "
                             f"{tuple(x.shape)} and an empty memory")
        x3 = _contiguous_ncs(x, xp)
        mu_B, var_B, _ = self._batch_statistics(k, x3, n, eps)
        mu_hat, var_hat, W = pool_with_batch(mu_B, var_B, n, mem_means, mem_vars, mem_counts, alphas)
        inv_std = 1.0 / xp.sqrt(var_hat + eps)
        g = xp.ones(C) if gamma is None else gamma.astype("float64")
        b = xp.zeros(C) if beta is None else beta.astype("float64")
        y = xp.empty_like(x3)
        self._affine(k, x3, mu_hat, g * inv_std, b, y)
        cache = {"x3": x3, "mu": mu_hat, "inv_std": inv_std, "gamma": gamma, "W": W, "m": n,
                 "mu_B": mu_B, "var_B": var_B, "mu_hat": mu_hat, "var_hat": var_hat}
        return y.reshape(x.shape), cache

    def memorized_batch_norm_backward(self, dy, cache):
        """Same contract as :func:`minibn.functional.memorized_batch_norm_backward`: BN's closed
        form with the means over the pooled count W (the memory is constant)."""
        return self.batch_norm_backward(dy, cache, m=cache["W"])


def update_running_stats_fused(running_mean, running_var, cache, factor, limit, eps_is_zero):
    """:func:`minibn.functional.update_running_stats` from a forward's cache (its mu_B, var_B
    and m) in one compiled call, with the checks nn.BatchNorm makes first folded in: when
    every channel's var_B is finite, its sum at most ``limit`` (the largest variance the
    running buffer's dtype takes) and, with ``eps_is_zero``, every var_B > 0, both buffers are
    updated and it returns True. Otherwise it changes nothing and returns False, and the
    layer takes its own path, which names the channels in a warning and leaves them as they
    were. For NumPy buffers; the same values up to rounding (the reference rounds
    ``(1 - factor) * running`` to the buffer's dtype first)."""
    mu, var, m = cache["mu_B"], cache["var_B"], cache["m"]
    if type(running_mean) is not numpy.ndarray or mu.dtype != numpy.float64:
        return False
    return _cpu_loops().module.update_running_stats(running_mean, running_var, mu, var, float(factor),
                                                    m / (m - 1), float(limit), bool(eps_is_zero))


class _CpuLoops:
    """The numba CPU loops of :mod:`_bn_loops`, with the interface FusedBN expects."""

    def __init__(self, module):
        import numpy
        self.module, self.xp = module, numpy
        self.moments, self.affine, self.combine = module.moments, module.affine, module.combine
        self.forward_coefficients = module.forward_coefficients
        self.backward_coefficients = module.backward_coefficients

    @staticmethod
    def parallel(a3):
        return numba_cpu.parallel(a3)

    def forward(self, x3, g, b, eps, y):
        return self.module.forward(x3, g, b, eps, y)

    def backward(self, dy3, x3, mu, inv_std, g, m, dx):
        return self.module.backward(dy3, x3, mu, inv_std, g, float(m), dx)


def _cpu_kernels(x):
    numba_cpu.check(x)
    return _cpu_loops()


@functools.cache
def _cpu_loops():
    return _CpuLoops(numba_cpu.loops("_bn_loops"))


cpu = FusedBN(_cpu_kernels, numba_cpu.run_blocks)
batch_norm_forward_fused, batch_norm_backward_fused = cpu.batch_norm_forward, cpu.batch_norm_backward
batch_renorm_forward_fused, batch_renorm_backward_fused = cpu.batch_renorm_forward, cpu.batch_renorm_backward
memorized_batch_norm_forward_fused = cpu.memorized_batch_norm_forward
memorized_batch_norm_backward_fused = cpu.memorized_batch_norm_backward
