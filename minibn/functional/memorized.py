"""Memorized Batch Normalization (Guo et al. 2018, Eq. 5-8).

MBN normalizes the current batch with statistics pooled over the current batch and the
statistics (mu_i, var_i, n_i) of the k_t most recent batches kept in memory, weighted by
alpha_i (Eq. 8: alpha_i = lam * eta^(k_t - i), so the newest memory entry gets lam)
and 1 for the current batch. With W = sum_i alpha_i n_i + n (n values per channel in
the current batch, whose own mean and variance are mu_B, var_B), Eq. 6 reads::

    mu_hat  = (sum_i alpha_i n_i mu_i + n mu_B) / W
    var_hat = (sum_i alpha_i n_i ((mu_i - mu_hat)^2 + var_i) + n ((mu_B - mu_hat)^2 + var_B)) / W
    x_hat   = (x - mu_hat) / sqrt(var_hat + eps),    y = gamma * x_hat + beta   (Eq. 7)

Backward. The memory is constant; only the current batch's values carry gradient. With
g_j = dl/dx_hat_j = gamma * dy_j and s = (var_hat + eps)^(-1/2)::

    dl/dvar_hat = -1/2 s^3 sum_j g_j (x_j - mu_hat)
    dl/dmu_hat  = -s sum_j g_j + dl/dvar_hat * dvar_hat/dmu_hat,
                  dvar_hat/dmu_hat = -(2/W) sum_i alpha_i n_i (mu_i - mu_hat) = 0  (by the definition of mu_hat)
    dl/dx_j     = s g_j + dl/dvar_hat * 2 (x_j - mu_hat) / W + dl/dmu_hat / W
                = s (g_j - sum_k g_k / W - x_hat_j sum_k g_k x_hat_k / W)
    dl/dgamma   = sum_j dy_j x_hat_j,     dl/dbeta = sum_j dy_j

This corrects the paper's printed formulas, which write x_k for x_{k+1} in dl/dvar_hat,
dl/dx for dl/dx_hat in its first line, and x for x_hat in dl/dgamma; and its second term
of dl/dmu_hat is identically zero. With an empty memory (or lam = 0) W = n and this is
exactly BN's closed-form backward.

Inference: Eq. 6 over the memory alone with weights eta^(k - i) (lam cancels).
"""

from __future__ import annotations

from .._checks import check_inputs
from .batchnorm import batch_moments, check_axis, per_channel
from .standardize import standardize_backward

__all__ = ["pooled_statistics", "pool_with_batch", "memory_weights", "memorized_batch_norm_forward",
           "memorized_batch_norm_backward"]


def pooled_statistics(means, variances, counts, weights):
    """Eq. 6: the weighted pooled mean and variance of per-batch statistics.

    Batch i counts with weight ``weights[i] * counts[i]``; the pooled variance adds the
    spread of the batch means::

        mu_hat  = sum_i w_i mu_i / sum_i w_i
        var_hat = sum_i w_i ((mu_i - mu_hat)^2 + var_i) / sum_i w_i

    Parameters
    ----------
    means, variances : ndarray, shape (B, C)
        Each batch's per-channel mean and biased variance.
    counts : ndarray, shape (B,)
        Each batch's values per channel.
    weights : ndarray, shape (B,)
        Each batch's weight (alpha_i, Eq. 8).

    Returns
    -------
    mu_hat, var_hat : ndarray, shape (C,)
    """
    w = (weights * counts)[:, None]
    W = w.sum()
    mu_hat = (w * means).sum(axis=0) / W
    var_hat = (w * ((means - mu_hat) ** 2 + variances)).sum(axis=0) / W
    return mu_hat, var_hat


def pool_with_batch(mu_B, var_B, n, mem_means, mem_vars, mem_counts, alphas):
    """Eq. 6 over the memory (weights alphas) and the current batch (weight 1, n values).

    Parameters
    ----------
    mu_B, var_B : ndarray, shape (C,)
        The current batch's mean and biased variance.
    n : int
        The current batch's values per channel.
    mem_means, mem_vars : ndarray, shape (k, C)
        The memorized statistics, oldest first (k may be 0).
    mem_counts, alphas : ndarray, shape (k,)
        Their counts and weights.

    Returns
    -------
    mu_hat, var_hat : ndarray, shape (C,)
        The pooled statistics.
    W : scalar
        ``sum_i alpha_i n_i + n``, the pooled count: a NumPy scalar, or a 0-d array kept on
        the device (``float()`` here would wait for the GPU at every step).
    """
    w_mem = alphas * mem_counts
    W = w_mem.sum() + n  # a 0-d array: float() here would wait for the GPU at every step
    mu_hat = ((w_mem[:, None] * mem_means).sum(axis=0) + n * mu_B) / W
    var_hat = ((w_mem[:, None] * ((mem_means - mu_hat) ** 2 + mem_vars)).sum(axis=0)
               + n * ((mu_B - mu_hat) ** 2 + var_B)) / W
    return mu_hat, var_hat, W


