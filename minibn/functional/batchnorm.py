"""Batch normalization as pure functions: Ioffe & Szegedy (2015), as written.

Shapes: ``x`` is (N, C), (N, C, L) or (N, C, H, W). Each channel c is one "activation"
normalized over the m values it takes in the mini-batch: over N for (N, C), and over N
and every position for (N, C, L) and (N, C, H, W), as Sec. 3.2 prescribes for
convolutions. ``gamma``, ``beta`` and every per-channel statistic (in every cache) are
(C,) vectors; :func:`per_channel` shapes one to broadcast against x.

The pieces, each a forward -> (y, cache) and a backward(dy, cache) -> (dx, dgamma, dbeta):

* :func:`batch_norm_forward`: Algorithm 1 (the BN transform), line by line, with
  :func:`batch_moments` as its lines 1-2.
* :func:`batch_norm_backward_paper`: the six chain-rule formulas of Sec. 3, one per line.
* :func:`batch_norm_backward`: the same gradient simplified to one expression (closed form).
* :func:`batch_norm_inference_forward` / ``_backward``: the fixed affine transform that
  replaces BN at inference (Algorithm 2, step 11).
* :func:`update_running_stats`: the moving averages that stand in for Algorithm 2's
  population statistics (step 10) while training.

Numerics, by plain means only (the tricks live in :mod:`minibn.kernels`): statistics are
accumulated in float64 whatever the input dtype (``dtype=`` of the mean), which keeps a
float32 input with mean 1e4 exact enough; the variance takes two passes (the mean first,
then the mean of squared deviations: E[x^2] - E[x]^2 cancels catastrophically); eps is
added inside the square root, once. Non-finite inputs propagate: a NaN in a channel
makes that channel's outputs NaN, and nothing is clipped.
"""

from __future__ import annotations

import numbers

from .._checks import check_inputs

__all__ = ["batch_moments", "batch_norm_forward", "batch_norm_backward_paper", "batch_norm_backward",
           "batch_norm_inference_forward", "batch_norm_inference_backward", "update_running_stats",
           "per_channel", "reduced_axes", "check_axis", "check_batch_count", "batch_count"]


def reduced_axes(x):
    """The axes BN reduces over: the batch axis and every axis after the channels (Sec. 3.2)."""
    return (0,) + tuple(range(2, x.ndim))


def check_axis(x, axis):
    """``axis`` (None, an int or a tuple of ints) as a tuple, checked: BN's statistics are per
    channel (axis 1), over all other axes."""
    expected = reduced_axes(x)
    if axis is None:
        return expected
    if isinstance(axis, numbers.Integral):
        given = (int(axis),)
    elif isinstance(axis, (tuple, list)) and all(isinstance(a, numbers.Integral) for a in axis):
        given = tuple(int(a) for a in axis)
    else:
        raise TypeError(f"batch normalization: axis must be None, an int or a tuple of ints, got {axis!r}")
    if given != expected:
        raise ValueError(f"batch normalization reduces over axes {expected} of an input of shape "
                         f"{tuple(x.shape)} (all but the channel axis 1), got axis={axis!r}")
    return expected


def per_channel(v, x):
    """A (C,) vector reshaped to (1, C, 1, ...), to broadcast against x of shape (N, C, *)."""
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def check_batch_count(x, m):
    """ValueError (PyTorch's message) unless each channel has m > 1 values to normalize over."""
    if m < 2:
        raise ValueError(f"expected more than 1 value per channel when training, got input of shape "
                         f"{tuple(x.shape)} (m = {m} values per channel)")


def batch_count(x, axis=None):
    """(axis, m): the reduced axes, checked, and the m values per channel they hold, checked
    to be more than one (one value has no variance to normalize by)."""
    axis = check_axis(x, axis)
    m = x.size // x.shape[1]
    check_batch_count(x, m)
    return axis, m


def batch_moments(x, axis=None):
    """Algorithm 1, lines 1-2: the mini-batch mean and (biased) variance of each channel.

        mu_B      <- 1/m sum_i x_i
        sigma_B^2 <- 1/m sum_i (x_i - mu_B)^2

    x: (N, C, *). Returns (mu_B, var_B), each (C,) float64: the sums are accumulated in
    float64 (``dtype=``), and the variance is a second pass over x - mu_B.
    """
    axis = check_axis(x, axis)
    mu_B = x.mean(axis=axis, dtype="float64")
    var_B = ((x - per_channel(mu_B, x)) ** 2).mean(axis=axis)
    return mu_B, var_B


