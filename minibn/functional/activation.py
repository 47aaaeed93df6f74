"""Elementwise nonlinearities: forward(x) -> (y, cache), backward(dy, cache) -> dx."""

from __future__ import annotations

from ..backend import get_array_module

__all__ = ["relu_forward", "relu_backward", "sigmoid_forward", "sigmoid_backward", "tanh_forward", "tanh_backward"]


def relu_forward(x):
    y = x * (x > 0)
    return y, x > 0


def relu_backward(dy, mask):
    return dy * mask


def sigmoid_forward(x):
    """1 / (1 + exp(-x)), stable for large |x|.

    Written as exp(min(x, 0)) / (1 + exp(-|x|)): both exponents are <= 0, so nothing
    overflows, and each tail keeps full relative precision (sigmoid(-40) = 4.2e-18, not 0).
    For x >= 0 it is 1 / (1 + e^-x); for x < 0 it is e^x / (1 + e^x). (Two exps are
    cheaper here than one exp and a ``where``.)
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
    """dsigmoid/dx = y (1 - y)."""
    return dy * (y * (1.0 - y))


def tanh_forward(x):
    xp = get_array_module(x)
    y = xp.tanh(x)
    return y, y


def tanh_backward(dy, y):
    """dtanh/dx = 1 - y^2."""
    return dy * (1.0 - y * y)
