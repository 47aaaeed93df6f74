"""Layer normalization (Ba et al. 2016; EE-559 lecture 6.4): statistics per sample.

PyTorch semantics: ``normalized_shape`` is the trailing shape D (e.g. (C,) or (C, H, W));
each sample is standardized over those trailing axes with the biased variance, then
scaled and shifted elementwise by gamma, beta of shape D. No running statistics:
training and inference compute the same thing, and the batch size does not matter.
"""

from __future__ import annotations

from .._checks import check_inputs
from .standardize import standardize, standardize_backward

__all__ = ["layer_norm_forward", "layer_norm_backward"]


def layer_norm_forward(x, gamma, beta, normalized_ndim, eps=1e-5):
    """x: (*, *D) with D of ``normalized_ndim`` axes; gamma, beta: D or None.

    Returns (y, cache); y has x's shape and dtype.
    """
    x = check_inputs("layer_norm_forward", x, gamma, beta, normalized_ndim)  # the boundary
    axis = tuple(range(x.ndim - normalized_ndim, x.ndim))
    x_hat, inv_std = standardize(x, axis, eps)          # per sample: (x - mean) / sqrt(var + eps)
    y = x_hat if gamma is None else gamma * x_hat + beta
    cache = {"x": x, "x_hat": x_hat, "inv_std": inv_std, "gamma": gamma, "axis": axis}
    return y.astype(x.dtype, copy=False), cache


def layer_norm_backward(dy, cache):
    """Returns (dx, dgamma, dbeta); dgamma, dbeta (shape D) are None without affine."""
    x, x_hat, gamma, axis = cache["x"], cache["x_hat"], cache["gamma"], cache["axis"]
    dx_hat = dy if gamma is None else dy * gamma
    dx = standardize_backward(dx_hat, x_hat, cache["inv_std"], axis).astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    batch_axes = tuple(range(x.ndim - len(axis)))
    return dx, (dy * x_hat).sum(axis=batch_axes).astype(gamma.dtype), dy.sum(axis=batch_axes).astype(gamma.dtype)
