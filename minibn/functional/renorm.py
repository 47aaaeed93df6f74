"""Batch Renormalization (Ioffe 2017), as stated in Guo et al. 2018 (Sec. "Related work", Eq. 3).

Training, per channel, with the moving mean mu and moving standard deviation sigma
*before* this step updates them:

    sigma_B = sqrt(var_B + eps)
    r = clip(sigma_B / sigma, 1/r_max, r_max)          (a constant for the backward)
    d = clip((mu_B - mu) / sigma, -d_max, d_max)       (a constant for the backward)
    x_hat = (x - mu_B) / sigma_B * r + d
    y = gamma * x_hat + beta

With r_max = 1 and d_max = 0, r = 1 and d = 0: exactly Algorithm 1 of the BN paper.
Inference uses the moving averages, y = gamma * (x - mu) / sigma + beta; eps is counted
once, since it is already inside sigma (a moving average of sqrt(var_B + eps)).
"""

from __future__ import annotations

from .batchnorm import _channel_shape, batch_norm_backward, batch_norm_forward


def batch_renorm_forward(x, gamma, beta, running_mean, running_std, r_max, d_max, eps=1e-5, axis=(0,),
                         r=None, d=None):
    """x: (N, C, *); gamma, beta, running_mean, running_std: (C,).

    ``r``, ``d``: pass them (broadcastable to the statistics) to hold them fixed instead of
    computing them from this batch: the function the backward differentiates, since it
    treats r and d as constants (a finite-difference check must freeze them too).

    Returns (y, cache); cache["mu_B"], cache["sigma_B"], cache["r"], cache["d"] are
    (C,)-broadcastable, for the caller's moving-average update and for inspection.
    """
    xp_shape = _channel_shape(x, tuple(axis))
    # z = (x - mu_B) / sigma_B: the BN transform without gamma and beta
    z, bn_cache = batch_norm_forward(x, None, None, eps, axis)
    sigma_B = (bn_cache["var_B"] + eps) ** 0.5
    sigma = running_std.reshape(xp_shape)
    if r is None:
        r = (sigma_B / sigma).clip(1.0 / r_max, r_max)
    if d is None:
        d = ((bn_cache["mu_B"] - running_mean.reshape(xp_shape)) / sigma).clip(-d_max, d_max)
    x_hat = z * r + d
    y = x_hat * gamma.reshape(xp_shape) + beta.reshape(xp_shape) if gamma is not None else x_hat
    y = y.astype(x.dtype, copy=False)
    cache = {"bn": bn_cache, "x_hat": x_hat, "r": r, "d": d, "gamma": gamma, "axis": tuple(axis),
             "mu_B": bn_cache["mu_B"], "sigma_B": sigma_B, "m": bn_cache["m"]}
    return y, cache


def batch_renorm_backward(dy, cache):
    """r and d are constants: dl/dz = r * gamma * dy, then BN's closed-form backward through z.

    Returns (dx, dgamma, dbeta), with dgamma = sum dy * x_hat and dbeta = sum dy.
    """
    gamma, r, axis = cache["gamma"], cache["r"], cache["axis"]
    dz = dy * r if gamma is None else dy * (gamma.reshape(r.shape) * r)
    dx, _, _ = batch_norm_backward(dz, cache["bn"])
    if gamma is None:
        return dx, None, None
    return dx, (dy * cache["x_hat"]).sum(axis=axis), dy.sum(axis=axis)


def batch_renorm_inference_forward(x, gamma, beta, running_mean, running_std, axis=(0,)):
    """y = gamma * (x - mu) / sigma + beta with the moving averages (eps already inside sigma)."""
    shape = _channel_shape(x, tuple(axis))
    inv = 1.0 / running_std.reshape(shape)
    scale = inv if gamma is None else gamma.reshape(shape) * inv
    y = (x - running_mean.reshape(shape)) * scale
    if beta is not None:
        y += beta.reshape(shape)
    cache = {"x": x, "mean": running_mean.reshape(shape), "inv": inv, "scale": scale, "gamma": gamma,
             "axis": tuple(axis)}
    return y.astype(x.dtype, copy=False), cache


def batch_renorm_inference_backward(dy, cache):
    axis = cache["axis"]
    dx = (dy * cache["scale"]).astype(cache["x"].dtype, copy=False)
    if cache["gamma"] is None:
        return dx, None, None
    return dx, (dy * (cache["x"] - cache["mean"]) * cache["inv"]).sum(axis=axis), dy.sum(axis=axis)