def memory_weights(k, lam, eta, xp):
    """Eq. 8: ``alpha_i = lam * eta^(k - i)`` for i = 1..k, oldest first.

    Parameters
    ----------
    k : int
        The number of memorized batches.
    lam : float
        The weight of the newest entry.
    eta : float
        The decay per step back in time.
    xp : module
        numpy or cupy: where the weights are made.

    Returns
    -------
    ndarray, shape (k,), float64
        The newest entry (last) gets lam.
    """
    return lam * eta ** xp.arange(k - 1, -1, -1, dtype="float64")


def memorized_batch_norm_forward(x, gamma, beta, mem_means, mem_vars, mem_counts, alphas, eps=1e-5, axis=None):
    """Memorized BN in training: normalize x by its statistics pooled with the memory's (Eq. 5-7).

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The current batch, of a floating dtype.
    gamma, beta : ndarray, shape (C,), or None
        Scale and shift; both None for no affine transform.
    mem_means, mem_vars : ndarray, shape (k, C)
        The memorized batch means and biased variances, oldest first (k may be 0).
    mem_counts, alphas : ndarray, shape (k,)
        Their values per channel and their weights (:func:`memory_weights`).
    eps : float, optional
        Added to the pooled variance inside the square root.
    axis : None, int or tuple of int, optional
        The reduced axes, checked as by :func:`minibn.functional.check_axis`.

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        "mu_B", "var_B" and "m": the current batch's own statistics (C,) and values per
        channel, for the memory; "mu_hat", "var_hat": the pooled ones (C,); "W", the pooled
        count; and what the backward needs.

    Raises
    ------
    TypeError
        If x is not a plain floating-point array (naming the fix), or axis is of the wrong type.
    ValueError
        If x has fewer than 2 axes, gamma and beta are not both None or both of shape (C,),
        axis is not the reduced axes, or the batch has one value per channel and the memory
        is empty.
    """
    x = check_inputs("memorized_batch_norm_forward", x, gamma, beta)                       # the boundary
    axis = check_axis(x, axis)
    n = x.size // x.shape[1]
    if n < 2 and len(alphas) == 0:
        raise ValueError(f"expected more than 1 value per channel when training, got input of shape "
                         f"{tuple(x.shape)} and an empty memory")
    mu_B, var_B = batch_moments(x, axis)                                                       # Eq. 5, this batch
    mu_hat, var_hat, W = pool_with_batch(mu_B, var_B, n, mem_means, mem_vars, mem_counts, alphas)  # Eq. 6
    x_hat = (x - per_channel(mu_hat, x)) / per_channel((var_hat + eps) ** 0.5, x)               # Eq. 7
    y = x_hat if gamma is None else per_channel(gamma, x) * x_hat + per_channel(beta, x)
    cache = {"x": x, "x_hat": x_hat, "var_hat": var_hat, "mu_hat": mu_hat, "eps": eps, "gamma": gamma,
             "axis": axis, "W": W, "mu_B": mu_B, "var_B": var_B, "m": n}
    return y.astype(x.dtype, copy=False), cache


def memorized_batch_norm_backward(dy, cache):
    """The gradient of :func:`memorized_batch_norm_forward`, the memory held constant.

    ``dx = s (g - sum g / W - x_hat sum(g x_hat) / W)``, ``g = gamma dy`` (see the module
    docstring for the derivation).

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`memorized_batch_norm_forward`.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma, dbeta : ndarray, shape (C,), or None
        In gamma's dtype; None without an affine transform.
    """
    x, x_hat, gamma, axis = cache["x"], cache["x_hat"], cache["gamma"], cache["axis"]
    g = dy if gamma is None else dy * per_channel(gamma, x)
    inv_std = per_channel((cache["var_hat"] + cache["eps"]) ** -0.5, x)
    dx = standardize_backward(g, x_hat, inv_std, axis, m=cache["W"]).astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    return dx, (dy * x_hat).sum(axis=axis).astype(gamma.dtype), dy.sum(axis=axis).astype(gamma.dtype)
