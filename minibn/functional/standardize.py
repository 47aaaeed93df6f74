"""Standardize over some axes, and the closed-form backward of a standardization.

LayerNorm and GroupNorm standardize each sample (or group) over its own axes (EE-559
lecture 6.4): the same steps as lines 1-3 of BN's Algorithm 1, over other axes. The
backward is BN's closed form (see :func:`minibn.functional.batch_norm_backward`) written
for dl/dx_hat; Batch Renormalization and Memorized BN use it too, since their x_hat is a
standardization with constants around it.
"""

from __future__ import annotations

import math

__all__ = ["standardize", "standardize_backward"]


def standardize(x, axis, eps):
    """``x_hat = (x - mean) / sqrt(var + eps)`` over ``axis``: lines 1-3 of BN's Algorithm 1 over other axes.

    The biased variance, in two passes, the sums in float64.

    Parameters
    ----------
    x : ndarray
        The input.
    axis : tuple of int
        The axes the mean and variance are taken over.
    eps : float
        Added to the variance inside the square root.

    Returns
    -------
    x_hat : ndarray
        x's shape (float64 for a float32 x: the mean is float64).
    inv_std : ndarray
        ``1 / sqrt(var + eps)``, x's shape with the reduced axes of size 1.
    """
    mu = x.mean(axis=axis, keepdims=True, dtype="float64")
    var = ((x - mu) ** 2).mean(axis=axis, keepdims=True)
    inv_std = (var + eps) ** -0.5
    return (x - mu) * inv_std, inv_std


def standardize_backward(dx_hat, x_hat, inv_std, axis, m=None):
    """dl/dx of ``x_hat = (x - mean) * inv_std`` over ``axis``, given dl/dx_hat.

    ::

        dl/dx = inv_std * (dl/dx_hat - sum(dl/dx_hat) / m - x_hat * sum(dl/dx_hat * x_hat) / m)

    with the sums over ``axis``: BN's closed form (:func:`minibn.functional.batch_norm_backward`)
    written for dl/dx_hat.

    Parameters
    ----------
    dx_hat : ndarray
        dl/dx_hat.
    x_hat : ndarray
        The standardized values, dx_hat's shape.
    inv_std : ndarray
        Broadcasts against x_hat (the reduced axes of size 1).
    axis : tuple of int
        The axes of the standardization.
    m : int or scalar, optional
        The count the sums are divided by: by default the number of values they are over;
        for Memorized BN, the pooled count W of its statistics.

    Returns
    -------
    dx : ndarray
        dx_hat's shape.
    """
    if m is None:
        m = math.prod(x_hat.shape[a] for a in axis)  # not sizes' ratio: 0 / 0 for an empty batch
    sum_dxh = dx_hat.sum(axis=axis, keepdims=True)
    sum_dxh_xh = (dx_hat * x_hat).sum(axis=axis, keepdims=True)
    return inv_std * (dx_hat - sum_dxh / m - x_hat * sum_dxh_xh / m)
