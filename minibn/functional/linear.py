"""Fully connected layer: y = x W^T + b (PyTorch layout: W is (out, in))."""

from __future__ import annotations

from ..backend import get_array_module

__all__ = ["linear_forward", "linear_backward"]


def linear_forward(x, W, b=None):
    """x: (N, in); W: (out, in); b: (out,) or None. Returns (y (N, out), cache)."""
    y = x @ W.T
    if b is not None:
        y += b
    return y, (x, W, b is not None)


def linear_backward(dy, cache, need_dx=True, dW_out=None):
    """dy: (N, out). Returns (dx (N, in) or None, dW (out, in), db (out,) or None).

    ``need_dx=False`` skips dx (the network's first layer: its input is data).
    ``dW_out``: an (out, in) array to write dW into instead of a new one.
    """
    x, W, has_b = cache
    dx = dy @ W if need_dx else None
    dW = dy.T @ x if dW_out is None else get_array_module(dy).matmul(dy.T, x, out=dW_out)
    db = dy.sum(axis=0) if has_b else None
    return dx, dW, db
