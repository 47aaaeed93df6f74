"""Softmax cross-entropy, numerically stable (log-sum-exp with the max subtracted)."""

from __future__ import annotations

from ..backend import get_array_module

__all__ = ["softmax_cross_entropy_forward", "softmax_cross_entropy_backward"]


def softmax_cross_entropy_forward(logits, labels):
    """The mean over the batch of ``-log softmax(logits)[label]``, numerically stable.

    Subtracting the row maximum keeps exp from overflowing; log_softmax is formed as
    ``z - log(sum exp z)`` so a very confident wrong answer gives a large finite loss, not inf.

    A label outside [0, K) makes the loss NaN (and a value in its row of the gradient), on
    every device. Checking the labels on the host would make the host wait for the GPU at
    every step, and CuPy does not check indices (it wraps them around: label 5 of 4 classes
    would silently be class 1), so the check is made here, on the device, without a sync.
    (:class:`minibn.nn.SoftmaxCrossEntropy` also raises a clear ValueError for host labels.)

    Parameters
    ----------
    logits : ndarray, shape (N, K)
        Floating-point scores.
    labels : ndarray, shape (N,)
        Integer class ids in [0, K).

    Returns
    -------
    loss : scalar
        The mean cross-entropy, in the logits' dtype: a NumPy scalar, or a 0-d array on the
        logits' device (read it with ``float(loss)``, which waits for the device).
    cache : tuple
        (log_softmax (N, K), the labels modulo K, a (N,) array of 1, NaN for an out-of-range label).
    """
    xp = get_array_module(logits)
    N, K = logits.shape
    z = logits - logits.max(axis=1, keepdims=True)
    log_sum = xp.log(xp.exp(z).sum(axis=1, keepdims=True))
    log_p = z - log_sum
    rows = xp.arange(N)
    valid = (labels >= 0) & (labels < K)
    labels = labels % K  # an index in range on every device; the rows it moved are made NaN
    picked = xp.where(valid, log_p[rows, labels], xp.nan)
    loss = -picked.sum() / N
    one = xp.where(valid, 1.0, xp.nan).astype(log_p.dtype)  # 1 per row, NaN where the label is out of range
    return loss, (log_p, labels, one)


def softmax_cross_entropy_backward(cache, dloss=1.0):
    """The gradient of :func:`softmax_cross_entropy_forward` with respect to the logits.

    ``d(mean loss)/dlogits = (softmax(logits) - onehot(labels)) / N``, times dloss, with
    NaN in the row of a label outside [0, K).

    Parameters
    ----------
    cache : tuple
        The cache of :func:`softmax_cross_entropy_forward`.
    dloss : float, optional
        The upstream gradient of the loss.

    Returns
    -------
    dlogits : ndarray, shape (N, K)
    """
    xp = get_array_module(cache[0])
    log_p, labels, one = cache
    N = log_p.shape[0]
    dlogits = xp.exp(log_p)
    dlogits[xp.arange(N), labels] -= one
    dlogits *= dloss / N
    return dlogits
