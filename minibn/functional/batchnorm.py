"""Batch normalization as pure functions: Ioffe & Szegedy (2015), as written.

Shapes: ``x`` is (N, C), (N, C, L) or (N, C, H, W). Each channel c is one "activation"
normalized over the m values it takes in the mini-batch: over N for (N, C), and over N
and every position for (N, C, L) and (N, C, H, W), as Sec. 3.2 prescribes for
convolutions. ``gamma``, ``beta`` and every per-channel statistic are (C,) vectors (ghost
BN's cache stacks its virtual batches' statistics, (G, C)); :func:`per_channel` shapes one
to broadcast against x.

The pieces, each a forward -> (y, cache) and a backward(dy, cache) -> (dx, dgamma, dbeta):

* :func:`batch_norm_forward`: Algorithm 1 (the BN transform), line by line, with
  :func:`batch_moments` as its lines 1-2.
* :func:`batch_norm_backward_paper`: the six chain-rule formulas of Sec. 3, one per line.
* :func:`batch_norm_backward`: the same gradient simplified to one expression (closed form).
* :func:`batch_norm_inference_forward` / ``_backward``: the fixed affine transform that
  replaces BN at inference (Algorithm 2, step 11).
* :func:`update_running_stats`: the moving averages that stand in for Algorithm 2's
  population statistics (step 10) while training.
* :func:`ghost_batch_norm_forward` / ``_backward``: ghost batch normalization (Hoffer et
  al. 2017, Algorithm 1), Algorithm 1 applied to each virtual batch of a large batch.

Numerics, by plain means only (the tricks live in :mod:`minibn.kernels`): statistics are
accumulated in float64 whatever the input dtype (``dtype=`` of the mean), which keeps a
float32 input with mean 1e4 exact enough; the variance takes two passes (the mean first,
then the mean of squared deviations: E[x^2] - E[x]^2 cancels catastrophically); eps is
added inside the square root, once. Non-finite inputs propagate: a NaN in a channel
makes that channel's outputs NaN, and nothing is clipped.
"""

from __future__ import annotations

import numbers

from .._checks import check_inputs, check_positive_int
from ..backend import get_array_module

__all__ = ["batch_moments", "batch_norm_forward", "batch_norm_backward_paper", "batch_norm_backward",
           "batch_norm_inference_forward", "batch_norm_inference_backward", "update_running_stats",
           "ghost_batch_norm_forward", "ghost_batch_norm_backward", "virtual_batches",
           "per_channel", "reduced_axes", "check_axis", "check_batch_count", "batch_count"]


def reduced_axes(x):
    """The axes BN reduces over: the batch axis and every axis after the channels (Sec. 3.2).

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The input.

    Returns
    -------
    tuple of int
        ``(0,)`` for (N, C), ``(0, 2)`` for (N, C, L), ``(0, 2, 3)`` for (N, C, H, W).
    """
    return (0,) + tuple(range(2, x.ndim))


def check_axis(x, axis):
    """``axis`` as a tuple, checked: BN's statistics are per channel (axis 1), over all other axes.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The input.
    axis : None, int or tuple of int
        None for :func:`reduced_axes` of x; anything else must name exactly those axes.

    Returns
    -------
    tuple of int
        :func:`reduced_axes` of x.

    Raises
    ------
    TypeError
        If axis is not None, an int or a tuple (or list) of ints.
    ValueError
        If axis is not :func:`reduced_axes` of x.
    """
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
    """A (C,) vector reshaped to (1, C, 1, ...), to broadcast against x.

    Parameters
    ----------
    v : ndarray, shape (C,)
        One value per channel.
    x : ndarray, shape (N, C, ...)
        The array v is to broadcast against (only its ``ndim`` is read).

    Returns
    -------
    ndarray, shape (1, C) followed by x.ndim - 2 axes of size 1
        A view of v.
    """
    return v.reshape((1, -1) + (1,) * (x.ndim - 2))


def check_batch_count(x, m):
    """Check that each channel has more than one value to normalize over.

    Parameters
    ----------
    x : ndarray
        The input (its shape goes into the message).
    m : int
        The number of values per channel.

    Raises
    ------
    ValueError
        If m < 2 (PyTorch's message): one value has no variance to normalize by.
    """
    if m < 2:
        raise ValueError(f"expected more than 1 value per channel when training, got input of shape "
                         f"{tuple(x.shape)} (m = {m} values per channel)")


