"""Softmax cross-entropy loss module."""

from __future__ import annotations

import math

import numpy

from .. import backend, dispatch
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

    Parameters
    ----------
    impl : {"auto", "fused", "reference"}, optional
        How it is computed (the implementations of "softmax_cross_entropy",
        :mod:`minibn.registry`): the reference is the teaching path; "fused" (the default for
        float32/float64 NumPy logits, where numba is installed) is one compiled loop each way
        (:mod:`minibn.kernels.fused_elementwise`), the same up to rounding.

    Raises
    ------
    ValueError
        If impl is not "auto" or a registered implementation of "softmax_cross_entropy".
    """

    op = "softmax_cross_entropy"

    def __init__(self, impl="auto"):
        super().__init__()
        self.impl = dispatch.check_impl(self.op, impl, "SoftmaxCrossEntropy")

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
        loss, cache = self._run(self.op, self.impl, logits, labels)
        # every implementation makes the loss NaN for a label outside [0, K): only then are
        # host labels searched for the rows to name (a pass less at every step)
        on_host = backend.get_array_module(logits) is numpy and backend.get_array_module(labels) is numpy
        if on_host and not math.isfinite(loss):
            self._check_labels(labels, logits.shape[1])
        self._cache = cache
        return loss

    @staticmethod
    def _check_labels(labels, C):
        bad = (labels < 0) | (labels >= C)
        if bad.any():
            rows = numpy.flatnonzero(bad)[:10].tolist()
            raise ValueError(f"SoftmaxCrossEntropy: labels must be class ids in [0, {C}), got "
                             f"{sorted(set(labels[bad].tolist()))[:10]} at rows {rows}")

    def extra_repr(self):
        return "" if self.impl == "auto" else f"impl={self.impl!r}"

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
        return self.last_implementation.backward_function(self._cache, dloss)
