"""Batch normalization as pure functions (Ioffe & Szegedy 2015).

Shapes: ``x`` is (N, C), (N, C, L) or (N, C, H, W); ``axis`` names the axes reduced
over (``(0,)``, ``(0, 2)`` or ``(0, 2, 3)``), so each channel c gets its own statistics
over m = N (* L or * H * W) values, as Sec. 3.2 prescribes for convolutions.
``gamma`` and ``beta`` are (C,) (or None for ``affine=False``).

Three pieces, each a forward -> (y, cache) and a backward(dy, cache) -> (dx, dgamma, dbeta):

* :func:`batch_norm_forward`: Algorithm 1, line by line.
* :func:`batch_norm_backward_paper`: the paper's six chain-rule formulas (Sec. 3), literally.
* :func:`batch_norm_backward`: the same gradient in closed form, one expression for dx.
* :func:`batch_norm_inference_forward` / ``_backward``: the fixed affine transform that
  replaces BN at inference (Algorithm 2, step 11).

Numerics (see DESIGN.md): the variance is computed in two passes (mean, then mean of
squared deviations; E[x^2] - E[x]^2 cancels catastrophically in float32), eps is added
inside the square root exactly once, float16 statistics are computed in float32, and
non-finite inputs propagate (a NaN in a channel makes that channel's outputs NaN; nothing
is clipped).
"""

from __future__ import annotations


def _channel_shape(x, axis):
    """The broadcastable shape of per-channel statistics: 1 on reduced axes."""
    return tuple(1 if a in axis else s for a, s in enumerate(x.shape))


def _count(x, axis) -> int:
    m = 1
    for a in axis:
        m *= x.shape[a]
    return m


def check_batch_count(x, m):
    """ValueError (PyTorch's message) unless a channel has m > 1 values to normalize over."""
    if m < 2:
        raise ValueError(f"expected more than 1 value per channel when training, got input of shape "
                         f"{tuple(x.shape)} (m = {m} values per channel)")


def _stats_input(x):
    """x in a dtype fit for statistics: float16 is promoted to float32."""
    return x.astype("float32") if x.dtype.itemsize < 4 else x


def batch_norm_forward(x, gamma, beta, eps=1e-5, axis=(0,)):
    """Algorithm 1 (Batch Normalizing Transform), in training mode.

    Args:
        x: (N, C, *) input; the statistics are taken over ``axis`` (m values per channel).
        gamma, beta: (C,) scale and shift, or None (no affine transform).
        eps: added to the mini-batch variance inside the square root.
        axis: the reduced axes, e.g. (0,) for (N, C) and (0, 2, 3) for (N, C, H, W).

    Returns:
        y: same shape as x. cache: what the backward needs (also mu_B and var_B, which
        the caller uses to update running statistics).

    Raises:
        ValueError if m == 1: one value per channel has no variance to normalize by.
    """
    axis = tuple(axis)
    m = _count(x, axis)
    check_batch_count(x, m)
    xs = _stats_input(x)
    shape = _channel_shape(x, axis)
    # Shifted data: subtract the first value of each channel (a cheap guess of the mean)
    # before summing. NumPy sums over the batch axis one row at a time, and a large
    # common offset (float32, mean 1e4) would otherwise eat the digits of the mean.
    first = xs[:1] if axis == (0,) else xs[tuple(slice(0, 1) if a in axis else slice(None) for a in range(x.ndim))]
    x_mu = xs - first
    # mu_B <- 1/m sum_i x_i                                  (mini-batch mean)
    mu_shifted = x_mu.sum(axis=axis, keepdims=True)
    mu_shifted *= 1.0 / m
    mu_B = first + mu_shifted
    # sigma_B^2 <- 1/m sum_i (x_i - mu_B)^2                  (mini-batch variance, a second pass)
    x_mu -= mu_shifted
    var_B = (x_mu * x_mu).sum(axis=axis, keepdims=True)
    var_B *= 1.0 / m
    # x_hat_i <- (x_i - mu_B) / sqrt(sigma_B^2 + eps)        (normalize)
    inv_std = (var_B + eps) ** -0.5
    x_hat = x_mu
    x_hat *= inv_std  # in place: x - mu_B is not needed again
    # y_i <- gamma * x_hat_i + beta                          (scale and shift)
    if gamma is not None:
        y = x_hat * gamma.reshape(shape)
        y += beta.reshape(shape)
    else:
        y = x_hat.copy()
    if y.dtype != x.dtype:
        y = y.astype(x.dtype)
    cache = {
        "x": x, "x_hat": x_hat, "mu_B": mu_B, "var_B": var_B, "inv_std": inv_std,
        "gamma": gamma, "eps": eps, "axis": axis, "m": m,
    }
    return y, cache


