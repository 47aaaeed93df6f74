"""Batch normalization, the fast path: the same results as batchnorm.py in fewer passes.

:mod:`minibn.functional.batchnorm` follows Algorithm 1 line by line; this file computes
the same function with as few passes over memory as NumPy allows, for large inputs on the
CPU (and it runs unchanged on CuPy). It is registered as the "fast" implementation of
the operation "batch_norm" (``nn.BatchNorm1d(..., impl="fast")``) and tested against the
reference.

x is viewed as (N, C, S) (S = 1 for (N, C), L, or H * W), reduced over N and S.

Forward, four passes over x-sized data instead of seven:

1. mu0 = column sums of x by a matrix-vector product (BLAS, multi-threaded) / m;
2. d = x - mu0, the one large temporary (kept for the backward, in a reused buffer);
3. c = mean(d) and q = mean(d^2): the *corrected two-pass* algorithm (Chan, Golub &
   LeVeque 1983): mu = mu0 + c and var = q - c^2. Because d is already centred by a
   first estimate, c is tiny and q - c^2 does not cancel (unlike E[x^2] - E[x]^2), even
   for a float32 input with mean 1e4;
4. y = d * scale + shift with scale = gamma / sqrt(var + eps), shift = beta - c * scale.

x_hat = (d - c) / sqrt(var + eps) is never stored. Backward, with g = gamma * inv_std:

    dbeta  = sum dy,     dgamma = inv_std * (sum dy * d - c * dbeta)
    dx     = g * (dy - dbeta/m - x_hat * dgamma/m) = A dy + B d + K   (per channel A, B, K)
    A = g,  B = -g * inv_std * dgamma / m,  K = -g * dbeta / m - B * c

three passes (sum dy, sum dy * d, then dx in place), instead of six.

Dtypes and range: everything runs in x's dtype (y and dx have it; a float64 gamma's
products are rounded to it for their pass; dgamma and dbeta have gamma's dtype). Two
things can leave x's dtype's range; each is detected on (C,) vectors, never by a pass
over x, and then computed the slow, safe way. The squares of a float32 input of magnitude
1e19 and above overflow float32: q is then inf, and the moments are recomputed with
float64 sums (:func:`_moments_float64`; the per-channel numbers are float64 from there on).
And B ~ inv_std^2 underflows (or overflows) float32 for such an input (the forward bounds
inv_std from the same sum of q): dx's B * d term is then computed as (d * inv_std) *
(B / inv_std). On CuPy these checks would wait for the device at every step, and are not
made there.

The cache refers to d in the workspace: it is valid until the same layer's next forward
(as in any training step: forward, backward, then the next forward).
"""

from __future__ import annotations

import functools
import math

import numpy

from .._checks import check_inputs
from ..backend import get_array_module
from ..functional.batchnorm import batch_count
from ..workspace import Workspace


def _view_ncs(x):
    """x viewed as (N, C, S): S = 1 for (N, C), L for (N, C, L), H * W for (N, C, H, W)."""
    return x.reshape(x.shape[0], x.shape[1], -1)


def _channel_sum(a3, xp):
    """Sum over axes 0 and 2 of (N, C, S) by matrix products (BLAS), in the array's dtype."""
    N, C, S = a3.shape
    if S == 1:
        return xp.ones(N, dtype=a3.dtype) @ a3.reshape(N, C)
    return xp.ones(N, dtype=a3.dtype) @ (a3 @ xp.ones(S, dtype=a3.dtype))


def _channel_dot(a3, b3, xp):
    """sum over N and S of a * b, per channel, without a temporary."""
    return xp.einsum("ncs,ncs->c", a3, b3)


def applies(x):
    """float32 or float64 (float16 goes to the reference, which accumulates in float64)."""
    return x.dtype.kind == "f" and x.dtype.itemsize >= 4


def check(x):
    if not applies(x):
        raise TypeError(f"the fast path takes float32 or float64 arrays, got dtype {x.dtype} "
                        f"(use impl='reference', which accumulates statistics in float64)")


def _moments_float64(x3, d, m, xp):
    """mu0, c and q of the forward again, with float64 sums (slower: NumPy casts as it goes),
    for an input whose squares overflow its dtype; d (x3 - mu0) is rewritten in place."""
    mu0 = (x3.sum(axis=(0, 2), dtype="float64") * (1.0 / m)).astype(x3.dtype)
    xp.subtract(x3, mu0[:, None], out=d)
    c = d.sum(axis=(0, 2), dtype="float64") * (1.0 / m)
    return mu0, c, xp.einsum("ncs,ncs->c", d, d, dtype="float64") * (1.0 / m)


