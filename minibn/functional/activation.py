"""Elementwise nonlinearities: forward(x) -> (y, cache), backward(dy, cache) -> dx.

These are the teaching path. ``nn.ReLU`` and ``nn.Sigmoid`` run them with
``impl="reference"``; by default (``impl="auto"``, NumPy float32/float64 arrays, numba
installed) they run the compiled loops of :mod:`minibn.kernels.fused_elementwise` instead,
which give these functions' values bit for bit in fewer passes (the fused ReLU keeps y as
its cache rather than the mask: y > 0 exactly where x > 0). ``layer.last_implementation``
says which ran.
"""

from __future__ import annotations

from ..backend import get_array_module

__all__ = ["relu_forward", "relu_backward", "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward"]


def relu_forward(x):
    """ReLU, ``max(x, 0)``, elementwise.

    Parameters
    ----------
    x : ndarray, any shape
        A floating-point array.

    Returns
    -------
    y : ndarray
        ``x * (x > 0)``: x's shape and dtype.
    mask : ndarray of bool
        ``x > 0``, x's shape: the cache of :func:`relu_backward`.
    """
    y = x * (x > 0)
    return y, x > 0


def relu_backward(dy, mask):
    """The gradient of :func:`relu_forward`: dy where x > 0, zero elsewhere.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    mask : ndarray of bool
        The cache of :func:`relu_forward` (``x > 0``).

    Returns
    -------
    dx : ndarray
        ``dy * mask``, dy's shape and dtype.
    """
    return dy * mask


def sigmoid_forward(x):
    """The logistic sigmoid ``1 / (1 + exp(-x))``, elementwise, stable for large ``|x|``.

    Written as ``exp(min(x, 0)) / (1 + exp(-|x|))``: both exponents are <= 0, so nothing
    overflows, and each tail keeps full relative precision (sigmoid(-40) = 4.2e-18, not 0).
    For x >= 0 it is ``1 / (1 + e^-x)``; for x < 0 it is ``e^x / (1 + e^x)``. (In NumPy, two
    exps are cheaper than one exp and a ``where``; the fused loop takes one exp and chooses
    per value, with the same roundings.)

    Parameters
    ----------
    x : ndarray, any shape
        A floating-point array.

    Returns
    -------
    y : ndarray
        sigmoid(x), x's shape and dtype.
    cache : ndarray
        y itself: the backward needs only y.
    """
    xp = get_array_module(x)
    y = xp.minimum(x, 0)
    xp.exp(y, out=y)
    d = xp.abs(x)
    xp.negative(d, out=d)
    xp.exp(d, out=d)
    d += 1.0
    y /= d
    return y, y


def sigmoid_backward(dy, y):
    """The gradient of :func:`sigmoid_forward`: dsigmoid/dx = y (1 - y).

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    y : ndarray
        The forward's output (its cache).

    Returns
    -------
    dx : ndarray
        ``dy * y * (1 - y)``, x's shape.
    """
    return dy * (y * (1.0 - y))


def tanh_forward(x):
    """The hyperbolic tangent, elementwise.

    Parameters
    ----------
    x : ndarray, any shape
        A floating-point array.

    Returns
    -------
    y : ndarray
        tanh(x), x's shape and dtype.
    cache : ndarray
        y itself: the backward needs only y.
    """
    xp = get_array_module(x)
    y = xp.tanh(x)
    return y, y


def tanh_backward(dy, y):
    """The gradient of :func:`tanh_forward`: dtanh/dx = 1 - y^2.

    Parameters
    ----------
    dy : ndarray
        dl/dy, x's shape.
    y : ndarray
        The forward's output (its cache).

    Returns
    -------
    dx : ndarray
        ``dy * (1 - y * y)``, x's shape.
    """
    return dy * (1.0 - y * y)
