"""Linear layer (fully connected)."""

from __future__ import annotations

from .. import backend
from .. import functional as F
from .._checks import check_dim, check_float, check_ndim, check_positive_int
from . import init
from .module import Module, Parameter


def _new(shape, dtype="float32", order="C"):
    return backend.xp().zeros(shape, dtype=dtype, order=order)


class Linear(Module):
    """y = x W^T + b. x: (N, in_features) -> y: (N, out_features).

    ``.weight`` is (out, in) and ``.bias`` (out,), as in PyTorch; both start from
    U(-1/sqrt(in), 1/sqrt(in)). Use :mod:`minibn.nn.init` for other schemes.

    The weight is stored column-major (``order="F"``): its transpose W^T, the (in, out)
    matrix the forward multiplies by, is then row-major, the layout BLAS multiplies
    fastest from the left (the first layer of the Fig. 1 MLP, (60, 784) x (784, 100):
    89 instead of 103 us within training steps on a 2-core CPU, in one comparison). It changes
    nothing but speed: W[i, j] is the same number either way. dW is written in the same
    layout (:meth:`Parameter.grad_buffer`), so the optimizer's ``W -= lr * dW`` runs over
    both arrays in memory order.
    """

    can_skip_dx = True

    def __init__(self, in_features, out_features, bias=True, dtype="float32"):
        super().__init__()
        check_positive_int("in_features", in_features, "Linear")
        check_positive_int("out_features", out_features, "Linear")
        self.in_features, self.out_features = in_features, out_features
        self.weight = init.uniform_fan_in_(Parameter(_new((out_features, in_features), dtype, "F")), in_features)
        self.bias = init.uniform_fan_in_(Parameter(_new((out_features,), dtype)), in_features) if bias else None

    def forward(self, x):
        if not (getattr(x, "ndim", None) == 2 and x.shape[1] == self.in_features and x.dtype.kind == "f"):
            self._check(x)  # the usual case is the one line above; the messages are built for an error
        y, self._cache = F.linear_forward(x, self.weight.data, None if self.bias is None else self.bias.data)
        return y

    def _check(self, x):
        check_float("x", x, "Linear")
        check_ndim("x", x, (2,), "Linear", f"(N, {self.in_features})")
        check_dim("x", x, 1, self.in_features, "Linear", f"(N, {self.in_features})")

    def backward(self, dy, need_dx=True):
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