def batch_norm_forward(x, gamma, beta, eps=1e-5, axis=None):
    """Algorithm 1 (Batch Normalizing Transform), training mode.

    Args:
        x: (N, C, *) input.
        gamma, beta: (C,) scale and shift, or None for no affine transform (y = x_hat).
        eps: added to the mini-batch variance inside the square root.
        axis: the reduced axes; None (the default) or, written out, (0,) for (N, C),
            (0, 2) for (N, C, L), (0, 2, 3) for (N, C, H, W).

    Returns:
        y: x's shape and dtype. cache: x, x_hat (float64), the (C,) statistics mu_B and
        var_B (the caller updates its running statistics from them), gamma, eps, axis
        and m, the number of values per channel.

    Raises:
        ValueError if m == 1: one value per channel has no variance to normalize by; TypeError /
        ValueError naming the argument for arguments of the wrong type or shape.
    """
    x = check_inputs("batch_norm_forward", x, gamma, beta)                 # the boundary
    axis, m = batch_count(x, axis)
    mu_B, var_B = batch_moments(x, axis)                                    # lines 1-2
    x_hat = (x - per_channel(mu_B, x)) / per_channel((var_B + eps) ** 0.5, x)  # line 3: normalize
    if gamma is None:
        y = x_hat
    else:
        y = per_channel(gamma, x) * x_hat + per_channel(beta, x)            # line 4: scale and shift
    cache = {"x": x, "x_hat": x_hat, "mu_B": mu_B, "var_B": var_B, "gamma": gamma, "eps": eps, "axis": axis,
             "m": m}
    return y.astype(x.dtype, copy=False), cache


def batch_norm_backward_paper(dy, cache, return_intermediates=False):
    """The paper's chain rule (Sec. 3, before any simplification), one formula per line.

    dl/dmu_B has a second term, dl/dsigma_B^2 * sum_i -2 (x_i - mu_B) / m, that is
    identically zero: sum_i (x_i - mu_B) = 0 by the definition of mu_B (line 1). It is
    computed anyway (it comes out at rounding level), so that the line reads as printed.

    Returns (dx, dgamma, dbeta) (the last two None without an affine transform); with
    ``return_intermediates=True`` also a dict with dl/dx_hat ("dx_hat", x's shape) and
    dl/dsigma_B^2, dl/dmu_B ("dvar_B", "dmu_B", (C,)), so a notebook can show each step.
    """
    x, x_hat, mu_B, var_B = cache["x"], cache["x_hat"], cache["mu_B"], cache["var_B"]
    gamma, eps, axis, m = cache["gamma"], cache["eps"], cache["axis"], cache["m"]
    x_mu = x - per_channel(mu_B, x)
    g = 1.0 if gamma is None else per_channel(gamma, x)
    # dl/dx_hat_i = dl/dy_i * gamma
    dx_hat = dy * g
    # dl/dsigma_B^2 = sum_i dl/dx_hat_i * (x_i - mu_B) * (-1/2) (sigma_B^2 + eps)^(-3/2)
    dvar_B = (dx_hat * x_mu * -0.5 * per_channel((var_B + eps) ** -1.5, x)).sum(axis=axis)
    # dl/dmu_B = (sum_i dl/dx_hat_i * -1 / sqrt(sigma_B^2 + eps)) + dl/dsigma_B^2 * (sum_i -2 (x_i - mu_B)) / m
    dmu_B = ((dx_hat * -1.0 / per_channel((var_B + eps) ** 0.5, x)).sum(axis=axis)
             + dvar_B * (-2.0 * x_mu).sum(axis=axis) / m)
    # dl/dx_i = dl/dx_hat_i / sqrt(sigma_B^2 + eps) + dl/dsigma_B^2 * 2 (x_i - mu_B) / m + dl/dmu_B / m
    dx = (dx_hat / per_channel((var_B + eps) ** 0.5, x) + per_channel(dvar_B, x) * 2.0 * x_mu / m
          + per_channel(dmu_B, x) / m)
    # dl/dgamma = sum_i dl/dy_i * x_hat_i
    dgamma = None if gamma is None else (dy * x_hat).sum(axis=axis).astype(gamma.dtype)
    # dl/dbeta = sum_i dl/dy_i
    dbeta = None if gamma is None else dy.sum(axis=axis).astype(gamma.dtype)
    dx = dx.astype(x.dtype, copy=False)
    if return_intermediates:
        return dx, dgamma, dbeta, {"dx_hat": dx_hat, "dvar_B": dvar_B, "dmu_B": dmu_B}
    return dx, dgamma, dbeta


