"""Softmax cross-entropy loss module."""

from __future__ import annotations

from .. import functional as F
from .._checks import check_float
from .module import Module


class SoftmaxCrossEntropy(Module):
    """Mean cross-entropy of softmax(logits) against integer labels.

    ``loss = loss_fn(logits, labels)`` with logits (N, K) and labels (N,) integer class
    ids in [0, K); ``loss_fn.backward()`` returns dloss/dlogits (N, K).
    """

    def forward(self, logits, labels):
        check_float("logits", logits, "SoftmaxCrossEntropy")
        if logits.ndim != 2:
            raise ValueError(f"SoftmaxCrossEntropy: expected logits of shape (N, K), got {tuple(logits.shape)}")
        if getattr(labels, "dtype", None) is None or labels.dtype.kind not in "iu":
            raise TypeError(f"SoftmaxCrossEntropy: labels must be an integer array, got "
                            f"{getattr(labels, 'dtype', type(labels).__name__)}")
        if labels.shape != (logits.shape[0],):
            raise ValueError(f"SoftmaxCrossEntropy: expected labels of shape ({logits.shape[0]},), "
                             f"got {tuple(labels.shape)}")
        loss, self._cache = F.softmax_cross_entropy_forward(logits, labels)
        return loss

    def backward(self, dloss=1.0):
        return F.softmax_cross_entropy_backward(self._cache, dloss)
