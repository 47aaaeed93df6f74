"""Memorized Batch Normalization (Guo et al. 2018, Eq. 5-8).

MBN normalizes the current batch with statistics pooled over the current batch and the
statistics (mu_i, var_i, n_i) of the k_t most recent batches kept in memory, weighted by
alpha_i (Eq. 8: alpha_i = lam * eta^(k_t - i), so the newest memory entry gets lam)
and 1 for the current batch. With W = sum_i alpha_i n_i + n (n values per channel in
the current batch, whose own mean and variance are mu_B, var_B), Eq. 6 reads

    mu_hat  = (sum_i alpha_i n_i mu_i + n mu_B) / W
    var_hat = (sum_i alpha_i n_i ((mu_i - mu_hat)^2 + var_i) + n ((mu_B - mu_hat)^2 + var_B)) / W
    x_hat   = (x - mu_hat) / sqrt(var_hat + eps),    y = gamma * x_hat + beta   (Eq. 7)

Backward. The memory is constant; only the current batch's values carry gradient. With
g_j = dl/dx_hat_j = gamma * dy_j and s = (var_hat + eps)^(-1/2):

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
    """Eq. 6: weighted pooled mean and variance of per-batch statistics.

    means, variances: (B, C); counts, weights: (B,). Returns (mu_hat, var_hat), (C,).
    """
    w = (weights * counts)[:, None]
    W = w.sum()
    mu_hat = (w * means).sum(axis=0) / W
    var_hat = (w * ((means - mu_hat) ** 2 + variances)).sum(axis=0) / W
    return mu_hat, var_hat


def pool_with_batch(mu_B, var_B, n, mem_means, mem_vars, mem_counts, alphas):
    """Eq. 6 over the memory (weights alphas) and the current batch (weight 1, n values):
    returns (mu_hat, var_hat, W), W = sum_i alpha_i n_i + n. mu_B, var_B: (C,)."""
    w_mem = alphas * mem_counts
    W = w_mem.sum() + n  # a 0-d array: float() here would wait for the GPU at every step
    mu_hat = ((w_mem[:, None] * mem_means).sum(axis=0) + n * mu_B) / W
    var_hat = ((w_mem[:, None] * ((mem_means - mu_hat) ** 2 + mem_vars)).sum(axis=0)
               + n * ((mu_B - mu_hat) ** 2 + var_B)) / W
    return mu_hat, var_hat, W


def memory_weights(k, lam, eta, xp):
    """alpha_i = lam * eta^(k - i) for i = 1..k (oldest first), Eq. 8."""
    return lam * eta ** xp.arange(k - 1, -1, -1, dtype="float64")


def memorized_batch_norm_forward(x, gamma, beta, mem_means, mem_vars, mem_counts, alphas, eps=1e-5, axis=None):
    """Training forward. x: (N, C, *); mem_means, mem_vars: (k, C); mem_counts, alphas:
    (k,) (k may be 0).

    Returns (y, cache); cache["mu_B"], cache["var_B"], cache["m"] are the current batch's
    own statistics (for the memory), cache["mu_hat"], cache["var_hat"] the pooled ones (C,).
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
    """dx = s (g - sum g / W - x_hat sum(g x_hat) / W), g = gamma dy (see the module docstring)."""
    x, x_hat, gamma, axis = cache["x"], cache["x_hat"], cache["gamma"], cache["axis"]
    g = dy if gamma is None else dy * per_channel(gamma, x)
    inv_std = per_channel((cache["var_hat"] + cache["eps"]) ** -0.5, x)
    dx = standardize_backward(g, x_hat, inv_std, axis, m=cache["W"]).astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    return dx, (dy * x_hat).sum(axis=axis).astype(gamma.dtype), dy.sum(axis=axis).astype(gamma.dtype)
