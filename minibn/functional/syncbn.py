"""Synchronized batch normalization: Algorithm 1 over a batch split across processes.

k ranks each hold a part of the mini-batch, x_r of shape (n_r, C, ...). Synchronized BN
normalizes every part by the statistics of the *whole* batch, as if one process held the
concatenation: the output and every gradient are those of :func:`batch_norm_forward` /
:func:`batch_norm_backward` on the concatenated batch. Two collectives per layer suffice,
one per direction, because both directions need only per-channel sums over the batch:

Forward (Algorithm 1, lines 1-2, over the union of the parts). Each rank computes its own
count m_r (values per channel), mean and ``M2_r = sum (x - mean_r)^2`` (two passes, as in
:func:`batch_moments`); one exchange of these 2C + 1 numbers and a pairwise merge (Chan et al.,
see :meth:`minibn.distributed.Communicator.merge_moments`) give the global m, mu_B and
sigma_B^2 = M2 / m. Lines 3-4 are then local: ``x_hat = (x - mu_B) / sqrt(sigma_B^2 + eps)``,
``y = gamma x_hat + beta``.

Backward. The closed form of :func:`batch_norm_backward` holds for the whole batch::

    dl/dx_i = gamma / sqrt(sigma_B^2 + eps) * (dl/dy_i - (1/m) sum_j dl/dy_j - x_hat_i (1/m) sum_j dl/dy_j x_hat_j)

where the sums over j run over all m values of the batch, on every rank. Those are the
two sums each rank computes over its own values and exchanges (one all-reduce of 2C
numbers); the rest is local. (The sums are dl/dbeta and dl/dgamma of the whole batch.)

Returned parameter gradients are this rank's part, sum over its own values of
dl/dy_i x_hat_i and of dl/dy_i: data-parallel training sums the parameter gradients over
the ranks (that sum is the whole batch's), and a global value returned here would be
counted k times.

``group`` is any object with ``merge_moments(count, mean, m2)`` and ``allreduce_sum(a)``
(:class:`minibn.distributed.Communicator`): this module sends nothing itself.
"""

from __future__ import annotations

from .._checks import check_inputs
from ..backend import get_array_module
from .batchnorm import check_axis, per_channel

__all__ = ["sync_batch_norm_forward", "sync_batch_norm_backward"]


def sync_batch_norm_forward(x, gamma, beta, eps, group):
    """Algorithm 1 with the statistics of the batch spread over ``group``'s ranks.

    A collective: every rank of the group must call it.

    Parameters
    ----------
    x : ndarray, shape (n_r, C, ...)
        This rank's part of the batch, of a floating dtype; n_r may differ between ranks.
    gamma, beta : ndarray, shape (C,), or None
        Scale and shift; both None for no affine transform.
    eps : float
        Added to the batch variance inside the square root.
    group : Communicator
        The communicator (see the module docstring).

    Returns
    -------
    y : ndarray
        x's shape and dtype.
    cache : dict
        As :func:`batch_norm_forward`'s, with m, mu_B and var_B those of the whole batch
        (identical on every rank), and the group.

    Raises
    ------
    TypeError
        If x is not a plain floating-point array (naming the fix).
    ValueError
        If x has fewer than 2 axes, or gamma and beta are not both None or both of shape (C,);
        and, on every rank alike (all see the same counts), if a rank has no values or the
        whole batch has one value per channel.
    """
    x = check_inputs("sync_batch_norm_forward", x, gamma, beta)              # the boundary
    xp = get_array_module(x)
    axis = check_axis(x, None)
    C = x.shape[1]
    m_r = x.size // C if x.shape[0] else 0
    if m_r:
        mean_r = x.mean(axis=axis, dtype="float64")                          # this rank's line 1
        m2_r = ((x - per_channel(mean_r, x)) ** 2).sum(axis=axis)            # this rank's sum of squares
    else:
        mean_r = m2_r = xp.zeros(C)
    counts, mu_B, M2 = group.merge_moments(m_r, mean_r, m2_r)              # the one exchange
    empty = [r for r, n in enumerate(counts) if n == 0]
    if empty:
        raise ValueError(f"synchronized batch norm: rank(s) {empty} of {len(counts)} have no samples "
                         f"(input shapes with N = 0); every rank needs at least one")
    m = int(counts.sum())
    if m < 2:
        raise ValueError(f"expected more than 1 value per channel when training, got m = {m} value(s) per "
                         f"channel over all {len(counts)} ranks")
    mu_B, var_B = xp.asarray(mu_B), xp.asarray(M2 / m)                     # lines 1-2, whole batch
    x_hat = (x - per_channel(mu_B, x)) / per_channel((var_B + eps) ** 0.5, x)  # line 3
    y = x_hat if gamma is None else per_channel(gamma, x) * x_hat + per_channel(beta, x)  # line 4
    cache = {"x": x, "x_hat": x_hat, "mu_B": mu_B, "var_B": var_B, "gamma": gamma, "eps": eps, "axis": axis,
             "m": m, "group": group}
    return y.astype(x.dtype, copy=False), cache


def sync_batch_norm_backward(dy, cache):
    """The closed-form BN backward with the batch's two sums taken over every rank (one all-reduce).

    A collective: every rank of the group must call it.

    Parameters
    ----------
    dy : ndarray, shape (n_r, C, ...)
        This rank's part of dl/dy.
    cache : dict
        The cache of :func:`sync_batch_norm_forward`.

    Returns
    -------
    dx : ndarray
        dl/dx of this rank's part, x's shape and dtype.
    dgamma, dbeta : ndarray, shape (C,), or None
        This rank's own sums, in gamma's dtype; None without an affine transform.
    """
    xp = get_array_module(dy)
    x, x_hat, var_B, gamma = cache["x"], cache["x_hat"], cache["var_B"], cache["gamma"]
    eps, axis, m = cache["eps"], cache["axis"], cache["m"]
    C = x.shape[1]
    dbeta_r = dy.sum(axis=axis, dtype="float64")                          # this rank's sum dl/dy_i
    dgamma_r = (dy * x_hat).sum(axis=axis)                                 # this rank's sum dl/dy_i x_hat_i
    sums = cache["group"].allreduce_sum(xp.concatenate([dbeta_r, dgamma_r]))  # the one exchange
    dbeta, dgamma = sums[:C], sums[C:]                                     # the whole batch's
    scale = (var_B + eps) ** -0.5 if gamma is None else gamma * (var_B + eps) ** -0.5
    dx = per_channel(scale, x) * (dy - per_channel(dbeta, x) / m - x_hat * per_channel(dgamma, x) / m)
    dx = dx.astype(x.dtype, copy=False)
    if gamma is None:
        return dx, None, None
    return dx, dgamma_r.astype(gamma.dtype), dbeta_r.astype(gamma.dtype)