@functools.lru_cache(maxsize=None)
def _safe_inv_std(dtype):
    """(lo, hi): for inv_std in this range, B ~ inv_std^2 (times numbers near 1) neither
    underflows nor overflows ``dtype``."""
    info = numpy.finfo(dtype)
    return math.sqrt(float(info.tiny)) * 1e4, math.sqrt(float(info.max)) * 1e-4


def _in_dtype(dt, v):
    """A (C,) vector in the dtype of a pass (cast only when it differs: a float64 gamma)."""
    return v if v.dtype == dt else v.astype(dt)


def batch_norm_forward_fast(x, gamma, beta, eps=1e-5, axis=None, work=None):
    """Same contract as :func:`batch_norm_forward` (training mode), for float32/float64
    inputs. ``work``: a :class:`minibn.workspace.Workspace` (the layer's own), whose buffer the cache refers to."""
    x = check_inputs("batch_norm_forward_fast", x, gamma, beta)
    xp = get_array_module(x)
    _, m = batch_count(x, axis)
    x3 = _view_ncs(x)
    work = work or Workspace()
    mu0 = _channel_sum(x3, xp) * (1.0 / m)                                  # pass 1
    d = xp.subtract(x3, mu0[:, None], out=work.get("d", x3.shape, x.dtype, xp))  # pass 2
    c = _channel_sum(d, xp) * (1.0 / m)                                      # pass 3
    q = _channel_dot(d, d, xp) * (1.0 / m)
    wide = False  # whether B ~ inv_std^2 may leave x's dtype's range (the backward then scales it)
    if xp is numpy:
        total, (lo, hi) = float(q.sum()), _safe_inv_std(x.dtype)
        if not math.isfinite(total):  # the squares overflowed x's dtype (or x has NaN or inf)
            mu0, c, q = _moments_float64(x3, d, m, xp)
            total = float(q.sum())
        # var + eps <= q + eps, and var >= 0: the bounds of inv_std, from the one sum
        wide = not (total + eps < lo ** -2 and (eps > 0 and eps ** -0.5 < hi))
    var = xp.maximum(q - c * c, 0.0)  # >= 0 up to rounding; clip the rounding
    inv_std = (var + eps) ** -0.5
    scale = inv_std if gamma is None else gamma * inv_std
    shift = -c * scale if beta is None else beta - c * scale
    y = d * _in_dtype(x.dtype, scale)[:, None]                                     # pass 4
    y += _in_dtype(x.dtype, shift)[:, None]
    cache = {"x": x, "dev": d, "c": c, "inv_std": inv_std, "gamma": gamma, "m": m, "work": work,
             "mu_B": (mu0 + c), "var_B": var, "wide": wide}
    return y.reshape(x.shape), cache


def batch_norm_backward_fast(dy, cache):
    """Same contract as :func:`batch_norm_backward`: returns (dx, dgamma, dbeta)."""
    xp = get_array_module(dy)
    d, c, inv_std, gamma, m = cache["dev"], cache["c"], cache["inv_std"], cache["gamma"], cache["m"]
    dt = d.dtype  # x's
    dy3 = _view_ncs(dy)
    dbeta = _channel_sum(dy3, xp)
    dgamma = inv_std * (_channel_dot(dy3, d, xp) - c * dbeta)  # sum dy * x_hat
    g = inv_std if gamma is None else gamma * inv_std
    B_sigma = -g * dgamma * (1.0 / m)  # B / inv_std: no underflow where B itself would (see the module docstring)
    K = -g * dbeta * (1.0 / m) - B_sigma * (inv_std * c)
    dx = dy3 * _in_dtype(dt, g)[:, None]
    tmp = cache["work"].get("tmp", d.shape, dt, xp)
    lo, hi = _safe_inv_std(dt)
    if cache["wide"] and not lo < inv_std.min() <= inv_std.max() < hi:  # B would underflow (overflow) x's dtype
        xp.multiply(d, _in_dtype(dt, inv_std)[:, None], out=tmp)
        tmp *= _in_dtype(dt, B_sigma)[:, None]
    else:
        xp.multiply(d, _in_dtype(dt, B_sigma * inv_std)[:, None], out=tmp)
    dx += tmp
    dx += _in_dtype(dt, K)[:, None]
    dx = _in_dtype(dt, dx.reshape(dy.shape))
    if gamma is None:
        return dx, None, None
    return dx, _in_dtype(gamma.dtype, dgamma), _in_dtype(gamma.dtype, dbeta)
