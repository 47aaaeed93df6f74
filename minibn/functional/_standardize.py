"""Standardize over some axes and its backward: the core shared by LayerNorm and GroupNorm.

BatchNorm spells the same steps out in batchnorm.py for teaching; these two relatives
differ from it only in *which* axes they reduce over (EE-559 lecture 6.4).
"""

from __future__ import annotations


def standardize(x, axis, eps):
    """x_hat = (x - mean) / sqrt(var + eps) over ``axis`` (biased variance, two passes).

    Returns (x_hat, inv_std) with inv_std keeping the reduced axes as size 1.
    """
    m = 1
    for a in axis:
        m *= x.shape[a]
    xs = x.astype("float32") if x.dtype.itemsize < 4 else x
    mu = xs.sum(axis=axis, keepdims=True) * (1.0 / m)
    x_hat = xs - mu
    var = (x_hat * x_hat).sum(axis=axis, keepdims=True) * (1.0 / m)
    inv_std = 1.0 / (var + eps) ** 0.5
    x_hat *= inv_std
    return x_hat, inv_std


def standardize_backward(dx_hat, x_hat, inv_std, axis):
    """dx = inv_std * (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)) over ``axis``.

    The same closed form as batch_norm_backward, with dx_hat = dy * gamma.
    """
    m = 1
    for a in axis:
        m *= x_hat.shape[a]
    mean_dxh = dx_hat.sum(axis=axis, keepdims=True) * (1.0 / m)
    mean_dxh_xh = (dx_hat * x_hat).sum(axis=axis, keepdims=True) * (1.0 / m)
    dx = dx_hat - mean_dxh
    dx -= x_hat * mean_dxh_xh
    dx *= inv_std
    return dx
