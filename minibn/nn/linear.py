"""Linear layer (fully connected)."""

from __future__ import annotations

from .. import functional as F
from .._checks import check_dim, check_float, check_ndim, check_positive_int, float_dtype
from . import init
from .module import Module, Parameter

__all__ = ["Linear"]


class Linear(Module):
    """Fully connected layer, ``y = x W^T + b``: (N, in_features) -> (N, out_features).

    ``.weight`` is (out, in) and ``.bias`` (out,), as in PyTorch; both start from
    U(-1/sqrt(in), 1/sqrt(in)). Use :mod:`minibn.nn.init` for other schemes.

    The weight is stored column-major (``order="F"``): its transpose W^T, the (in, out)
    matrix the forward multiplies by, is then row-major, the layout BLAS multiplies
    fastest from the left (the first layer of the Fig. 1 MLP, (60, 784) x (784, 100):
    89 instead of 103 us within training steps on a 2-core CPU, in one comparison). It changes
    nothing but speed: W[i, j] is the same number either way. dW is written in the same
    layout (:meth:`Parameter.grad_buffer`), so the optimizer's ``W -= lr * dW`` runs over
    both arrays in memory order.

    Parameters
    ----------
    in_features, out_features : int
        Positive integers.
    bias : bool, optional
        Whether the layer has a bias.
    dtype : str or dtype, optional
        The parameters' dtype, a floating-point one.

    Raises
    ------
    ValueError
        If in_features or out_features is not a positive integer, or dtype is not a
        floating-point dtype.
    """

    can_skip_dx = True

    def __init__(self, in_features, out_features, bias=True, dtype="float32"):
        super().__init__()
        check_positive_int("in_features", in_features, "Linear")
        check_positive_int("out_features", out_features, "Linear")
        dtype = float_dtype(dtype, "Linear")
        self.in_features, self.out_features = in_features, out_features
        self.weight = init.uniform_fan_in_(Parameter.zeros((out_features, in_features), dtype, order="F"), in_features)
        self.bias = init.uniform_fan_in_(Parameter.zeros((out_features,), dtype), in_features) if bias else None

    def forward(self, x):
        """``y = x W^T + b`` (:func:`minibn.functional.linear_forward`).

        Parameters
        ----------
        x : ndarray, shape (N, in_features)
            A floating-point array. Its dtype and the weight's combine as NumPy's do: a float64 x
            with the default float32 weights gives a float64 y (and dx); the gradients are
            stored in the parameters' dtype.

        Returns
        -------
        ndarray, shape (N, out_features)

        Raises
        ------
        TypeError
            If x is not a floating-point array.
        ValueError
            If x is not of shape (N, in_features).
        """
        if not (getattr(x, "ndim", None) == 2 and x.shape[1] == self.in_features and x.dtype.kind == "f"):
            self._check(x)  # the usual case is the one line above; the messages are built for an error
        y, self._cache = F.linear_forward(x, self.weight.data, None if self.bias is None else self.bias.data)
        return y

    def _check(self, x):
        check_float("x", x, "Linear")
        check_ndim("x", x, (2,), "Linear", f"(N, {self.in_features})")
        check_dim("x", x, 1, self.in_features, "Linear", f"(N, {self.in_features})")

    def backward(self, dy, need_dx=True):
        """Accumulate dW (and db) into the parameters' ``grad``; return dx.

        Parameters
        ----------
        dy : ndarray, shape (N, out_features)
            The gradient of the last output.
        need_dx : bool, optional
            False skips dx (the first layer: its input is data).

        Returns
        -------
        ndarray, shape (N, in_features), or None
            dx; None when ``need_dx`` is False.

        Raises
        ------
        RuntimeError
            If no forward ran yet.
        TypeError, ValueError
            If dy is not a floating-point array of the output's shape.
        """
        dy = self._check_dy(dy)
        w = self.weight
        # the step's first dW goes into the array kept for it (Parameter.grad_buffer)
        out = w.grad_buffer() if w.grad is None else None
        dx, dW, db = F.linear_backward(dy, self._cache, need_dx, out)
        w.accumulate(dW)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"
