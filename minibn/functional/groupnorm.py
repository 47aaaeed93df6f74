"""Group normalization (Wu & He 2018; EE-559 lecture 6.4): statistics per sample and group.

PyTorch semantics: x is (N, C, *); the C channels are split into G groups of C/G
consecutive channels; each (sample, group) is standardized over its channels and all
spatial positions (biased variance); then a per-channel gamma, beta (C,) is applied.
G = 1 is LayerNorm over (C, *) with per-channel affine; G = C is InstanceNorm.
"""

from __future__ import annotations

from ._standardize import standardize, standardize_backward


def _grouped(x, num_groups):
    return x.reshape(x.shape[0], num_groups, -1)  # (N, G, C/G * spatial): channels of a group are contiguous


def group_norm_forward(x, gamma, beta, num_groups, eps=1e-5):
    """x: (N, C, *); gamma, beta: (C,) or None. Returns (y, cache)."""
    shape = (1, x.shape[1]) + (1,) * (x.ndim - 2)
    x_hat, inv_std = standardize(_grouped(x, num_groups), (2,), eps)
    x_hat = x_hat.reshape(x.shape)
    y = x_hat * gamma.reshape(shape) + beta.reshape(shape) if gamma is not None else x_hat.copy()
    y = y.astype(x.dtype, copy=False)
    return y, {"x_hat": x_hat, "inv_std": inv_std, "gamma": gamma, "G": num_groups, "dtype": x.dtype}


def group_norm_backward(dy, cache):
    """Returns (dx, dgamma, dbeta); dgamma, dbeta (C,) are None without affine."""
    x_hat, gamma, G = cache["x_hat"], cache["gamma"], cache["G"]
    shape = (1, x_hat.shape[1]) + (1,) * (x_hat.ndim - 2)
    dx_hat = dy * gamma.reshape(shape) if gamma is not None else dy
    dx = standardize_backward(_grouped(dx_hat, G), _grouped(x_hat, G), cache["inv_std"], (2,))
    dx = dx.reshape(x_hat.shape).astype(cache["dtype"], copy=False)
    if gamma is None:
        return dx, None, None
    red = (0,) + tuple(range(2, x_hat.ndim))
    return dx, (dy * x_hat).sum(axis=red), dy.sum(axis=red)
