"""Batch Renormalization (Ioffe 2017), as stated in Guo et al. 2018 (Sec. "Related work", Eq. 3).

Training, per channel, with the moving mean mu and moving standard deviation sigma
*before* this step updates them::

    mu_B, sigma_B^2 = the mini-batch mean and variance        (BN's Algorithm 1, lines 1-2)
    sigma_B = sqrt(sigma_B^2 + eps)
    r = clip(sigma_B / sigma, 1/r_max, r_max)                (a constant for the backward)
    d = clip((mu_B - mu) / sigma, -d_max, d_max)             (a constant for the backward)
    x_hat = (x - mu_B) / sigma_B * r + d
    y = gamma * x_hat + beta

With r_max = 1 and d_max = 0, r = 1 and d = 0: exactly Algorithm 1 of the BN paper.
Inference uses the moving averages, ``y = gamma * (x - mu) / sigma + beta``; eps is
counted once, since it is already inside sigma (a moving average of
``sqrt(sigma_B^2 + eps)``).

Backward: r and d are constants, so with ``z = (x - mu_B) / sigma_B`` (BN's own x_hat),
``dl/dz = gamma * r * dl/dy`` and dl/dx is BN's closed form through z
(:func:`standardize_backward`). All per-channel values are (C,).
"""

from __future__ import annotations

from .._checks import check_inputs
from .batchnorm import batch_count, batch_moments, check_axis, per_channel
from .standardize import standardize_backward

__all__ = ["batch_renorm_forward", "batch_renorm_backward", "batch_renorm_inference_forward",
           "batch_renorm_inference_backward"]


def batch_renorm_forward(x, gamma, beta, running_mean, running_std, r_max, d_max, eps=1e-5, axis=None,
                         r=None, d=None):
    """Batch Renormalization in training (Ioffe 2017; Guo et al. 2018, Eq. 3).

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The input, of a floating dtype.
    gamma, beta : ndarray, shape (C,), or None
        Scale and shift; both None for no affine transform.
    running_mean, running_std : ndarray, shape (C,)
        The moving mean mu and moving standard deviation sigma, before this step's update.
    r_max, d_max : float
        The clipping bounds of r (to [1/r_max, r_max]) and d (to [-d_max, d_max]).
    eps : float, optional
        Added to the batch variance inside the square root.
    axis : None, int or tuple of int, optional
        The reduced axes, checked as by :func:`minibn.functional.check_axis`.
    r, d : ndarray, shape (C,), or None, optional
        Pass them to hold them fixed instead of computing them from this batch: the
        function the backward differentiates, since it treats r and d as constants (a
        finite-difference check must freeze them too).

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        "mu_B", "sigma_B" (for the caller's moving averages), "r", "d", all (C,); "m"; and
        what the backward needs.

    Raises
    ------
    TypeError
        If x is not a plain floating-point array (naming the fix), or axis is of the wrong type.
    ValueError
        If x has fewer than 2 axes, gamma and beta are not both None or both of shape (C,),
        axis is not the reduced axes, or the batch has one value per channel.
    """
    x = check_inputs("batch_renorm_forward", x, gamma, beta)     # the boundary
    axis, m = batch_count(x, axis)
    mu_B, var_B = batch_moments(x, axis)
    sigma_B = (var_B + eps) ** 0.5
    if r is None:
        r = (sigma_B / running_std).clip(1.0 / r_max, r_max)
    if d is None:
        d = ((mu_B - running_mean) / running_std).clip(-d_max, d_max)
    z = (x - per_channel(mu_B, x)) / per_channel(sigma_B, x)
    x_hat = z * per_channel(r, x) + per_channel(d, x)
    y = x_hat if gamma is None else per_channel(gamma, x) * x_hat + per_channel(beta, x)
    cache = {"x": x, "z": z, "x_hat": x_hat, "mu_B": mu_B, "sigma_B": sigma_B, "r": r, "d": d, "gamma": gamma,
             "axis": axis, "m": m}
    return y.astype(x.dtype, copy=False), cache


def batch_renorm_backward(dy, cache):
    """The gradient of :func:`batch_renorm_forward`, r and d held constant.

    ``dl/dz = gamma * r * dl/dy``, then BN's closed form through ``z = (x - mu_B) / sigma_B``.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`batch_renorm_forward`.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma, dbeta : ndarray, shape (C,), or None
        ``sum dy * x_hat`` and ``sum dy``, in gamma's dtype; None without an affine transform.
    """
    x, gamma, r, axis = cache["x"], cache["gamma"], cache["r"], cache["axis"]
    dz = dy * per_channel(r if gamma is None else gamma * r, x)
    dx = standardize_backward(dz, cache["z"], per_channel(1.0 / cache["sigma_B"], x), axis)
    dx = dx.astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    return dx, (dy * cache["x_hat"]).sum(axis=axis).astype(gamma.dtype), dy.sum(axis=axis).astype(gamma.dtype)


def batch_renorm_inference_forward(x, gamma, beta, running_mean, running_std, axis=None):
    """Batch Renormalization at inference: ``y = gamma * (x - mu) / sigma + beta``.

    The moving averages are used as they are: eps is already inside sigma.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The input, of a floating dtype.
    gamma, beta : ndarray, shape (C,), or None
        Scale and shift; both None for no affine transform.
    running_mean, running_std : ndarray, shape (C,)
        The moving mean mu and moving standard deviation sigma.
    axis : None, int or tuple of int, optional
        The reduced axes, checked as by :func:`minibn.functional.check_axis`.

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        What :func:`batch_renorm_inference_backward` needs.

    Raises
    ------
    TypeError
        If x is not a plain floating-point array (naming the fix), or axis is of the wrong type.
    ValueError
        If x has fewer than 2 axes, gamma and beta are not both None or both of shape (C,),
        or axis is not the reduced axes.
    """
    x = check_inputs("batch_renorm_inference_forward", x, gamma, beta)
    axis = check_axis(x, axis)
    x_hat = (x - per_channel(running_mean, x)) / per_channel(running_std, x)
    y = x_hat if gamma is None else per_channel(gamma, x) * x_hat + per_channel(beta, x)
    cache = {"x": x, "x_hat": x_hat, "running_std": running_std, "gamma": gamma, "axis": axis}
    return y.astype(x.dtype, copy=False), cache


def batch_renorm_inference_backward(dy, cache):
    """The gradient of :func:`batch_renorm_inference_forward`.

    ``dx = dy * gamma / sigma``; ``dgamma = sum dy * x_hat``, ``dbeta = sum dy``.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`batch_renorm_inference_forward`.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma, dbeta : ndarray, shape (C,), or None
        In gamma's dtype; None without an affine transform.
    """
    x, gamma, axis = cache["x"], cache["gamma"], cache["axis"]
    scale = 1.0 / cache["running_std"] if gamma is None else gamma / cache["running_std"]
    dx = (dy * per_channel(scale, x)).astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    return dx, (dy * cache["x_hat"]).sum(axis=axis).astype(gamma.dtype), dy.sum(axis=axis).astype(gamma.dtype)
