"""Layer normalization (Ba et al. 2016; EE-559 lecture 6.4) and RMS normalization (Zhang &
Sennrich 2019): statistics per sample.

PyTorch semantics: ``normalized_shape`` is the trailing shape D (e.g. (C,) or (C, H, W));
each sample is normalized over those trailing axes, then scaled (and, for LayerNorm,
shifted) elementwise by parameters of shape D. No running statistics: training and
inference compute the same thing, and the batch size does not matter.

* LayerNorm standardizes: (x - mean) / sqrt(var + eps), the biased variance.
* RMSNorm only rescales: x / sqrt(mean(x^2) + eps), the root mean square; nothing is
  subtracted, and there is no beta. A sample with mean 0 gets LayerNorm's output.
"""

from __future__ import annotations

import numpy

from .._checks import check_inputs
from .standardize import standardize, standardize_backward

__all__ = ["layer_norm_forward", "layer_norm_backward", "rms_norm_forward", "rms_norm_backward", "rms_norm_eps"]


def layer_norm_forward(x, gamma, beta, normalized_ndim, eps=1e-5):
    """Layer normalization (Ba et al. 2016): standardize each sample over its trailing axes.

    ``y = gamma (x - mean) / sqrt(var + eps) + beta``, the mean and the biased variance
    taken per sample over the last ``normalized_ndim`` axes (float64 sums), gamma and beta
    applied elementwise.

    Parameters
    ----------
    x : ndarray, shape (..., D_1, ..., D_k)
        The input, of a floating dtype, with k = ``normalized_ndim`` normalized axes.
    gamma, beta : ndarray, shape (D_1, ..., D_k), or None
        Elementwise scale and shift; both None for no affine transform.
    normalized_ndim : int
        k, the number of trailing axes each sample is normalized over.
    eps : float, optional
        Added to the variance inside the square root.

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        "x", "x_hat", "inv_std" (x's shape with the normalized axes of size 1), "gamma", "axis".

    Raises
    ------
    TypeError
        If x is not a plain floating-point array (naming the fix).
    ValueError
        If x has fewer than k axes, or gamma and beta are not both None or both of shape
        (D_1, ..., D_k).
    """
    x = check_inputs("layer_norm_forward", x, gamma, beta, normalized_ndim)  # the boundary
    axis = tuple(range(x.ndim - normalized_ndim, x.ndim))
    x_hat, inv_std = standardize(x, axis, eps)          # per sample: (x - mean) / sqrt(var + eps)
    y = x_hat if gamma is None else gamma * x_hat + beta
    cache = {"x": x, "x_hat": x_hat, "inv_std": inv_std, "gamma": gamma, "axis": axis}
    return y.astype(x.dtype, copy=False), cache


def layer_norm_backward(dy, cache):
    """The gradient of :func:`layer_norm_forward`: the closed form of a standardization per sample.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`layer_norm_forward`.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma, dbeta : ndarray, shape (D_1, ..., D_k), or None
        Summed over the leading axes, in gamma's dtype; None without an affine transform.
    """
    x, x_hat, gamma, axis = cache["x"], cache["x_hat"], cache["gamma"], cache["axis"]
    dx_hat = dy if gamma is None else dy * gamma
    dx = standardize_backward(dx_hat, x_hat, cache["inv_std"], axis).astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    batch_axes = tuple(range(x.ndim - len(axis)))
    return dx, (dy * x_hat).sum(axis=batch_axes).astype(gamma.dtype), dy.sum(axis=batch_axes).astype(gamma.dtype)


def rms_norm_eps(dtype):
    """RMSNorm's default eps (``eps=None``), PyTorch's: the machine epsilon of the computation.

    Parameters
    ----------
    dtype : dtype or str
        The input's dtype.

    Returns
    -------
    float
        ``numpy.finfo(float64).eps`` (2.2e-16) for float64, ``numpy.finfo(float32).eps``
        (1.2e-7) for any other dtype.
    """
    return float(numpy.finfo("float64" if numpy.dtype(dtype) == numpy.float64 else "float32").eps)


def rms_norm_forward(x, gamma, normalized_ndim, eps=None):
    """RMSNorm (Zhang & Sennrich 2019, Eq. 4): ``y = x / RMS(x) * gamma``.

    ``RMS(x) = sqrt(mean(x^2) + eps)`` over the trailing ``normalized_ndim`` axes of each
    sample, the squares summed in float64. Nothing is subtracted, and there is no beta.

    Parameters
    ----------
    x : ndarray, shape (..., D_1, ..., D_k)
        The input, of a floating dtype, with k = ``normalized_ndim`` normalized axes.
    gamma : ndarray, shape (D_1, ..., D_k), or None
        The elementwise scale; None for none (y = x_hat).
    normalized_ndim : int
        k, the number of trailing axes each sample is normalized over.
    eps : float or None, optional
        Added to the mean square; None: :func:`rms_norm_eps` of x's dtype.

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        "x", "x_hat", "inv_rms" (1 / RMS(x): x's shape with the normalized axes of size 1),
        "gamma", "axis".

    Raises
    ------
    TypeError
        If x is not a plain floating-point array (naming the fix).
    ValueError
        If x has fewer than k axes, or gamma is neither None nor of shape (D_1, ..., D_k).
    """
    x = check_inputs("rms_norm_forward", x, gamma, gamma, normalized_ndim)  # (no beta: gamma checked for both)
    eps = rms_norm_eps(x.dtype) if eps is None else eps
    axis = tuple(range(x.ndim - normalized_ndim, x.ndim))
    # squares and sums in float64, as LayerNorm's statistics: a float32 x of 1e20 has a square of 1e40
    mean_square = (x.astype("float64", copy=False) ** 2).mean(axis=axis, keepdims=True)
    inv_rms = (mean_square + eps) ** -0.5
    x_hat = x * inv_rms                                                     # x_hat = x / RMS(x)
    y = x_hat if gamma is None else gamma * x_hat
    cache = {"x": x, "x_hat": x_hat, "inv_rms": inv_rms, "gamma": gamma, "axis": axis}
    return y.astype(x.dtype, copy=False), cache


def rms_norm_backward(dy, cache):
    """The gradient of :func:`rms_norm_forward`.

    With ``x_hat = x * r``, ``r = (mean(x^2) + eps)^(-1/2)`` and ``dr/dx_j = -r^3 x_j / n``
    (n values per sample)::

        dl/dx = r * (dl/dx_hat - x_hat * mean(dl/dx_hat * x_hat)),   dl/dx_hat = dl/dy * gamma

    LayerNorm's closed form (:func:`minibn.functional.standardize_backward`) without the
    term of the mean, which RMSNorm does not subtract.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`rms_norm_forward`.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma : ndarray, shape (D_1, ..., D_k), or None
        In gamma's dtype; None without gamma.
    dbeta : None
        Always None: there is no beta.
    """
    x, x_hat, gamma, axis = cache["x"], cache["x_hat"], cache["gamma"], cache["axis"]
    dx_hat = dy if gamma is None else dy * gamma
    dx = cache["inv_rms"] * (dx_hat - x_hat * (dx_hat * x_hat).mean(axis=axis, keepdims=True))
    dx = dx.astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    batch_axes = tuple(range(x.ndim - len(axis)))
    return dx, (dy * x_hat).sum(axis=batch_axes).astype(gamma.dtype), None
