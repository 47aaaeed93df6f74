"""ReLU, Sigmoid, Tanh and Dropout modules (elementwise; any shape)."""

from __future__ import annotations

from .. import dispatch
from .. import functional as F
from .._checks import check_float, check_range
from .module import Module

__all__ = ["ReLU", "Sigmoid", "Tanh", "Dropout"]


class _Elementwise(Module):
    base_class = True
    _forward = _backward = None

    def forward(self, x):
        check_float("x", x, type(self).__name__)
        y, self._cache = type(self)._forward(x)
        return y

    def backward(self, dy):
        dy = self._check_dy(dy)
        return type(self)._backward(dy, self._cache)


class _Registered(Module):
    """An elementwise layer computed by a registered operation ``op`` (:mod:`minibn.registry`):
    the teaching path, or a fused loop that gives the same values (``impl=``)."""

    base_class = True
    op = ""

    def __init__(self, impl="auto"):
        super().__init__()
        self.impl = dispatch.check_impl(self.op, impl, type(self).__name__)

    def forward(self, x):
        check_float("x", x, type(self).__name__)
        y, self._cache = self._run(self.op, self.impl, x)
        return y

    def backward(self, dy):
        dy = self._check_dy(dy)
        return self.last_implementation.backward(dy, self._cache)

    def extra_repr(self):
        return "" if self.impl == "auto" else f"impl={self.impl!r}"


class ReLU(_Registered):
    """``max(x, 0)``, elementwise (:func:`minibn.functional.relu_forward`).

    x: any shape, of a floating dtype -> y of x's shape and dtype. A non-float x raises
    TypeError.

    Parameters
    ----------
    impl : {"auto", "fused", "reference"}, optional
        How it is computed (the implementations of "relu", :mod:`minibn.registry`): the
        reference is the teaching path; "fused" (the default for float32/float64 NumPy
        arrays, where numba is installed) gives the same values in one pass
        (:mod:`minibn.kernels.fused_elementwise`).

    Raises
    ------
    ValueError
        If impl is not "auto" or a registered implementation of "relu".
    """

    op = "relu"


class Sigmoid(_Registered):
    """The logistic sigmoid ``1 / (1 + exp(-x))``, elementwise, stable for large ``|x|``.

    x: any shape, of a floating dtype -> y of x's shape and dtype
    (:func:`minibn.functional.sigmoid_forward`). A non-float x raises TypeError.

    Parameters
    ----------
    impl : {"auto", "fused", "reference"}, optional
        How it is computed (the implementations of "sigmoid", :mod:`minibn.registry`): the
        reference is the teaching path; "fused" (the default for float32/float64 NumPy
        arrays, where numba is installed) gives the same values in fewer passes
        (:mod:`minibn.kernels.fused_elementwise`).

    Raises
    ------
    ValueError
        If impl is not "auto" or a registered implementation of "sigmoid".
    """

    op = "sigmoid"


class Tanh(_Elementwise):
    """The hyperbolic tangent, elementwise (:func:`minibn.functional.tanh_forward`).

    x: any shape, of a floating dtype -> y of x's shape and dtype. A non-float x raises
    TypeError.
    """
    _forward, _backward = F.tanh_forward, F.tanh_backward


class Dropout(Module):
    """Inverted dropout: in training, zero each value with probability p and scale the rest by 1/(1-p).

    In eval mode it is the identity. x: any shape, of a floating dtype -> y of x's shape.

    Parameters
    ----------
    p : float, optional
        The drop probability, in [0, 1).

    Raises
    ------
    ValueError
        If p is not in [0, 1).
    """

    def __init__(self, p=0.5):
        super().__init__()
        check_range("p", p, 0.0, 1.0, "Dropout", hi_open=True)
        self.p = p

    def forward(self, x):
        """Drop and rescale in training (a new mask each call); return x itself in eval mode.

        Parameters
        ----------
        x : ndarray, any shape
            A floating-point array.

        Returns
        -------
        ndarray
            x's shape and dtype.

        Raises
        ------
        TypeError
            If x is not a floating-point array.
        """
        check_float("x", x, "Dropout")
        if not self.training:
            self._mask = None
            return x
        y, self._mask = F.dropout_forward(x, self.p)
        return y

    def backward(self, dy):
        """dy times the forward's mask (dy itself in eval mode).

        Parameters
        ----------
        dy : ndarray
            The gradient of the last output, its shape.

        Returns
        -------
        ndarray
            dx.

        Raises
        ------
        RuntimeError
            If no forward ran yet.
        TypeError, ValueError
            If dy is not a floating-point array of the output's shape.
        """
        dy = self._check_dy(dy)
        return F.dropout_backward(dy, self._mask)

    def extra_repr(self):
        return f"p={self.p}"