def batch_norm_backward(dy, cache):
    """The chain rule of :func:`batch_norm_backward_paper` simplified to one expression.

    Substitute dl/dsigma_B^2 and dl/dmu_B into dl/dx_i (the second term of dl/dmu_B is
    zero), and write sum_i dl/dy_i = dl/dbeta and sum_i dl/dy_i x_hat_i = dl/dgamma:

        dl/dx_i = gamma / sqrt(sigma_B^2 + eps) * (dl/dy_i - dl/dbeta / m - x_hat_i * dl/dgamma / m)

    Returns (dx, dgamma, dbeta); dgamma and dbeta, (C,), are None without an affine transform.
    """
    x, x_hat, var_B, gamma = cache["x"], cache["x_hat"], cache["var_B"], cache["gamma"]
    eps, axis, m = cache["eps"], cache["axis"], cache["m"]
    dbeta = dy.sum(axis=axis)
    dgamma = (dy * x_hat).sum(axis=axis)
    scale = (var_B + eps) ** -0.5 if gamma is None else gamma * (var_B + eps) ** -0.5
    dx = per_channel(scale, x) * (dy - per_channel(dbeta, x) / m - x_hat * per_channel(dgamma, x) / m)
    dx = dx.astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    return dx, dgamma.astype(gamma.dtype), dbeta.astype(gamma.dtype)


def batch_norm_inference_forward(x, gamma, beta, running_mean, running_var, eps=1e-5, axis=None):
    """BN at inference: a fixed affine transform per channel (Algorithm 2, step 11).

        y = gamma / sqrt(Var[x] + eps) * x + (beta - gamma E[x] / sqrt(Var[x] + eps))

    ``running_mean`` (E[x]) and ``running_var`` (Var[x], unbiased) are (C,); gamma and
    beta (C,) or None. Works for a batch of one. Returns (y, cache).
    """
    x = check_inputs("batch_norm_inference_forward", x, gamma, beta)
    check_axis(x, axis)
    inv_std = (running_var + eps) ** -0.5
    scale = inv_std if gamma is None else gamma * inv_std
    shift = -running_mean * scale if beta is None else beta - running_mean * scale
    y = per_channel(scale, x) * x + per_channel(shift, x)
    cache = {"x": x, "running_mean": running_mean, "inv_std": inv_std, "scale": scale, "gamma": gamma,
             "axis": reduced_axes(x)}
    return y.astype(x.dtype, copy=False), cache


def batch_norm_inference_backward(dy, cache):
    """Backward of the fixed transform: dx = dy * gamma / sqrt(Var[x] + eps);
    dgamma = sum dy * (x - E[x]) / sqrt(Var[x] + eps), dbeta = sum dy (None without affine)."""
    x, axis, gamma = cache["x"], cache["axis"], cache["gamma"]
    dx = (dy * per_channel(cache["scale"], x)).astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    x_hat = (x - per_channel(cache["running_mean"], x)) * per_channel(cache["inv_std"], x)
    return dx, (dy * x_hat).sum(axis=axis).astype(gamma.dtype), dy.sum(axis=axis).astype(gamma.dtype)


def update_running_stats(running_mean, running_var, mu_B, var_B, m, factor):
    """In place: running <- (1 - factor) * running + factor * batch statistic.

    ``factor`` is PyTorch's momentum (the weight of the *new* statistic; 0.1 by default),
    or 1/t for a cumulative average over t batches. The running variance is unbiased,
    var_B * m / (m - 1), the estimate Algorithm 2 (step 10) uses for inference.
    """
    running_mean[...] = (1.0 - factor) * running_mean + factor * mu_B  # in place, in the buffers' dtype
    running_var[...] = (1.0 - factor) * running_var + factor * (m / (m - 1)) * var_B
