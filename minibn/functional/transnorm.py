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

from ..backend import get_array_module
from .batchnorm import _channel_shape, batch_norm_backward, batch_norm_forward


def transnorm_alpha(mean_s, var_s, mean_t, var_t, eps):
    """Eq. 5-6 per channel from (C,) statistics (variances as given). Returns alpha (C,)."""
    d = abs(mean_s / (var_s + eps) ** 0.5 - mean_t / (var_t + eps) ** 0.5)
    p = 1.0 / (1.0 + d)
    return p * (len(p) / p.sum())


def split_point(N):
    return N // 2


def transnorm_forward(x, gamma, beta, eps=1e-5, axis=(0,), alpha=None):
    """Training forward on x = [source; target] (N, C, *). Returns (y, cache).

    ``alpha``: (C,) to hold alpha fixed instead of computing it from the batch (the
    paper's "alpha = 1" ablation, or a gradient check of the function the backward
    differentiates, in which alpha is a constant).

    cache["source"], cache["target"]: the BN caches of each half (with mu_B, var_B, m
    for the running statistics); cache["alpha"]: (C,).
    """
    xp = get_array_module(x)
    n_s = split_point(x.shape[0])
    z_s, c_s = batch_norm_forward(x[:n_s], gamma, beta, eps, axis)
    z_t, c_t = batch_norm_forward(x[n_s:], gamma, beta, eps, axis)

    def unbiased(c):
        return c["var_B"].reshape(-1) * (c["m"] / (c["m"] - 1))

    if alpha is None:
        alpha = transnorm_alpha(c_s["mu_B"].reshape(-1), unbiased(c_s), c_t["mu_B"].reshape(-1), unbiased(c_t), eps)
    scale = (1.0 + alpha).reshape(_channel_shape(x, tuple(axis)))
    y = xp.concatenate([z_s, z_t]) * scale
    return y.astype(x.dtype, copy=False), {"source": c_s, "target": c_t, "alpha": alpha, "scale": scale, "n_s": n_s}


def transnorm_backward(dy, cache):
    """dz = (1 + alpha) dy (alpha constant), then BN's backward on each half.

    Returns (dx, dgamma, dbeta); gamma and beta are shared, so their gradients add.
    """
    xp = get_array_module(dy)
    dz = dy * cache["scale"]
    n_s = cache["n_s"]
    dx_s, dg_s, db_s = batch_norm_backward(dz[:n_s], cache["source"])
    dx_t, dg_t, db_t = batch_norm_backward(dz[n_s:], cache["target"])
    dx = xp.concatenate([dx_s, dx_t])
    if dg_s is None:
        return dx, None, None
    return dx, dg_s + dg_t, db_s + db_t
