"""Transferable Normalization (Wang et al. 2019), with the official code's semantics.

Training: the batch is [source; target]: the first N // 2 rows are source, the rest
target (an odd batch gives the target half the extra row, as the official code's
``input[:batch_size // 2]`` split does). Each half is normalized with its own batch
statistics (Eq. 3), scaled and shifted by the shared gamma, beta (Eq. 4):

    z_s = gamma (x_s - mu_s) / sqrt(var_s + eps) + beta,   z_t likewise.

Per channel j, with the domains' *unbiased* batch variances (the code uses torch.var),

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
    """Eq. 5-6 per channel from (C,) statistics (variances as given). Returns alpha (C,)."""
    d = abs(mean_s / (var_s + eps) ** 0.5 - mean_t / (var_t + eps) ** 0.5)
    p = 1.0 / (1.0 + d)
    return p * (len(p) / p.sum())


def transnorm_split_point(N):
    """The number of source rows in a training batch of N rows: N // 2."""
    return N // 2


def transnorm_forward(x, gamma, beta, eps=1e-5, axis=None, alpha=None):
    """Training forward on x = [source; target] (N, C, *). Returns (y, cache).

    ``alpha``: (C,) to hold alpha fixed instead of computing it from the batch (the
    paper's "alpha = 1" ablation, or a gradient check of the function the backward
    differentiates, in which alpha is a constant).

    cache["source"], cache["target"]: the BN caches of each half (with mu_B, var_B, m
    for the running statistics); cache["alpha"]: (C,).

    Raises ValueError unless each half has at least 2 values per channel.
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
    """dz = (1 + alpha) dy (alpha constant), then BN's backward on each half.

    Returns (dx, dgamma, dbeta); gamma and beta are shared, so their gradients add.
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
    """Inference on target data x (N, C, *): BN's fixed transform with the target running
    statistics, times (1 + alpha), alpha (C,) from both domains' running statistics
    (:func:`transnorm_alpha`) or given. Returns (y, cache)."""
    z, cache = batch_norm_inference_forward(x, gamma, beta, running_mean_target, running_var_target, eps)
    cache["alpha"] = alpha
    return (z * per_channel(1.0 + alpha, x)).astype(x.dtype, copy=False), cache


def transnorm_inference_backward(dy, cache):
    """dz = (1 + alpha) dy, then the backward of BN's fixed transform."""
    return batch_norm_inference_backward(dy * per_channel(1.0 + cache["alpha"], dy), cache)
