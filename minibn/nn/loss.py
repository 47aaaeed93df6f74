"""Softmax cross-entropy loss module."""

from __future__ import annotations

import numpy

from .. import backend
from .. import functional as F
from .._checks import check_float
from .module import Module

__all__ = ["SoftmaxCrossEntropy"]


class SoftmaxCrossEntropy(Module):
    """Mean cross-entropy of softmax(logits) against integer labels.

    ``loss = loss_fn(logits, labels)`` with logits (N, K) and labels (N,) integer class
    ids in [0, K); ``loss_fn.backward()`` returns dloss/dlogits (N, K).

    A label outside [0, K) raises ValueError for host labels. Device labels are not read
    back (that would make the host wait for the GPU at every step): there such a label
    makes the loss NaN (:func:`minibn.functional.softmax_cross_entropy_forward`), seen at
    the next evaluation or logged loss.
    """

    def forward(self, logits, labels):
        """The mean over the batch of ``-log softmax(logits)[label]``.

        Parameters
        ----------
        logits : ndarray, shape (N, K)
            Floating-point scores.
        labels : ndarray of int, shape (N,)
            Class ids in [0, K).

        Returns
        -------
        scalar
            The loss, in the logits' dtype (a 0-d array on the GPU).

        Raises
        ------
        TypeError
            If logits is not a floating-point array, or labels not an integer array.
        ValueError
            If logits is not 2-d, labels is not of shape (N,), or (host labels) a label is
            outside [0, K), naming the rows.
        """
        check_float("logits", logits, "SoftmaxCrossEntropy")
        if logits.ndim != 2:
            raise ValueError(f"SoftmaxCrossEntropy: expected logits of shape (N, K), got {tuple(logits.shape)}")
        if getattr(labels, "dtype", None) is None or labels.dtype.kind not in "iu":
            raise TypeError(f"SoftmaxCrossEntropy: labels must be an integer array, got "
                            f"{getattr(labels, 'dtype', type(labels).__name__)}")
        if labels.shape != (logits.shape[0],):
            raise ValueError(f"SoftmaxCrossEntropy: expected labels of shape ({logits.shape[0]},), "
                             f"got {tuple(labels.shape)}")
        C = logits.shape[1]
        if backend.get_array_module(labels) is numpy:  # on the GPU a bad label makes the loss NaN instead
            bad = (labels < 0) | (labels >= C)
            if bad.any():
                rows = numpy.flatnonzero(bad)[:10].tolist()
                raise ValueError(f"SoftmaxCrossEntropy: labels must be class ids in [0, {C}), got "
                                 f"{sorted(set(labels[bad].tolist()))[:10]} at rows {rows}")
        loss, self._cache = F.softmax_cross_entropy_forward(logits, labels)
        return loss

    def backward(self, dloss=1.0):
        """The gradient of the last loss with respect to the logits, ``(softmax - onehot) / N * dloss``.

        Parameters
        ----------
        dloss : float, optional
            The upstream gradient of the loss.

        Returns
        -------
        ndarray, shape (N, K)
            dlogits.

        Raises
        ------
        RuntimeError
            If no loss was computed yet.
        """
        if getattr(self, "_cache", None) is None:
            raise RuntimeError("SoftmaxCrossEntropy: backward called before the loss was computed")
        return F.softmax_cross_entropy_backward(self._cache, dloss)