def batch_norm_backward_paper(dy, cache, return_intermediates=False):
    """The paper's chain rule (Sec. 3, "before simplification"), one formula per line.

    Returns (dx, dgamma, dbeta); with ``return_intermediates=True`` also a dict with
    dl/dx_hat, dl/dvar_B and dl/dmu_B, so a notebook can show each step.
    """
    x, x_hat, mu_B, var_B = cache["x"], cache["x_hat"], cache["mu_B"], cache["var_B"]
    gamma, eps, axis, m = cache["gamma"], cache["eps"], cache["axis"], cache["m"]
    xs = _stats_input(x)
    dy = _stats_input(dy)
    g = 1.0 if gamma is None else gamma.reshape(mu_B.shape)
    # dl/dx_hat_i = dl/dy_i * gamma
    dx_hat = dy * g
    # dl/dvar_B = sum_i dl/dx_hat_i * (x_i - mu_B) * (-1/2) (var_B + eps)^(-3/2)
    dvar_B = (dx_hat * (xs - mu_B) * -0.5 * (var_B + eps) ** -1.5).sum(axis=axis, keepdims=True)
    # dl/dmu_B = (sum_i dl/dx_hat_i * -1/sqrt(var_B + eps)) + dl/dvar_B * sum_i -2(x_i - mu_B) / m
    dmu_B = (dx_hat * -1.0 / (var_B + eps) ** 0.5).sum(axis=axis, keepdims=True) + dvar_B * (
        -2.0 * (xs - mu_B)
    ).sum(axis=axis, keepdims=True) / m
    # dl/dx_i = dl/dx_hat_i / sqrt(var_B + eps) + dl/dvar_B * 2(x_i - mu_B)/m + dl/dmu_B / m
    dx = dx_hat / (var_B + eps) ** 0.5 + dvar_B * 2.0 * (xs - mu_B) / m + dmu_B / m
    # dl/dgamma = sum_i dl/dy_i * x_hat_i
    dgamma = (dy * x_hat).sum(axis=axis) if gamma is not None else None
    # dl/dbeta = sum_i dl/dy_i
    dbeta = dy.sum(axis=axis) if gamma is not None else None
    dx = dx.astype(x.dtype, copy=False)
    if return_intermediates:
        return dx, dgamma, dbeta, {"dx_hat": dx_hat, "dvar_B": dvar_B, "dmu_B": dmu_B}
    return dx, dgamma, dbeta


def batch_norm_backward(dy, cache):
    """The chain rule of :func:`batch_norm_backward_paper` simplified to one expression.

    Substituting dl/dvar_B and dl/dmu_B into dl/dx_i (the sum of x_i - mu_B is zero)
    and writing sum_i dl/dy_i = dl/dbeta, sum_i dl/dy_i x_hat_i = dl/dgamma gives

        dl/dx_i = gamma / sqrt(var_B + eps) * (dl/dy_i - dl/dbeta / m - x_hat_i * dl/dgamma / m)

    Returns (dx, dgamma, dbeta); dgamma and dbeta are None without an affine transform.
    """
    x_hat, inv_std, gamma = cache["x_hat"], cache["inv_std"], cache["gamma"]
    axis, m = cache["axis"], cache["m"]
    dy = _stats_input(dy)
    dbeta = dy.sum(axis=axis, keepdims=True)
    dgamma = (dy * x_hat).sum(axis=axis, keepdims=True)
    # dx = gamma * inv_std * (dy - dbeta/m - x_hat * dgamma/m), built in one buffer
    dx = x_hat * (dgamma * (-1.0 / m))
    dx += dy
    dx -= dbeta * (1.0 / m)
    dx *= inv_std if gamma is None else gamma.reshape(inv_std.shape) * inv_std
    if dx.dtype != cache["x"].dtype:
        dx = dx.astype(cache["x"].dtype)
    if gamma is None:
        return dx, None, None
    return dx, dgamma.reshape(-1), dbeta.reshape(-1)


def batch_norm_inference_forward(x, gamma, beta, running_mean, running_var, eps=1e-5, axis=(0,)):
    """BN at inference: a fixed affine transform per channel (Algorithm 2, step 11).

        y = gamma / sqrt(Var[x] + eps) * x + (beta - gamma E[x] / sqrt(Var[x] + eps))

    ``running_mean`` (E[x]) and ``running_var`` (Var[x], unbiased) are (C,). Works for a
    batch of one. Returns (y, cache).
    """
    axis = tuple(axis)
    shape = _channel_shape(x, axis)
    inv_std = (1.0 / (running_var + eps) ** 0.5).reshape(shape)
    scale = inv_std if gamma is None else gamma.reshape(shape) * inv_std
    shift = -running_mean.reshape(shape) * scale
    if beta is not None:
        shift = shift + beta.reshape(shape)
    y = x * scale
    y += shift
    y = y.astype(x.dtype, copy=False)
    cache = {"x": x, "mean": running_mean.reshape(shape), "inv_std": inv_std, "scale": scale,
             "gamma": gamma, "axis": axis}
    return y, cache


def batch_norm_inference_backward(dy, cache):
    """Backward of the fixed transform: dx = dy * gamma / sqrt(Var + eps).

    dgamma = sum dy * (x - E[x]) / sqrt(Var + eps), dbeta = sum dy (None without affine).
    """
    axis = cache["axis"]
    dx = (dy * cache["scale"]).astype(cache["x"].dtype, copy=False)
    if cache["gamma"] is None:
        return dx, None, None
    dgamma = (dy * (cache["x"] - cache["mean"]) * cache["inv_std"]).sum(axis=axis)
    dbeta = dy.sum(axis=axis)
    return dx, dgamma, dbeta


def update_running_stats(running_mean, running_var, mu_B, var_B, m, factor):
    """In place: running <- (1 - factor) * running + factor * batch statistic.

    ``factor`` is PyTorch's momentum (the weight of the *new* statistic; 0.1 by default),
    or 1/t for a cumulative average over t batches. The running variance is unbiased:
    var_B * m / (m - 1), as Algorithm 2 (step 10) uses for inference.
    """
    mu = mu_B.reshape(-1).astype(running_mean.dtype, copy=False)
    var = (var_B.reshape(-1) * (m / (m - 1))).astype(running_var.dtype, copy=False)
    running_mean *= 1.0 - factor
    running_mean += factor * mu
    running_var *= 1.0 - factor
    running_var += factor * var
