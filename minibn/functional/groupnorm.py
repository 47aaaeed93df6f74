"""Group normalization (Wu & He 2018; EE-559 lecture 6.4): statistics per sample and group.

PyTorch semantics: x is (N, C, *); the C channels are split into G groups of C/G
consecutive channels; each (sample, group) is standardized over its channels and all
positions (biased variance); then a per-channel gamma, beta (C,) is applied.
G = 1 is LayerNorm over (C, *) with a per-channel affine; G = C is instance
normalization (Ulyanov et al. 2016): each channel of each sample on its own.
"""

from __future__ import annotations

import math

from .._checks import check_inputs
from .batchnorm import per_channel
from .standardize import standardize, standardize_backward

__all__ = ["group_norm_forward", "group_norm_backward", "instance_norm_forward", "instance_norm_backward"]


def _grouped(a, G):
    """(N, C, *) -> (N, G, C/G * positions): the channels of a group are contiguous. (Sizes
    written out, not -1: an empty batch has no size to infer them from.)"""
    return a.reshape(a.shape[0], G, math.prod(a.shape[1:]) // G)


def group_norm_forward(x, gamma, beta, num_groups, eps=1e-5):
    """x: (N, C, *); gamma, beta: (C,) or None. Returns (y, cache)."""
    x = check_inputs("group_norm_forward", x, gamma, beta)                       # the boundary
    x_hat, inv_std = standardize(_grouped(x, num_groups), (2,), eps)  # per (sample, group)
    x_hat = x_hat.reshape(x.shape)
    y = x_hat if gamma is None else per_channel(gamma, x) * x_hat + per_channel(beta, x)
    cache = {"x": x, "x_hat": x_hat, "inv_std": inv_std, "gamma": gamma, "G": num_groups}
    return y.astype(x.dtype, copy=False), cache


def group_norm_backward(dy, cache):
    """Returns (dx, dgamma, dbeta); dgamma, dbeta (C,) are None without affine."""
    x, x_hat, gamma, G = cache["x"], cache["x_hat"], cache["gamma"], cache["G"]
    dx_hat = dy if gamma is None else dy * per_channel(gamma, x)
    dx = standardize_backward(_grouped(dx_hat, G), _grouped(x_hat, G), cache["inv_std"], (2,))
    dx = dx.reshape(x.shape).astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    axes = (0,) + tuple(range(2, x.ndim))
    return dx, (dy * x_hat).sum(axis=axes).astype(gamma.dtype), dy.sum(axis=axes).astype(gamma.dtype)


def instance_norm_forward(x, gamma, beta, eps=1e-5):
    """Instance normalization: GroupNorm with one channel per group. x: (N, C, *)."""
    return group_norm_forward(x, gamma, beta, x.shape[1], eps)


def instance_norm_backward(dy, cache):
    return group_norm_backward(dy, cache)
