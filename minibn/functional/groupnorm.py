"""Group normalization (Wu & He 2018; EE-559 lecture 6.4): statistics per sample and group.

PyTorch semantics: x is (N, C, ...); the C channels are split into G groups of C/G
consecutive channels; each (sample, group) is standardized over its channels and all
positions (biased variance); then a per-channel gamma, beta (C,) is applied.
G = 1 is LayerNorm over all of a sample's axes with a per-channel affine; G = C is
instance normalization (Ulyanov et al. 2016): each channel of each sample on its own.
"""

from __future__ import annotations

import math
import numbers

from .._checks import check_inputs
from .batchnorm import per_channel
from .standardize import standardize, standardize_backward

__all__ = ["group_norm_forward", "group_norm_backward", "instance_norm_forward", "instance_norm_backward"]


def _grouped(a, G):
    """(N, C, *) -> (N, G, C/G * positions): the channels of a group are contiguous. (Sizes
    written out, not -1: an empty batch has no size to infer them from.)"""
    return a.reshape(a.shape[0], G, math.prod(a.shape[1:]) // G)


def group_norm_forward(x, gamma, beta, num_groups, eps=1e-5):
    """Group normalization: standardize each sample's groups of C / G consecutive channels.

    Each (sample, group) is normalized over its channels and all positions (biased
    variance, float64 sums: :func:`minibn.functional.standardize`), then scaled and
    shifted per channel.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The input, of a floating dtype.
    gamma, beta : ndarray, shape (C,), or None
        Per-channel scale and shift; both None for no affine transform.
    num_groups : int
        G, a positive divisor of C.
    eps : float, optional
        Added to each group's variance inside the square root.

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        "x", "x_hat", "inv_std" (N, G, 1), "gamma", "G".

    Raises
    ------
    TypeError
        If x is not a plain floating-point array (naming the fix).
    ValueError
        If x has fewer than 2 axes, num_groups does not divide C, or gamma and beta are not
        both None or both of shape (C,).
    """
    x = check_inputs("group_norm_forward", x, gamma, beta)                       # the boundary
    C = x.shape[1]
    if not isinstance(num_groups, numbers.Integral) or num_groups < 1 or C % num_groups:
        raise ValueError(f"group_norm_forward: num_groups must be a positive divisor of C = {C}, "
                         f"got {num_groups!r}")
    x_hat, inv_std = standardize(_grouped(x, num_groups), (2,), eps)  # per (sample, group)
    x_hat = x_hat.reshape(x.shape)
    y = x_hat if gamma is None else per_channel(gamma, x) * x_hat + per_channel(beta, x)
    cache = {"x": x, "x_hat": x_hat, "inv_std": inv_std, "gamma": gamma, "G": num_groups}
    return y.astype(x.dtype, copy=False), cache


def group_norm_backward(dy, cache):
    """The gradient of :func:`group_norm_forward`: the closed form of a standardization per group.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`group_norm_forward`.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma, dbeta : ndarray, shape (C,), or None
        In gamma's dtype; None without an affine transform.
    """
    x, x_hat, gamma, G = cache["x"], cache["x_hat"], cache["gamma"], cache["G"]
    dx_hat = dy if gamma is None else dy * per_channel(gamma, x)
    dx = standardize_backward(_grouped(dx_hat, G), _grouped(x_hat, G), cache["inv_std"], (2,))
    dx = dx.reshape(x.shape).astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    axes = (0,) + tuple(range(2, x.ndim))
    return dx, (dy * x_hat).sum(axis=axes).astype(gamma.dtype), dy.sum(axis=axes).astype(gamma.dtype)


def instance_norm_forward(x, gamma, beta, eps=1e-5):
    """Instance normalization (Ulyanov et al. 2016): GroupNorm with one channel per group.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The input, of a floating dtype; each channel of each sample is normalized over its
        positions.
    gamma, beta : ndarray, shape (C,), or None
        Per-channel scale and shift; both None for no affine transform.
    eps : float, optional
        Added to the variance inside the square root.

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        As :func:`group_norm_forward`'s, with G = C.

    Raises
    ------
    TypeError, ValueError
        As :func:`group_norm_forward`.
    """
    x = check_inputs("instance_norm_forward", x, gamma, beta)
    return group_norm_forward(x, gamma, beta, x.shape[1], eps)


def instance_norm_backward(dy, cache):
    """The gradient of :func:`instance_norm_forward` (:func:`group_norm_backward`).

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`instance_norm_forward`.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma, dbeta : ndarray, shape (C,), or None
        None without an affine transform.
    """
    return group_norm_backward(dy, cache)
