"""Fully connected layer: y = x W^T + b (PyTorch layout: W is (out, in))."""

from __future__ import annotations

from ..backend import get_array_module

__all__ = ["linear_forward", "linear_backward"]


def linear_forward(x, W, b=None):
    """Fully connected layer: ``y = x W^T + b``.

    Parameters
    ----------
    x : ndarray, shape (N, in)
        The input.
    W : ndarray, shape (out, in)
        The weight, PyTorch's layout.
    b : ndarray, shape (out,), or None, optional
        The bias.

    Returns
    -------
    y : ndarray, shape (N, out)
    cache : tuple
        (x, W, whether there is a bias), for :func:`linear_backward`.
    """
    y = x @ W.T
    if b is not None:
        y += b
    return y, (x, W, b is not None)


def linear_backward(dy, cache, need_dx=True, dW_out=None):
    """The gradients of :func:`linear_forward`: ``dx = dy W``, ``dW = dy^T x``, db = the column sums of dy.

    Parameters
    ----------
    dy : ndarray, shape (N, out)
        dl/dy.
    cache : tuple
        The cache of :func:`linear_forward`.
    need_dx : bool, optional
        False skips dx (the network's first layer: its input is data).
    dW_out : ndarray, shape (out, in), or None, optional
        An array to write dW into instead of a new one.

    Returns
    -------
    dx : ndarray, shape (N, in), or None
        None when ``need_dx`` is False.
    dW : ndarray, shape (out, in)
        ``dW_out`` itself when it is given.
    db : ndarray, shape (out,), or None
        None when the forward had no bias.
    """
    x, W, has_b = cache
    dx = dy @ W if need_dx else None
    dW = dy.T @ x if dW_out is None else get_array_module(dy).matmul(dy.T, x, out=dW_out)
    db = dy.sum(axis=0) if has_b else None
    return dx, dW, db