def batch_count(x, axis=None):
    """The reduced axes and the number m of values per channel, both checked.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The input.
    axis : None, int or tuple of int, optional
        As :func:`check_axis` takes it.

    Returns
    -------
    axis : tuple of int
        :func:`reduced_axes` of x.
    m : int
        ``x.size // C``, the values per channel (N, N * L or N * H * W).

    Raises
    ------
    TypeError, ValueError
        For an axis :func:`check_axis` refuses.
    ValueError
        If m < 2 (:func:`check_batch_count`).
    """
    axis = check_axis(x, axis)
    m = x.size // x.shape[1]
    check_batch_count(x, m)
    return axis, m


def batch_moments(x, axis=None):
    """Algorithm 1, lines 1-2: the mini-batch mean and (biased) variance of each channel.

    Per channel, over the m values of the reduced axes::

        mu_B      <- 1/m sum_i x_i
        sigma_B^2 <- 1/m sum_i (x_i - mu_B)^2

    The sums are accumulated in float64 (``dtype=``), and the variance is a second pass over
    ``x - mu_B``.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The mini-batch.
    axis : None, int or tuple of int, optional
        The reduced axes, checked by :func:`check_axis` (None: all but axis 1).

    Returns
    -------
    mu_B : ndarray, shape (C,), float64
        The mean of each channel.
    var_B : ndarray, shape (C,), float64
        The biased variance of each channel.

    Raises
    ------
    TypeError, ValueError
        For an axis :func:`check_axis` refuses.
    """
    axis = check_axis(x, axis)
    mu_B = x.mean(axis=axis, dtype="float64")
    var_B = ((x - per_channel(mu_B, x)) ** 2).mean(axis=axis)
    return mu_B, var_B


