"""Transferable Normalization (Wang et al. 2019), with the official code's semantics.

Training: the batch is [source; target]: the first N // 2 rows are source, the rest
target (an odd batch gives the target half the extra row, as the official code's
``input[:batch_size // 2]`` split does). Each half is normalized with its own batch
statistics (Eq. 3), scaled and shifted by the shared gamma, beta (Eq. 4)::

    z_s = gamma (x_s - mu_s) / sqrt(var_s + eps) + beta,   z_t likewise.

Per channel j, with the domains' *unbiased* batch variances (the code uses torch.var)::

    d_j = | mu_s / sqrt(var_s + eps) - mu_t / sqrt(var_t + eps) |          (Eq. 5)
    alpha_j = C (1 + d_j)^-1 / sum_k (1 + d_k)^-1                           (Eq. 6)
    y = (1 + alpha) z                                                        (Eq. 7)

alpha is a constant in the backward (the code detaches it). Inference normalizes with
the *target* running statistics and computes alpha from the running statistics of
both domains.

Where the paper and the code differ (we follow the code):

* the paper writes sigma^2 without saying which estimate; the code's d uses the
  unbiased batch variance, while z normalizes with the biased one (as BN does);
* the paper does not say how inference works; the code uses the target statistics for
  normalization and the running statistics for alpha;
* the paper presents alpha as an attention over channels; the code stops its gradient.
"""

from __future__ import annotations

from .._checks import check_inputs
from ..backend import get_array_module
from .batchnorm import (
    batch_norm_backward,
    batch_norm_forward,
    batch_norm_inference_backward,
    batch_norm_inference_forward,
    per_channel,
)

__all__ = ["transnorm_alpha", "transnorm_split_point", "transnorm_forward", "transnorm_backward",
           "transnorm_inference_forward", "transnorm_inference_backward"]


def transnorm_alpha(mean_s, var_s, mean_t, var_t, eps):
    """Eq. 5-6: the channel weights alpha from the two domains' statistics.

    ``d_j = |mu_s / sqrt(var_s + eps) - mu_t / sqrt(var_t + eps)|`` and
    ``alpha_j = C (1 + d_j)^-1 / sum_k (1 + d_k)^-1``, so that alpha sums to C.

    Parameters
    ----------
    mean_s, var_s, mean_t, var_t : ndarray, shape (C,)
        The source and target means and variances (used as given: the training forward
        passes the unbiased batch variances, inference the running ones).
    eps : float
        Added to the variances inside the square roots.

    Returns
    -------
    alpha : ndarray, shape (C,)
    """
    d = abs(mean_s / (var_s + eps) ** 0.5 - mean_t / (var_t + eps) ** 0.5)
    p = 1.0 / (1.0 + d)
    return p * (len(p) / p.sum())


def transnorm_split_point(N):
    """The number of source rows in a training batch of N rows: N // 2.

    Parameters
    ----------
    N : int
        The batch's rows.

    Returns
    -------
    int
        The first ``N // 2`` rows are source, the rest (one more for an odd N) target.
    """
    return N // 2


