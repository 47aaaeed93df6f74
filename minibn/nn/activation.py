"""ReLU, Sigmoid, Tanh and Dropout modules (elementwise; any shape)."""

from __future__ import annotations

from .. import functional as F
from .._checks import check_float, check_range
from .module import Module


class _Elementwise(Module):
    _forward = _backward = None

    def forward(self, x):
        check_float("x", x, type(self).__name__)
        y, self._cache = type(self)._forward(x)
        return y

    def backward(self, dy):
        dy = self._check_dy(dy)
        return type(self)._backward(dy, self._cache)


class ReLU(_Elementwise):
    """max(x, 0)."""
    _forward, _backward = F.relu_forward, F.relu_backward


class Sigmoid(_Elementwise):
    """1 / (1 + exp(-x)), stable for large |x|."""
    _forward, _backward = F.sigmoid_forward, F.sigmoid_backward


class Tanh(_Elementwise):
    _forward, _backward = F.tanh_forward, F.tanh_backward


class Dropout(Module):
    """Inverted dropout with drop probability p in training; the identity in eval."""

    def __init__(self, p=0.5):
        super().__init__()
        check_range("p", p, 0.0, 1.0, "Dropout", hi_open=True)
        self.p = p

    def forward(self, x):
        check_float("x", x, "Dropout")
        if not self.training:
            self._mask = None
            return x
        y, self._mask = F.dropout_forward(x, self.p)
        return y

    def backward(self, dy):
        dy = self._check_dy(dy)
        return F.dropout_backward(dy, self._mask)

    def extra_repr(self):
        return f"p={self.p}"
