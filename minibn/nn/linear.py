"""Linear layer (fully connected)."""

from __future__ import annotations

from .. import backend
from .. import functional as F
from .._checks import check_dim, check_float, check_ndim, check_positive_int
from . import init
from .module import Module, Parameter


def _new(shape, dtype="float32"):
    return backend.xp().zeros(shape, dtype=dtype)


class Linear(Module):
    """y = x W^T + b. x: (N, in_features) -> y: (N, out_features).

    ``.weight`` is (out, in) and ``.bias`` (out,), as in PyTorch; both start from
    U(-1/sqrt(in), 1/sqrt(in)). Use :mod:`minibn.nn.init` for other schemes.
    """

    can_skip_dx = True

    def __init__(self, in_features, out_features, bias=True, dtype="float32"):
        super().__init__()
        check_positive_int("in_features", in_features, "Linear")
        check_positive_int("out_features", out_features, "Linear")
        self.in_features, self.out_features = in_features, out_features
        self.weight = init.uniform_fan_in_(Parameter(_new((out_features, in_features), dtype)), in_features)
        self.bias = init.uniform_fan_in_(Parameter(_new((out_features,), dtype)), in_features) if bias else None
        self._dW = None

    def forward(self, x):
        check_float("x", x, "Linear")
        check_ndim("x", x, (2,), "Linear", f"(N, {self.in_features})")
        check_dim("x", x, 1, self.in_features, "Linear", f"(N, {self.in_features})")
        y, self._cache = F.linear_forward(x, self.weight.data, None if self.bias is None else self.bias.data)
        return y

    def backward(self, dy, need_dx=True):
        # After zero_grad, dW is written into the array of the previous step's gradient
        # (kept in self._dW) instead of a fresh one: a new (out, in) array every step
        # costs page faults. So copy a .grad you want to keep past the next zero_grad.
        self._check_dy(dy)
        w = self.weight
        reuse = w.grad is None and self._dW is not None and self._dW.shape == w.shape and self._dW.dtype == w.dtype
        dx, dW, db = F.linear_backward(dy, self._cache, need_dx, self._dW if reuse else None)
        if w.grad is None:
            self._dW = dW
        w.accumulate(dW)
        if self.bias is not None:
            self.bias.accumulate(db)
        return dx

    def extra_repr(self):
        return f"{self.in_features}, {self.out_features}, bias={self.bias is not None}"
