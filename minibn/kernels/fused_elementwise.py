"""ReLU, the sigmoid and the softmax cross-entropy, the fused CPU path (numba loops in
:mod:`_elementwise_loops`), and the SGD update's loop.

On the Fig. 1 network's (60, 100) activations each NumPy call costs about a microsecond
whatever it computes, so the teaching path's six-call sigmoid and twelve-call loss are
mostly calls. Here:

- ReLU ``x * (x > 0)``: one pass forward (NumPy makes three: the test, the product and the
  mask it keeps) and one backward, which reads the mask off y (y > 0 exactly where x > 0);
  the reference's values bit for bit, -0 and NaN included;
- sigmoid: ``e = exp(-|x|)`` by NumPy (whose exp runs 16 lanes at a time, where a numba
  loop calls the scalar exp), the rest in two compiled passes; the values are the
  reference's bit for bit (:func:`minibn.functional.sigmoid_forward` computes the same
  roundings in another order of calls);
- its backward ``dy * (y * (1 - y))``: one pass, the reference's values;
- softmax cross-entropy: one loop over the rows forward, one backward, with float64 sums
  (the reference sums in the logits' dtype: the two agree to rounding, about 1e-7 for
  float32);
- ``sgd_step``: ``w -= lr * g`` in one pass, for :class:`minibn.optim.SGD`.

Each function has the contract of the reference function it replaces (same arguments and
return values; each backward takes the cache of its own forward).
"""

from __future__ import annotations

import functools

import numpy as np

from ..functional.activation import relu_backward, sigmoid_backward
from . import numba_cpu


@functools.cache
def _loops():
    return numba_cpu.loops("_elementwise_loops")


def _flat(a):
    """a's values as a 1-d array (a view of a C-contiguous a, else a contiguous copy)."""
    return np.ascontiguousarray(a).reshape(-1)


def relu_forward_fused(x):
    """Same contract as :func:`minibn.functional.relu_forward`, except the cache: (y, y), the
    backward reads its mask off y."""
    numba_cpu.check(x)
    xf = _flat(x)
    y = np.empty_like(xf)
    _loops().relu(xf, y, xf.dtype.type(1), xf.dtype.type(0))
    y = y.reshape(x.shape)
    return y, y


def relu_backward_fused(dy, y):
    """dx = dy where y > 0, else dy * 0 (the values of :func:`minibn.functional.relu_backward`)."""
    numba_cpu.check(dy)
    if dy.dtype != y.dtype:
        return relu_backward(dy, y > 0)  # the reference's promotions (a layer converts dy to y's dtype first)
    yf, dyf = _flat(y), _flat(dy)
    dx = np.empty_like(yf)
    _loops().relu_backward(dyf, yf, dx, yf.dtype.type(1), yf.dtype.type(0))
    return dx.reshape(dy.shape)


def sigmoid_forward_fused(x):
    """Same contract as :func:`minibn.functional.sigmoid_forward`: (y, y), y of x's shape and dtype."""
    numba_cpu.check(x)
    k = _loops()
    xf = _flat(x)
    e, y = np.empty_like(xf), np.empty_like(xf)  # not one array: a loop that reads and writes
    k.negative_abs(xf, e)                          # the same array is not vectorized (5x slower)
    np.exp(e, out=e)
    k.sigmoid_from_exp(xf, e, y, xf.dtype.type(1))
    y = y.reshape(x.shape)
    return y, y


def sigmoid_backward_fused(dy, y):
    """Same contract as :func:`minibn.functional.sigmoid_backward`: dx = dy * y * (1 - y), dy's shape."""
    numba_cpu.check(dy)
    if dy.dtype != y.dtype:  # the reference's promotions (a layer converts dy to y's dtype first)
        return sigmoid_backward(dy, y)
    yf, dyf = _flat(y), _flat(dy)
    dx = np.empty_like(yf)
    _loops().sigmoid_backward(dyf, yf, dx, yf.dtype.type(1))
    return dx.reshape(dy.shape)


def softmax_cross_entropy_forward_fused(logits, labels):
    """Same contract as :func:`minibn.functional.softmax_cross_entropy_forward`: (loss, cache),
    the loss a scalar of the logits' dtype, NaN when a label is outside [0, K)."""
    numba_cpu.check(logits)
    logits = np.ascontiguousarray(logits)
    labels = np.ascontiguousarray(labels)
    log_p = np.empty_like(logits)
    total = _loops().softmax_cross_entropy(logits, labels, log_p)
    return logits.dtype.type(total / logits.shape[0]), (log_p, labels)


def softmax_cross_entropy_backward_fused(cache, dloss=1.0):
    """Same contract as :func:`minibn.functional.softmax_cross_entropy_backward`: dlogits (N, K)."""
    log_p, labels = cache
    dlogits = np.empty_like(log_p)
    _loops().softmax_cross_entropy_backward(log_p, labels, float(dloss) / log_p.shape[0], dlogits)
    return dlogits


def sgd_step_applies(w, g):
    """Whether :func:`sgd_step` can update w from g: NumPy float32/float64 arrays of one dtype,
    C-contiguous, with numba installed."""
    return (numba_cpu.applies(w) and type(g) is np.ndarray and g.dtype == w.dtype
            and w.flags.c_contiguous and g.flags.c_contiguous)


def sgd_step(w, g, lr):
    """``w -= lr * g`` in place, in one pass (the values NumPy gives): w, g as
    :func:`sgd_step_applies` says, lr a float (rounded to w's dtype, as NumPy rounds it)."""
    _loops().sgd_step(w.reshape(-1), g.reshape(-1), w.dtype.type(lr))