def batch_norm_forward(x, gamma, beta, eps=1e-5, axis=None):
    """Algorithm 1 (Batch Normalizing Transform), training mode.

    Line by line: the batch moments (lines 1-2, :func:`batch_moments`), then
    ``x_hat = (x - mu_B) / sqrt(sigma_B^2 + eps)`` (line 3) and ``y = gamma x_hat + beta``
    (line 4), per channel.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The input: (N, C), (N, C, L) or (N, C, H, W), of a floating dtype.
    gamma, beta : ndarray, shape (C,), or None
        Scale and shift; both None for no affine transform (y = x_hat).
    eps : float, optional
        Added to the mini-batch variance inside the square root.
    axis : None, int or tuple of int, optional
        The reduced axes; None (the default) or, written out, (0,) for (N, C), (0, 2) for
        (N, C, L), (0, 2, 3) for (N, C, H, W).

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        "x", "x_hat" (float64), the (C,) statistics "mu_B" and "var_B" (the caller updates
        its running statistics from them), "gamma", "eps", "axis" and "m", the number of
        values per channel.

    Raises
    ------
    TypeError
        If x is not a plain floating-point array (an ndarray subclass such as
        ``numpy.ma.MaskedArray``, or a list), naming the fix; or axis is of the wrong type.
    ValueError
        If x has fewer than 2 axes, gamma and beta are not both None or both of shape (C,),
        axis is not the reduced axes, or m == 1: one value per channel has no variance to
        normalize by.
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

    With ``g_i = dl/dx_hat_i = dl/dy_i * gamma``, sums over the m values of a channel::

        dl/dsigma_B^2 = sum_i g_i (x_i - mu_B) (-1/2) (sigma_B^2 + eps)^(-3/2)
        dl/dmu_B      = sum_i g_i (-1 / sqrt(sigma_B^2 + eps)) + dl/dsigma_B^2 sum_i -2 (x_i - mu_B) / m
        dl/dx_i       = g_i / sqrt(sigma_B^2 + eps) + dl/dsigma_B^2 2 (x_i - mu_B) / m + dl/dmu_B / m
        dl/dgamma     = sum_i dl/dy_i x_hat_i,     dl/dbeta = sum_i dl/dy_i

    The second term of dl/dmu_B is identically zero: sum_i (x_i - mu_B) = 0 by the
    definition of mu_B (line 1). It is computed anyway (it comes out at rounding level), so
    that the line reads as printed.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`batch_norm_forward`.
    return_intermediates : bool, optional
        Also return the intermediate gradients, so that a notebook can show each step.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma, dbeta : ndarray, shape (C,), or None
        In gamma's dtype; None without an affine transform.
    intermediates : dict
        Only with ``return_intermediates=True``: dl/dx_hat ("dx_hat", x's shape) and
        dl/dsigma_B^2, dl/dmu_B ("dvar_B", "dmu_B", (C,)).
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
    zero), and write sum_i dl/dy_i = dl/dbeta and sum_i dl/dy_i x_hat_i = dl/dgamma::

        dl/dx_i = gamma / sqrt(sigma_B^2 + eps) * (dl/dy_i - dl/dbeta / m - x_hat_i * dl/dgamma / m)

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`batch_norm_forward`.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma, dbeta : ndarray, shape (C,), or None
        In gamma's dtype; None without an affine transform.
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

    ::

        y = gamma / sqrt(Var[x] + eps) * x + (beta - gamma E[x] / sqrt(Var[x] + eps))

    Works for a batch of one: nothing is computed from the batch.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The input, of a floating dtype.
    gamma, beta : ndarray, shape (C,), or None
        Scale and shift; both None for no affine transform.
    running_mean, running_var : ndarray, shape (C,)
        E[x] and Var[x] (the unbiased population variance).
    eps : float, optional
        Added to Var[x] inside the square root.
    axis : None, int or tuple of int, optional
        Checked as by :func:`check_axis`; the transform is per channel whatever it is.

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        What :func:`batch_norm_inference_backward` needs ("x", "running_mean", "inv_std",
        "scale", "gamma", "axis").

    Raises
    ------
    TypeError
        If x is not a plain floating-point array (naming the fix), or axis is of the wrong type.
    ValueError
        If x has fewer than 2 axes, gamma and beta are not both None or both of shape (C,),
        or axis is not the reduced axes.
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
    """The gradient of :func:`batch_norm_inference_forward`, a fixed affine transform.

    ``dx = dy * gamma / sqrt(Var[x] + eps)``, ``dgamma = sum dy (x - E[x]) / sqrt(Var[x] + eps)``
    and ``dbeta = sum dy``, the sums over all but the channel axis.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`batch_norm_inference_forward`.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma, dbeta : ndarray, shape (C,), or None
        In gamma's dtype; None without an affine transform.
    """
    x, axis, gamma = cache["x"], cache["axis"], cache["gamma"]
    dx = (dy * per_channel(cache["scale"], x)).astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    x_hat = (x - per_channel(cache["running_mean"], x)) * per_channel(cache["inv_std"], x)
    return dx, (dy * x_hat).sum(axis=axis).astype(gamma.dtype), dy.sum(axis=axis).astype(gamma.dtype)


def update_running_stats(running_mean, running_var, mu_B, var_B, m, factor):
    """Update the running statistics in place: running <- (1 - factor) running + factor batch.

    ``factor`` is PyTorch's momentum (the weight of the *new* statistic; 0.1 by default),
    or 1/t for a cumulative average over t batches. The running variance takes the
    unbiased batch variance, var_B m / (m - 1), the estimate Algorithm 2 (step 10) uses for
    inference.

    Parameters
    ----------
    running_mean, running_var : ndarray, shape (C,)
        The buffers, written in place (in their own dtype).
    mu_B, var_B : ndarray, shape (C,)
        The batch mean and biased batch variance (the cache of :func:`batch_norm_forward`).
    m : int
        The number of values per channel in the batch (> 1).
    factor : float
        The weight of the batch statistic, in [0, 1].

    Returns
    -------
    None
    """
    # in place, in the buffers' dtype: (1 - factor) * running is rounded to it, the sum with the
    # float64 batch term is formed in float64 and then rounded (the values of
    # ``running[...] = (1 - factor) * running + factor * batch``, in three calls instead of four)
    running_mean *= 1.0 - factor
    running_mean += factor * mu_B
    running_var *= 1.0 - factor
    running_var += factor * (m / (m - 1)) * var_B


def virtual_batches(N, virtual_batch_size):
    """The row slices of the virtual batches of a batch of N rows (ghost BN).

    [0, v), [v, 2v), ...: the last one is smaller when N is not a multiple of v (as
    ``torch.split`` cuts a tensor).

    Parameters
    ----------
    N : int
        The number of rows.
    virtual_batch_size : int
        v, a positive integer.

    Returns
    -------
    list of slice
        ceil(N / v) slices, in order; empty for N = 0.
    """
    return [slice(start, min(start + virtual_batch_size, N)) for start in range(0, N, virtual_batch_size)]


def ghost_batch_norm_forward(x, gamma, beta, virtual_batch_size, eps=1e-5):
    """Ghost batch normalization (Hoffer et al. 2017, Algorithm 1), training mode.

    The batch is cut into virtual ("ghost") batches of ``virtual_batch_size`` consecutive
    samples (:func:`virtual_batches`), and each is normalized by Algorithm 1
    (:func:`batch_norm_forward`) with its own statistics. With v >= N it is BN.

    Parameters
    ----------
    x : ndarray, shape (N, C, ...)
        The input, of a floating dtype.
    gamma, beta : ndarray, shape (C,), or None
        As for :func:`batch_norm_forward`.
    virtual_batch_size : int
        v, a positive integer.
    eps : float, optional
        Added to each virtual batch's variance inside the square root.

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        "virtual_batches": the BN cache of each virtual batch in order (each with its (C,)
        mu_B, var_B and m: the caller updates its running statistics from each in turn);
        "mu_B", "var_B": (G, C), one row per virtual batch (G = ceil(N / v)); "slices",
        "gamma".

    Raises
    ------
    TypeError
        If x is not a plain floating-point array (naming the fix).
    ValueError
        If x has fewer than 2 axes, gamma and beta are not both None or both of shape (C,),
        virtual_batch_size is not a positive integer, or a virtual batch has one value per
        channel (a last virtual batch of one (1, C) sample, say), naming it.
    """
    x = check_inputs("ghost_batch_norm_forward", x, gamma, beta)           # the boundary
    check_positive_int("virtual_batch_size", virtual_batch_size, "ghost_batch_norm_forward")
    xp = get_array_module(x)
    slices = virtual_batches(x.shape[0], virtual_batch_size)
    ys, caches = [], []
    for number, rows in enumerate(slices):
        try:
            y_g, cache_g = batch_norm_forward(x[rows], gamma, beta, eps)   # Algorithm 1 on this virtual batch
        except ValueError as e:
            raise ValueError(f"ghost_batch_norm_forward: virtual batch {number} (rows {rows.start}:{rows.stop} "
                             f"of {x.shape[0]}, virtual_batch_size={virtual_batch_size}): {e}") from None
        ys.append(y_g)
        caches.append(cache_g)
    cache = {"virtual_batches": caches, "slices": slices, "gamma": gamma,
             "mu_B": xp.stack([c["mu_B"] for c in caches]), "var_B": xp.stack([c["var_B"] for c in caches])}
    return xp.concatenate(ys), cache


def ghost_batch_norm_backward(dy, cache):
    """The gradient of :func:`ghost_batch_norm_forward`.

    Each virtual batch's output depends on its own rows only, so its dx is BN's
    (:func:`batch_norm_backward`) on those rows; dgamma and dbeta are the sums over the
    virtual batches.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    cache : dict
        The cache of :func:`ghost_batch_norm_forward`.

    Returns
    -------
    dx : ndarray
        x's shape and dtype.
    dgamma, dbeta : ndarray, shape (C,), or None
        None without an affine transform.
    """
    xp = get_array_module(dy)
    parts = [batch_norm_backward(dy[rows], c) for rows, c in zip(cache["slices"], cache["virtual_batches"])]
    dx = xp.concatenate([dx_g for dx_g, _, _ in parts])
    if cache["gamma"] is None:
        return dx, None, None
    return dx, sum(dgamma_g for _, dgamma_g, _ in parts), sum(dbeta_g for _, _, dbeta_g in parts)
