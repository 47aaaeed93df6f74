"""Softmax cross-entropy, numerically stable (log-sum-exp with the max subtracted)."""

from __future__ import annotations

from ..backend import get_array_module

__all__ = ["softmax_cross_entropy_forward", "softmax_cross_entropy_backward"]


def softmax_cross_entropy_forward(logits, labels):
    """logits: (N, K) floats; labels: (N,) integer class ids in [0, K).

    Returns (loss, cache): the mean over the batch of -log softmax(logits)[label].
    Subtracting the row maximum keeps exp from overflowing; log_softmax is formed as
    z - log(sum exp z) so a very confident wrong answer gives a large finite loss, not inf.
    """
    xp = get_array_module(logits)
    N = logits.shape[0]
    z = logits - logits.max(axis=1, keepdims=True)
    log_sum = xp.log(xp.exp(z).sum(axis=1, keepdims=True))
    log_p = z - log_sum
    rows = xp.arange(N)
    loss = -log_p[rows, labels].sum() / N
    return loss, (log_p, labels)


def softmax_cross_entropy_backward(cache, dloss=1.0):
    """d(mean loss)/dlogits = (softmax(logits) - onehot(labels)) / N, times dloss."""
    xp = get_array_module(cache[0])
    log_p, labels = cache
    N = log_p.shape[0]
    dlogits = xp.exp(log_p)
    dlogits[xp.arange(N), labels] -= 1.0
    dlogits *= dloss / N
    return dlogits