def transnorm_forward(x, gamma, beta, eps=1e-5, axis=None, alpha=None):
    """TransNorm in training (Eq. 3-7) on a batch x = [source; target].

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The source rows (the first N // 2), then the target rows; a floating dtype.
    gamma, beta : ndarray, shape (C,), or None
        The shared scale and shift; both None for no affine transform.
    eps : float, optional
        Added to the variances inside the square roots.
    axis : None, int or tuple of int, optional
        The reduced axes, checked as by :func:`minibn.functional.check_axis`.
    alpha : ndarray, shape (C,), or None, optional
        Hold alpha fixed instead of computing it from the batch (the paper's "alpha = 1"
        ablation, or a gradient check of the function the backward differentiates, in which
        alpha is a constant).

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        "source", "target": the BN caches of each half (with mu_B, var_B, m for the running
        statistics); "alpha": (C,); "n_s", the source rows.

    Raises
    ------
    TypeError
        If x is not a plain floating-point array (naming the fix), or axis is of the wrong type.
    ValueError
        If x has fewer than 2 axes, gamma and beta are not both None or both of shape (C,),
        axis is not the reduced axes, or a half has fewer than 2 values per channel.
    """
    x = check_inputs("transnorm_forward", x, gamma, beta)                # the boundary
    xp = get_array_module(x)
    N = x.shape[0]
    n_s = transnorm_split_point(N)
    per_row = x.size // (N * x.shape[1]) if N else 0
    if n_s * per_row < 2 or (N - n_s) * per_row < 2:
        raise ValueError(f"training needs a batch [source; target] with at least 2 values per channel in each "
                         f"half, got input of shape {tuple(x.shape)} ({n_s} source and {N - n_s} target rows)")
    z_s, c_s = batch_norm_forward(x[:n_s], gamma, beta, eps, axis)    # Eq. 3-4 on each domain
    z_t, c_t = batch_norm_forward(x[n_s:], gamma, beta, eps, axis)
    if alpha is None:
        unbiased_s = c_s["var_B"] * (c_s["m"] / (c_s["m"] - 1))
        unbiased_t = c_t["var_B"] * (c_t["m"] / (c_t["m"] - 1))
        alpha = transnorm_alpha(c_s["mu_B"], unbiased_s, c_t["mu_B"], unbiased_t, eps)   # Eq. 5-6
    y = xp.concatenate([z_s, z_t]) * per_channel(1.0 + alpha, x)                        # Eq. 7
    return y.astype(x.dtype, copy=False), {"source": c_s, "target": c_t, "alpha": alpha, "n_s": n_s}


def transnorm_backward(dy, cache):
    """The gradient of :func:`transnorm_forward`: ``dz = (1 + alpha) dy``, then BN's backward on each half.

    alpha is a constant, as in the official code.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`transnorm_forward`.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma, dbeta : ndarray, shape (C,), or None
        The sums of the two halves' gradients (gamma and beta are shared); None without an
        affine transform.
    """
    xp = get_array_module(dy)
    dz = dy * per_channel(1.0 + cache["alpha"], dy)
    n_s = cache["n_s"]
    dx_s, dg_s, db_s = batch_norm_backward(dz[:n_s], cache["source"])
    dx_t, dg_t, db_t = batch_norm_backward(dz[n_s:], cache["target"])
    dx = xp.concatenate([dx_s, dx_t])
    if dg_s is None:
        return dx, None, None
    return dx, dg_s + dg_t, db_s + db_t


def transnorm_inference_forward(x, gamma, beta, running_mean_target, running_var_target, alpha, eps=1e-5):
    """TransNorm at inference on target data: BN's fixed transform, times (1 + alpha).

    The transform uses the target running statistics.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        Target data, of a floating dtype.
    gamma, beta : ndarray, shape (C,), or None
        Scale and shift; both None for no affine transform.
    running_mean_target, running_var_target : ndarray, shape (C,)
        The target domain's running statistics.
    alpha : ndarray, shape (C,)
        From both domains' running statistics (:func:`transnorm_alpha`), or given.
    eps : float, optional
        Added to the running variance inside the square root.

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        :func:`minibn.functional.batch_norm_inference_forward`'s, with "alpha".

    Raises
    ------
    TypeError, ValueError
        As :func:`minibn.functional.batch_norm_inference_forward` (whose name the messages carry).
    """
    z, cache = batch_norm_inference_forward(x, gamma, beta, running_mean_target, running_var_target, eps)
    cache["alpha"] = alpha
    return (z * per_channel(1.0 + alpha, x)).astype(x.dtype, copy=False), cache


def transnorm_inference_backward(dy, cache):
    """The gradient of :func:`transnorm_inference_forward`: ``dz = (1 + alpha) dy``, then the fixed transform's.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`transnorm_inference_forward`.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma, dbeta : ndarray, shape (C,), or None
        None without an affine transform.
    """
    return batch_norm_inference_backward(dy * per_channel(1.0 + cache["alpha"], dy), cache)
